'use strict';
// cluster.scale(n): the number of live workers, set from the primary
// (docs/DESIGN.md §6.4). Missing workers are forked with cluster.fork() and
// the settings of setupPrimary(); the surplus is retired as a reload retires
// an old worker (lib/operations/rollover.js: out of every rotation, asked to
// leave, SIGKILLed after drainTimeout), the newest first, as Puma culls its
// youngest workers. Nothing here keeps the count afterwards: a worker that
// dies is the restart policy's (lib/operations/restart_policy.js), as ever.
//
// The count is of lines of workers (WorkerRecord#line): a running worker,
// or a dead one whose restart is pending, is one line; a replacement in trial
// belongs to the line of the worker it replaces. "Newest" is the line's age,
// which a replacement keeps: a worker restarted a minute ago in the oldest
// line is not the first to go. A pending restart in a line to retire is
// cancelled rather than forked and retired; a line whose worker is being
// replaced (a reload, a recycle) is retired once that replacement is over.
const { debuglog } = require('util');
const { Fate } = require('../primary/worker_record');
const { nodeError, describeReceived, outOfRange } = require('../errors');
const { READY_TIMEOUT_DEFAULT } = require('../primary/settings');

const debug = debuglog('rcluster');
// A bound on what one call can fork (the rcluster command's own bound).
const MAX_WORKERS = 4096;

function validateCount(n, caller) {
  if (typeof n !== 'number') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      `The "n" argument must be of type number. Received ${describeReceived(n)}`, caller);
  }
  if (!Number.isInteger(n) || n < 0 || n > MAX_WORKERS) {
    throw outOfRange('n', `an integer >= 0 && <= ${MAX_WORKERS}`, n, caller);
  }
  return n;
}

// Newest line first; within a line, the newest worker.
function newestFirst(a, b) {
  return b.line - a.line || b.id - a.id;
}

class Scaler {
  /**
   * `records`: the primary's WorkerRecords by id. `rollover` retires the
   * surplus and tells when a worker forked is ready; `restartPolicy` holds
   * the restarts pending; `shutdown` says when nothing more is started.
   */
  constructor(cluster, records, { rollover, restartPolicy, shutdown }) {
    this.cluster = cluster;
    this.records = records;
    this.rollover = rollover;
    this.restartPolicy = restartPolicy;
    this.shutdown = shutdown;
    this.target = null; // the count of the latest scale() call
    this.waiters = []; // { resolve, reject } of scale() calls not settled
    this.starting = new Map(); // record forked here, not ready yet -> stop waiting for it
    this.leaving = new Set(); // records retired here whose process has not exited
    this.deferred = false; // a line to retire waits for its worker's replacement
  }

  /**
   * cluster.scale(n). Resolves, with the number of live workers, once that
   * number is reached: the workers forked are ready (as a reload's
   * replacement is: listening where the others listen, or waitReady) and the
   * workers retired have exited. It also resolves, short of `n`, once
   * nothing more is on its way (a worker forked died, with no restart
   * pending). Calls made before the last one settled resolve with it.
   */
  scale(n, caller) {
    validateCount(n, caller);
    const promise = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.shutdown.started) {
      this.#settle();
      return promise;
    }
    this.target = n;
    try {
      this.#reconcile();
    } catch (err) {
      // cluster.fork() threw (the app's settings): this call fails, as the fork did.
      const waiter = this.waiters.pop();
      waiter.reject(err);
    }
    this.#settle();
    return promise;
  }

  /** The worker's process exited (before its 'exit' events). */
  exited(record) {
    const stop = this.starting.get(record);
    if (stop === undefined) return;
    stop();
    process.nextTick(() => this.#settle());
  }

  // Running workers, each the head of its line.
  #live() {
    return [...this.records.values()].filter((r) => r.fate === Fate.Running);
  }

  #reconcile() {
    const live = this.#live();
    const pending = this.restartPolicy.pendingRecords();
    const count = live.length + pending.length;
    debug('primary: scale to %d workers from %d (%d restarts pending)', this.target, count, pending.length);
    for (let i = count; i < this.target; i++) this.#forkOne();
    if (count <= this.target) return;
    let surplus = count - this.target;
    const isPending = new Set(pending);
    for (const record of [...live, ...pending].sort(newestFirst)) {
      if (surplus === 0) break;
      if (isPending.has(record)) {
        if (this.restartPolicy.cancel(record)) surplus--;
        continue;
      }
      if (record.rolling) {
        // Its replacement takes its line; that one is retired after.
        this.deferred = true;
        this.rollover.idle().then(() => {
          this.deferred = false;
          if (!this.shutdown.started && this.waiters.length > 0) this.#reconcile();
          this.#settle();
        });
        return;
      }
      this.starting.get(record)?.();
      const retired = this.rollover.retire(record);
      if (retired === null) continue;
      surplus--;
      debug('primary: worker %d retired by scale', record.id);
      this.leaving.add(record);
      retired.then(() => {
        this.leaving.delete(record);
        this.#settle();
      });
    }
  }

  #forkOne() {
    // The cluster.fork property, as the restart policy forks: what the app
    // (or the rcluster command) wrapped it with applies.
    const worker = this.cluster.fork();
    const record = this.records.get(worker.id);
    if (record === undefined || record.fate !== Fate.Running) return;
    const timeout = this.cluster.settings.readyTimeout ?? READY_TIMEOUT_DEFAULT;
    // Not ready in time: it stays, but is waited for no more.
    const timer = setTimeout(() => { stop(); this.#settle(); }, timeout);
    timer.unref();
    const unwatch = this.rollover.watchReadiness(record, () => {
      if (record.fate !== Fate.Running) return;
      if (record.readyLike(this.#reference(), this.cluster.settings.waitReady)) {
        stop();
        this.#settle();
      }
    });
    const stop = () => {
      clearTimeout(timer);
      unwatch();
      this.starting.delete(record);
    };
    this.starting.set(record, stop);
  }

  // What a new worker's readiness is judged against: the oldest running
  // worker that is not itself starting (none: it is ready once online).
  #reference() {
    for (const record of this.records.values()) {
      if (record.fate === Fate.Running && !this.starting.has(record)) return record;
    }
    return undefined;
  }

  #settle() {
    if (this.waiters.length === 0) return;
    const live = this.#live().length;
    const busy = this.starting.size > 0 || this.leaving.size > 0 || this.deferred;
    const onItsWay = this.restartPolicy.pending.size > 0;
    if (!this.shutdown.started && (busy || (live !== this.target && onItsWay))) return;
    const waiters = this.waiters;
    this.waiters = [];
    debug('primary: scale settled at %d workers (target %d)', live, this.target);
    for (const { resolve } of waiters) resolve(live);
  }
}

module.exports = { Scaler, MAX_WORKERS };
