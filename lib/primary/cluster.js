'use strict';
// The cluster module as the primary process sees it. Process management (fork,
// IPC, events) is Node's child_process, exactly as in node:cluster; the shared
// sockets and the scheduler live in the native dispatcher, so connections never
// pass through this process's JS event loop.
const assert = require('assert');
const EventEmitter = require('events');
const { debuglog } = require('util');
const Worker = require('../worker_object');
const { defineHidden, internal, sendHelper } = require('../internal_messages');
const { Act, Env } = require('../protocol');
const { manage } = require('../operations/management');
const { initialSettings } = require('./settings');
const { WorkerRecord } = require('./worker_record');
const { dispatcherEvents } = require('./dispatcher_events');
const { checkWorkerMessage } = require('./worker_messages');
const { isSpawnResourceError, unspawnedProcess, peerStdio: spawnStdio, forkPeer } = require('./worker_spawn');
const { validatePort, badPort } = require('../errors');
const { uvErrno } = require('../uv_constants');
const builtin = require('../builtin');
const shared = require('../bus/shared');
const busModule = require('../bus/bus');
const agentModule = require('../agent/supervisor');
const rejections = require('../rejections');

const debug = debuglog('rcluster');
// Node's own cluster object (lib/builtin.js), so that every require('cluster')
// in this process is this one; a node:cluster worker keeps Node's.
const cluster = builtin.claim(false) ?? new EventEmitter();
const intercom = new EventEmitter();
const routing = require('./routing');
const { SCHED_NONE, SCHED_RR } = routing;
// What a worker's listen fails with when the dispatcher, not the bind, failed.
const UV_ECANCELED = uvErrno('ECANCELED');
// What a listen request with a malformed field is refused with.
const UV_EINVAL = uvErrno('EINVAL');
// Inspector ports a worker may be given (Node's internal/util/inspector).
const kMinPort = 1024;
const kMaxPort = 65535;

module.exports = cluster;
// The primary's record of every worker whose process has not exited, by id
// (lib/primary/worker_record.js): cluster.workers loses a worker when it disconnects.
const workerRecords = new Map();
// Restart policy, shutdown, graceful exit on errors, reload, recycling and
// scaling: lib/operations/management.js. The rollover forks and withdraws
// workers with the primary's own functions, below.
const management = manage(cluster, workerRecords, { forkWorker, withdrawFromRotations, admitToRotations });
// cluster.reload() (lib/operations/rollover.js) and cluster.scale() (lib/operations/scale.js).
const { rollover, scaler } = management;
// The agent (setupPrimary({ agent })): forked before the first worker, stopped after the last.
const agentSupervisor = new agentModule.AgentSupervisor(cluster);
management.addLastStep(() => agentSupervisor.stop().then(busModule.stopBridge));

cluster.isWorker = false;
cluster.isMaster = true; // Deprecated alias. Must be same as isPrimary.
cluster.isPrimary = true;
cluster.Worker = Worker;
cluster.workers = {};
cluster.settings = {};
cluster.SCHED_NONE = SCHED_NONE; // Leave it to the operating system.
cluster.SCHED_RR = SCHED_RR; // Primary distributes connections.
// rcluster's own policies (lib/primary/routing.js), not enumerable, so that the
// cluster object's keys stay node:cluster's.
defineHidden(cluster, 'SCHED_LC', routing.SCHED_LC); // Primary deals to the least loaded worker.
defineHidden(cluster, 'SCHED_STICKY', routing.SCHED_STICKY); // Primary deals by client address.
defineHidden(cluster, 'SCHED_REUSEPORT', routing.SCHED_REUSEPORT); // A SO_REUSEPORT socket per worker.

let ids = 0;
let initialized = false;
let dispatcher = null;
let debugPortOffset = 1;
// Sockets systemd passed this process (lib/primary/socket_activation.js), for the
// dispatcher to adopt when it starts.
const inheritedFds = require('./socket_activation').takeListenFds();
// Custom server data per handle key (tls session ticket keys): the first
// worker's data is what every worker on that key gets, as in Node.
const serverData = new Map();

function policyFromEnv() {
  return routing.policyFromEnvValue(process.env.NODE_CLUSTER_SCHED_POLICY);
}

// node:cluster reads NODE_CLUSTER_SCHED_POLICY when it loads, which in an ES
// module app is before the app's own code runs (imports are hoisted,
// nodejs/node#49240), so `process.env.NODE_CLUSTER_SCHED_POLICY = 'none'`
// came too late. rcluster reads it again when the policy is frozen (first
// setupPrimary() or fork()), unless the app assigned cluster.schedulingPolicy.
// `schedulingPolicy` is the frozen policy; the property shows what the app
// assigned, or else the policy frozen or to be frozen.
let schedulingPolicy = null;
let assignedPolicy;
let policyAssigned = false;
Object.defineProperty(cluster, 'schedulingPolicy', {
  configurable: true,
  enumerable: true,
  get() {
    if (policyAssigned) return assignedPolicy;
    return initialized ? schedulingPolicy : policyFromEnv();
  },
  set(value) {
    policyAssigned = true;
    assignedPolicy = value;
  },
});

// What the dispatcher thread reports (lib/primary/dispatcher_events.js), and the
// one report a worker makes itself (its event loop lags).
const onHealthEvent = dispatcherEvents({
  cluster,
  records: workerRecords,
  withdraw: (worker) => withdrawFromRotations(worker, { hold: true }),
  replace: (record) => management.replaceFailed(record),
  agentChannelFailed: (detail) => agentSupervisor.channelFailed(detail),
});

// The native dispatcher thread starts with the first worker, not at require(),
// with the settings of that moment (setupPrimary has run by then).

// For bench/ only (its config rcluster-rr-unpaced) and the pacing test: the
// open connections from which a worker is paced, one new connection per
// event-loop turn (docs/DESIGN.md §13; 0: never). No API sets it; without
// it the dispatcher's default holds. Read here and nowhere else.
const BENCH_PACE_ABOVE = 'RCLUSTER_BENCH_PACE_ABOVE';
function pacingOption() {
  const text = process.env[BENCH_PACE_ABOVE];
  if (text === undefined || text === '') return {};
  const open = Number(text);
  if (!Number.isInteger(open) || open < 0 || open > 0xffffffff) return {};
  return { paceAbove: open };
}

function getDispatcher() {
  if (dispatcher === null) {
    const { Dispatcher } = require('../native');
    const { queueTimeout, health, routing: routingSettings } = cluster.settings;
    // Where workers accept by themselves, the header could be stripped only
    // from what the primary happens to accept (held connections): none is,
    // so that the app sees one kind of connection.
    const shared = routing.isShared(schedulingPolicy);
    const threads = routing.dispatcherThreads(routingSettings, schedulingPolicy);
    dispatcher = new Dispatcher({
      ...(threads === undefined ? {} : { dispatcherThreads: threads }),
      ...(queueTimeout === undefined ? {} : { queueTimeoutMs: queueTimeout }),
      ...(health && health.hangTimeout !== undefined && { hangTimeoutMs: health.hangTimeout }),
      ...(shared ? {} : routing.dispatcherOptions(routingSettings)),
      ...(inheritedFds.length > 0 ? { inheritedFds } : {}),
      ...pacingOption(),
    }, onHealthEvent);
    rejections.reportNative();
    busModule.attachPrimary(dispatcher);
    if (routingSettings && routingSettings.proxyProtocol && shared) {
      // Each worker accepts by itself: the primary never sees the header.
      process.emitWarning('routing.proxyProtocol has no effect under SCHED_NONE and SCHED_REUSEPORT, where ' +
                          'workers accept connections themselves', { code: 'RCLUSTER_PROXY_PROTOCOL_SHARED' });
    }
  }
  return dispatcher;
}

cluster.setupPrimary = function setupPrimary(options) {
  // Every option through its one validator, node:cluster's defaults first
  // (the settings table, lib/primary/settings.js).
  options = management.normalize(options, setupPrimary);
  const settings = {
    ...initialSettings(),
    ...cluster.settings,
    ...options,
  };

  // Tell V8 to write profile data for each process to a separate file.
  // Without --logfile=v8-%p.log, everything ends up in a single, unusable file.
  if (settings.execArgv.some((s) => s.startsWith('--prof')) &&
      !settings.execArgv.some((s) => s.startsWith('--logfile='))) {
    settings.execArgv = [...settings.execArgv, '--logfile=v8-%p.log'];
  }

  cluster.settings = settings;
  management.applied(options);
  // bus.redis: messages and counters across machines (lib/bus/redis_bridge.js).
  busModule.configure(settings.bus, {
    localCounters: shared.localCounters,
    counter: (name) => { shared.ensurePrimary(); return shared.sharedApi().counter(name); },
  }, setupPrimary);

  if (initialized === true) return process.nextTick(setupSettingsNT, settings);

  schedulingPolicy = cluster.schedulingPolicy; // Freeze policy.
  initialized = true;
  assert(routing.isPolicy(schedulingPolicy),
         `Bad cluster.schedulingPolicy: ${schedulingPolicy}`);
  debug('primary: scheduling policy %s', routing.describe(schedulingPolicy));

  process.nextTick(setupSettingsNT, settings);

  // When the primary's inspector starts (SIGUSR1), Node emits this on the
  // process; as node:cluster does, start each worker's inspector too.
  process.on('internalMessage', (message) => {
    if (message === null || typeof message !== 'object' || message.cmd !== 'NODE_DEBUG_ENABLED') return;
    for (const worker of Object.values(cluster.workers)) {
      if (worker.state === 'online' || worker.state === 'listening') {
        process._debugProcess(worker.process.pid);
      } else {
        worker.once('online', function() {
          process._debugProcess(this.process.pid);
        });
      }
    }
  });
};

// Deprecated alias must be same as setupPrimary.
cluster.setupMaster = cluster.setupPrimary;

function setupSettingsNT(settings) {
  cluster.emit('setup', settings);
}

// As Node's internal/util/inspector: any of these flags, in the worker's
// execArgv or in NODE_OPTIONS, means the worker gets its own inspector port.
const kInspectArgRegex = /--inspect(?:-brk|-port)?|--debug-port/;
function isUsingInspector(execArgv) {
  if (!process.features.inspector) return false;
  return execArgv.some((arg) => kInspectArgRegex.test(arg)) ||
    kInspectArgRegex.test(process.env.NODE_OPTIONS);
}

// `settings.inspectPort`: a function is asked each time, a number is used as
// is, and otherwise each worker gets the primary's port plus one more than
// the last, wrapping round past 65535 into the unprivileged range, as in Node.
function getInspectPort(inspectPort) {
  if (typeof inspectPort === 'function') {
    inspectPort = inspectPort();
  } else if (inspectPort == null) {
    inspectPort = process.debugPort + debugPortOffset;
    if (inspectPort > kMaxPort) inspectPort = inspectPort - kMaxPort + kMinPort - 1;
    debugPortOffset++;
  }
  validatePort(inspectPort);
  return inspectPort;
}

// The stdio and env a process of the cluster with channel id `id` (a
// worker's id, or the agent's bus peer id) gets for its native channel and
// the shared memory region (lib/primary/worker_spawn.js).
function peerStdio(id) {
  return spawnStdio(cluster.settings, busModule.childEnv(), {
    openChannel: () => getDispatcher().openChannel(id),
    sharedFd: () => shared.primaryFd(),
    removeChannel: () => getDispatcher().removeWorker(id),
    releaseChildEnd: () => getDispatcher().releaseChildEnd(id),
  });
}

function createWorkerProcess(id, env) {
  const settings = cluster.settings;
  const execArgv = [...settings.execArgv];
  // A null port is refused even without the inspector, as in Node.
  if (settings.inspectPort === null) throw badPort('Port', null);
  if (isUsingInspector(settings.execArgv)) {
    execArgv.push(`--inspect-port=${getInspectPort(settings.inspectPort)}`);
  }
  const peer = peerStdio(id);
  // Forked while the agent is not ready: the worker waits at a gate (lib/agent/gate.js).
  // rcluster's slots (channel, shared memory, gate) are the last ones.
  const gateSlot = agentSupervisor.holding ? peer.stdio.push('pipe') - 1 : -1;
  if (gateSlot !== -1) peer.env[Env.AgentGate] = `${gateSlot}`;
  return forkPeer(peer, {
    exec: settings.exec,
    args: settings.args,
    execArgv,
    userEnv: env,
    ownEnv: { ...management.workerEnv(settings), [Env.WorkerId]: `${id}` },
    options: {
      cwd: settings.cwd,
      serialization: settings.serialization,
      silent: settings.silent,
      windowsHide: settings.windowsHide,
      gid: settings.gid,
      uid: settings.uid,
    },
    // Out of fds: the fork fails as a spawn out of fds does, with the
    // worker's 'error', not by throwing in the primary.
    channelRefused(err) {
      if (isSpawnResourceError(err)) return unspawnedProcess(err, settings.exec, [...settings.args]);
      throw err;
    },
    spawned(child) {
      if (gateSlot !== -1 && Array.isArray(child.stdio)) agentSupervisor.gate(child.stdio[gateSlot]);
    },
  });
}

// Out of cluster.workers (disconnected or dead), as Node's removeWorker.
function deleteFromClusterWorkers(worker) {
  assert(worker);
  delete cluster.workers[worker.id];

  if (Object.keys(cluster.workers).length === 0) {
    intercom.emit('disconnect');
  }
}

// As Node's removeHandlesForWorker when a worker is disconnected on purpose: no
// new connections for it, and a listener left with no worker closes now (or,
// with `hold`, stays open for a replacement). It stays connected to the
// dispatcher and answers for what it was already sent (it refuses them once
// its server closes).
function withdrawFromRotations(worker, { hold = false } = {}) {
  if (dispatcher !== null) dispatcher.withdrawWorker(worker.id, hold);
}

// A replacement on probation (lib/operations/rollover.js) that stood by goes
// into the rotations it listened on while out of them.
function admitToRotations(worker) {
  const held = workerRecords.get(worker.id)?.admit() ?? [];
  for (const query of held) {
    try {
      getDispatcher().listen(worker.id, query);
    } catch (err) {
      process.emitWarning(err);
    }
  }
}

// A replacement on probation stands by: out of the rotation it just joined,
// while other workers (those it is to replace) are in it and serve; its
// listen is held to admit it with later. A socket the worker accepts from
// itself (SCHED_NONE, SO_REUSEPORT), or one no other worker is in, cannot
// wait: the worker is admitted to every rotation at once, as any worker.
function standBy(worker, query, result) {
  const record = workerRecords.get(worker.id);
  if (record === undefined || !record.standingBy) return;
  let listener;
  try {
    listener = result.shared ? undefined : getDispatcher().stats().listeners.find((l) => l.id === result.listenerId);
  } catch {
    // The dispatcher failed: the worker is not kept waiting, it serves as any other.
  }
  if (listener !== undefined && listener.workers.some((id) => id !== worker.id)) {
    record.holdListen(query);
    withdrawFromRotations(worker, { hold: true });
  } else {
    // In this rotation already; those it left before are joined again.
    admitToRotations(worker);
  }
}

// Not part of node:cluster: cluster.reload([{ concurrency }]) replaces every
// worker, lossless (lib/operations/rollover.js).
defineHidden(cluster, 'reload', function reload(options) {
  return rollover.reloadAll(options, reload);
});

// Not part of node:cluster: cluster.scale(n) forks or retires workers until n
// are live (lib/operations/scale.js).
defineHidden(cluster, 'scale', function scale(n) {
  return scaler.scale(n, scale);
});

// The dispatcher forgets a dead worker. It also notices the death by itself
// (its channel hangs up), even while this thread is busy; this covers the
// rest, and is idempotent.
function removeFromDispatcher(worker) {
  if (dispatcher !== null) dispatcher.removeWorker(worker.id);
}

cluster.fork = function fork(env) {
  return forkWorker(env);
};

// `trial`: a replacement that must show it is ready first; `standby`: one kept
// out of rotation until admitted (lib/operations/rollover.js).
function forkWorker(env, { trial = false, standby = false } = {}) {
  cluster.setupPrimary();
  agentSupervisor.ensureStarted(peerStdio, (id) => removeFromDispatcher({ id }));
  const id = ++ids;
  const workerProcess = createWorkerProcess(id, env);
  const worker = new Worker({ id, process: workerProcess });
  debug('primary: forked worker %d (pid %d)', id, workerProcess.pid);
  workerRecords.set(id, new WorkerRecord(worker, env, Date.now(), { trial, standby }));
  management.forked(worker);
  if (workerProcess.pid === undefined) onSpawnFailure(worker);

  worker.on('message', function(message, handle) {
    cluster.emit('message', this, message, handle);
  });

  worker.process.once('exit', (exitCode, signalCode) => {
    // Only now is it certain the worker can take no more connections, so only
    // now may what it never acknowledged go to another worker.
    removeFromDispatcher(worker);
    // Remove the worker from the workers list only if it has disconnected,
    // otherwise we might still want to access it.
    if (!worker.isConnected()) deleteFromClusterWorkers(worker);

    worker.exitedAfterDisconnect = !!worker.exitedAfterDisconnect;
    worker.state = 'dead';
    debug('primary: worker %d is dead (code %s, signal %s, exitedAfterDisconnect %s)',
          worker.id, exitCode, signalCode, worker.exitedAfterDisconnect);
    management.exited(worker, exitCode, signalCode);
    worker.emit('exit', exitCode, signalCode);
    cluster.emit('exit', worker, exitCode, signalCode);
  });

  worker.process.once('disconnect', () => {
    // A worker that disconnected on purpose is out of its listeners'
    // rotations now, as in Node. One whose channel closed because it died is
    // not withdrawn: its sockets stay open for a replacement, and the
    // dispatcher gives what it held to the other workers.
    if (worker.exitedAfterDisconnect) withdrawFromRotations(worker);
    // Remove the worker from the workers list only if its process has
    // exited. Otherwise, we might still want to access it.
    if (worker.isDead()) deleteFromClusterWorkers(worker);

    worker.exitedAfterDisconnect = !!worker.exitedAfterDisconnect;
    worker.state = 'disconnected';
    debug('primary: worker %d is disconnected', worker.id);
    worker.emit('disconnect');
    cluster.emit('disconnect', worker);
  });

  worker.process.on('internalMessage', internal(worker, onmessage));
  process.nextTick(emitForkNT, worker);
  cluster.workers[worker.id] = worker;
  return worker;
}

// The system refused the worker's process (or its channel): out of fds or
// processes. Its 'error' is the worker's, as under node:cluster, but the
// primary survives it even when the app has no 'error' listener (a
// replacement forked by the restart policy has none), and the worker does not
// linger in cluster.workers: it is gone, and under the restart policy it is
// forked again, with the backoff of a crash.
function onSpawnFailure(worker) {
  worker.process.removeAllListeners('error');
  worker.process.once('error', (err) => {
    removeFromDispatcher(worker);
    deleteFromClusterWorkers(worker);
    worker.state = 'dead';
    debug('primary: worker %d could not be spawned: %s', worker.id, err && err.code);
    workerRecords.get(worker.id)?.failed('forkFailed');
    management.exited(worker, null, null);
    if (worker.listenerCount('error') > 0) {
      worker.emit('error', err);
    } else {
      process.emitWarning(`could not fork worker ${worker.id}: ${err && err.message}`, { code: 'RCLUSTER_FORK_FAILED' });
    }
  });
}

function emitForkNT(worker) {
  cluster.emit('fork', worker);
}

cluster.disconnect = function disconnect(cb) {
  const workers = Object.keys(cluster.workers);

  if (workers.length === 0) {
    process.nextTick(() => intercom.emit('disconnect'));
  } else {
    for (const worker of Object.values(cluster.workers)) {
      if (worker.isConnected()) worker.disconnect();
    }
  }

  if (typeof cb === 'function') intercom.once('disconnect', cb);
};

const methodMessageMapping = new Map([
  [Act.ExitedAfterDisconnect, exitedAfterDisconnect],
  [Act.Listening, listening],
  [Act.Online, online],
  [Act.QueryServer, queryServer],
  [Act.Ready, (worker) => management.ready(worker)],
  [Act.RequestsServed, (worker, message) => management.requestsServed(worker, message)],
  [Act.EventLoopDelay, (worker, message) => onHealthEvent({
    kind: 'eventLoopDelay', workerId: worker.id,
    reason: `event-loop delay ${message.delay} ms (p99 over 1 s; limit ${message.limit} ms)`,
  })],
  [Act.UncaughtException, uncaughtException],
]);

// A worker's message reaches its handler only once lib/primary/worker_messages.js
// has checked every field the handler reads. A listen request with a bad
// field is answered (EINVAL), so an honest worker's listen does not hang;
// anything else malformed is ignored.
function onmessage(message, handle) {
  const checked = checkWorkerMessage(message);
  if (checked === null) return;
  if (checked.refuse !== undefined) {
    debug('primary: worker %d: malformed %s message (%s)', this.id, checked.act, checked.refuse);
    if (checked.act === Act.QueryServer && Number.isSafeInteger(message.seq)) {
      send(this, { errno: UV_EINVAL, ack: message.seq, shared: schedulingPolicy !== SCHED_RR });
    }
    return;
  }
  methodMessageMapping.get(checked.act)(this, message);
}

// A worker that had an uncaught exception is closing its servers and will
// exit (exitOnUncaughtException). If its replacement is on its way, it leaves
// every rotation now, and a socket it was the last worker of stays open and
// holds connections for the replacement instead of refusing them meanwhile.
function uncaughtException(worker, message) {
  if (management.uncaughtException(worker, message)) withdrawFromRotations(worker, { hold: true });
  // The worker closes its servers on this answer. The dispatcher runs the
  // withdrawal, queued above, before any LEAVE the worker sends after it.
  send(worker, { ack: message.seq });
}

function online(worker) {
  worker.state = 'online';
  debug('primary: worker %d is online', worker.id);
  worker.emit('online');
  cluster.emit('online', worker);
}

function exitedAfterDisconnect(worker, message) {
  worker.exitedAfterDisconnect = true;
  management.disconnecting(worker);
  send(worker, { ack: message.seq });
}

function queryServer(worker, message) {
  // Stop processing if worker already disconnecting.
  if (worker.exitedAfterDisconnect) return;

  const key = `${message.address}:${message.port}:${message.addressType}:` +
              `${message.fd}:${message.index}`;

  // Node's own query fields, as the worker sent them: what they mean
  // (TCP, pipe, UDP, a socket of ours by fd) is decided in one place, the
  // native ListenSpec::from_node.
  const query = {
    key,
    address: message.address,
    port: message.port,
    addressType: message.addressType,
    fd: message.fd,
    flags: message.flags,
    backlog: message.backlog,
    shared: routing.isShared(schedulingPolicy),
    policy: routing.nativeName(schedulingPolicy),
    deferAccept: message.clientSpeaksFirst === true && routing.defersAccept(cluster.settings.routing),
  };
  let result;
  try {
    result = getDispatcher().listen(worker.id, query);
  } catch (err) {
    // Not a bind failure (those come back as `errno`, for the worker to
    // report as node:cluster does) but the dispatcher itself failing: it
    // stopped, the worker's channel is gone, or the query is one no Node
    // version sends. The primary keeps running and says so with the error
    // itself; the worker's listen fails with ECANCELED (the primary gave up
    // on it), not an errno that would blame its address.
    process.emitWarning(err);
    result = { errno: UV_ECANCELED, shared: routing.isShared(schedulingPolicy) };
  }
  if (result.errno === 0) standBy(worker, query, result);
  const shared = result.shared;
  if (result.errno === 0 && (result.created || !serverData.has(key))) {
    serverData.set(key, message.data);
  }
  debugListen(worker, key, shared, result);

  send(worker, {
    errno: result.errno,
    key,
    ack: message.seq,
    data: serverData.get(key),
    listenerId: result.listenerId,
    shared,
    sockname: result.port === undefined || result.port === null ? null :
      { address: result.address, family: result.family, port: result.port },
  });
}

function listening(worker, message) {
  const info = {
    addressType: message.addressType,
    address: message.address,
    port: message.port,
    fd: message.fd,
  };

  worker.state = 'listening';
  debug('primary: worker %d is listening on %j', worker.id, info);
  worker.emit('listening', info);
  cluster.emit('listening', worker, info);
}

function send(worker, message, handle, cb) {
  return sendHelper(worker.process, message, handle, cb);
}

// NODE_DEBUG=rcluster: which listener a listen request got, and how.
function debugListen(worker, key, shared, result) {
  if (!debug.enabled) return;
  if (result.errno !== 0) {
    debug('primary: worker %d: listen %s refused, errno %d', worker.id, key, result.errno);
    return;
  }
  debug('primary: worker %d: listen %s -> %s listener %d%s, %s', worker.id, key,
        result.created ? 'new' : 'existing', result.listenerId,
        result.port == null ? '' : ` on ${result.family === 'IPv6' ? `[${result.address}]` : result.address}:${result.port}`,
        shared ? 'its socket is passed to the worker (SCHED_NONE)' : 'the dispatcher passes it connections (round-robin)');
}

// Extend generic Worker with methods specific to the primary process.
Worker.prototype.disconnect = function() {
  this.exitedAfterDisconnect = true;
  management.disconnecting(this);
  send(this, { act: Act.Disconnect });
  withdrawFromRotations(this);
  deleteFromClusterWorkers(this);
  return this;
};

Worker.prototype.destroy = function(signo) {
  const proc = this.process;
  const signal = signo || 'SIGTERM';
  management.killed(this);

  // A process the system refused has no pid, and its kill() would signal
  // pid 0: the primary's own process group.
  if (proc.pid !== undefined) proc.kill(signal);
};

// Not part of node:cluster: counters and a key/value table every process of
// the cluster shares (lib/bus/shared.js).
Object.defineProperty(cluster, 'shared', {
  configurable: true,
  enumerable: false,
  get() {
    shared.ensurePrimary();
    return shared.sharedApi();
  },
});

// Not part of node:cluster: messages to and between every process of the
// cluster, relayed by the dispatcher thread (lib/bus/bus.js).
defineHidden(cluster, 'bus', busModule.bus);

// Not part of node:cluster (hidden): only the agent (lib/agent/cluster.js) has it true.
defineHidden(cluster, 'isAgent', false);

// Not part of node:cluster: the agent's Worker-like handle, null without one.
Object.defineProperty(cluster, 'agent', {
  configurable: true,
  enumerable: false,
  get: () => agentSupervisor.handle,
});

// Not part of node:cluster: what the native dispatcher sees (listeners,
// connections accepted and held per worker), and the untrusted input this
// process refused, per surface (lib/rejections.js).
defineHidden(cluster, 'stats', function stats() {
  const seen = dispatcher === null ? { listeners: [], workers: [] } : dispatcher.stats();
  return { ...seen, rejected: rejections.counts() };
});
