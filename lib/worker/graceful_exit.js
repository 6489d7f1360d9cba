'use strict';
// Worker side of setupPrimary({ exitOnUncaughtException, shutdownSignals }).
//
// exitOnUncaughtException: after an uncaught
// exception the worker's state can no longer be trusted, but the requests it
// holds may still complete. So instead of dying at once, as Node would, it
// prints the error as Node would, tells the primary (which forks its
// replacement now), closes its servers (round-robin connections it refuses
// while closing go to other workers), and exits with code 1 once they have
// drained, or after the timeout at most.
//
// shutdownSignals: such a signal often reaches the workers too, not only the
// primary: Ctrl-C signals the terminal's whole process group, systemd the
// whole cgroup. A worker that died of it would drop its requests in progress
// while the primary shuts down gracefully, so instead it disconnects as
// cluster.worker.disconnect() does: it closes its servers, finishes its
// requests, and is not restarted.
const fs = require('fs');
const { inspect } = require('util');
const { Act, Env } = require('../protocol');

// Set by the primary in the worker's env, read and removed at start-up like
// the role variables, so the app and the processes it spawns never see them.
const EXIT_ON_UNCAUGHT_ENV = Env.ExitOnUncaughtTimeout;
const SHUTDOWN_SIGNALS_ENV = Env.ShutdownSignals;
// Longest a failing worker waits for the primary's answer before it closes
// its servers anyway.
const ANSWER_WAIT_MS = 3000;

// The error as Node prints an uncaught exception (lib/cli/worker_hook.js too).
function printError(err, origin) {
  let text = err instanceof Error ? inspect(err) : `Uncaught ${inspect(err)}`;
  if (origin === 'unhandledRejection' && !(err instanceof Error)) {
    text = `[UnhandledPromiseRejection: a promise was rejected with ${inspect(err)}]`;
  }
  try {
    fs.writeSync(2, `${text}\n`);
  } catch {
    // stderr is gone; there is no one left to tell.
  }
}

// A summary that survives the IPC channel's serialization.
function describe(err) {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: typeof err, message: inspect(err) };
}

/**
 * Installs the handler if the primary asked for it. `closeServers(cb)` closes
 * every server of this worker; `send(message)` reaches the primary.
 */
function install(worker, { closeServers, send }) {
  const signals = process.env[SHUTDOWN_SIGNALS_ENV];
  delete process.env[SHUTDOWN_SIGNALS_ENV];
  if (signals) {
    for (const signal of signals.split(',')) process.on(signal, () => worker.disconnect());
  }

  const raw = process.env[EXIT_ON_UNCAUGHT_ENV];
  delete process.env[EXIT_ON_UNCAUGHT_ENV];
  if (raw === undefined) return;
  const timeout = Number(raw);
  let exiting = false;

  process.on('uncaughtException', (err, origin) => {
    printError(err, origin);
    if (exiting) return;
    exiting = true;
    // Should the event loop run dry first, the exit status is still 1.
    process.exitCode = 1;
    try {
      fs.writeSync(2, `rcluster: worker ${worker.id} stops taking connections after this uncaught exception ` +
        `and exits once its requests in progress are done (at most ${timeout} ms)\n`);
    } catch {
      // As above.
    }
    setTimeout(() => process.exit(1), timeout).unref();
    // The servers close once the primary has answered: by then it has taken
    // this worker out of rotation and, if a replacement is coming, kept the
    // sockets open for it, so that this last close does not free a port the
    // replacement needs (connections wait for it meanwhile). A primary too
    // busy to answer soon does not keep the servers open for long.
    let closing = false;
    const close = () => {
      if (closing) return;
      closing = true;
      closeServers(() => process.exit(1));
    };
    if (process.connected) send({ act: Act.UncaughtException, error: describe(err), origin }, close);
    else close();
    setTimeout(close, Math.min(timeout, ANSWER_WAIT_MS)).unref();
  });
}

module.exports = { install, printError };
