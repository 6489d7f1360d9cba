'use strict';
// Every error lib/ makes is made here, in one of these shapes:
// - `nodeError` (and `invalidArgType`, `outOfRange`, `badPort`): a bad
//   argument or option, shaped as Node's own ERR_* errors (the code in the
//   name: "TypeError [ERR_X]: ...");
// - `codedError`: an operation that failed, a plain error with a code and
//   any details as properties ("Error: ..."), as Node's system errors print;
// - `exceptionWithHostPort`, `errnoException`: an errno, as Node reports
//   what a worker's server hits;
// - `UsageError`: the command line or a config file of `rcluster` is wrong.
const { getSystemErrorName, inspect } = require('util');

// Node's ExceptionWithHostPort (lib/internal/errors.js): e.g.
// "bind EADDRINUSE 0.0.0.0:8000" with errno, code, syscall, address, port.
function exceptionWithHostPort(err, syscall, address, port) {
  const code = getSystemErrorName(err);
  let details = '';
  if (port && port > 0) {
    details = ` ${address}:${port}`;
  } else if (address) {
    details = ` ${address}`;
  }
  const ex = new Error(`${syscall} ${code}${details}`);
  ex.errno = err;
  ex.code = code;
  ex.syscall = syscall;
  ex.address = address;
  if (port) ex.port = port;
  Error.captureStackTrace(ex, exceptionWithHostPort);
  return ex;
}

// Node's ErrnoException: e.g. "open EINVAL" with errno, code, syscall.
function errnoException(err, syscall) {
  const code = getSystemErrorName(err);
  const ex = new Error(`${syscall} ${code}`);
  ex.errno = err;
  ex.code = code;
  ex.syscall = syscall;
  Error.captureStackTrace(ex, errnoException);
  return ex;
}


// Node's determineSpecificType (lib/internal/errors.js), for "Received ...".
function describeReceived(value) {
  if (value == null) return `${value}`;
  if (typeof value === 'function' && value.name) return `function ${value.name}`;
  if (typeof value === 'object') {
    if (value.constructor?.name) return `an instance of ${value.constructor.name}`;
    return inspect(value, { depth: -1 });
  }
  let inspected = inspect(value, { colors: false });
  if (inspected.length > 28) inspected = `${inspected.slice(0, 25)}...`;
  return `type ${typeof value} (${inspected})`;
}

// An error of class `Base` with `code` (none if undefined) and `props` as
// own properties, its stack starting at the caller (or at `stackStart`).
function codedError(Base, code, message, props, stackStart = codedError) {
  const err = new Base(message);
  if (code !== undefined) err.code = code;
  if (props !== undefined) Object.assign(err, props);
  Error.captureStackTrace(err, stackStart);
  return err;
}

// An error carrying a Node error code, printed as Node prints its own:
// "RangeError [ERR_X]: message".
function nodeError(Base, code, message, stackStart = nodeError) {
  const err = codedError(Base, code, message, undefined, stackStart);
  err.name = `${Base.name} [${code}]`;
  Error.captureStackTrace(err, stackStart);
  // Reading the stack fixes it with the code in; then the name is plain again.
  void err.stack; // eslint-disable-line no-void
  delete err.name;
  Object.defineProperty(err, 'toString', {
    value() { return `${this.name} [${code}]: ${this.message}`; },
    enumerable: false, writable: true, configurable: true,
  });
  return err;
}

// Node's validatePort (lib/internal/validators.js), with ERR_SOCKET_BAD_PORT.
function validatePort(port, name = 'Port', allowZero = true) {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) ||
      port > 0xFFFF ||
      (port === 0 && !allowZero)) {
    throw badPort(name, port, allowZero, validatePort);
  }
  return port | 0;
}

function badPort(name, port, allowZero = true, stackStart = badPort) {
  const operator = allowZero ? '>=' : '>';
  return nodeError(RangeError, 'ERR_SOCKET_BAD_PORT',
                   `${name} should be ${operator} 0 and < 65536. Received ${describeReceived(port)}.`,
                   stackStart);
}

// ERR_INVALID_ARG_TYPE for a property: 'The "name" property must be <expected>.'
function invalidArgType(name, expected, value, stackStart = invalidArgType) {
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                   `The "${name}" property must be ${expected}. Received ${describeReceived(value)}`, stackStart);
}

function outOfRange(name, range, value, stackStart = outOfRange) {
  return nodeError(RangeError, 'ERR_OUT_OF_RANGE',
                   `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`,
                   stackStart);
}

// What the `rcluster` command tells its user when the command line or a
// config file is wrong: one line, exit code 2 (a usage error, as for most
// Unix commands).
class UsageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UsageError';
    this.code = 'ERR_RCLUSTER_USAGE';
    this.exitCode = 2;
  }
}

// setTimeout() silently turns larger delays into 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// A whole number of milliseconds in [min, MAX_TIMER_MS], for a setting
// that becomes a timer.
function validateMs(value, name, min, caller) {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value, caller);
  if (value < min || value > MAX_TIMER_MS) throw outOfRange(name, `>= ${min} && <= ${MAX_TIMER_MS}`, value, caller);
  return value;
}

module.exports = {
  MAX_TIMER_MS,
  isPlainObject,
  validateMs,
  exceptionWithHostPort,
  errnoException,
  codedError,
  nodeError,
  UsageError,
  describeReceived,
  invalidArgType,
  outOfRange,
  validatePort,
  badPort,
};
