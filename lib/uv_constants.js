'use strict';
// libuv's flags as Node's dgram passes them to a bind request (`flags`), in
// one place for JS (the primary's core/src/node_query.rs decodes them). Node exports only
// some of them (os.constants.UV_UDP_REUSEADDR); the others are libuv's
// values, stable across its releases (uv.h: UV_TCP_IPV6ONLY, UV_UDP_IPV6ONLY).
//
// libuv's error numbers are negated errnos on Unix: take them from
// os.constants.errno (`-errno.EMFILE`), never as literal numbers.
const { constants: { UV_UDP_REUSEADDR, errno } } = require('os');

const UV_UDP_IPV6ONLY = 1;

/** libuv's error number for an errno name, e.g. uvErrno('EMFILE') === -24 on Linux. */
function uvErrno(name) {
  const n = errno[name];
  if (n === undefined) throw new RangeError(`no errno named ${name} on this platform`);
  return -n;
}

module.exports = { UV_UDP_IPV6ONLY, UV_UDP_REUSEADDR, uvErrno };
