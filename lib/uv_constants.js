'use strict';
// libuv's error numbers, which Node reports as negated errnos on Unix
// (`bind EADDRINUSE` carries errno -98): taken from os.constants.errno, never
// written as literal numbers. libuv's listen and bind flags are Node's own
// net.js and dgram.js business now; the primary decodes them in
// core/src/listen/node_query.rs.
const { constants: { errno } } = require('os');

/** libuv's error number for an errno name, e.g. uvErrno('EMFILE') === -24 on Linux. */
function uvErrno(name) {
  const n = errno[name];
  if (n === undefined) throw new RangeError(`no errno named ${name} on this platform`);
  return -n;
}

module.exports = { uvErrno };
