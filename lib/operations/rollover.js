'use strict';
// Replacing a running worker without losing a request (docs/DESIGN.md §10):
// cluster.reload() does it for every worker, a recycle (lib/operations/recycle.js) for
// one. The order is what makes it lossless, and what PM2's reload gets wrong
// (it signals a worker that is still in rotation):
//
//   1. fork the replacement with the old worker's env and slot (fate `trial`);
//   2. wait until it is ready: listening on every address the old worker
//      listened on, or, with setupPrimary({ waitReady: true }), until it
//      said so (cluster.worker.ready() or process.send('ready'));
//   3. only then withdraw the old worker from every rotation in the native
//      dispatcher (fate `retiring`), so it is sent nothing more before any
//      signal or request to leave reaches it;
//   4. disconnect it: it closes its servers and its requests in progress
//      finish; after drainTimeout it is SIGKILLed.
//
// A replacement that is not ready within readyTimeout, or dies first, is
// killed and the rollover aborts: the old worker was never touched, and
// serves on. An old worker that dies while its replacement is in trial is
// not replaced by the restart policy: the replacement takes its place once
// ready (or, if it fails, the restart policy replaces the old one then).
//
// A reload with a probation (setupPrimary({ reload: { probation } }), the
// default) proves the whole new generation before step 3: the replacements
// are forked `concurrency` at a time, each must be ready as above, and then
// all of them must stay up for `probation` ms, counted from when the last
// became ready. Meanwhile the old workers are untouched and serve alone: each
// replacement stands by, out of the rotations it listens on, so that a new
// worker that dies takes no request with it (lib/primary/cluster.js
// standBy(); a SCHED_NONE or SO_REUSEPORT socket, which the worker accepts
// from itself, or an address no old worker listens on, cannot wait, and is
// served by the new worker at once). The replacements stay `trial` until
// then, so no restart policy, scale or recycle takes them for running
// workers. If any replacement dies,
// is not ready in time, or the cluster starts shutting down, the reload is
// rolled back: every replacement is withdrawn from every rotation and
// retired (step 3 and 4 applied to it), and the old workers, which never
// stopped serving, are left exactly as they were. Only once the generation
// survived are the new workers admitted to the rotations and the old workers
// retired, all together (they drain in parallel).
// A recycle replaces one worker with no probation.
const { debuglog } = require('util');
const { Fate } = require('../primary/worker_record');
const { defineHidden, sendHelper } = require('../internal_messages');
const { Act } = require('../protocol');
const { normalizeReloadOptions } = require('./settings');
const { READY_TIMEOUT_DEFAULT, DRAIN_TIMEOUT_DEFAULT, RELOAD_PROBATION_DEFAULT } = require('../primary/settings');

const debug = debuglog('rcluster');

class Rollover {
  /**
   * `records`: the primary's WorkerRecords by id. `primary`: what of
   * lib/primary/cluster.js a rollover needs, its `forkWorker(env, { trial,
   * standby })`, `withdrawFromRotations(worker, { hold })` and
   * `admitToRotations(worker)` (a replacement that stood by). `restartPolicy`
   * (lib/operations/restart_policy.js) replaces an old worker that died
   * during a failed trial; `shutdown` (lib/operations/shutdown.js) says when
   * the cluster is stopping.
   */
  constructor(cluster, records, { primary, restartPolicy, shutdown }) {
    this.cluster = cluster;
    this.records = records;
    this.primary = primary;
    this.restartPolicy = restartPolicy;
    this.shutdown = shutdown;
    this.reloading = null; // the promise of the reload in progress
    this.readyChecks = new Map(); // worker id -> re-check its readiness
    this.idleWaiters = []; // resolved once no replacement is in progress
    this.inProgress = 0; // replace() calls not finished
  }

  /** Every fork: readiness is judged on what the worker says from its start. */
  track(record) {
    const { worker } = record;
    worker.on('listening', (info) => {
      record.listened(info);
      this.#check(record);
    });
    worker.on('online', () => this.#check(record));
    // PM2's convention, so PM2 apps need no change.
    worker.on('message', (message) => {
      if (message === 'ready') this.signalled(record);
    });
  }

  /** The worker called cluster.worker.ready() (or sent 'ready'). */
  signalled(record) {
    record.signalReady();
    this.#check(record);
  }

  /**
   * Calls `check()` whenever what `record`'s readiness is judged on changes,
   * until `stop()` is called (lib/operations/scale.js waits so for the
   * workers it forks).
   */
  watchReadiness(record, check) {
    this.readyChecks.set(record.id, check);
    return () => {
      if (this.readyChecks.get(record.id) === check) this.readyChecks.delete(record.id);
    };
  }

  #check(record) {
    const check = this.readyChecks.get(record.id);
    if (check !== undefined) check();
  }

  /**
   * cluster.reload([{ concurrency, probation }]): every running worker,
   * `concurrency` at a time; with a probation, as one generation.
   */
  reloadAll(options, caller) {
    const fallback = this.cluster.settings.reload?.probation ?? RELOAD_PROBATION_DEFAULT;
    const { concurrency, probation } = normalizeReloadOptions(options, fallback, caller);
    if (this.reloading !== null) return this.reloading;
    const olds = [...this.records.values()].filter((r) => r.replaceableByRollover);
    debug('primary: reload of workers %j, %d at a time, probation %d ms', olds.map((r) => r.id), concurrency, probation);
    const run = probation === 0 ? this.#replaceEach(olds, concurrency) : this.#replaceGeneration(olds, concurrency, probation);
    this.reloading = run.then((result) => {
      this.reloading = null;
      this.cluster.emit('reload', result);
      return result;
    });
    return this.reloading;
  }

  // Without a probation: each old worker is retired as soon as its
  // replacement is ready; a failure stops the reload there, and the workers
  // replaced so far stay replaced.
  async #replaceEach(olds, concurrency) {
    const replaced = [];
    let failure = null;
    const next = async () => {
      while (failure === null && olds.length > 0) {
        const old = olds.shift();
        // It may have exited or been taken over since the reload began.
        if (!old.replaceableByRollover) continue;
        const outcome = await this.replace(old);
        if (outcome.ok) replaced.push({ old: outcome.old, replacement: outcome.replacement, killed: outcome.killed });
        else if (failure === null) failure = outcome;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, next));
    if (failure === null) return { ok: true, replaced };
    const { ok, ...why } = failure;
    return { ok: false, replaced, rolledBack: false, ...why };
  }

  // With a probation: the new generation comes up beside the old one, and
  // the old one is retired only once the new one survived `probation` ms
  // (the header above). Resolves with the reload's result once the old
  // generation has exited (success) or the new one has (rollback).
  async #replaceGeneration(olds, concurrency, probation) {
    const trials = []; // { old, record, readyAt, unwatch }, in fork order
    const rolling = []; // the old workers marked rolling here
    const retiring = []; // the rolled-back replacements' retire() promises
    let failure = null;
    let wake = () => {};

    // The first failure wins; every replacement forked is withdrawn and
    // retired at once, whatever stage it is at.
    const fail = (outcome) => {
      if (failure !== null) return;
      failure = this.shutdown.started ? { ...outcome, reason: 'shutdown' } : outcome;
      debug('primary: reload failed (%s): rolling back %j', failure.reason, trials.map((t) => t.record.id));
      for (const trial of trials) {
        trial.unwatch?.();
        const retired = this.retire(trial.record);
        if (retired !== null) retiring.push(retired);
      }
      wake();
    };

    // A replacement ready: its death from now until the generation passed aborts the reload.
    const watch = (trial) => {
      const { worker } = trial.record;
      const onExit = (code, signal) => fail({
        reason: 'probation', old: trial.old.id, replacement: worker.id, code, signal,
        uptime: Date.now() - trial.readyAt, probation,
      });
      worker.once('exit', onExit);
      trial.unwatch = () => worker.removeListener('exit', onExit);
    };

    const next = async () => {
      while (failure === null && olds.length > 0) {
        const old = olds.shift();
        if (!old.replaceableByRollover) continue;
        if (this.shutdown.started) {
          fail({ reason: 'shutdown', old: old.id });
          return;
        }
        old.markRolling();
        rolling.push(old);
        let record;
        try {
          record = this.#fork(old, { standby: true });
        } catch (err) {
          fail({ reason: 'forkFailed', old: old.id, error: err });
          return;
        }
        const trial = { old, record, readyAt: undefined, unwatch: undefined };
        trials.push(trial);
        const outcome = await this.#waitReady(record, old);
        if (failure !== null) return; // rolled back meanwhile, this one too
        if (!outcome.ok) {
          fail({ ...outcome, old: old.id, replacement: record.id });
          return;
        }
        trial.readyAt = Date.now();
        debug('primary: worker %d is ready to replace worker %d, on probation', record.id, old.id);
        watch(trial);
      }
    };

    this.inProgress++;
    try {
      await Promise.all(Array.from({ length: concurrency }, next));
      if (failure === null && trials.length > 0) {
        debug('primary: the new generation %j is on probation for %d ms', trials.map((t) => t.record.id), probation);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, probation);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      // The app may have decided a replacement's end meanwhile (killed,
      // disconnected) without it having exited yet: it did not survive.
      const gone = trials.find((t) => t.record.fate !== Fate.Trial);
      if (failure === null && gone !== undefined) {
        fail({ reason: 'probation', old: gone.old.id, replacement: gone.record.id, code: null, signal: null,
          uptime: Date.now() - gone.readyAt, probation });
      }
      if (failure === null && this.shutdown.started) fail({ reason: 'shutdown' });
      if (failure !== null) return await this.#rolledBack(failure, rolling, retiring);

      // In rotation, then the old workers out of it: never a moment without.
      for (const trial of trials) {
        trial.unwatch();
        this.primary.admitToRotations(trial.record.worker);
        trial.record.promote();
      }
      debug('primary: the new generation survived its probation: retiring %j', trials.map((t) => t.old.id));
      const replaced = await Promise.all(trials.map(async ({ old, record }) => {
        const retired = this.retire(old);
        const killed = retired === null ? false : await retired;
        return { old: old.id, replacement: record.id, killed };
      }));
      return { ok: true, replaced };
    } finally {
      for (const old of rolling) old.rolled();
      this.#finished();
    }
  }

  // The replacements are retiring: resolves once they have exited, with the
  // reload's result. An old worker that died meanwhile (left to its
  // replacement, see RestartPolicy#onExit) is the restart policy's again.
  async #rolledBack(failure, rolling, retiring) {
    await Promise.all(retiring);
    if (!this.shutdown.started) {
      for (const old of rolling) if (old.exited) this.restartPolicy.replaceLost(old);
    }
    const { ok, reason, ...why } = failure;
    return { ok: false, reason, rolledBack: true, replaced: [], ...why };
  }

  // Forks `old`'s replacement, in trial, in its line; `standby`: out of
  // rotation until admitted.
  #fork(old, { standby = false } = {}) {
    const worker = this.primary.forkWorker(old.env, { trial: true, standby });
    const record = this.records.get(worker.id);
    record.inherit(old);
    defineHidden(worker, 'replaces', old.id);
    return record;
  }

  #finished() {
    if (--this.inProgress === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves once no replacement is in progress (a reload, a recycle). */
  idle() {
    if (this.inProgress === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Replaces one worker (the steps above). Resolves with `{ ok: true, old,
   * replacement, killed }` once the old worker has exited, or `{ ok: false,
   * old, reason, ... }` once the rollover was aborted. `onRetired()`, if
   * given, is called as soon as the replacement is in and the old worker
   * retired (a recycle goes on while it drains).
   */
  async replace(old, { onRetired } = {}) {
    if (this.shutdown.started) return { ok: false, old: old.id, reason: 'shutdown' };
    old.markRolling();
    this.inProgress++;
    try {
      let record;
      try {
        record = this.#fork(old);
      } catch (err) {
        return { ok: false, old: old.id, reason: 'forkFailed', error: err };
      }
      const { worker } = record;
      const outcome = await this.#waitReady(record, old);
      if (!outcome.ok) {
        // The old worker died meanwhile, left to this replacement (see
        // RestartPolicy#onExit), which failed: its slot would stay empty.
        if (old.exited && !this.shutdown.started) this.restartPolicy.replaceLost(old);
        return { ...outcome, old: old.id, replacement: worker.id };
      }
      record.promote();
      debug('primary: worker %d is ready to replace worker %d', worker.id, old.id);
      const retired = this.retire(old);
      if (onRetired !== undefined) onRetired();
      const killed = retired === null ? false : await retired;
      return { ok: true, old: old.id, replacement: worker.id, killed };
    } finally {
      old.rolled();
      this.#finished();
    }
  }

  #waitReady(record, old) {
    const { worker } = record;
    const timeout = this.cluster.settings.readyTimeout ?? READY_TIMEOUT_DEFAULT;
    return new Promise((resolve) => {
      let timer = null;
      const done = (outcome) => {
        clearTimeout(timer);
        this.readyChecks.delete(record.id);
        worker.removeListener('exit', onExit);
        resolve(outcome);
      };
      let timedOut = false;
      // Once it is gone, so that the result describes a cluster back as it was.
      const onExit = (code, signal) => done(timedOut ? { ok: false, reason: 'readyTimeout', timeout } :
        { ok: false, reason: 'exited', code, signal });
      worker.once('exit', onExit);
      timer = setTimeout(() => {
        debug('primary: worker %d was not ready within %d ms: killed', worker.id, timeout);
        timedOut = true;
        this.readyChecks.delete(record.id);
        record.kill();
        worker.process.kill('SIGKILL');
      }, timeout);
      this.readyChecks.set(record.id, () => {
        if (record.fate === Fate.Trial && record.readyLike(old, this.cluster.settings.waitReady)) done({ ok: true });
      });
      this.#check(record);
    });
  }

  /**
   * Retires a running worker (Fate.Retiring): out of every rotation first,
   * then asked to leave (it closes its servers, its requests in progress
   * finish), SIGKILLed if still there after drainTimeout. Null if its end
   * was decided already; else a promise, resolved once it has exited, of
   * whether it had to be killed. A reload and a recycle retire the old
   * worker so, cluster.scale() its surplus.
   */
  retire(record) {
    if (!record.retire()) return null;
    const { worker } = record;
    const timeout = this.cluster.settings.drainTimeout ?? DRAIN_TIMEOUT_DEFAULT;
    this.primary.withdrawFromRotations(worker, { hold: true });
    return new Promise((resolve) => {
      if (record.exited || worker.isDead()) {
        resolve(false);
        return;
      }
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        debug('primary: worker %d still draining after %d ms: killed', worker.id, timeout);
        worker.process.kill('SIGKILL');
      }, timeout);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve(killed);
      });
      if (worker.isConnected()) {
        sendHelper(worker.process, { act: Act.Retiring, drainTimeout: timeout });
        worker.disconnect();
      }
    });
  }
}

module.exports = { Rollover };
