'use strict';
// rcluster's additions to the primary's process management, all opt-in: the
// restart policy, graceful shutdown with its signal handlers, and graceful
// exit on uncaught exceptions. lib/primary.js calls these hooks; with none of
// the settings given, node:cluster's behaviour is unchanged.
const { normalizeSettings } = require('./settings');
const { RestartPolicy } = require('./restart_policy');
const { Shutdown } = require('./shutdown');
const { EXIT_ON_UNCAUGHT_ENV, SHUTDOWN_SIGNALS_ENV } = require('./graceful_exit');
const { defineHidden } = require('./utils');

function manage(cluster) {
  const restartPolicy = new RestartPolicy(cluster);
  const shutdown = new Shutdown(cluster, restartPolicy);
  const shutdownRun = (options, caller) => shutdown.run(options, caller);

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
    },

    forked(worker, env) {
      restartPolicy.track(worker, env);
      shutdown.track(worker);
    },

    /** Variables the worker's env needs for the settings that reach it. */
    workerEnv(settings) {
      const env = {};
      const exit = settings.exitOnUncaughtException;
      if (exit) env[EXIT_ON_UNCAUGHT_ENV] = String(exit.timeout);
      const signals = settings.shutdownSignals;
      if (signals && signals.length > 0) env[SHUTDOWN_SIGNALS_ENV] = signals.join(',');
      return env;
    },

    killed(worker) {
      restartPolicy.markKilled(worker);
    },

    /** Whether a replacement for the failing worker is on its way. */
    uncaughtException(worker, message) {
      return restartPolicy.onUncaughtException(worker, message.error);
    },
  };
}

module.exports = { manage };
