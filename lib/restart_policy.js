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
// Each original worker starts a "slot" that its replacements inherit, with the
// count of consecutive crashes that drives the backoff: minDelay, doubled per
// consecutive crash, capped at maxDelay, back to minDelay once a worker of the
// slot has run resetAfter ms. The crash-loop budget is cluster-wide: a bad
// deploy crashes every slot alike, and should stop the whole cluster's
// restarts, not each slot's after its own budget.

const { defineHidden } = require('./utils');

const kEnv = Symbol('rcluster.forkEnv');
const kSlot = Symbol('rcluster.restartSlot');
const kForkedAt = Symbol('rcluster.forkedAt');
const kKilled = Symbol('rcluster.killedByPrimary');
const kUncaught = Symbol('rcluster.uncaughtException');
const kReplaced = Symbol('rcluster.replaced');

class RestartPolicy {
  constructor(cluster) {
    this.cluster = cluster;
    this.options = false; // false, or the normalized object (lib/settings.js)
    this.stopped = false; // by a crash loop or by shutdown
    this.recent = []; // times of the restarts in the current window
    this.pending = new Map(); // timer -> info, for restarts not forked yet
  }

  get enabled() {
    return this.options !== false && !this.stopped;
  }

  /** setupPrimary() named `restart`: a fresh start, crash-loop budget included. */
  configure(options) {
    this.options = options;
    this.stopped = false;
    this.recent = [];
    if (options === false) this.cancelPending();
  }

  /** No more restarts, including those waiting for their delay. */
  stop() {
    this.stopped = true;
    this.cancelPending();
  }

  cancelPending() {
    for (const timer of this.pending.keys()) clearTimeout(timer);
    this.pending.clear();
  }

  /** Called for every fork, before the 'fork' event. */
  track(worker, env) {
    worker[kEnv] = env;
    worker[kForkedAt] = Date.now();
    if (worker[kSlot] === undefined) worker[kSlot] = { consecutive: 0 };
    defineHidden(worker, 'restarts', 0);
    worker.once('exit', (code, signal) => this.onExit(worker, code, signal));
  }

  markKilled(worker) {
    worker[kKilled] = true;
  }

  /**
   * The worker reported an uncaught exception and is draining: its
   * replacement is forked now rather than when it exits (with the backoff
   * only if the slot is already crashing), and its exit is not replaced again.
   */
  onUncaughtException(worker, error) {
    worker[kUncaught] = error;
    // A worker already on its way out by the primary's will stays unreplaced.
    if (!this.enabled || worker[kReplaced] || worker[kKilled] || worker.exitedAfterDisconnect) return false;
    return this.replace(worker, { code: null, signal: null, reason: 'uncaughtException', error }, { immediate: true });
  }

  onExit(worker, code, signal) {
    if (worker[kReplaced] || !this.enabled) return;
    if (worker.exitedAfterDisconnect || worker[kKilled]) return;
    const uncaught = worker[kUncaught];
    const reason = uncaught !== undefined ? 'uncaughtException' : signal ? 'signal' : 'exit';
    this.replace(worker, { code, signal, reason, ...(uncaught !== undefined && { error: uncaught }) }, {});
  }

  // `immediate`: no delay unless the slot is already crashing. `retry`: the
  // previous fork for this worker failed, so its uptime proves nothing.
  // Returns whether a replacement is on its way (false: a crash loop).
  replace(worker, cause, { immediate = false, retry = false }) {
    worker[kReplaced] = true;
    const { minDelay, maxDelay, resetAfter, maxRestarts, window } = this.options;
    const now = Date.now();
    const uptime = now - worker[kForkedAt];
    const slot = worker[kSlot];
    if (uptime >= resetAfter && !retry) slot.consecutive = 0;
    slot.consecutive += 1;
    const attempt = slot.consecutive;

    this.recent = this.recent.filter((t) => now - t < window);
    if (this.recent.length >= maxRestarts) {
      this.stop();
      this.cluster.emit('crashloop', {
        restarts: this.recent.length, maxRestarts, window, worker, ...cause,
      });
      return false;
    }
    this.recent.push(now);

    const backoff = Math.min(maxDelay, minDelay * 2 ** (attempt - 1));
    const delay = immediate && attempt === 1 ? 0 : backoff;
    const info = { attempt, delay, uptime, ...cause };
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      this.forkReplacement(worker, info);
    }, delay);
    this.pending.set(timer, info);
    return true;
  }

  forkReplacement(oldWorker, info) {
    let worker;
    try {
      worker = this.cluster.fork(oldWorker[kEnv]);
    } catch (err) {
      // Counts as one more crash of the slot: the backoff grows, and the
      // crash-loop budget ends a fork that keeps failing.
      process.emitWarning(`could not fork a replacement for worker ${oldWorker.id}: ${err.message}`,
        { code: 'RCLUSTER_RESTART_FAILED' });
      this.replace(oldWorker, { code: info.code, signal: info.signal, reason: 'forkFailed', error: err }, { retry: true });
      return;
    }
    worker[kSlot] = oldWorker[kSlot];
    defineHidden(worker, 'restarts', oldWorker.restarts + 1);
    defineHidden(worker, 'replaces', oldWorker.id);
    // After the new worker's 'fork' event, which is emitted on the next tick.
    process.nextTick(() => this.cluster.emit('restart', worker, oldWorker, info));
  }
}

module.exports = { RestartPolicy };
