'use strict';
// The opt-in restart policy (setupPrimary({ restart })): a worker that exits
// unexpectedly is replaced by a fork with the same env, after an exponential
// backoff, unless the cluster is in a crash loop.
//
// What counts as unexpected: any exit without exitedAfterDisconnect (a crash,
// a signal from outside, process.exit() without disconnect), except after the
// primary's own worker.kill()/destroy(). Node 20's kill() only signals the
// worker and leaves exitedAfterDisconnect false, but a kill the application
// asked for is deliberate (PM2 sees it the same way), so it is not undone.
//
// Whether a worker is replaced is its WorkerRecord's fate (lib/primary/worker_record.js)
// and this policy's state, nothing else.
//
// Each original worker starts a "slot" that its replacements inherit
// (WorkerRecord#inherit), with the count of consecutive crashes that drives
// the backoff (lib/operations/backoff.js, the agent's too). Every crash grows
// its slot's backoff, up to maxDelay.
//
// Giving up (a crash loop) is for an app that cannot run at all, not for one
// that crashes now and then (a route that throws): PM2's min_uptime. A crash
// counts toward the crash-loop budget only when the worker died young (up
// less than minUptime, or its replacement could not even be forked), and the
// policy gives up only when maxRestarts young crashes happened within
// `window` while no worker was healthy (alive, ready and up minUptime) at any
// time in that window. A worker that stays up proves the code can run: the
// policy keeps backing off instead. The budget is cluster-wide: a bad deploy
// crashes every slot alike, and should stop the whole cluster's restarts, not
// each slot's after its own budget.

const { defineHidden } = require('../internal_messages');
const { nextBackoff } = require('./backoff');

// The policy's own state. `Stopped`: by a crash loop or by shutdown, until
// setupPrimary() names `restart` again.
const PolicyState = Object.freeze({ Off: 'off', Active: 'active', Stopped: 'stopped' });

class RestartPolicy {
  /** `records`: the primary's WorkerRecords by worker id (lib/primary/worker_record.js). */
  constructor(cluster, records) {
    this.cluster = cluster;
    this.records = records;
    this.state = PolicyState.Off;
    this.options = false; // false, or the normalized object (lib/primary/settings.js)
    this.recent = []; // times of the young crashes in the current window
    // The latest time (ms since the epoch) a worker was known to be healthy:
    // alive, ready and up minUptime (#noteHealthy).
    this.lastHealthyAt = -Infinity;
    this.pending = new Map(); // timer -> { old, info }, for restarts not forked yet
  }

  get active() {
    return this.state === PolicyState.Active;
  }

  /** setupPrimary() named `restart`: a fresh start, crash-loop budget included. */
  configure(options) {
    this.options = options;
    this.state = options === false ? PolicyState.Off : PolicyState.Active;
    this.recent = [];
    this.lastHealthyAt = -Infinity;
    if (options === false) this.cancelPending();
  }

  /** No more restarts, including those waiting for their delay. */
  stop() {
    if (this.state === PolicyState.Active) this.state = PolicyState.Stopped;
    this.cancelPending();
  }

  cancelPending() {
    for (const timer of this.pending.keys()) clearTimeout(timer);
    this.pending.clear();
  }

  /** The records whose replacement waits for its delay, one per pending restart. */
  pendingRecords() {
    return [...this.pending.values()].map(({ old }) => old);
  }

  /**
   * The restart pending for `old` is not to happen (cluster.scale() takes
   * its line away). Returns whether one was pending.
   */
  cancel(old) {
    for (const [timer, pending] of this.pending) {
      if (pending.old !== old) continue;
      clearTimeout(timer);
      this.pending.delete(timer);
      return true;
    }
    return false;
  }

  /** Called for every fork, before the 'fork' event. */
  track(record) {
    defineHidden(record.worker, 'restarts', 0);
  }

  /**
   * The worker reported an uncaught exception and is draining: its
   * replacement is forked now rather than when it exits (with the backoff
   * only if the slot is already crashing), and its exit is not replaced again.
   * Returns whether a replacement is on its way.
   */
  onUncaughtException(record, error) {
    record.fail(error);
    // A worker already on its way out by the primary's will stays unreplaced.
    if (!this.active || !record.replaceable) return false;
    return this.replace(record, { code: null, signal: null, reason: 'uncaughtException', error }, { immediate: true });
  }

  /**
   * Called as the worker's process exits, before its fate becomes `exited`.
   * A worker whose replacement is in trial (a reload or a recycle,
   * lib/operations/rollover.js; the record is `rolling`) is not replaced
   * here: that replacement takes its place once ready, and a second one
   * would leave the cluster a worker too many. Should the trial fail, the
   * rollover calls `replaceLost`.
   */
  onExit(record, code, signal) {
    // Healthy until now, whatever its end: a retired or disconnected
    // worker proved the code runs as well as one that crashed late.
    if (this.options !== false) this.#noteHealthy(Date.now());
    if (!this.active || !record.replaceable || record.rolling) return;
    this.replace(record, this.#exitCause(record, code, signal), {});
  }

  /**
   * `record` died while its replacement was in trial, and that replacement
   * failed: the restart policy replaces it now, counting the crash as it
   * would have at its exit. Returns whether a replacement is on its way.
   */
  replaceLost(record) {
    if (!this.active) return false;
    return this.replace(record, this.#exitCause(record, record.exitCode, record.signalCode), { retry: true });
  }

  #exitCause(record, code, signal) {
    const uncaught = record.uncaughtError;
    const reason = record.failure ?? (uncaught !== undefined ? 'uncaughtException' : signal ? 'signal' : 'exit');
    return { code, signal, reason, ...(uncaught !== undefined && { error: uncaught }) };
  }

  // Alive (not exited), ready (it said so with waitReady; else listening, or
  // online in a cluster where no worker listens) and up minUptime at `now`.
  #healthy(record, now) {
    if (record.exited || now - record.forkedAt < this.options.minUptime) return false;
    if (this.cluster.settings?.waitReady === true) return record.readySignalled;
    if (record.listens.size > 0) return true;
    if (record.worker.state !== 'online' && record.worker.state !== 'listening') return false;
    for (const other of this.records.values()) if (other.listens.size > 0) return false;
    return true;
  }

  // Whether any worker is healthy now; if so, now is the latest time one was.
  #noteHealthy(now) {
    for (const record of this.records.values()) {
      if (!this.#healthy(record, now)) continue;
      this.lastHealthyAt = now;
      return true;
    }
    return false;
  }

  // `immediate`: no delay unless the slot is already crashing. `retry`: the
  // previous fork for this worker failed, so its uptime proves nothing (and
  // its fate is decided already): it counts as a young crash. Returns
  // whether a replacement is on its way (false: a crash loop).
  replace(record, cause, { immediate = false, retry = false }) {
    const { maxRestarts, window, minUptime } = this.options;
    const now = Date.now();
    const uptime = now - record.forkedAt;
    const { attempt, delay: backoff } = nextBackoff(record.slot, uptime, this.options, { retry });
    const young = retry || uptime < minUptime;
    // The crashed worker itself counts: up to this crash it may have been healthy.
    this.#noteHealthy(now);

    this.recent = this.recent.filter((t) => now - t < window);
    if (young && this.recent.length >= maxRestarts && now - this.lastHealthyAt >= window) {
      if (!retry) record.crashLoop();
      this.stop();
      this.cluster.emit('crashloop', {
        restarts: this.recent.length, maxRestarts, window, minUptime, worker: record.worker, ...cause,
      });
      return false;
    }
    if (young) this.recent.push(now);
    if (!retry) record.replace();

    const delay = immediate && attempt === 1 ? 0 : backoff;
    const info = { attempt, delay, uptime, young, ...cause };
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      this.forkReplacement(record, info);
    }, delay);
    this.pending.set(timer, { old: record, info });
    return true;
  }

  forkReplacement(old, info) {
    let worker;
    try {
      worker = this.cluster.fork(old.env);
    } catch (err) {
      // Counts as one more crash of the slot: the backoff grows, and the
      // crash-loop budget ends a fork that keeps failing.
      process.emitWarning(`could not fork a replacement for worker ${old.id}: ${err.message}`,
        { code: 'RCLUSTER_RESTART_FAILED' });
      this.replace(old, { code: info.code, signal: info.signal, reason: 'forkFailed', error: err }, { retry: true });
      return;
    }
    this.records.get(worker.id).inherit(old);
    defineHidden(worker, 'restarts', old.worker.restarts + 1);
    defineHidden(worker, 'replaces', old.id);
    // After the new worker's 'fork' event, which is emitted on the next tick.
    process.nextTick(() => this.cluster.emit('restart', worker, old.worker, info));
  }
}

module.exports = { RestartPolicy, PolicyState };
