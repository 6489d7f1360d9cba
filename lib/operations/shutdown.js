'use strict';
// Graceful shutdown of the whole cluster, cluster.shutdown({ timeout }), and
// the opt-in signal handlers (setupPrimary({ shutdownSignals })) that run it.
//
// Shutdown is worker.disconnect() for every worker: each worker closes its
// servers, so requests in progress finish, and the native listener stops
// accepting once the last worker's server has left it. Whatever has not
// exited at the deadline is SIGKILLed: a worker in a busy loop never reads
// the disconnect request, and one with a server kept open never finishes it.
const { constants: { signals: signalNumbers } } = require('os');
const { normalizeShutdownOptions } = require('../primary/settings');

// What sending the disconnect request gives when the worker has just closed
// its end of the channel itself (it got the same signal, or it is exiting).
const CLOSED_CHANNEL = new Set(['EPIPE', 'ECONNRESET', 'ERR_IPC_CHANNEL_CLOSED']);
// The primary's exit status after a signal's shutdown in which some worker
// outlived shutdownTimeout and was SIGKILLed: a supervisor tells a forced
// stop from a clean one (0) by it.
const FORCED_EXIT_CODE = 1;

class Shutdown {
  /**
   * `records`: the primary's WorkerRecords by id, one for every worker whose
   * process has not exited, including those that already left
   * cluster.workers because they disconnected.
   */
  constructor(cluster, records, restartPolicy) {
    this.cluster = cluster;
    this.records = records;
    this.restartPolicy = restartPolicy;
    this.promise = null;
    this.handlers = new Map(); // signal -> listener
    this.signalled = false;
    // What stops once every worker has exited (the agent), each a function returning a promise.
    this.lastSteps = [];
  }

  /** Whether cluster.shutdown() (or a shutdown signal) has begun: nothing new is started then. */
  get started() {
    return this.promise !== null;
  }

  run(options, caller) {
    const { timeout } = normalizeShutdownOptions(options, this.cluster.settings, caller);
    if (this.promise !== null) return this.promise;
    this.restartPolicy.stop();
    const records = [...this.records.values()];
    const workers = records.map((record) => record.worker);
    this.promise = new Promise((resolve) => {
      let remaining = workers.length;
      let killed = 0;
      let deadline = null;
      const finish = () => {
        clearTimeout(deadline);
        Promise.all(this.lastSteps.map((step) => step())).then(() => {
          const summary = { workers: workers.length, killed };
          this.cluster.emit('shutdown', summary);
          resolve(summary);
        });
      };
      if (remaining === 0) {
        process.nextTick(finish);
        return;
      }
      for (const worker of workers) {
        worker.once('exit', () => {
          // The cluster's 'exit' for this worker follows synchronously; the
          // 'shutdown' event comes after it.
          if (--remaining === 0) process.nextTick(finish);
        });
      }
      deadline = setTimeout(() => {
        for (const record of records) {
          if (!record.exited) {
            killed++;
            record.worker.process.kill('SIGKILL');
          }
        }
      }, timeout);
      for (const worker of workers) {
        worker.on('error', function ignoreClosedChannel(err) {
          if (CLOSED_CHANNEL.has(err && err.code)) return;
          // Otherwise behave as if this listener were not there.
          if (worker.listenerCount('error') === 1) throw err;
        });
        if (worker.isConnected()) worker.disconnect();
      }
    });
    return this.promise;
  }

  /** Replaces the signal handlers with handlers for `signals` (maybe none). */
  listenFor(signals) {
    for (const [signal, listener] of this.handlers) process.removeListener(signal, listener);
    this.handlers.clear();
    for (const signal of signals) {
      const listener = () => this.onSignal(signal);
      process.on(signal, listener);
      this.handlers.set(signal, listener);
    }
  }

  // First signal: graceful shutdown, then exit 0 (FORCED_EXIT_CODE if a
  // worker had to be killed at the deadline). Second: the operator will
  // not wait, so kill the workers and exit now, with the status a shell gives
  // a process killed by that signal.
  onSignal(signal) {
    if (!this.signalled) {
      this.signalled = true;
      this.run({ timeout: this.cluster.settings.shutdownTimeout })
        .then(({ killed }) => process.exit(killed > 0 ? FORCED_EXIT_CODE : 0));
      return;
    }
    for (const record of this.records.values()) record.worker.process.kill('SIGKILL');
    process.exit(128 + signalNumbers[signal]);
  }
}

module.exports = { Shutdown, FORCED_EXIT_CODE };
