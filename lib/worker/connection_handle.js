'use strict';
// Turns a connection fd received from the primary into the same kind of native
// handle (TCP or Pipe wrap) that libuv hands net.Server's onconnection, so the
// app's server builds its net.Socket itself and every net.Server feature works.
const net = require('net');
const dgram = require('dgram');

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

// A listening socket of the primary's (SCHED_NONE), as the server handle
// Node's net.js listens on: what Node's own primary makes of a listen({ fd }),
// and a node:cluster worker receives. Returns the handle or a libuv errno;
// on an errno the fd is still the caller's.
function listeningHandle(fd) {
  return net._createServerHandle(null, null, null, fd);
}

// The primary's UDP socket, as the handle lib/dgram.js puts in place of its
// own (it copies over lookup/bind/send, as for a node:cluster worker's).
let UDP = null;
function datagramHandle(fd) {
  if (UDP === null) {
    const socket = dgram.createSocket('udp4');
    const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
    UDP = socket[state].handle.constructor;
    socket.close();
  }
  const handle = new UDP();
  const err = handle.open(fd);
  if (err !== 0) {
    handle.close();
    return err;
  }
  return handle;
}

module.exports = { wrapConnection, listeningHandle, datagramHandle };
