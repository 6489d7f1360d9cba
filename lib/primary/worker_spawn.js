'use strict';
// What the primary needs around child_process.fork() to start a worker
// without harm to itself or to other workers: the worker's environment, and
// what a fork that the system refused (out of fds, out of processes) looks like.
const EventEmitter = require('events');
const { Env } = require('../protocol');
const { codedError } = require('../errors');

const RESERVED = new Set(Object.values(Env));

/**
 * The environment of a new worker: the primary's, then fork(env)'s, then
 * rcluster's own variables (`own`). rcluster's names are reserved: a user's
 * `fork({ RCLUSTER_SHUTDOWN_SIGNALS: 'SIGKILL' })`, or one inherited from the
 * primary's own environment, would otherwise change how the worker behaves
 * (that one made it exit 1 at start). Copying runs the app's getters, so it
 * may throw: the caller runs it before opening anything.
 */
function workerEnvironment(processEnv, userEnv, own) {
  const env = {};
  for (const source of [processEnv, userEnv]) {
    if (source === undefined || source === null) continue;
    for (const [name, value] of Object.entries(source)) {
      if (!RESERVED.has(name)) env[name] = value;
    }
  }
  // rcluster never sets it; Node's bootstrap would act on it.
  delete env.NODE_UNIQUE_ID;
  return Object.assign(env, own);
}

// What child_process reports as a run-time failure of the spawn (it emits
// 'error' on the ChildProcess rather than throwing), and the same errors from
// opening the worker's channel first.
const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM', 'ENOBUFS']);

function isSpawnResourceError(err) {
  return err !== null && typeof err === 'object' && RESOURCE_ERRORS.has(err.code);
}

/**
 * What `worker.process` is for a process that was never spawned because the
 * primary could not open its channel (socketpair EMFILE): shaped as Node's
 * ChildProcess after a refused spawn (no pid, not connected, no stdio), and
 * emitting `err` as that one does, so that such a fork looks like one whose
 * spawn failed, as under node:cluster. Not a real ChildProcess: an unspawned
 * one's kill() would signal pid 0, the primary's whole process group.
 */
class UnspawnedProcess extends EventEmitter {
  constructor(err, file, args) {
    super();
    this.pid = undefined;
    this.connected = false;
    this.killed = false;
    this.exitCode = null;
    this.signalCode = null;
    this.spawnfile = file;
    this.spawnargs = args;
    this.stdin = this.stdout = this.stderr = null;
    this.stdio = [];
    process.nextTick(() => this.emit('error', err));
  }

  kill() { return false; }

  // As a ChildProcess whose channel is closed: nothing is sent.
  send(message, ...rest) {
    const cb = rest.find((arg) => typeof arg === 'function');
    if (cb !== undefined) {
      process.nextTick(cb, codedError(Error, 'ERR_IPC_CHANNEL_CLOSED', 'Channel closed'));
    }
    return false;
  }

  disconnect() {}
  ref() {}
  unref() {}
}

function unspawnedProcess(err, file, args) {
  return new UnspawnedProcess(err, file, args);
}

module.exports = { workerEnvironment, isSpawnResourceError, unspawnedProcess, RESERVED };
