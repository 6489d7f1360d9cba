'use strict';
// The settings of `rcluster <script>`, as one table: the command-line flag,
// the key in a config or PM2 ecosystem file, how a value is checked, and the
// setupPrimary() setting it becomes. A value from either source is normalized
// by the same function, so a bad value is the same one-line error wherever it
// came from. A value that becomes a setupPrimary() setting is checked by that
// setting's own validator (lib/primary/settings.js), after the command line's
// text forms ("10s", "true") are read; the help's defaults are the table's.
const { validateSetting, defaultOf } = require('../primary/settings');
const { UsageError, validateMs } = require('../errors');

// The command's own defaults, for what is not a setupPrimary() setting.
const INSTANCES_DEFAULT = 'max';
const INSTANCE_VAR_DEFAULT = 'NODE_APP_INSTANCE';
const WATCH_DELAY_DEFAULT = 500;

function describe(value) {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

// `cause`: the setupPrimary() validator's Node-style error, when it refused.
function bad(where, what, value, cause) {
  const err = new UsageError(`${where} must be ${what} (got ${describe(value)})`);
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true });
  return err;
}

// A check: the command line's text form read by `parse`, then `validate`
// (a setupPrimary() validator, or one of lib/errors.js's) decides; what it
// refuses is told in the command's words, `what` the value must be.
function checked(parse, what, validate) {
  return (raw, where) => {
    const value = parse(raw);
    try {
      validate(value);
    } catch (err) {
      if (typeof err?.code !== 'string' || !err.code.startsWith('ERR_')) throw err;
      throw bad(where, what, value, err);
    }
    return value;
  };
}

// A setupPrimary() setting's validator (or several: one flag may set two).
function setting(...paths) {
  return (value) => {
    for (const path of paths) validateSetting(path, value);
  };
}

// "10s", "5m", "250ms", "1h" or digits: milliseconds.
function msText(value) {
  if (typeof value === 'string' && /^\d+(ms|s|m|h)?$/.test(value.trim())) {
    const [, n, unit = 'ms'] = value.trim().match(/^(\d+)(ms|s|m|h)?$/);
    return Number(n) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[unit];
  }
  return value;
}

// Makers of checks, given the validator that decides.
const msOf = (validate) => checked(msText, 'a whole number of milliseconds (or like "10s", "5m")', validate);
const countOf = (validate) => checked(
  (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value), 'a whole number >= 0', validate);
const boolOf = (validate) => checked(boolText, 'true or false', validate);

function boolText(value) {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return value;
}

// A switch of the command's own.
function bool(value, where) {
  value = boolText(value);
  if (typeof value !== 'boolean') throw bad(where, 'true or false', value);
  return value;
}

function str(value, where) {
  if (typeof value !== 'string' || value === '') throw bad(where, 'a non-empty string', value);
  return value;
}

function envName(value, where) {
  if (typeof value !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) throw bad(where, 'an environment variable name', value);
  return value;
}

// `-i`: a count, "max" (the CPUs, cgroup quota included), or a negative
// number: that many fewer than max (PM2's `-i -1`). 0 is max, as in PM2.
function instances(value, where) {
  if (value === 'max') return 'max';
  if (typeof value === 'string' && /^-?\d+$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw bad(where, 'a whole number, "max", or a negative number (that many fewer than max)', value);
  }
  return value === 0 ? 'max' : value;
}

// Bytes, or a size like "300M" (PM2's max_memory_restart), as
// recycle.maxMemory takes it. A size that reads as less than a byte ("0K")
// passes here: setupPrimary() refuses it, in its own words.
const sizeOf = (validate) => (raw, where) => {
  const value = typeof raw === 'string' ? raw.trim() : raw;
  try {
    validate(value);
  } catch (err) {
    if (!(typeof value === 'string' && err.code === 'ERR_OUT_OF_RANGE')) {
      throw bad(where, 'a number of bytes or a size like "300M", "1G"', raw, err);
    }
  }
  return value;
};

// A list from a string (split on whitespace) or an array of strings.
function list(value, where) {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return [...value];
  throw bad(where, 'a string or an array of strings', value);
}

// A list, as `list` reads it, for a setting that takes one.
const listOf = (validate) => checked(
  (value) => (typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : Array.isArray(value) ? [...value] : value),
  'a string or an array of strings', validate);

// A row whose value becomes setupPrimary() settings: `setting`, their paths
// in its table (lib/cli/settings.js sets them); `check`, made by `kind` from
// their validators.
function becomes(paths, kind) {
  return { setting: paths, check: kind(setting(...paths)) };
}

// "HOST:PORT", "[::1]:PORT" or "PORT" (on 127.0.0.1).
function hostPort(value, where) {
  if (typeof value === 'number') value = String(value);
  if (typeof value === 'string') {
    const m = value.match(/^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/) || value.match(/^()()(\d+)$/);
    if (m && Number(m[3]) <= 65535) return { host: m[1] || m[2] || '127.0.0.1', port: Number(m[3]) };
  }
  throw bad(where, 'HOST:PORT or PORT', value);
}

function envObject(value, where) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(where, 'an object of variables', value);
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null || typeof v === 'object') throw bad(`${where}.${k}`, 'a string or number', v);
    out[k] = String(v);
  }
  return out;
}

// log_date_format: moment.js's tokens (lib/cli/log_files.js formatDate);
// a format with none of them would stamp every line with the same text.
function dateFormat(value, where) {
  if (typeof value !== 'string' || !/YYYY|YY|MM|DD|HH|mm|ss|SSS|Z/.test(value.replace(/\[[^\]]*\]/g, ''))) {
    throw bad(where, 'a date format like "YYYY-MM-DD HH:mm:ss Z"', value);
  }
  return value;
}

// `--watch` alone watches the app's directory; `--watch=a,b` those paths.
function watch(value, where) {
  if (value === true) return [];
  if (value === false) return false;
  if (typeof value === 'string') return value.split(',').filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return [...value];
  throw bad(where, 'true, false, a path or a list of paths', value);
}

// name: the setting's name in rcluster.config.js; pm2: its key in an
// ecosystem file (and its flag, with dashes); flag: when it differs;
// setting: the setupPrimary() settings it becomes (see `becomes`).
// `takes`: 'value', 'bool' (a switch), or 'optional' (`--flag` or `--flag=value`).
const OPTIONS = [
  { name: 'script', pm2: 'script', check: str, flag: false },
  { name: 'name', pm2: 'name', check: str, takes: 'value', arg: 'NAME', help: 'a name for the app (PM2 `name`; chooses an app with --only)' },
  { name: 'instances', pm2: 'instances', short: 'i', check: instances, takes: 'value', arg: 'N|max|-N', help: `workers to run: N, max (the CPUs, container quota included), or -N (max minus N); default ${INSTANCES_DEFAULT}` },
  { name: 'args', pm2: 'args', check: list, flag: false },
  { name: 'nodeArgs', pm2: 'node_args', check: listOf(setting('execArgv')), takes: 'value', arg: 'ARGS', help: 'options for node in each worker, e.g. --node-args="--max-old-space-size=512"' },
  { name: 'env', pm2: 'env', check: envObject, flag: false },
  { name: 'cwd', pm2: 'cwd', check: str, flag: false },
  { name: 'maxMemoryRestart', pm2: 'max_memory_restart', ...becomes(['recycle.maxMemory'], sizeOf), takes: 'value', arg: 'SIZE', help: 'recycle a worker whose memory exceeds SIZE (e.g. 300M)' },
  { name: 'killTimeout', pm2: 'kill_timeout', ...becomes(['shutdownTimeout', 'drainTimeout'], msOf), takes: 'value', arg: 'MS', help: `how long a worker may drain on stop or reload before SIGKILL (default ${defaultOf('drainTimeout')})` },
  { name: 'waitReady', pm2: 'wait_ready', ...becomes(['waitReady'], boolOf), takes: 'bool', help: 'a worker is ready when it calls process.send(\'ready\'), not when it listens' },
  { name: 'reloadProbation', pm2: null, ...becomes(['reload.probation'], msOf), takes: 'value', arg: 'MS', help: `a reload's new workers must all stay up this long before the old ones go, or it rolls back (default ${defaultOf('reload.probation')}; 0: none)` },
  { name: 'listenTimeout', pm2: 'listen_timeout', ...becomes(['readyTimeout'], msOf), takes: 'value', arg: 'MS', help: 'how long a new worker may take to become ready; one not listening by then is warned about' },
  // Any schedule is taken here; setupPrimary() checks it, in its own words.
  { name: 'cronRestart', pm2: 'cron_restart', ...becomes(['recycle.cron'], () => str), takes: 'value', arg: 'CRON', help: 'recycle the workers on this cron schedule' },
  { name: 'expBackoffRestartDelay', pm2: 'exp_backoff_restart_delay', ...becomes(['restart.minDelay'], msOf), takes: 'value', arg: 'MS', help: `first delay before restarting a crashed worker, doubled per crash (default ${defaultOf('restart.minDelay')})` },
  { name: 'maxRestarts', pm2: 'max_restarts', ...becomes(['restart.maxRestarts'], countOf), takes: 'value', arg: 'N', help: `young crashes (see --min-uptime) in a minute with no worker staying up before giving up (default ${defaultOf('restart.maxRestarts')})` },
  { name: 'minUptime', pm2: 'min_uptime', ...becomes(['restart.minUptime'], msOf), takes: 'value', arg: 'MS', help: `a worker that dies sooner failed to start; one up this long keeps restarts going (default ${defaultOf('restart.minUptime')})` },
  { name: 'instanceVar', pm2: 'instance_var', check: envName, takes: 'value', arg: 'NAME', help: `the variable holding the worker's slot 0..n-1 (default ${INSTANCE_VAR_DEFAULT})` },
  { name: 'incrementVar', pm2: 'increment_var', check: envName, takes: 'value', arg: 'NAME', help: 'a numeric variable (e.g. PORT) increased by the slot in each worker' },
  { name: 'watch', pm2: 'watch', check: watch, takes: 'optional', arg: 'PATHS', help: 'rolling reload when files change (the app\'s directory, or --watch=PATH,PATH)' },
  { name: 'watchDelay', pm2: 'watch_delay', check: msOf((value) => validateMs(value, 'watchDelay', 0)), takes: 'value', arg: 'MS', help: `wait for changes to settle this long before reloading (default ${WATCH_DELAY_DEFAULT})` },
  { name: 'ignoreWatch', pm2: 'ignore_watch', check: list, takes: 'value', arg: 'PATHS', help: 'paths or names not to watch (node_modules and .git are never watched unless named)' },
  { name: 'control', pm2: null, check: str, takes: 'value', arg: 'PATH', help: 'the control socket (default: NAME.sock, after the app\'s name, in $XDG_RUNTIME_DIR/rcluster/ or $TMPDIR/rcluster-UID/, 0700)' },
  { name: 'metrics', pm2: null, check: hostPort, takes: 'value', arg: 'HOST:PORT', help: 'serve Prometheus metrics at http://HOST:PORT/metrics' },
  { name: 'health', pm2: null, check: hostPort, takes: 'value', arg: 'HOST:PORT', help: 'serve /health: 200 while workers are ready, 503 otherwise' },
  { name: 'drainDelay', pm2: null, check: msOf((value) => validateMs(value, 'drainDelay', 0)), takes: 'value', arg: 'MS', help: `on SIGTERM or rcluster stop, answer /health 503 and keep serving this long before draining, for a balancer to notice (default ${require('./http_endpoints').DRAIN_DELAY_DEFAULT} with --health, else 0)` },
  { name: 'prefix', pm2: null, check: bool, takes: 'bool', help: 'tag each line of worker output with its worker, [w3]' },
  { name: 'time', pm2: 'time', check: bool, takes: 'bool', help: 'timestamp each line of worker output and rcluster\'s own (ISO 8601, UTC)' },
  // Log files (lib/cli/log_files.js); paths from the current directory, or
  // in a config file from the app's cwd.
  { name: 'log', pm2: 'log_file', check: str, takes: 'value', arg: 'FILE', help: 'write the workers\' stdout and stderr, and rcluster\'s own lines, to FILE (appended; reopened on SIGUSR2)' },
  { name: 'outFile', pm2: 'out_file', check: str, takes: 'value', arg: 'FILE', help: 'write the workers\' stdout to FILE (instead of --log)' },
  { name: 'errorFile', pm2: 'error_file', check: str, takes: 'value', arg: 'FILE', help: 'write the workers\' stderr and rcluster\'s own lines to FILE (instead of --log)' },
  { name: 'mergeLogs', pm2: 'merge_logs', check: bool, takes: 'bool', help: 'one file per stream for all workers, each line tagged [wN]: always so (accepted for PM2)' },
  { name: 'logDateFormat', pm2: 'log_date_format', check: dateFormat, takes: 'value', arg: 'FORMAT', help: 'timestamp lines in local time, e.g. "YYYY-MM-DD HH:mm:ss Z" (YYYY YY MM DD HH mm ss SSS Z ZZ [text])' },
];

const BY_NAME = new Map(OPTIONS.map((o) => [o.name, o]));
const BY_PM2 = new Map(OPTIONS.filter((o) => o.pm2).map((o) => [o.pm2, o]));

function flagOf(o) {
  return o.name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const BY_FLAG = new Map(OPTIONS.filter((o) => o.flag !== false).map((o) => [flagOf(o), o]));

// PM2 keys rcluster knows but has no use for: a warning says so.
const PM2_UNSUPPORTED = new Set([
  'exec_interpreter', 'interpreter', 'interpreter_args', 'autorestart',
  'pid_file', 'vizion',
  'source_map_support', 'force', 'namespace', 'restart_delay', 'shutdown_with_message', 'treekill',
  'max_memory', 'autostart', 'filter_env', 'post_update', 'disable_logs', 'log_type',
  'appendEnvToName', 'instance_id_env', 'stop_exit_codes', 'kill_retry_time', 'automation', 'pmx',
]);

module.exports = {
  OPTIONS, BY_NAME, BY_PM2, BY_FLAG, PM2_UNSUPPORTED, flagOf, hostPort,
  INSTANCES_DEFAULT, INSTANCE_VAR_DEFAULT, WATCH_DELAY_DEFAULT,
};
