'use strict';
// rcluster's additions to the primary's process management, all opt-in: the
// restart policy, graceful shutdown with its signal handlers, graceful exit on
// uncaught exceptions, reloads, recycling and scaling. lib/primary/cluster.js
// calls the hooks below, and holds the Rollover (cluster.reload()) and the
// Scaler (cluster.scale()) this builds; with none of the settings given,
// node:cluster's behaviour is unchanged.
const { normalizeSettings } = require('../primary/settings');
const { RestartPolicy } = require('./restart_policy');
const { Shutdown } = require('./shutdown');
const { Rollover } = require('./rollover');
const { Recycler } = require('./recycle');
const { Scaler } = require('./scale');
const { intervalFor } = require('../worker/heartbeat');
const { Env } = require('../protocol');
const { defineHidden } = require('../internal_messages');

// `records`: the primary's WorkerRecords by worker id (lib/primary/worker_record.js).
// The primary adds each at fork; the hooks below move its fate, and remove it
// when its process exits. `primary`: lib/primary/cluster.js's
// `{ forkWorker, withdrawFromRotations, admitToRotations }`, which a rollover needs.
function manage(cluster, records, primary) {
  const restartPolicy = new RestartPolicy(cluster, records);
  const gracefulShutdown = new Shutdown(cluster, records, restartPolicy);
  const rollover = new Rollover(cluster, records, { primary, restartPolicy, shutdown: gracefulShutdown });
  const recycler = new Recycler(cluster, records, { rollover, shutdown: gracefulShutdown });
  const scaler = new Scaler(cluster, records, { rollover, restartPolicy, shutdown: gracefulShutdown });
  let reloadHandler = null;

  // Needs nothing of the primary (cluster.reload() and cluster.scale() are
  // defined by lib/primary/cluster.js, which holds what they need).
  defineHidden(cluster, 'shutdown', function shutdown(options) {
    return gracefulShutdown.run(options, shutdown);
  });
  // Not enumerable either, for the same reason as defineHidden's.
  Object.defineProperty(cluster, 'pendingRestarts', {
    enumerable: false,
    get: () => restartPolicy.pending.size,
  });

  return {
    /** cluster.reload() and the replacements of recycling (lib/operations/rollover.js). */
    rollover,

    /** cluster.scale() (lib/operations/scale.js). */
    scaler,

    /** setupPrimary()'s options, validated; throws Node-style errors. */
    normalize: normalizeSettings,

    /** After cluster.settings took `options`: act on what they changed. */
    applied(options) {
      if (options === null || typeof options !== 'object') return;
      if ('restart' in options) restartPolicy.configure(cluster.settings.restart);
      if ('shutdownSignals' in options) gracefulShutdown.listenFor(cluster.settings.shutdownSignals);
      if ('recycle' in options) recycler.configure(cluster.settings.recycle);
      if ('reloadSignal' in options) {
        if (reloadHandler !== null) process.removeListener(reloadHandler.signal, reloadHandler);
        reloadHandler = null;
        const signal = cluster.settings.reloadSignal;
        if (signal) {
          reloadHandler = function reloadOnSignal() {
            if (!gracefulShutdown.started) cluster.reload();
          };
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
      scaler.exited(record);
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
      gracefulShutdown.lastSteps.push(step);
    },

    /** Whether a replacement for the failing worker is on its way. */
    uncaughtException(worker, message) {
      const record = records.get(worker.id);
      return record === undefined ? false : restartPolicy.onUncaughtException(record, message.error);
    },
  };
}

module.exports = { manage };
