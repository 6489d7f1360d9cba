'use strict';
// Turns a connection fd received from the primary into the same kind of native
// handle (TCP or Pipe wrap) that libuv hands net.Server's onconnection, so the
// app's server builds its net.Socket itself and every net.Server feature works.
const net = require('net');

const SOCKET = 0; // TCPConstants.SOCKET / PipeConstants.SOCKET
const ctors = { tcp: null, pipe: null };

// The handle constructors are not public. The first fd of each kind is wrapped
// by net.Socket itself, which picks the right one, and its constructor is kept.
function firstHandle(fd) {
  const socket = new net.Socket({ fd, readable: false, writable: false });
  const handle = socket._handle;
  socket._handle = null;
  return handle;
}

// Returns the handle, or null if the fd could not be opened (the caller
// refuses it, and the primary gives it to another worker).
function wrapConnection(fd, kind) {
  const Ctor = ctors[kind];
  if (Ctor === null) {
    try {
      const handle = firstHandle(fd);
      ctors[kind] = handle.constructor;
      return handle;
    } catch {
      return null;
    }
  }
  const handle = new Ctor(SOCKET);
  if (handle.open(fd) !== 0) {
    handle.close();
    return null;
  }
  return handle;
}

module.exports = { wrapConnection };
