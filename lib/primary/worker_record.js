'use strict';
// The primary's one record of a worker process, from fork to exit
// (docs/DESIGN.md §6.1). cluster.workers holds Node-shaped Worker objects, and
// a worker leaves it when it disconnects; the primary keeps a WorkerRecord in
// a Map by id for as long as the process lives, and removes it at the exit.
//
// Every field the primary keeps about a worker is declared here, and set only
// through the methods below; lib/operations/ reads and moves a record through
// them and adds nothing to it.
//
// The record's `fate` is its stage: how the worker's life is going to end, as
// far as the primary has decided it. Each fate is reached by one method, and
// the rules of which fate may follow which live here and nowhere else:
//
//   running ──┬──> failing ──┬──> replaced ────┐
//             │              ├──> crashLooped ─┤
//             ├──> replaced ─┤                 │
//             ├──> crashLooped                 ├──> exited
//             ├──> disconnecting ──────────────┤
//             ├──> killed ─────────────────────┤
//             ├──> failed ──> (replaced, crashLooped or exited)
//             └──> retiring ──> exited
//   trial ──> (running, retiring, disconnecting, killed or exited)
//   (failing may also move to disconnecting, killed or failed)
//
// `trial` is a replacement forked by a rolling reload or a recycle
// (lib/operations/rollover.js) that has not shown it is ready, or, in a reload
// with a probation, whose generation has not yet survived it: it becomes
// `running` then; if it dies first, the rollover is aborted and the worker it
// was to replace stays. `retiring` is a worker withdrawn on purpose and
// draining, never replaced: the old worker once its replacement is ready, one
// of the surplus of cluster.scale() (lib/operations/scale.js), or a
// replacement whose reload was rolled back.
//
// Beside its fate, a running worker may be `rolling` (a replacement for it is
// in trial: markRolling()/rolled()) and `recycleDue` (a recycle limit was
// reached: markRecycleDue(); recycleFailed() if its replacement failed).
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
   * A replacement started by a reload or a recycle, not ready yet (or, in a
   * reload with a probation, ready but not yet through it): its death aborts
   * that rollover instead of being replaced by the restart policy.
   */
  Trial: 'trial',
  /**
   * Out of rotation on purpose, draining its requests, never replaced: its
   * replacement is ready (a reload, a recycle), the cluster was scaled down,
   * or it is a replacement whose reload was rolled back.
   */
  Retiring: 'retiring',
  /** Its process has exited (terminal). */
  Exited: 'exited',
});

// Which fates each fate may move to.
const NEXT = Object.freeze({
  [Fate.Running]: [Fate.Failing, Fate.Disconnecting, Fate.Killed, Fate.Failed, Fate.Replaced, Fate.CrashLooped, Fate.Retiring, Fate.Exited],
  [Fate.Trial]: [Fate.Running, Fate.Retiring, Fate.Disconnecting, Fate.Killed, Fate.Exited],
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

// Lines of workers begin in this order (see `line`).
let lines = 0;

// The address a worker reported in 'listening', as one comparable string.
function listenKey(info) {
  return `${info.address}:${info.port}:${info.addressType}:${info.fd}`;
}

class WorkerRecord {
  #rolling = false;

  /**
   * `worker`: the Node-shaped Worker in cluster.workers. `env`: what fork()
   * was given, which a replacement gets too. `now`: the fork's time.
   */
  constructor(worker, env, now = Date.now(), { trial = false, standby = false } = {}) {
    this.worker = worker;
    this.id = worker.id;
    this.env = env;
    this.forkedAt = now;
    this.fate = trial ? Fate.Trial : Fate.Running;
    // What readiness is judged on (readyLike()): the listen addresses it
    // reported ('listening'), and whether it said it is ready (waitReady).
    this.listens = new Set();
    this.readySignalled = false;
    // A reload's replacement kept out of every rotation while its generation
    // is on probation (lib/operations/rollover.js): the listen queries it made,
    // to admit it with once the generation passed. Undefined: in rotation
    // from its listen, as any worker.
    this.heldListens = standby ? [] : undefined;
    // The line of workers that replace one another (lib/operations/restart_policy.js):
    // its consecutive crashes drive the backoff (lib/operations/backoff.js).
    // A replacement takes its predecessor's (inherit()).
    this.slot = { consecutive: 0 };
    // When that line began, as an order: a replacement keeps its
    // predecessor's, so that cluster.scale() retires the newest lines first
    // whatever their workers' own ages (lib/operations/scale.js).
    this.line = ++lines;
    // What the worker reported in Act.UncaughtException, whatever its fate:
    // a disconnecting worker can throw too.
    this.uncaughtError = undefined;
    // Why the primary killed it as failed (`Fate.Failed`), e.g. 'channelFailed'.
    this.failure = undefined;
    // Its own age limit (recycle.maxAge with its jitter), drawn once at fork;
    // undefined: none (lib/operations/recycle.js).
    this.maxAge = undefined;
    // Why it is due for recycling ({ reason, ...detail }), once a limit was
    // reached; undefined until then.
    this.recycleDue = undefined;
    // Its recycle failed (the replacement was not ready): not tried again
    // before this time (ms since the epoch).
    this.recycleRetryAt = undefined;
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

  /**
   * A replacement for it is in trial (a reload or a recycle): its exit now
   * is left to that replacement, not to the restart policy.
   */
  get rolling() {
    return this.#rolling;
  }

  /** Running, nothing decided, and no replacement on its way: a reload or a recycle may take it. */
  get replaceableByRollover() {
    return this.fate === Fate.Running && !this.#rolling;
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

  /** A replacement (`this`) takes the place of `old` in its line: its crash count and its age in the line. */
  inherit(old) {
    this.slot = old.slot;
    this.line = old.line;
  }

  /** The worker reported listening on `info` ({ address, port, addressType, fd }). */
  listened(info) {
    this.listens.add(listenKey(info));
  }

  /** Out of rotation until admitted (a replacement on probation). */
  get standingBy() {
    return this.heldListens !== undefined;
  }

  /** A listen it made while standing by, to be made again when it is admitted. */
  holdListen(query) {
    this.heldListens.push(query);
  }

  /** It goes into rotation: the listens held until now (none if it was not standing by). */
  admit() {
    const held = this.heldListens ?? [];
    this.heldListens = undefined;
    return held;
  }

  /** The worker said it is ready (cluster.worker.ready(), or process.send('ready')). */
  signalReady() {
    this.readySignalled = true;
  }

  /**
   * Whether it is ready to serve in place of, or beside, `reference` (a
   * record, or undefined): with `waitReady`, once it said so; else once it
   * listens on every address `reference` listens on, or, if `reference`
   * listens on none, once it is online.
   */
  readyLike(reference, waitReady) {
    if (waitReady === true) return this.readySignalled;
    if (reference === undefined || reference.listens.size === 0) {
      return this.worker.state === 'online' || this.worker.state === 'listening';
    }
    for (const key of reference.listens) if (!this.listens.has(key)) return false;
    return true;
  }

  /** A reload or a recycle forks its replacement (a trial). */
  markRolling() {
    assert(this.replaceableByRollover, `worker ${this.id}: ${this.fate}${this.#rolling ? ', rolling' : ''} cannot be rolled`);
    this.#rolling = true;
  }

  /** That rollover ended, whatever its outcome. */
  rolled() {
    this.#rolling = false;
  }

  /** Its own age limit, drawn at fork (recycle.maxAge). */
  limitAge(ms) {
    this.maxAge = ms;
  }

  /**
   * A recycle limit was reached: `{ reason, ...detail }`. False if it was
   * due already or is no longer running (it is recycled once).
   */
  markRecycleDue(due) {
    if (this.fate !== Fate.Running || this.recycleDue !== undefined) return false;
    this.recycleDue = due;
    return true;
  }

  /** Its recycle failed: not to be tried again before `retryAt`. */
  recycleFailed(retryAt) {
    this.recycleRetryAt = retryAt;
  }

  /** Due for recycling and free to go now (`now`: ms since the epoch). */
  recyclableAt(now) {
    return this.recycleDue !== undefined && this.replaceableByRollover && !(this.recycleRetryAt > now);
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

  /**
   * A trial replacement showed it is ready (and, in a reload with a
   * probation, its generation survived it): from now on it is an ordinary worker.
   */
  promote() {
    this.#move(Fate.Running);
  }

  /**
   * It is withdrawn and drains: its replacement is ready, the cluster is
   * scaled down, or (a trial) its reload is rolled back. False if its end
   * was decided meanwhile (it left, was killed, failed).
   */
  retire() {
    if (this.fate !== Fate.Running && this.fate !== Fate.Trial) return false;
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
