'use strict';
// What the primary needs around child_process.fork() to start a worker
// without harm to itself or to other workers: the worker's environment, and
// what a fork that the system refused (out of fds, out of processes) looks like.
const { ChildProcess } = require('child_process');
const { Env } = require('./protocol');

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
 * A ChildProcess that was never spawned, and emits `err` as Node's own does
 * when the system refuses a spawn: for a channel the primary could not open
 * (its socketpair failed with EMFILE), so that such a fork looks like one
 * whose spawn failed, as under node:cluster.
 */
function unspawnedProcess(err) {
  const child = new ChildProcess();
  process.nextTick(() => child.emit('error', err));
  return child;
}

module.exports = { workerEnvironment, isSpawnResourceError, unspawnedProcess, RESERVED };
