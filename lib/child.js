'use strict';
// The cluster module as a worker sees it. Control messages (online, listen
// requests, disconnect) go over Node's IPC, as in node:cluster; connections
// arrive natively on the private channel and are handed to the app's server.
const assert = require('assert');
const path = require('path');
const EventEmitter = require('events');
const { debuglog } = require('util');
const Worker = require('./worker');
const { internal, sendHelper } = require('./utils');
const { role } = require('./role');
const { wrapConnection } = require('./connection_handle');
const netHook = require('./net_hook');

const debug = debuglog('rcluster');
const cluster = new EventEmitter();
// Open servers by handle key, for worker.disconnect().
const handles = new Map();
const indexes = new Map();
// Round-robin listeners by the primary's listener id.
const listeners = new Map();
// SCHED_NONE listening fds and listen requests waiting for them: the fd comes
// on the channel, the reply on the IPC channel, in either order.
const sharedFds = new Map();
const sharedWaiters = new Map();

// Channel message kinds (src/worker.rs).
const KIND_CLOSED = 0;
const KIND_DISPATCH = 1;
const KIND_SHARED = 2;
const KIND_LEFT = 3;

let channel = null;
let channelRefs = 0;
let setupDone = false;

module.exports = cluster;

cluster.isWorker = true;
cluster.isMaster = false; // Deprecated alias. Must be same as isPrimary.
cluster.isPrimary = false;
cluster.worker = null;
cluster.Worker = Worker;

cluster._setupWorker = function() {
  if (setupDone) return;
  setupDone = true;
  const { id, channelFd } = role();
  const { Channel } = require('./native');
  channel = new Channel(channelFd, onChannelMessage);

  const worker = new Worker({ id, process, state: 'online' });
  cluster.worker = worker;

  process.once('disconnect', () => {
    worker.emit('disconnect');

    if (!worker.exitedAfterDisconnect) {
      // Unexpected disconnect, primary exited, or some such nastiness, so
      // worker exits immediately.
      process.exit(0);
    }
  });

  process.on('internalMessage', internal(worker, onmessage));
  netHook.install(cluster);
  send({ act: 'online' });

  function onmessage(message) {
    if (message.act === 'disconnect') _disconnect.call(worker, true);
  }
};

// A listening server keeps the worker alive, and server.unref() releases it,
// as Node's fake handle does with a timer; here the channel's poll handle does it.
function refChannel(delta) {
  channelRefs += delta;
  assert(channelRefs >= 0);
  if (channelRefs === 1 && delta > 0) channel.ref();
  else if (channelRefs === 0) channel.unref();
}

function onChannelMessage(kind, listenerId, fds) {
  switch (kind) {
    case KIND_DISPATCH: return onConnections(listenerId, fds);
    case KIND_SHARED: return onSharedFd(listenerId, fds[0]);
    case KIND_LEFT: return listeners.delete(listenerId);
    case KIND_CLOSED: return debug('worker: the channel to the primary closed');
  }
}

// Round-robin connections. Each fd is first wrapped in a native handle, then
// acknowledged (the primary may close its copy: we own a socket now and have
// read nothing), and only then given to the server, whose 'connection'
// listeners may throw. A closing server, or one at maxConnections, refuses: the
// primary gives the connection to another worker, as Node's round-robin does.
function onConnections(listenerId, fds) {
  const entry = listeners.get(listenerId);
  const statuses = new Uint8Array(fds.length);
  const accepted = [];
  if (entry !== undefined && !entry.closing) {
    const server = entry.server;
    for (let i = 0; i < fds.length; i++) {
      // Node 20 treats a maxConnections of 0 as no limit (its net.js and
      // cluster check it for truthiness), so this does too.
      if (server.maxConnections &&
          server._connections + accepted.length >= server.maxConnections) {
        continue;
      }
      const handle = wrapConnection(fds[i], entry.kind);
      if (handle !== null) {
        statuses[i] = 1;
        accepted.push(handle);
      }
    }
  }
  channel.reply(statuses);
  debug('worker: listener %d: %d connections, %d taken', listenerId, fds.length, accepted.length);
  let error = null;
  for (const handle of accepted) {
    try {
      entry.handle.onconnection(0, handle);
    } catch (err) {
      error ??= err;
    }
  }
  if (error !== null) throw error;
}

function onSharedFd(listenerId, fd) {
  const waiter = sharedWaiters.get(listenerId);
  if (waiter === undefined) {
    sharedFds.set(listenerId, fd);
  } else {
    sharedWaiters.delete(listenerId);
    waiter(fd);
  }
}

function whenSharedFd(listenerId, fn) {
  const fd = sharedFds.get(listenerId);
  if (fd === undefined) {
    sharedWaiters.set(listenerId, fn);
  } else {
    sharedFds.delete(listenerId);
    fn(fd);
  }
}

// `obj` is a net.Server. `cb(errno, handle, fd)`: round-robin gives a faux
// handle, SCHED_NONE the listening fd itself.
cluster._getServer = function(obj, options, cb) {
  let address = options.address;

  // Resolve unix socket paths to absolute paths.
  if (options.port < 0 && typeof address === 'string') address = path.resolve(address);

  const indexesKey = [address, options.port, options.addressType, options.fd].join(':');

  let indexSet = indexes.get(indexesKey);
  if (indexSet === undefined) {
    indexSet = { nextIndex: 0, set: new Set() };
    indexes.set(indexesKey, indexSet);
  }
  const index = indexSet.nextIndex++;
  indexSet.set.add(index);

  const message = {
    act: 'queryServer',
    index,
    data: null,
    ...options,
  };

  message.address = address;

  // Set custom data on handle (i.e. tls tickets key).
  if (obj._getServerData) message.data = obj._getServerData();

  send(message, (reply) => {
    if (typeof obj._setServerData === 'function') obj._setServerData(reply.data);

    if (reply.shared) {
      shared(reply, { obj, indexesKey, index }, cb);
    } else {
      rr(reply, { obj, indexesKey, index }, cb);
    }
  });

  obj.once('listening', () => {
    // Short-lived sockets might have been closed.
    if (!indexes.has(indexesKey)) return;
    cluster.worker.state = 'listening';
    const address = obj.address();
    message.act = 'listening';
    message.port = (address && address.port) || options.port;
    send(message);
  });
};

function removeIndexesKey(indexesKey, index) {
  const indexSet = indexes.get(indexesKey);
  if (!indexSet) return;

  indexSet.set.delete(index);
  if (indexSet.set.size === 0) indexes.delete(indexesKey);
}

// SCHED_NONE: the worker listens on the primary's socket itself.
function shared(message, { obj, indexesKey, index }, cb) {
  if (message.errno) return cb(message.errno, null);
  const key = message.key;
  const listenerId = message.listenerId;
  whenSharedFd(listenerId, (fd) => {
    cb(0, null, fd);
    const handle = obj._handle;
    if (!handle) return; // listening on it failed; the server reported it
    // Keep track of when it's closed, to take the worker out of the rotation.
    const close = handle.close;
    handle.close = function() {
      channel.leave(listenerId);
      handles.delete(key);
      removeIndexesKey(indexesKey, index);
      return close.apply(handle, arguments);
    };
    assert(handles.has(key) === false);
    handles.set(key, obj);
  });
}

// Round-robin: the primary accepts; the server gets a faux handle.
function rr(message, { obj, indexesKey, index }, cb) {
  if (message.errno) return cb(message.errno, null);

  let key = message.key;
  const listenerId = message.listenerId;
  let refed = false;

  function ref() {
    if (!refed) {
      refed = true;
      refChannel(+1);
    }
  }

  function unref() {
    if (refed) {
      refed = false;
      refChannel(-1);
    }
  }

  function listen(backlog) {
    return 0;
  }

  function close() {
    // lib/net.js treats server._handle.close() as effectively synchronous. The
    // primary confirms with a LEFT message; connections that arrive before it
    // are refused back to the primary, which gives them to another worker.
    if (key === undefined) return;
    unref();
    channel.leave(listenerId);
    const entry = listeners.get(listenerId);
    if (entry !== undefined) entry.closing = true;
    handles.delete(key);
    removeIndexesKey(indexesKey, index);
    key = undefined;
  }

  function getsockname(out) {
    if (key) Object.assign(out, message.sockname);
    return 0;
  }

  const handle = { close, listen, ref, unref };
  handle.ref();
  if (message.sockname) {
    handle.getsockname = getsockname; // TCP handles only.
  }

  assert(handles.has(key) === false);
  handles.set(key, obj);
  listeners.set(listenerId, {
    handle,
    server: obj,
    kind: message.sockname ? 'tcp' : 'pipe',
    closing: false,
  });
  cb(0, handle);
}

function send(message, cb) {
  return sendHelper(process, message, null, cb);
}

function _disconnect(primaryInitiated) {
  this.exitedAfterDisconnect = true;
  let waitingCount = 1;

  function checkWaitingCount() {
    waitingCount--;

    if (waitingCount === 0) {
      // If disconnect is worker initiated, wait for ack to be sure
      // exitedAfterDisconnect is properly set in the primary, otherwise, if
      // it's primary initiated there's no need to send the
      // exitedAfterDisconnect message.
      if (primaryInitiated) {
        process.disconnect();
      } else {
        send({ act: 'exitedAfterDisconnect' }, () => process.disconnect());
      }
    }
  }

  for (const server of handles.values()) {
    waitingCount++;
    server.close(checkWaitingCount);
  }

  handles.clear();
  checkWaitingCount();
}

// Extend generic Worker with methods specific to worker processes.
Worker.prototype.disconnect = function() {
  if (this.state !== 'disconnecting' && this.state !== 'destroying') {
    this.state = 'disconnecting';
    _disconnect.call(this);
  }

  return this;
};

Worker.prototype.destroy = function() {
  if (this.state === 'destroying') return;

  this.exitedAfterDisconnect = true;
  if (!this.isConnected()) {
    process.exit(0);
  } else {
    this.state = 'destroying';
    send({ act: 'exitedAfterDisconnect' }, () => process.disconnect());
    process.once('disconnect', () => process.exit(0));
  }
};
