'use strict';
// Validation of rcluster's own settings, with Node's error shapes
// (ERR_INVALID_ARG_TYPE is a TypeError, ERR_OUT_OF_RANGE a RangeError).
const { inspect } = require('util');

function describeReceived(value) {
  if (value == null) return ` Received ${value}`;
  if (typeof value === 'function') return ` Received function ${value.name}`;
  if (typeof value === 'object') {
    if (value.constructor && value.constructor.name) return ` Received an instance of ${value.constructor.name}`;
    return ` Received ${inspect(value, { depth: -1 })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return ` Received type ${typeof value} (${shown})`;
}

function invalidArgType(name, expected, value) {
  const err = new TypeError(`The "${name}" property must be of type ${expected}.${describeReceived(value)}`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

function outOfRange(name, range, value) {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`);
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

/** A duration in milliseconds: a number >= 0, Infinity allowed. */
function validateDuration(value, name) {
  if (typeof value !== 'number') throw invalidArgType(name, 'number', value);
  if (Number.isNaN(value) || value < 0) throw outOfRange(name, '>= 0', value);
}

module.exports = { invalidArgType, outOfRange, validateDuration };
