'use strict';
// Routes a worker's net.Server#listen through the primary.
//
// node:cluster does this inside lib/net.js when NODE_UNIQUE_ID marks a worker.
// rcluster cannot set that variable (Node's bootstrap would act on it), so to
// Node every rcluster worker looks like a primary and net.js calls
// server._listen2() to bind. That is the hook: net.js resolves every call form
// of listen() (port, host, backlog, options, callback, DNS lookup) down to it,
// and node:cluster itself keeps the name "to avoid breaking code that wraps
// this method".
const net = require('net');
const { exceptionWithHostPort } = require('./errors');

const kExclusive = Symbol('rcluster.exclusive');
let installed = false;

function install(cluster) {
  if (installed) return;
  installed = true;
  const proto = net.Server.prototype;
  const listen = proto.listen;
  const listen2 = proto._listen2;

  // `exclusive: true` binds in the worker itself, as in node:cluster. It only
  // reaches _listen2 through listen()'s options object, so note it here.
  proto.listen = function(...args) {
    const options = args[0];
    this[kExclusive] = options !== null && typeof options === 'object' && options.exclusive === true;
    return listen.apply(this, args);
  };

  proto._listen2 = function(address, port, addressType, backlog, fd, flags) {
    // A server that already has a handle (listen(handle), or the faux handle
    // set below) or an exclusive one binds in this process. listen({ fd })
    // goes to the primary like any other listen: as in node:cluster, the fd
    // names a descriptor of the primary's.
    if (this._handle || this[kExclusive]) {
      return listen2.apply(this, arguments);
    }
    const query = { address, port, addressType, fd, flags, backlog };
    cluster._getServer(this, query, (errno, handle) => {
      if (errno) {
        this.emit('error', exceptionWithHostPort(errno, 'bind', address, port));
        return;
      }
      if (handle.shared === true) {
        // SCHED_NONE: listen on the primary's socket; net.js opens the fd.
        listen2.call(this, null, null, addressType, backlog, handle.fd, flags);
        // net.js keys the server by what it was asked to listen on, as it
        // does in a node:cluster worker, not by the fd it opened.
        this._connectionKey = `${addressType}:${address}:${port}`;
        handle.adopt();
      } else {
        // Round-robin: reuse the primary's listener through the faux handle.
        this._handle = handle;
        listen2.call(this, address, port, addressType, backlog, fd, flags);
      }
    });
  };
}

module.exports = { install };
