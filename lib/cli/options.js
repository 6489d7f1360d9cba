'use strict';
// The settings of `rcluster <script>`, as one table: the command-line flag,
// the key in a config or PM2 ecosystem file, and how a value is checked. A
// value from either source is normalized by the same function, so a bad value
// is the same one-line error wherever it came from.
const { UsageError } = require('../errors');

const MAX_TIMER_MS = 2 ** 31 - 1;

function describe(value) {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function bad(where, what, value) {
  return new UsageError(`${where} must be ${what} (got ${describe(value)})`);
}

function ms(value, where) {
  if (typeof value === 'string' && /^\d+(ms|s|m|h)?$/.test(value.trim())) {
    const [, n, unit = 'ms'] = value.trim().match(/^(\d+)(ms|s|m|h)?$/);
    value = Number(n) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[unit];
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    throw bad(where, 'a whole number of milliseconds (or like "10s", "5m")', value);
  }
  return value;
}

function count(value, where) {
  if (typeof value === 'string' && /^\d+$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(where, 'a whole number >= 0', value);
  return value;
}

function bool(value, where) {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
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

// Bytes, or a size like "300M" (PM2's max_memory_restart).
function size(value, where) {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === 'string' && /^\d+(\.\d+)?\s*[KMG]?B?$/i.test(value.trim())) return value.trim();
  throw bad(where, 'a number of bytes or a size like "300M", "1G"', value);
}

// A list from a string (split on whitespace) or an array of strings.
function list(value, where) {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return [...value];
  throw bad(where, 'a string or an array of strings', value);
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

// `--watch` alone watches the app's directory; `--watch=a,b` those paths.
function watch(value, where) {
  if (value === true) return [];
  if (value === false) return false;
  if (typeof value === 'string') return value.split(',').filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return [...value];
  throw bad(where, 'true, false, a path or a list of paths', value);
}

// name: the setting's name in rcluster.config.js; pm2: its key in an
// ecosystem file (and its flag, with dashes); flag: when it differs.
// `takes`: 'value', 'bool' (a switch), or 'optional' (`--flag` or `--flag=value`).
const OPTIONS = [
  { name: 'script', pm2: 'script', check: str, flag: false },
  { name: 'name', pm2: 'name', check: str, takes: 'value', arg: 'NAME', help: 'a name for the app (PM2 `name`; chooses an app with --only)' },
  { name: 'instances', pm2: 'instances', short: 'i', check: instances, takes: 'value', arg: 'N|max|-N', help: 'workers to run: N, max (the CPUs, container quota included), or -N (max minus N); default max' },
  { name: 'args', pm2: 'args', check: list, flag: false },
  { name: 'nodeArgs', pm2: 'node_args', check: list, takes: 'value', arg: 'ARGS', help: 'options for node in each worker, e.g. --node-args="--max-old-space-size=512"' },
  { name: 'env', pm2: 'env', check: envObject, flag: false },
  { name: 'cwd', pm2: 'cwd', check: str, flag: false },
  { name: 'maxMemoryRestart', pm2: 'max_memory_restart', check: size, takes: 'value', arg: 'SIZE', help: 'recycle a worker whose memory exceeds SIZE (e.g. 300M)' },
  { name: 'killTimeout', pm2: 'kill_timeout', check: ms, takes: 'value', arg: 'MS', help: 'how long a worker may drain on stop or reload before SIGKILL (default 30000)' },
  { name: 'waitReady', pm2: 'wait_ready', check: bool, takes: 'bool', help: 'a worker is ready when it calls process.send(\'ready\'), not when it listens' },
  { name: 'listenTimeout', pm2: 'listen_timeout', check: ms, takes: 'value', arg: 'MS', help: 'how long a new worker may take to become ready' },
  { name: 'cronRestart', pm2: 'cron_restart', check: str, takes: 'value', arg: 'CRON', help: 'recycle the workers on this cron schedule' },
  { name: 'expBackoffRestartDelay', pm2: 'exp_backoff_restart_delay', check: ms, takes: 'value', arg: 'MS', help: 'first delay before restarting a crashed worker, doubled per crash (default 100)' },
  { name: 'maxRestarts', pm2: 'max_restarts', check: count, takes: 'value', arg: 'N', help: 'restarts allowed within a minute before giving up (default 10)' },
  { name: 'minUptime', pm2: 'min_uptime', check: ms, takes: 'value', arg: 'MS', help: 'a worker up this long resets its restart backoff (default 30000)' },
  { name: 'instanceVar', pm2: 'instance_var', check: envName, takes: 'value', arg: 'NAME', help: 'the variable holding the worker\'s slot 0..n-1 (default NODE_APP_INSTANCE)' },
  { name: 'incrementVar', pm2: 'increment_var', check: envName, takes: 'value', arg: 'NAME', help: 'a numeric variable (e.g. PORT) increased by the slot in each worker' },
  { name: 'watch', pm2: 'watch', check: watch, takes: 'optional', arg: 'PATHS', help: 'rolling reload when files change (the app\'s directory, or --watch=PATH,PATH)' },
  { name: 'watchDelay', pm2: 'watch_delay', check: ms, takes: 'value', arg: 'MS', help: 'wait for changes to settle this long before reloading (default 500)' },
  { name: 'ignoreWatch', pm2: 'ignore_watch', check: list, takes: 'value', arg: 'PATHS', help: 'paths or names not to watch (node_modules and .git are never watched unless named)' },
  { name: 'control', pm2: null, check: str, takes: 'value', arg: 'PATH', help: 'the control socket (default: one named after the app\'s directory in $XDG_RUNTIME_DIR/rcluster/ or $TMPDIR/rcluster-UID/, 0700)' },
  { name: 'metrics', pm2: null, check: hostPort, takes: 'value', arg: 'HOST:PORT', help: 'serve Prometheus metrics at http://HOST:PORT/metrics' },
  { name: 'health', pm2: null, check: hostPort, takes: 'value', arg: 'HOST:PORT', help: 'serve /health: 200 while workers are ready, 503 otherwise' },
  { name: 'prefix', pm2: null, check: bool, takes: 'bool', help: 'tag each line of worker output with its worker, [w3]' },
  { name: 'time', pm2: 'time', check: bool, takes: 'bool', help: 'timestamp each line of worker output' },
];

const BY_NAME = new Map(OPTIONS.map((o) => [o.name, o]));
const BY_PM2 = new Map(OPTIONS.filter((o) => o.pm2).map((o) => [o.pm2, o]));

function flagOf(o) {
  return o.name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const BY_FLAG = new Map(OPTIONS.filter((o) => o.flag !== false).map((o) => [flagOf(o), o]));

// PM2 keys rcluster knows but has no use for: a warning says so.
const PM2_UNSUPPORTED = new Set([
  'exec_interpreter', 'interpreter', 'interpreter_args', 'autorestart', 'merge_logs',
  'log_date_format', 'error_file', 'out_file', 'log_file', 'pid_file', 'combine_logs', 'vizion',
  'source_map_support', 'force', 'namespace', 'restart_delay', 'shutdown_with_message', 'treekill',
  'max_memory', 'combine_logs', 'autostart', 'filter_env', 'post_update', 'disable_logs', 'log_type',
  'appendEnvToName', 'instance_id_env', 'stop_exit_codes', 'kill_retry_time', 'automation', 'pmx',
]);

module.exports = { OPTIONS, BY_NAME, BY_PM2, BY_FLAG, PM2_UNSUPPORTED, flagOf, hostPort };
