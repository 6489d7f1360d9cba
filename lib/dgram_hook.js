'use strict';
// Routes a worker's dgram.Socket#bind through the primary.
//
// node:cluster does this inside lib/dgram.js when NODE_UNIQUE_ID marks a
// worker: a non-exclusive bind asks the primary, which binds the socket once
// (whatever the scheduling policy) and hands every worker that same socket.
// rcluster cannot set that variable, so to dgram.js every rcluster worker is a
// primary that binds by itself. This wrapper takes the cluster branch instead:
// it resolves the address as dgram does (or, for bind({ fd }), passes the fd
// number on), asks the primary with cluster._getServer, and opens the socket
// the primary sends with dgram's own bind({ fd, exclusive: true }), which opens
// an fd in place. dgram then runs its own 'listening' and callback logic.
const dgram = require('dgram');
const { UV_UDP_IPV6ONLY, UV_UDP_REUSEADDR } = require('./uv_constants');
const { errnoException, exceptionWithHostPort } = require('./errors');
const { closeFd } = require('./utils');

// dgram.js's bind states (lib/dgram.js).
const BIND_STATE_UNBOUND = 0;
const BIND_STATE_BINDING = 1;
const BIND_STATE_BOUND = 2;

let installed = false;
let kState = null;

// dgram keeps a socket's handle and bind state under a private symbol
// (internal/dgram's kStateSymbol). The public-looking `_handle`, `_bindState`
// and friends are deprecated accessors that print DEP0112 warnings, so the
// symbol is found on the socket instead.
function stateOf(socket) {
  if (kState === null) {
    kState = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol') || null;
  }
  const state = kState === null ? undefined : socket[kState];
  return state !== null && typeof state === 'object' && 'bindState' in state ? state : undefined;
}

// What bind() binds in the worker itself, as under node:cluster: an explicit
// handle, and `exclusive: true`.
function bindsInWorker(port) {
  if (port === null || typeof port !== 'object') return false;
  return typeof port.recvStart === 'function' || !!port.exclusive;
}

// bind({ fd }): as in node:cluster, the number names a UDP socket of the
// primary's, which every worker giving that fd shares. As in lib/dgram.js, only
// fd > 0 takes this path; fd 0 is a plain bind (the primary's
// ListenSpec::from_node reads the query by the same rule).
function primaryFd(port) {
  if (port === null || typeof port !== 'object') return undefined;
  const fd = port.fd;
  return Number.isInteger(fd) && fd > 0 && fd <= 0x7fffffff ? fd : undefined;
}

function install(cluster) {
  if (installed) return;
  installed = true;
  const proto = dgram.Socket.prototype;
  const bind = proto.bind;

  // Opens the primary's socket (`shared`: { fd, leave, close } from
  // lib/child.js) on this dgram socket's own handle.
  function openShared(socket, state, shared) {
    const { fd, leave } = shared;
    if (!state.handle) {
      // Closed while the primary was answering: as dgram does, close what
      // the primary gave.
      shared.close();
      return;
    }
    // However the socket gets closed (close(), an AbortSignal,
    // worker.disconnect()), the worker comes off the key; the last one to
    // leave frees the port.
    const handle = state.handle;
    const close = handle.close;
    handle.close = function() {
      leave();
      return close.apply(this, arguments);
    };
    // dgram's bind({ fd }) only opens an unbound socket.
    state.bindState = BIND_STATE_UNBOUND;
    try {
      bind.call(socket, { fd, exclusive: true });
    } catch (err) {
      // Bound: the throw came from the app's own 'listening' listener.
      if (state.bindState === BIND_STATE_BOUND) throw err;
      state.bindState = BIND_STATE_UNBOUND;
      closeFd(fd);
      leave();
      socket.emit('error', err);
    }
  }

  proto.bind = function(port_, address_ /* , callback */) {
    const state = stateOf(this);
    // Sockets this wrapper cannot see into, closed or already bound sockets
    // (dgram throws ERR_SOCKET_DGRAM_NOT_RUNNING or ERR_SOCKET_ALREADY_BOUND
    // before doing anything), and what binds in the worker: dgram's own bind.
    if (state === undefined || !state.handle || state.bindState !== BIND_STATE_UNBOUND ||
        bindsInWorker(port_)) {
      return bind.apply(this, arguments);
    }

    // From here on, as lib/dgram.js's bind does for a cluster worker.
    state.bindState = BIND_STATE_BINDING;

    const cb = arguments.length && arguments[arguments.length - 1];
    if (typeof cb === 'function') {
      function removeListeners() {
        this.removeListener('error', removeListeners);
        this.removeListener('listening', onListening);
      }

      function onListening() {
        removeListeners.call(this);
        cb.call(this);
      }

      this.on('error', removeListeners);
      this.on('listening', onListening);
    }

    const fd = primaryFd(port_);
    if (fd !== undefined) {
      const query = { address: null, port: null, addressType: this.type, fd, flags: null };
      cluster._getServer(this, query, (errno, shared) => {
        if (errno) {
          if (state.handle) {
            state.bindState = BIND_STATE_UNBOUND;
            this.emit('error', errnoException(errno, 'open'));
          }
          return;
        }
        openShared(this, state, shared);
      });
      return this;
    }

    let port = port_;
    let address;
    if (port !== null && typeof port === 'object') {
      address = port.address || '';
      port = port.port;
    } else {
      address = typeof address_ === 'function' ? '' : address_;
    }

    // Defaulting address for bind to all interfaces.
    if (!address) address = this.type === 'udp4' ? '0.0.0.0' : '::';

    state.handle.lookup(address, (err, ip) => {
      if (!state.handle) return; // Closed in the meantime.

      if (err) {
        state.bindState = BIND_STATE_UNBOUND;
        this.emit('error', err);
        return;
      }

      let flags = 0;
      if (state.reuseAddr) flags |= UV_UDP_REUSEADDR;
      if (state.ipv6Only) flags |= UV_UDP_IPV6ONLY;

      const query = { address: ip, port, addressType: this.type, fd: -1, flags };
      cluster._getServer(this, query, (errno, shared) => {
        if (errno) {
          // As dgram: a socket closed in the meantime reports nothing.
          if (state.handle) {
            state.bindState = BIND_STATE_UNBOUND;
            this.emit('error', exceptionWithHostPort(errno, 'bind', ip, port));
          }
          return;
        }
        openShared(this, state, shared);
      });
    });

    return this;
  };
}

module.exports = { install };
