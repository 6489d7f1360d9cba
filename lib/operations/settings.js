'use strict';
// The validators of the zero-downtime operations' values that setupPrimary()'s
// settings table (lib/primary/settings.js) names: memory sizes, cron
// schedules, the reload signal, recycle's counts, memory limits and jitter; and
// cluster.reload()'s options. Errors look like Node's.
const {
  nodeError, describeReceived, invalidArgType, outOfRange, isPlainObject, validateMs,
} = require('../errors');
const { constants: { signals } } = require('os');

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

// The hard limit when only the soft one is given: room for a recycle to
// finish (replacement, drain) before the worker is killed.
const HARD_FACTOR = 1.5;

/**
 * recycle.maxMemory: a size (the soft limit, the hard one 1.5 times it) or
 * `{ soft, hard }` (hard optional, >= soft); either way `{ soft, hard }` in
 * bytes, which is also a valid input.
 */
function validateMaxMemory(value, name, caller) {
  if (typeof value === 'number' || typeof value === 'string') {
    const soft = parseMemory(value, name, caller);
    return { soft, hard: Math.floor(soft * HARD_FACTOR) };
  }
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type number, string, or object', value, caller);
  if (value.soft === undefined) throw invalidArgType(`${name}.soft`, 'of type number or string', value.soft, caller);
  const soft = parseMemory(value.soft, `${name}.soft`, caller);
  if (value.hard === undefined) return { soft, hard: Math.floor(soft * HARD_FACTOR) };
  const hard = parseMemory(value.hard, `${name}.hard`, caller);
  if (hard < soft) throw outOfRange(`${name}.hard`, `>= ${name}.soft (${soft} bytes)`, value.hard, caller);
  return { soft, hard };
}

function validateSignal(value, name, caller) {
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

function validateJitter(value, name, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!(value >= 0 && value <= 1)) throw outOfRange(name, '>= 0 && <= 1', value, caller);
  return value;
}

/**
 * cluster.reload()'s options: `{ concurrency, probation }`. `concurrency`
 * defaults to 1; `probation` (ms, 0: none) to `defaultProbation`, which is
 * setupPrimary({ reload: { probation } })'s value.
 */
function normalizeReloadOptions(options, defaultProbation, caller) {
  if (options === undefined) return { concurrency: 1, probation: defaultProbation };
  if (!isPlainObject(options)) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      `The "options" argument must be of type object. Received ${describeReceived(options)}`, caller);
  }
  const concurrency = options.concurrency === undefined ? 1 :
    validatePositiveCount(options.concurrency, 'options.concurrency', caller);
  const probation = options.probation === undefined ? defaultProbation :
    validateMs(options.probation, 'options.probation', 0, caller);
  return { concurrency, probation };
}

module.exports = {
  normalizeReloadOptions,
  parseMemory,
  validateMaxMemory,
  validatePositiveCount,
  validateSignal,
  validateCron,
  validateJitter,
};
