'use strict';
// The cluster module as a worker sees it, shaped as Node's
// internal/cluster/child.js: the cluster object, cluster._getServer (what
// net.Server#listen and dgram's bind come to), and Worker#disconnect/destroy.
// Control messages (online, listen requests, disconnect) go over Node's IPC,
// as in node:cluster (lib/protocol.js). Connections arrive on the native
// channel (lib/worker/channel_client.js), and a SCHED_NONE socket's fd meets its
// listen reply in lib/worker/shared_socket_rendezvous.js.
const assert = require('assert');
const { uvErrno } = require('../uv_constants');
const path = require('path');
const { debuglog } = require('util');
const Worker = require('../worker_object');
const { internal, sendHelper, closeFd, defineHidden } = require('../internal_messages');
const { stick } = require('./sticky_claims');
const { role } = require('../role');
const { ChannelClient } = require('./channel_client');
const { SharedSocketRendezvous } = require('./shared_socket_rendezvous');
const { listeningHandle, datagramHandle } = require('./connection_handle');
const gracefulExit = require('./graceful_exit');
const requestBudget = require('./request_budget');
const heartbeat = require('./heartbeat');
const loopDelay = require('./loop_delay');
const retirement = require('./retirement');
const { Act } = require('../protocol');
const builtin = require('../builtin');
const sharedState = require('../bus/shared');
const busModule = require('../bus/bus');

const debug = debuglog('rcluster');
// Node's own cluster object (lib/builtin.js): its lib/net.js and lib/dgram.js
// then route a listen or bind through cluster._getServer() below, as in a
// node:cluster worker.
const cluster = builtin.claim(true);
// This worker's open servers (net.Server or dgram.Socket) by the primary's
// key, for worker.disconnect(), which closes them all.
const openServers = new Map();
// Node's per-address listen counters: the n-th server on the same address
// gets index n, which ends the primary's key for it, as in node:cluster.
const indexes = new Map();
const sharedSockets = new SharedSocketRendezvous();
// How to leave each shared UDP socket this worker joined, by listener id.
const datagramLeaves = new Map();

const UV_EMFILE = uvErrno('EMFILE');

let channel = null; // a ChannelClient once the worker is set up
// Set once the worker starts leaving the cluster: listens still waiting for
// their socket are dropped.
let disconnecting = false;
let setupDone = false;
// Replaced by a reload or recycle: idle keep-alive connections move to
// another worker instead of closing (lib/worker/keep_alive_handback.js).
let retiring = false;

module.exports = cluster;

cluster.isWorker = true;
cluster.isMaster = false; // Deprecated alias. Must be same as isPrimary.
cluster.isPrimary = false;
cluster.worker = null;
cluster.Worker = Worker;
// Not part of node:cluster (hidden, as cluster.stats in the primary): the
// counters and key/value table every process of the cluster shares.
Object.defineProperty(cluster, 'shared', { configurable: true, enumerable: false, get: () => sharedState.sharedApi() });
// Not part of node:cluster (hidden): only the agent (lib/agent/cluster.js) has it true.
defineHidden(cluster, 'isAgent', false);
// Not part of node:cluster (hidden): messages to and between every process of the cluster.
Object.defineProperty(cluster, 'bus', { configurable: true, enumerable: false, value: busModule.bus });

cluster._setupWorker = function() {
  if (setupDone) return;
  setupDone = true;
  const { id, channelFd, sharedFd, gateFd, machine } = role();
  // Before anything of the worker starts: it may have to wait for the agent.
  require('../agent/gate').waitAtGate(gateFd);
  // Mapped now, so the fd is closed before the app can spawn anything.
  sharedState.attach(sharedFd);
  channel = new ChannelClient(channelFd, {
    workerId: id,
    onSharedSocket: (listenerId, fd) => sharedSockets.socketArrived(listenerId, fd),
    onClosed: () => retirement.channelClosed(id),
  });
  retirement.install(() => disconnecting);

  busModule.setSelf(id, machine);
  busModule.bus.attach(channel.channel);
  require('./loop_stamp').stampRequests();

  const worker = new Worker({ id, process, state: 'online' });
  cluster.worker = worker;
  // SCHED_STICKY by cookie or query (lib/worker/sticky_claims.js).
  defineHidden(worker, 'stick', (value) => stick(channel, value));
  debug('worker %d: online, connections arrive on fd %d', id, channelFd);

  process.once('disconnect', () => {
    disconnecting = true;
    leaveEveryRotation();
    worker.emit('disconnect');

    if (!worker.exitedAfterDisconnect) {
      // Unexpected disconnect, primary exited, or some such nastiness, so
      // worker exits immediately.
      process.exit(0);
    }
  });

  process.on('internalMessage', internal(worker, onmessage));
  gracefulExit.install(worker, { closeServers, send });
  requestBudget.install(send);
  heartbeat.install(channel);
  loopDelay.install(send);
  // setupPrimary({ waitReady: true }): a reload's replacement takes over once
  // it calls this (or process.send('ready'), PM2's convention).
  defineHidden(worker, 'ready', function ready() {
    send({ act: Act.Ready });
  });
  send({ act: Act.Online });

  function onmessage(message) {
    if (message.act === Act.Retiring) {
      retiring = true;
      retirement.retiring(id, message.drainTimeout);
    }
    if (message.act === Act.Disconnect) _disconnect.call(worker, true);
  }
};

// The worker's IPC channel closed while it is alive to see it: it left the
// cluster on purpose (process.disconnect(), or the primary's disconnect), so
// it leaves every rotation, as Node's primary removes a disconnected worker's
// handles; a socket whose last worker this was closes (and a unix socket path
// is removed). A worker that dies runs none of this: its sockets stay open
// for a replacement (lib/primary/cluster.js).
function leaveEveryRotation() {
  channel.leaveAll();
  for (const leave of datagramLeaves.values()) leave();
}

// `obj` is a net.Server or a dgram.Socket; Node's lib/net.js and lib/dgram.js
// call this with their own callbacks, as in a node:cluster worker.
// `cb(errno, handle)`: round-robin gives a faux listening handle, SCHED_NONE
// a TCP or Pipe server handle and UDP a UDP handle, each opened on the
// primary's socket.
cluster._getServer = function(obj, options, cb) {
  let address = options.address;

  // Resolve unix socket paths to absolute paths.
  // Not a name in Linux's abstract namespace ('\0name'): it is no path.
  if (options.port < 0 && typeof address === 'string' && !address.startsWith('\0')) address = path.resolve(address);

  const indexesKey = [address, options.port, options.addressType, options.fd].join(':');

  let indexSet = indexes.get(indexesKey);
  if (indexSet === undefined) {
    indexSet = { nextIndex: 0, set: new Set() };
    indexes.set(indexesKey, indexSet);
  }
  const index = indexSet.nextIndex++;
  indexSet.set.add(index);

  const message = {
    act: Act.QueryServer,
    index,
    data: null,
    ...options,
    clientSpeaksFirst: clientSpeaksFirst(obj),
  };

  message.address = address;

  // Set custom data on handle (i.e. tls tickets key).
  if (obj._getServerData) message.data = obj._getServerData();
  requestBudget.watch(obj);

  debug('worker %d: asks the primary to listen on %s', cluster.worker.id,
        options.port < 0 ? address : `${address == null ? '*' : address}:${options.port}`);
  send(message, (reply) => {
    debug('worker %d: listen %s: %s', cluster.worker.id, reply.key,
          reply.errno ? `errno ${reply.errno}` :
          reply.shared ? `listening on the primary's socket (listener ${reply.listenerId})` :
          `round-robin listener ${reply.listenerId}`);
    if (typeof obj._setServerData === 'function') obj._setServerData(reply.data);

    if (reply.shared) {
      shared(reply, { obj, indexesKey, index, addressType: options.addressType }, cb);
    } else {
      rr(reply, { obj, indexesKey, index }, cb);
    }
  });

  obj.once('listening', () => {
    // Short-lived sockets might have been closed.
    if (!indexes.has(indexesKey)) return;
    cluster.worker.state = 'listening';
    const address = obj.address();
    message.act = Act.Listening;
    message.port = (address && address.port) || options.port;
    send(message);
  });
};

// Whether the server's clients write before it does: HTTP (http.Server) and
// TLS (tls.Server, which https's and http2's secure servers extend). The
// primary may then have the kernel hold each connection until its first
// bytes arrive (TCP_DEFER_ACCEPT, core/src/routing/reuseport.rs); a server that
// greets first (SMTP, a MySQL-style handshake) must never get that. A module
// not yet loaded made no server, so none is loaded to find out.
function clientSpeaksFirst(server) {
  const loaded = process.moduleLoadList;
  const isLoaded = (name) => !Array.isArray(loaded) || loaded.includes(`NativeModule ${name}`);
  if (isLoaded('http') && server instanceof require('http').Server) return true;
  if (isLoaded('tls') && server instanceof require('tls').Server) return true;
  return false;
}

function removeIndexesKey(indexesKey, index) {
  const indexSet = indexes.get(indexesKey);
  if (!indexSet) return;

  indexSet.set.delete(index);
  if (indexSet.set.size === 0) indexes.delete(indexesKey);
}

// SCHED_NONE and UDP: the worker uses the primary's socket itself.
function shared(message, { obj, indexesKey, index, addressType }, cb) {
  if (message.errno) return cb(message.errno, null);
  const key = message.key;
  const listenerId = message.listenerId;
  sharedSockets.whenSocket(listenerId, (fd) => {
    // This listen ends here: the worker is not a member of the listener.
    // `errno` undefined: it never completes (see below).
    const abandon = (errno) => {
      if (fd !== undefined) closeFd(fd);
      channel.leave(listenerId);
      removeIndexesKey(indexesKey, index);
      if (errno !== undefined) cb(errno, null);
    };
    // The reply came before the fd, and the worker began to disconnect in
    // between (worker.disconnect() closed only what had fully arrived). As
    // under node:cluster, where both come in one message, this listen never
    // completes; the socket would keep the worker alive.
    if (disconnecting) return abandon(undefined);
    // The socket could not be received: this process is out of fds.
    if (fd === undefined) return abandon(UV_EMFILE);
    const datagram = addressType === 'udp4' || addressType === 'udp6';
    const handle = datagram ? datagramHandle(fd) : listeningHandle(fd);
    if (typeof handle === 'number') return abandon(handle);
    if (datagram) {
      // However the socket gets closed (close(), an AbortSignal,
      // worker.disconnect(), or dgram closing what came after the socket
      // closed), the worker comes off the key; the last one to leave frees
      // the port.
      let joined = true;
      const leave = () => {
        if (!joined) return;
        joined = false;
        datagramLeaves.delete(listenerId);
        channel.leave(listenerId);
        openServers.delete(key);
        removeIndexesKey(indexesKey, index);
      };
      assert(openServers.has(key) === false);
      openServers.set(key, obj);
      datagramLeaves.set(listenerId, leave);
      const close = handle.close;
      handle.close = function() {
        leave();
        return close.apply(this, arguments);
      };
      cb(0, handle);
      return;
    }
    // net.js listens on it and keeps it as the server's handle. However it is
    // closed (server.close(), a failed listen), the worker leaves the rotation.
    const close = handle.close;
    handle.close = function() {
      leaveRotation(listenerId, key, indexesKey, index);
      return close.apply(handle, arguments);
    };
    // Connections the primary held while no worker listened on this socket
    // (all had died) come as dispatches; the server takes them as its own.
    joinRotation(listenerId, key, obj, handle, message);
    cb(0, handle);
  });
}

// A server of this worker is open, and in the rotation of the primary's
// listener `listenerId`: dispatched connections go to `handle.onconnection`.
function joinRotation(listenerId, key, obj, handle, message) {
  assert(openServers.has(key) === false);
  openServers.set(key, obj);
  channel.join(listenerId, obj, handle, message.sockname ? 'tcp' : 'pipe');
}

// That server is closing: out of the rotation. lib/net.js treats
// server._handle.close() as effectively synchronous; connections that arrive
// before the primary confirms are refused back to it (lib/worker/channel_client.js).
function leaveRotation(listenerId, key, indexesKey, index) {
  const connections = channel.leave(listenerId);
  debug('worker %d: closes its server on %s (listener %d, %s connections)', cluster.worker.id, key, listenerId,
        connections);
  openServers.delete(key);
  removeIndexesKey(indexesKey, index);
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
      channel.ref();
    }
  }

  function unref() {
    if (refed) {
      refed = false;
      channel.unref();
    }
  }

  function listen(backlog) {
    return 0;
  }

  function close() {
    if (key === undefined) return;
    unref();
    leaveRotation(listenerId, key, indexesKey, index);
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

  joinRotation(listenerId, key, obj, handle, message);
  cb(0, handle);
}

function send(message, cb) {
  return sendHelper(process, message, null, cb);
}

// The primary's disconnect request can cross the worker's own (both got the
// same shutdown signal): a second process.disconnect() would throw
// ERR_IPC_DISCONNECTED from an 'error' event and kill the worker.
function disconnectProcess() {
  if (process.connected) process.disconnect();
}

function _disconnect(primaryInitiated) {
  disconnecting = true;
  debug('worker %d: disconnecting (%s), closing %d servers first', this.id,
        primaryInitiated ? 'the primary asked' : 'worker.disconnect()', openServers.size);
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
        disconnectProcess();
      } else {
        send({ act: Act.ExitedAfterDisconnect }, disconnectProcess);
      }
    }
  }

  for (const server of openServers.values()) {
    waitingCount++;
    if (retiring) channel.handBackIdle(server);
    server.close(checkWaitingCount);
  }

  openServers.clear();
  checkWaitingCount();
}

// Closes every server of this worker, without disconnecting; `cb` runs once
// all have closed, i.e. once their connections have ended.
function closeServers(cb) {
  let open = 1;
  const closed = () => {
    if (--open === 0) cb();
  };
  for (const server of openServers.values()) {
    open++;
    server.close(closed);
  }
  openServers.clear();
  closed();
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
    send({ act: Act.ExitedAfterDisconnect }, () => process.disconnect());
    process.once('disconnect', () => process.exit(0));
  }
};
