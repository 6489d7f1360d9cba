'use strict';
// rcluster's additions to the primary's process management, all opt-in: the
// restart policy, graceful shutdown with its signal handlers, and graceful
// exit on uncaught exceptions. lib/primary/cluster.js calls these hooks; with none of
// the settings given, node:cluster's behaviour is unchanged.
const { normalizeSettings } = require('../primary/settings');
const { RestartPolicy } = require('./restart_policy');
const { Shutdown } = require('./shutdown');
const { Rollover } = require('./rollover');
const { Recycler } = require('./recycle');
const { intervalFor } = require('../worker/heartbeat');
const { Env } = require('../protocol');
const { defineHidden } = require('../internal_messages');

// `records`: the primary's WorkerRecords by worker id (lib/primary/worker_record.js).
// The primary adds each at fork; the hooks below move its fate, and remove it
// when its process exits. `primary`: `fork(env, { trial })` and
// `withdraw(worker)` (out of every rotation), for reloads and recycling.
function manage(cluster, records, primary) {
  const restartPolicy = new RestartPolicy(cluster, records);
  const shutdown = new Shutdown(cluster, records, restartPolicy);
  const shutdownRun = (options, caller) => shutdown.run(options, caller);
  const stopping = () => shutdown.promise !== null;
  // A worker that died while its replacement was in trial was left to that
  // replacement; if the replacement failed too, the restart policy replaces
  // the dead worker then, as it would have at its exit.
  const replaceLost = (record) => restartPolicy.replaceLost(record);
  const rollover = new Rollover(cluster, records, { ...primary, stopping, replaceLost });
  const recycler = new Recycler(cluster, records, rollover, stopping);
  let reloadHandler = null;

  defineHidden(cluster, 'reload', function reload(options) {
    return rollover.reload(options, cluster.reload);
  });

  defineHidden(cluster, 'shutdown', function shutdown(options) {
    return shutdownRun(options, cluster.shutdown);
  });
  // Not enumerable either, for the same reason as defineHidden's.
  Object.defineProperty(cluster, 'pendingRestarts', {
    enumerable: false,
    get: () => restartPolicy.pending.size,
  });

  return {
    /** setupPrimary()'s options, validated; throws Node-style errors. */
    normalize: normalizeSettings,

    /** After cluster.settings took `options`: act on what they changed. */
    applied(options) {
      if (options === null || typeof options !== 'object') return;
      if ('restart' in options) restartPolicy.configure(cluster.settings.restart);
      if ('shutdownSignals' in options) shutdown.listenFor(cluster.settings.shutdownSignals);
      if ('recycle' in options) recycler.configure(cluster.settings.recycle);
      if ('reloadSignal' in options) {
        if (reloadHandler !== null) process.removeListener(reloadHandler.signal, reloadHandler);
        reloadHandler = null;
        const signal = cluster.settings.reloadSignal;
        if (signal) {
          reloadHandler = () => { if (!stopping()) cluster.reload(); };
          reloadHandler.signal = signal;
          process.on(signal, reloadHandler);
        }
      }
    },

    /** After the primary recorded a new worker, before its 'fork' event. */
    forked(worker) {
      const record = records.get(worker.id);
      restartPolicy.track(record);
      rollover.track(record);
      recycler.track(record);
    },

    /**
     * A failed worker is to be replaced before it is killed (a hung one):
     * whether the restart policy started its replacement.
     */
    replaceFailed(record) {
      if (!restartPolicy.active || !record.replaceable) return false;
      return restartPolicy.replace(record, { code: null, signal: null, reason: record.failure }, { immediate: true });
    },

    /** cluster.worker.ready() in the worker. */
    ready(worker) {
      const record = records.get(worker.id);
      if (record !== undefined) rollover.signalled(record);
    },

    /** The worker served its request budget. */
    requestsServed(worker, message) {
      const record = records.get(worker.id);
      if (record !== undefined) recycler.requestsServed(record, message.requests);
    },

    /**
     * The worker's process exited; its 'exit' events follow. The restart
     * policy sees the fate it had, then the record is gone.
     */
    exited(worker, code, signal) {
      const record = records.get(worker.id);
      if (record === undefined) return;
      restartPolicy.onExit(record, code, signal);
      record.exit(code, signal);
      records.delete(worker.id);
    },

    /** Variables the worker's env needs for the settings that reach it. */
    workerEnv(settings) {
      const env = {};
      const exit = settings.exitOnUncaughtException;
      if (exit) env[Env.ExitOnUncaughtTimeout] = String(exit.timeout);
      const signals = settings.shutdownSignals;
      if (signals && signals.length > 0) env[Env.ShutdownSignals] = signals.join(',');
      const health = settings.health;
      if (health && health.hangTimeout !== undefined) env[Env.HeartbeatInterval] = String(intervalFor(health.hangTimeout));
      if (health && health.maxEventLoopDelay !== undefined) env[Env.MaxEventLoopDelay] = String(health.maxEventLoopDelay);
      const budget = settings.recycle ? recycler.workerLimit() : undefined;
      if (budget !== undefined) env[Env.MaxRequests] = String(budget);
      return env;
    },

    /** The primary's worker.kill()/destroy(). */
    killed(worker) {
      records.get(worker.id)?.kill();
    },

    /** The worker leaves on purpose: exitedAfterDisconnect is true now. */
    disconnecting(worker) {
      records.get(worker.id)?.disconnect();
    },

    /** `step()` (returning a promise) runs at shutdown once every worker has exited. */
    addLastStep(step) {
      shutdown.lastSteps.push(step);
    },

    /** Whether a replacement for the failing worker is on its way. */
    uncaughtException(worker, message) {
      const record = records.get(worker.id);
      return record === undefined ? false : restartPolicy.onUncaughtException(record, message.error);
    },
  };
}

module.exports = { manage };
