'use strict';
// The primary's one record of a worker process, from fork to exit
// (docs/DESIGN.md §6.1). cluster.workers holds Node-shaped Worker objects, and
// a worker leaves it when it disconnects; the primary keeps a WorkerRecord in
// a Map by id for as long as the process lives, and removes it at the exit.
//
// The record's `fate` says how the worker's life is going to end, as far as
// the primary has decided it. Each fate is reached by one method, and the
// rules of which fate may follow which live here and nowhere else:
//
//   running ──┬──> failing ──┬──> replaced ────┐
//             │              ├──> crashLooped ─┤
//             ├──> replaced ─┤                 │
//             ├──> crashLooped                 ├──> exited
//             ├──> disconnecting ──────────────┤
//             ├──> killed ─────────────────────┤
//             ├──> failed ──> (replaced, crashLooped or exited)
//             └──> retiring ──> exited
//   trial ──> (running, disconnecting, killed or exited)
//   (failing may also move to disconnecting, killed or failed)
//
// `trial` is a replacement forked by a rolling reload or a recycle
// (lib/operations/rollover.js) that has not shown it is ready: it becomes `running` once
// ready; if it dies first, the rollover is aborted and the worker it was to
// replace stays. `retiring` is that old worker once its replacement is ready:
// out of rotation, draining, never replaced.
//
// A fate only moves forward: once the end of a worker is decided (it leaves
// on purpose, it was killed, the restart policy took charge of it), a later
// decision does not undo it. A move that comes too late is a no-op that says
// so (returns false), since it follows calls the app may make in any order
// (kill() after disconnect(), disconnect() of a failing worker). Moves that
// only rcluster's own code makes out of order throw: that is a bug.
//
// A new lifecycle step (a rolling reload, a recycle after N requests, a failed
// health check) is one more fate, or one more transition, here.
const assert = require('assert');

const Fate = Object.freeze({
  /** Nothing decided: an exit now is a crash. */
  Running: 'running',
  /**
   * It reported an uncaught exception (exitOnUncaughtException) and is
   * draining; no replacement was started for it (the restart policy is off).
   * An exit is still a crash, reported as an uncaught exception.
   */
  Failing: 'failing',
  /** It leaves on purpose (exitedAfterDisconnect): never replaced. */
  Disconnecting: 'disconnecting',
  /** The primary's worker.kill()/destroy(): deliberate, never replaced. */
  Killed: 'killed',
  /**
   * Killed by the primary because it failed (its channel broke): not the
   * app's decision, so the restart policy replaces it, as after a crash.
   */
  Failed: 'failed',
  /** The restart policy started its replacement; its exit is not replaced again. */
  Replaced: 'replaced',
  /** The restart policy refused to replace it: the cluster is in a crash loop. */
  CrashLooped: 'crashLooped',
  /**
   * A replacement started by a reload or a recycle, not ready yet: its death
   * aborts that rollover instead of being replaced by the restart policy.
   */
  Trial: 'trial',
  /** Its replacement is ready: out of rotation, draining its requests, never replaced. */
  Retiring: 'retiring',
  /** Its process has exited (terminal). */
  Exited: 'exited',
});

// Which fates each fate may move to.
const NEXT = Object.freeze({
  [Fate.Running]: [Fate.Failing, Fate.Disconnecting, Fate.Killed, Fate.Failed, Fate.Replaced, Fate.CrashLooped, Fate.Retiring, Fate.Exited],
  [Fate.Trial]: [Fate.Running, Fate.Disconnecting, Fate.Killed, Fate.Exited],
  [Fate.Retiring]: [Fate.Exited],
  [Fate.Failing]: [Fate.Disconnecting, Fate.Killed, Fate.Failed, Fate.Replaced, Fate.CrashLooped, Fate.Exited],
  [Fate.Failed]: [Fate.Replaced, Fate.CrashLooped, Fate.Exited],
  [Fate.Disconnecting]: [Fate.Exited],
  [Fate.Killed]: [Fate.Exited],
  [Fate.Replaced]: [Fate.Exited],
  [Fate.CrashLooped]: [Fate.Exited],
  [Fate.Exited]: [],
});

function canMove(from, to) {
  return NEXT[from].includes(to);
}

class WorkerRecord {
  /**
   * `worker`: the Node-shaped Worker in cluster.workers. `env`: what fork()
   * was given, which a replacement gets too. `now`: the fork's time.
   */
  constructor(worker, env, now = Date.now(), { trial = false } = {}) {
    this.worker = worker;
    this.id = worker.id;
    this.env = env;
    this.forkedAt = now;
    this.fate = trial ? Fate.Trial : Fate.Running;
    // What readiness is judged on (lib/operations/rollover.js): the listen addresses
    // it reported ('listening'), and whether it said it is ready (waitReady).
    this.listens = new Set();
    this.readySignalled = false;
    // The line of workers that replace one another (lib/operations/restart_policy.js):
    // its consecutive crashes drive the backoff. A replacement takes its
    // predecessor's.
    this.slot = { consecutive: 0 };
    // What the worker reported in Act.UncaughtException, whatever its fate:
    // a disconnecting worker can throw too.
    this.uncaughtError = undefined;
    // Why the primary killed it as failed (`Fate.Failed`), e.g. 'channelFailed'.
    this.failure = undefined;
    this.exitCode = undefined;
    this.signalCode = undefined;
  }

  /** An exit now would be unexpected: the restart policy may replace it. */
  get replaceable() {
    return this.fate === Fate.Running || this.fate === Fate.Failing || this.fate === Fate.Failed;
  }

  get exited() {
    return this.fate === Fate.Exited;
  }

  // For the app's calls, which may come in any order: false when too late.
  #moveIfAllowed(to) {
    if (!canMove(this.fate, to)) return false;
    this.fate = to;
    return true;
  }

  // For rcluster's own decisions, which must come in order.
  #move(to) {
    assert(canMove(this.fate, to), `worker ${this.id}: no move from ${this.fate} to ${to}`);
    this.fate = to;
  }

  /** The worker reported an uncaught exception and is draining. */
  fail(error) {
    this.uncaughtError = error;
    if (this.fate !== Fate.Running) return false;
    return this.#moveIfAllowed(Fate.Failing);
  }

  /** worker.disconnect() in the primary, or Act.ExitedAfterDisconnect from the worker. */
  disconnect() {
    return this.#moveIfAllowed(Fate.Disconnecting);
  }

  /** worker.kill()/destroy() in the primary. */
  kill() {
    return this.#moveIfAllowed(Fate.Killed);
  }

  /**
   * The primary kills it because it failed (`reason`: 'channelFailed').
   * False if its end was decided already (it leaves on purpose, the app
   * killed it, or it was replaced): it is killed all the same, but stays
   * unreplaced.
   */
  failed(reason) {
    if (!this.#moveIfAllowed(Fate.Failed)) return false;
    this.failure = reason;
    return true;
  }

  /** A trial replacement showed it is ready: from now on it is an ordinary worker. */
  promote() {
    this.#move(Fate.Running);
  }

  /**
   * Its replacement is ready; it is withdrawn and drains. False if its end
   * was decided meanwhile (it left, was killed, failed).
   */
  retire() {
    if (this.fate !== Fate.Running) return false;
    return this.#moveIfAllowed(Fate.Retiring);
  }

  /** The restart policy starts a replacement for it. */
  replace() {
    this.#move(Fate.Replaced);
  }

  /** The restart policy would replace it, but the cluster is in a crash loop. */
  crashLoop() {
    this.#move(Fate.CrashLooped);
  }

  /** Its process exited. Returns the fate it had, which tells why it ended. */
  exit(code, signal) {
    const fate = this.fate;
    this.#move(Fate.Exited);
    this.exitCode = code;
    this.signalCode = signal;
    return fate;
  }
}

module.exports = { WorkerRecord, Fate, canMove };
