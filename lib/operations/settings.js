'use strict';
// Validation of the zero-downtime operations settings of setupPrimary()
// (readyTimeout, drainTimeout, waitReady, reloadSignal, recycle) and of
// cluster.reload()'s options. Errors look like Node's, as in lib/primary/settings.js;
// only keys the caller passed are touched.
const {
  nodeError, describeReceived, invalidArgType, outOfRange, isPlainObject, validateMs,
} = require('../errors');
const { constants: { signals } } = require('os');

const READY_TIMEOUT_DEFAULT = 30000;
const DRAIN_TIMEOUT_DEFAULT = 30000;
// PM2's max_memory_restart units: '300M', '1G', '512K', or bytes.
const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
const MEMORY = /^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$/i;



function validatePositiveCount(value, name, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!Number.isSafeInteger(value) || value < 1) throw outOfRange(name, 'an integer >= 1', value, caller);
  return value;
}

function invalidValue(name, value, reason, caller) {
  return nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
    `The property '${name}' ${reason}. Received ${describeReceived(value)}`, caller);
}

/** Bytes, from a number of bytes or a string such as '300M' (PM2's max_memory_restart). */
function parseMemory(value, name, caller) {
  if (typeof value === 'number') return validatePositiveCount(value, name, caller);
  if (typeof value !== 'string') throw invalidArgType(name, 'of type number or string', value, caller);
  const m = MEMORY.exec(value);
  if (m === null) throw invalidValue(name, value, "must be a number of bytes or a size such as '300M'", caller);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]);
  if (bytes < 1) throw outOfRange(name, '>= 1 byte', value, caller);
  return bytes;
}

function normalizeSignal(value, name, caller) {
  if (value === undefined || value === false || value === null) return false;
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value, caller);
  if (signals[value] === undefined) throw nodeError(TypeError, 'ERR_UNKNOWN_SIGNAL', `Unknown signal: ${value}`, caller);
  if (value === 'SIGKILL' || value === 'SIGSTOP') throw invalidValue(name, value, 'cannot be handled by a process', caller);
  return value;
}

// Loaded only when a schedule is given: most apps never need it.
function validateCron(value, name, caller) {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value, caller);
  if (value.trim().split(/\s+/).length !== 5) {
    throw invalidValue(name, value, 'must be a cron schedule of 5 fields (minute hour day month weekday)', caller);
  }
  const { Cron } = require('croner');
  try {
    new Cron(value, { paused: true }).stop();
  } catch (err) {
    throw invalidValue(name, value, `is not a valid cron schedule (${err.message})`, caller);
  }
  return value;
}

function normalizeRecycle(value, caller) {
  const name = 'options.recycle';
  if (value === undefined || value === false || value === null) return false;
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  const out = { jitter: 0 };
  if (value.maxMemory !== undefined) out.maxMemory = parseMemory(value.maxMemory, `${name}.maxMemory`, caller);
  if (value.maxRequests !== undefined) out.maxRequests = validatePositiveCount(value.maxRequests, `${name}.maxRequests`, caller);
  if (value.maxAge !== undefined) out.maxAge = validateMs(value.maxAge, `${name}.maxAge`, 1, caller);
  if (value.jitter !== undefined) {
    const j = value.jitter;
    if (typeof j !== 'number') throw invalidArgType(`${name}.jitter`, 'of type number', j, caller);
    if (!(j >= 0 && j <= 1)) throw outOfRange(`${name}.jitter`, '>= 0 && <= 1', j, caller);
    out.jitter = j;
  }
  if (value.cron !== undefined) out.cron = validateCron(value.cron, `${name}.cron`, caller);
  return out;
}

function normalizeHealth(value, caller) {
  const name = 'options.health';
  if (value === undefined || value === false || value === null) return false;
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  if (value.hangTimeout === undefined && value.maxEventLoopDelay === undefined) {
    throw invalidArgType(`${name}.hangTimeout`, 'of type number', undefined, caller);
  }
  const out = {};
  if (value.hangTimeout !== undefined) out.hangTimeout = validateMs(value.hangTimeout, `${name}.hangTimeout`, 10, caller);
  if (value.maxEventLoopDelay !== undefined) {
    out.maxEventLoopDelay = validateMs(value.maxEventLoopDelay, `${name}.maxEventLoopDelay`, 1, caller);
  }
  return out;
}

/** Normalizes the operations keys of setupPrimary()'s `options` into `out`. */
function normalizeOperations(options, out, caller) {
  for (const key of ['readyTimeout', 'drainTimeout']) {
    if (key in options && options[key] !== undefined) out[key] = validateMs(options[key], `options.${key}`, 0, caller);
  }
  if ('waitReady' in options && options.waitReady !== undefined) {
    if (typeof options.waitReady !== 'boolean') throw invalidArgType('options.waitReady', 'of type boolean', options.waitReady, caller);
  }
  if ('reloadSignal' in options) out.reloadSignal = normalizeSignal(options.reloadSignal, 'options.reloadSignal', caller);
  if ('recycle' in options) out.recycle = normalizeRecycle(options.recycle, caller);
  if ('health' in options) out.health = normalizeHealth(options.health, caller);
  return out;
}

/** cluster.reload()'s options: `{ concurrency }`, default 1. */
function normalizeReloadOptions(options, caller) {
  if (options === undefined) return { concurrency: 1 };
  if (!isPlainObject(options)) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      `The "options" argument must be of type object. Received ${describeReceived(options)}`, caller);
  }
  const concurrency = options.concurrency === undefined ? 1 :
    validatePositiveCount(options.concurrency, 'options.concurrency', caller);
  return { concurrency };
}

module.exports = {
  normalizeOperations,
  normalizeReloadOptions,
  parseMemory,
  READY_TIMEOUT_DEFAULT,
  DRAIN_TIMEOUT_DEFAULT,
};
