'use strict';
// Validation of rcluster's own setupPrimary() settings (queueTimeout, restart,
// shutdownSignals, shutdownTimeout, exitOnUncaughtException) and of
// cluster.shutdown()'s options. Errors look like Node's: a TypeError or
// RangeError whose `code` is ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ...
// Only keys the caller passed are touched, so cluster.settings stays exactly
// node:cluster's when none of them is used.
const {
  nodeError, describeReceived, invalidArgType, outOfRange, isPlainObject, validateMs,
} = require('../errors');
const { constants: { signals } } = require('os');
const { normalizeOperations } = require('../operations/settings');


const RESTART_DEFAULTS = Object.freeze({
  minDelay: 100,
  maxDelay: 15000,
  resetAfter: 30000,
  maxRestarts: 10,
  window: 60000,
});
const EXIT_ON_UNCAUGHT_DEFAULTS = Object.freeze({ timeout: 5000 });
const SHUTDOWN_TIMEOUT_DEFAULT = 30000;



// How long a connection may wait in the primary for a worker: milliseconds,
// or Infinity for no limit (it is a native deadline, not a JS timer).
function validateQueueTimeout(value, caller) {
  const name = 'options.queueTimeout';
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (Number.isNaN(value) || value < 0) throw outOfRange(name, '>= 0', value, caller);
  return value;
}

function validateCount(value, name, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, 'an integer >= 0', value, caller);
  return value;
}

function normalizeRestart(value, caller) {
  const name = 'options.restart';
  if (value === undefined || value === false) return false;
  if (value === true) return { ...RESTART_DEFAULTS };
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type boolean or an object', value, caller);
  const out = { ...RESTART_DEFAULTS };
  for (const key of ['minDelay', 'maxDelay', 'resetAfter', 'window']) {
    if (value[key] !== undefined) out[key] = validateMs(value[key], `${name}.${key}`, key === 'window' ? 1 : 0, caller);
  }
  if (value.maxRestarts !== undefined) out.maxRestarts = validateCount(value.maxRestarts, `${name}.maxRestarts`, caller);
  if (out.maxDelay < out.minDelay) {
    throw outOfRange(`${name}.maxDelay`, `>= minDelay (${out.minDelay})`, out.maxDelay, caller);
  }
  return out;
}

function normalizeExitOnUncaught(value, caller) {
  const name = 'options.exitOnUncaughtException';
  if (value === undefined || value === false) return false;
  if (value === true) return { ...EXIT_ON_UNCAUGHT_DEFAULTS };
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type boolean or an object', value, caller);
  const out = { ...EXIT_ON_UNCAUGHT_DEFAULTS };
  if (value.timeout !== undefined) out.timeout = validateMs(value.timeout, `${name}.timeout`, 0, caller);
  return out;
}

function normalizeSignals(value, caller) {
  const name = 'options.shutdownSignals';
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
function validateExecArgv(value, caller) {
  const name = 'options.execArgv';
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value, caller);
  value.forEach((arg, i) => {
    if (typeof arg !== 'string') throw invalidArgType(`${name}[${i}]`, 'of type string', arg, caller);
  });
}

/**
 * A copy of setupPrimary()'s `options` with rcluster's keys validated and
 * expanded (`restart: true` becomes the full object of defaults). Throws a
 * Node-style error on bad input. Other keys pass through untouched.
 */
function normalizeSettings(options, caller = normalizeSettings) {
  if (options === undefined || options === null || typeof options !== 'object') return options;
  const out = { ...options };
  if ('restart' in options) out.restart = normalizeRestart(options.restart, caller);
  if ('exitOnUncaughtException' in options) {
    out.exitOnUncaughtException = normalizeExitOnUncaught(options.exitOnUncaughtException, caller);
  }
  if ('shutdownSignals' in options) out.shutdownSignals = normalizeSignals(options.shutdownSignals, caller);
  if ('queueTimeout' in options && options.queueTimeout !== undefined) {
    out.queueTimeout = validateQueueTimeout(options.queueTimeout, caller);
  }
  if ('routing' in options && options.routing !== undefined) {
    out.routing = require('./routing').normalizeRouting(options.routing, caller);
  }
  if ('execArgv' in options && options.execArgv !== undefined) validateExecArgv(options.execArgv, caller);
  if ('shutdownTimeout' in options && options.shutdownTimeout !== undefined) {
    out.shutdownTimeout = validateMs(options.shutdownTimeout, 'options.shutdownTimeout', 0, caller);
  }
  return normalizeOperations(options, out, caller);
}

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
  normalizeSettings,
  normalizeShutdownOptions,
  RESTART_DEFAULTS,
  EXIT_ON_UNCAUGHT_DEFAULTS,
  SHUTDOWN_TIMEOUT_DEFAULT,
};
