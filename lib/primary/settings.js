'use strict';
// setupPrimary()'s settings, as one table: every option with its default, its
// one validator and a line saying what it is. setupPrimary() validates by
// walking it (normalizeSettings); the `rcluster` command checks its flags and
// config keys with the same validators (lib/cli/options.js), and both read the
// defaults here. Routing, the agent and the bus keep their validators beside
// what they configure; the table calls them. Also cluster.shutdown()'s options.
//
// Errors look like Node's: a TypeError or RangeError whose `code` is
// ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ... Only keys the caller passed are
// touched, so cluster.settings stays exactly node:cluster's when none is used.
const {
  nodeError, describeReceived, invalidArgType, outOfRange, isPlainObject, validateMs,
} = require('../errors');
const { constants: { signals } } = require('os');
const ops = require('../operations/settings');
// The dispatcher's own default (src/facts.rs); undefined where the addon
// cannot load, where there is no dispatcher to wait in.
const { QUEUE_TIMEOUT_MS } = require('../native');

// A whole number of milliseconds, at least `min`, that becomes a timer.
const ms = (min) => (value, name, caller) => validateMs(value, name, min, caller);

function validateCount(value, name, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, 'an integer >= 0', value, caller);
  return value;
}

// How long a connection may wait in the primary for a worker: milliseconds,
// or Infinity for no limit (it is a native deadline, not a JS timer).
function validateQueueTimeout(value, name, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (Number.isNaN(value) || value < 0) throw outOfRange(name, '>= 0', value, caller);
  return value;
}

function validateSignals(value, name, caller) {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value, caller);
  value.forEach((signal, i) => {
    if (typeof signal !== 'string') throw invalidArgType(`${name}[${i}]`, 'of type string', signal, caller);
    if (signals[signal] === undefined) {
      throw nodeError(TypeError, 'ERR_UNKNOWN_SIGNAL', `Unknown signal: ${signal}`, caller);
    }
    if (signal === 'SIGKILL' || signal === 'SIGSTOP') {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
        `The property '${name}[${i}]' cannot be handled by a process. Received '${signal}'`, caller);
    }
  });
  return [...new Set(value)];
}

// node:cluster's own setting, which it uses unchecked (`execArgv: 'x'` fails
// later with "settings.execArgv.some is not a function"): an array of strings.
function validateExecArgv(value, name, caller) {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value, caller);
  value.forEach((arg, i) => {
    if (typeof arg !== 'string') throw invalidArgType(`${name}[${i}]`, 'of type string', arg, caller);
  });
  return value;
}

function validateBoolean(value, name, caller) {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value, caller);
  return value;
}

// The defaults of an object setting's fields, in the table's order.
function defaultsOf(fields) {
  const out = {};
  for (const field of fields) if (field.default !== undefined) out[field.name] = field.default;
  return out;
}

// An object setting: a copy of its fields' defaults with the fields given
// validated over them, in the table's order.
function validateFields(fields, value, name, caller) {
  const out = defaultsOf(fields);
  for (const field of fields) {
    if (value[field.name] !== undefined) out[field.name] = field.validate(value[field.name], `${name}.${field.name}`, caller);
  }
  return out;
}

const RESTART_FIELDS = [
  { name: 'minDelay', default: 100, validate: ms(0), text: 'the first delay before a crashed worker is replaced; doubles per consecutive crash of its slot' },
  { name: 'maxDelay', default: 15000, validate: ms(0), text: 'the longest that delay grows to (>= minDelay)' },
  { name: 'resetAfter', default: 30000, validate: ms(0), text: 'a worker up this long starts its slot\'s backoff over' },
  { name: 'minUptime', default: 1000, validate: ms(0), text: 'a worker that dies sooner failed to start (PM2\'s min_uptime): only such crashes count toward maxRestarts; one up this long and ready is healthy' },
  { name: 'maxRestarts', default: 10, validate: validateCount, text: 'crashes of workers up less than minUptime allowed within `window`, cluster-wide, before a crash loop stops the restarts; never while a worker has been healthy within `window`' },
  { name: 'window', default: 60000, validate: ms(1), text: 'the span maxRestarts is counted over, and that a healthy worker keeps the policy going for' },
];

// `true` is every default, `false` (or nothing) is off.
function validateRestart(value, name, caller) {
  if (value === undefined || value === false) return false;
  if (value === true) return defaultsOf(RESTART_FIELDS);
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type boolean or an object', value, caller);
  const out = validateFields(RESTART_FIELDS, value, name, caller);
  if (out.maxDelay < out.minDelay) {
    throw outOfRange(`${name}.maxDelay`, `>= minDelay (${out.minDelay})`, out.maxDelay, caller);
  }
  return out;
}

const EXIT_ON_UNCAUGHT_FIELDS = [
  { name: 'timeout', default: 5000, validate: ms(0), text: 'the longest a failed worker drains before it exits' },
];

function validateExitOnUncaught(value, name, caller) {
  if (value === undefined || value === false) return false;
  if (value === true) return defaultsOf(EXIT_ON_UNCAUGHT_FIELDS);
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type boolean or an object', value, caller);
  return validateFields(EXIT_ON_UNCAUGHT_FIELDS, value, name, caller);
}

const RECYCLE_FIELDS = [
  { name: 'maxMemory', default: undefined, validate: ops.validateMaxMemory, text: 'a worker\'s RSS limits, as { soft, hard } in bytes: a size (bytes, or \'300M\'/\'1G\'/\'512K\', PM2\'s max_memory_restart) is the soft one, which starts a recycle; the hard one (default 1.5 x soft) SIGKILLs the worker' },
  { name: 'maxRequests', default: undefined, validate: ops.validatePositiveCount, text: '\'request\' events a worker may serve' },
  { name: 'maxAge', default: undefined, validate: ms(1), text: 'how long a worker may live' },
  { name: 'jitter', default: 0, validate: ops.validateJitter, text: 'spreads each limit over [limit, limit * (1 + jitter)], 0..1' },
  { name: 'cron', default: undefined, validate: ops.validateCron, text: 'replace every worker on this 5-field cron schedule' },
];

function validateRecycle(value, name, caller) {
  if (value === undefined || value === false || value === null) return false;
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  return validateFields(RECYCLE_FIELDS, value, name, caller);
}

const RELOAD_FIELDS = [
  { name: 'probation', default: 3000, validate: ms(0), text: 'how long a reload\'s new workers must all stay up, once the last is ready, before the old ones are retired; a death within it rolls the reload back (0: each old worker is retired as soon as its replacement is ready)' },
];

function validateReload(value, name, caller) {
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  return validateFields(RELOAD_FIELDS, value, name, caller);
}

const HEALTH_FIELDS = [
  { name: 'hangTimeout', default: undefined, validate: ms(10), text: 'a worker whose event loop sends no heartbeat this long is hung' },
  { name: 'maxEventLoopDelay', default: undefined, validate: ms(1), text: 'a worker whose event loop lags this much is unhealthy' },
];

// At least one of its fields: an empty object would watch nothing.
function validateHealth(value, name, caller) {
  if (value === undefined || value === false || value === null) return false;
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  if (value.hangTimeout === undefined && value.maxEventLoopDelay === undefined) {
    throw invalidArgType(`${name}.hangTimeout`, 'of type number', undefined, caller);
  }
  return validateFields(HEALTH_FIELDS, value, name, caller);
}

// The keys whose validators live beside what they configure. Required when
// used: the agent's and the bus's modules require this one.
function validateRouting(value, name, caller) {
  return require('./routing').normalizeRouting(value, caller);
}
function validateAgent(value, name, caller) {
  return require('../agent/supervisor').normalizeOptions({ agent: value }, caller).agent;
}
function validateAgentReadyTimeout(value, name, caller) {
  return require('../agent/supervisor').normalizeOptions({ agentReadyTimeout: value }, caller).agentReadyTimeout;
}
function validateBus(value, name, caller) {
  return require('../bus/bus').normalizeOptions({ bus: value }, caller).bus;
}

/**
 * Every setupPrimary() option, in the order they are validated. `default`:
 * what applies when the option is not given (undefined: off, or nothing);
 * `validate(value, name, caller)`: returns the value as cluster.settings
 * holds it, or throws (none: passed through unchecked, as node:cluster does);
 * `skipUndefined`: undefined is as if not given; `initial`: setupPrimary()
 * writes the default into cluster.settings, as node:cluster does; `fields`:
 * an object setting's own table.
 */
const SETTINGS = [
  // node:cluster's own.
  { name: 'args', initial: true, get default() { return process.argv.slice(2); }, text: 'the workers\' arguments' },
  { name: 'exec', initial: true, get default() { return process.argv[1]; }, text: 'the workers\' script' },
  { name: 'execArgv', initial: true, get default() { return process.execArgv; }, validate: validateExecArgv, skipUndefined: true, text: 'the workers\' node options (--prof gets --logfile=v8-%p.log)' },
  { name: 'silent', initial: true, default: false, text: 'the workers\' output through the primary\'s pipes' },
  { name: 'cwd', default: undefined, text: 'the workers\' directory (the primary\'s)' },
  { name: 'stdio', default: undefined, text: 'the workers\' stdio, as child_process.fork() takes it' },
  { name: 'uid', default: undefined, text: 'the workers\' user id' },
  { name: 'gid', default: undefined, text: 'the workers\' group id' },
  { name: 'inspectPort', default: undefined, text: 'the workers\' inspector port (a number or a function)' },
  { name: 'serialization', default: undefined, text: 'the IPC serialization, \'json\' (the default) or \'advanced\'' },
  { name: 'windowsHide', default: undefined, text: 'no console window for the workers on Windows' },
  // rcluster's worker management (lib/operations/management.js).
  { name: 'restart', default: false, validate: validateRestart, fields: RESTART_FIELDS, text: 'replace crashed workers, with backoff and a crash-loop budget (true: the fields\' defaults)' },
  { name: 'exitOnUncaughtException', default: false, validate: validateExitOnUncaught, fields: EXIT_ON_UNCAUGHT_FIELDS, text: 'a worker drains and exits after an uncaught exception (true: the fields\' defaults)' },
  { name: 'shutdownSignals', default: Object.freeze([]), validate: validateSignals, text: 'signals on which the primary runs cluster.shutdown() and exits' },
  { name: 'queueTimeout', default: QUEUE_TIMEOUT_MS, validate: validateQueueTimeout, skipUndefined: true, text: 'how long a connection may wait in the primary for a worker, or Infinity (the default is the native dispatcher\'s)' },
  { name: 'routing', default: undefined, validate: validateRouting, skipUndefined: true, text: 'proxyProtocol, sticky, deferAccept, busyThreshold, dispatcherThreads (lib/primary/routing.js)' },
  { name: 'shutdownTimeout', default: 30000, validate: ms(0), skipUndefined: true, text: 'how long cluster.shutdown() lets workers drain before SIGKILL' },
  // Zero-downtime operations (lib/operations/).
  { name: 'readyTimeout', default: 30000, validate: ms(0), skipUndefined: true, text: 'a reload\'s replacement not ready by then aborts the reload' },
  { name: 'drainTimeout', default: 30000, validate: ms(0), skipUndefined: true, text: 'how long a replaced worker may drain before SIGKILL' },
  { name: 'waitReady', default: false, validate: validateBoolean, skipUndefined: true, text: 'ready means cluster.worker.ready() or process.send(\'ready\'), not listening' },
  { name: 'reload', default: undefined, validate: validateReload, skipUndefined: true, fields: RELOAD_FIELDS, text: 'how cluster.reload() proves a new generation before it retires the old one' },
  { name: 'reloadSignal', default: false, validate: ops.validateSignal, text: 'the primary runs cluster.reload() on this signal' },
  { name: 'recycle', default: false, validate: validateRecycle, fields: RECYCLE_FIELDS, text: 'replace a worker past a limit, gracefully' },
  { name: 'health', default: false, validate: validateHealth, fields: HEALTH_FIELDS, text: 'replace a hung or lagging worker (at least one field)' },
  // The agent (lib/agent/supervisor.js) and the bus (lib/bus/).
  { name: 'agent', default: undefined, validate: validateAgent, text: 'a script, or { exec, args, env }, run once beside the workers' },
  { name: 'agentReadyTimeout', default: 30000, validate: validateAgentReadyTimeout, text: 'an agent not ready by then is killed and restarted' },
  { name: 'bus', default: undefined, validate: validateBus, text: '{ redis, namespace, syncInterval }: cluster.bus and counters across machines' },
];

const BY_NAME = new Map(SETTINGS.map((s) => [s.name, s]));

/** The table's entry for a setting, by its path: 'shutdownTimeout', 'restart.minDelay'. */
function settingAt(path) {
  const [top, field] = path.split('.');
  const entry = BY_NAME.get(top);
  const found = field === undefined ? entry : entry?.fields?.find((f) => f.name === field);
  if (found === undefined) throw nodeError(Error, 'ERR_INTERNAL_ASSERTION', `no setupPrimary() setting ${path}`, settingAt);
  return found;
}

/** One setting's value validated as setupPrimary() would; throws its Node-style error. */
function validateSetting(path, value, caller = validateSetting) {
  const { validate } = settingAt(path);
  return validate === undefined ? value : validate(value, `options.${path}`, caller);
}

/** What applies when a setting is not given. */
function defaultOf(path) {
  return settingAt(path).default;
}

/** What setupPrimary() puts into cluster.settings before any option: node:cluster's defaults. */
function initialSettings() {
  const out = {};
  for (const entry of SETTINGS) if (entry.initial) out[entry.name] = entry.default;
  return out;
}

/**
 * A copy of setupPrimary()'s `options` with every key of the table given
 * validated and expanded (`restart: true` becomes the full object of
 * defaults). Throws a Node-style error on bad input. Other keys pass through.
 */
function normalizeSettings(options, caller = normalizeSettings) {
  if (options === undefined || options === null || typeof options !== 'object') return options;
  const out = { ...options };
  for (const { name, validate, skipUndefined } of SETTINGS) {
    if (validate === undefined || !(name in options)) continue;
    const value = options[name];
    if (value === undefined && skipUndefined) continue;
    out[name] = validate(value, `options.${name}`, caller);
  }
  return out;
}

const RESTART_DEFAULTS = Object.freeze(defaultsOf(RESTART_FIELDS));
const EXIT_ON_UNCAUGHT_DEFAULTS = Object.freeze(defaultsOf(EXIT_ON_UNCAUGHT_FIELDS));
const SHUTDOWN_TIMEOUT_DEFAULT = defaultOf('shutdownTimeout');
const READY_TIMEOUT_DEFAULT = defaultOf('readyTimeout');
const DRAIN_TIMEOUT_DEFAULT = defaultOf('drainTimeout');
const RELOAD_PROBATION_DEFAULT = defaultOf('reload.probation');

/** cluster.shutdown()'s options: `{ timeout }`, defaulting to shutdownTimeout. */
function normalizeShutdownOptions(options, settings, caller) {
  const fallback = settings.shutdownTimeout ?? SHUTDOWN_TIMEOUT_DEFAULT;
  if (options === undefined) return { timeout: fallback };
  if (!isPlainObject(options)) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      `The "options" argument must be of type object. Received ${describeReceived(options)}`, caller);
  }
  const timeout = options.timeout === undefined ? fallback : validateMs(options.timeout, 'options.timeout', 0, caller);
  return { timeout };
}

module.exports = {
  SETTINGS,
  normalizeSettings,
  validateSetting,
  defaultOf,
  initialSettings,
  normalizeShutdownOptions,
  RESTART_DEFAULTS,
  EXIT_ON_UNCAUGHT_DEFAULTS,
  SHUTDOWN_TIMEOUT_DEFAULT,
  READY_TIMEOUT_DEFAULT,
  DRAIN_TIMEOUT_DEFAULT,
  RELOAD_PROBATION_DEFAULT,
};
