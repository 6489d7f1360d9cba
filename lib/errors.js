'use strict';
// Errors shaped exactly like Node's, for what a worker's server reports.
const { getSystemErrorName } = require('util');

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

module.exports = { exceptionWithHostPort, errnoException };
