'use strict';
// How the primary forks the processes of its cluster, a worker
// (lib/primary/cluster.js) or the agent (lib/agent/supervisor.js), without
// harm to itself or to other processes: the process's environment, its stdio
// with its end of a native channel and the shared memory region, the fork
// itself, and what a fork that the system refused (out of fds, out of
// processes) looks like.
const { fork } = require('child_process');
const EventEmitter = require('events');
const { Env } = require('../protocol');
const { codedError } = require('../errors');
const { PRELOAD } = require('../role');

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

// The stdio of a process, with its private channel appended as one more slot.
// Returns the array and the slot index the process finds the channel at.
function stdioWithChannel(stdio, silent) {
  let base;
  if (Array.isArray(stdio)) {
    base = [...stdio];
  } else if (typeof stdio === 'string') {
    base = [stdio, stdio, stdio, 'ipc'];
  } else {
    base = silent ? ['pipe', 'pipe', 'pipe', 'ipc'] : [0, 1, 2, 'ipc'];
  }
  // Without 'ipc', fork() throws ERR_CHILD_PROCESS_IPC_REQUIRED, as under node:cluster.
  base.push(null); // the channel's fd, once it is open
  return { stdio: base, channelSlot: base.length - 1 };
}

/**
 * What every process the primary forks gets besides its own stdio (`stdio`,
 * `silent`: the settings'): its end of a native channel, and the shared
 * memory region (cluster.shared), as the last stdio slots, and their slot
 * numbers in its env (`env`, with `ownEnv`). Nothing is opened here, so that
 * what can throw (the env copy runs the app's getters) runs first and a fork
 * that throws leaves no fds behind: `open()` fills the slots (`openChannel()`
 * and `sharedFd()`), `release(spawned)` after the spawn gives back the
 * primary's copy of the child's end (`releaseChildEnd()`), and the channel
 * itself (`removeChannel()`) if nothing was spawned.
 */
function peerStdio({ stdio: given, silent }, ownEnv, { openChannel, sharedFd, removeChannel, releaseChildEnd }) {
  const { stdio, channelSlot } = stdioWithChannel(given, silent);
  const sharedSlot = stdio.push(null) - 1;
  const env = { [Env.ChannelFd]: `${channelSlot}`, [Env.SharedFd]: `${sharedSlot}`, ...ownEnv };
  let opened = false;
  const open = () => {
    stdio[channelSlot] = openChannel();
    opened = true;
    stdio[sharedSlot] = sharedFd();
  };
  const release = (spawned) => {
    // Nothing to give back if the channel never opened (out of fds, maybe
    // before the dispatcher itself could start).
    if (!opened) return;
    if (!spawned) removeChannel();
    // The child has its own copy now (or there is no child). Keeping ours
    // would hide its death from the dispatcher.
    releaseChildEnd();
  };
  return { stdio, env, channelSlot, open, release };
}

/**
 * Forks `exec` with `args` as a process of the cluster: `peer` (from
 * peerStdio()) gives its stdio and rcluster's variables; `userEnv` is what
 * the app gave (fork(env), the agent's env), `ownEnv` rcluster's other
 * variables for it; `execArgv` the settings' (the preload comes first);
 * `options` the rest of child_process.fork()'s (cwd, silent, ...).
 *
 * The env is built first (it may throw: nothing is open yet), then the
 * channel is opened: if that fails, `channelRefused(err)` is what the fork
 * returns (by default the error is thrown). `spawned(child)` sees the child
 * before rcluster's own stdio slots are hidden from it: worker.process shows
 * what the app asked for, as under node:cluster: spawnargs without the
 * preload (the process's execArgv drops it too), and stdio without the
 * channel's slot (always null: an fd, not a pipe) and those after it.
 */
function forkPeer(peer, { exec, args, execArgv, userEnv, ownEnv, options, channelRefused, spawned: onSpawned }) {
  const { stdio, channelSlot, open, release } = peer;
  const env = workerEnvironment(process.env, userEnv, { ...ownEnv, ...peer.env });
  try {
    open();
  } catch (err) {
    release(false);
    if (channelRefused !== undefined) return channelRefused(err);
    throw err;
  }
  let spawned = false;
  try {
    const child = fork(exec, args, { ...options, env, execArgv: ['--require', PRELOAD, ...execArgv], stdio });
    spawned = true;
    // A spawn the system refused (EMFILE) has no stdio; its 'error' follows.
    const i = Array.isArray(child.spawnargs) ? child.spawnargs.indexOf(PRELOAD) : -1;
    if (i > 0 && child.spawnargs[i - 1] === '--require') child.spawnargs.splice(i - 1, 2);
    if (onSpawned !== undefined) onSpawned(child);
    if (Array.isArray(child.stdio) && child.stdio.length === stdio.length && child.stdio[channelSlot] === null) {
      child.stdio.splice(channelSlot);
    }
    return child;
  } finally {
    release(spawned);
  }
}

module.exports = {
  workerEnvironment, isSpawnResourceError, unspawnedProcess, peerStdio, forkPeer, RESERVED,
};
