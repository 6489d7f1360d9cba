'use strict';
// Preloaded (`--require`) into every worker the `rcluster` command runs, after
// rcluster's own preload: answers the primary's questions about the worker
// that only the worker can answer (event-loop delay, open connections,
// requests, the app's prom-client metrics). The questions come as internal
// messages (cmd NODE_RCLUSTER_CLI), which the app's 'message' listeners never
// see. The app is not changed otherwise.
const net = require('net');
const { monitorEventLoopDelay } = require('perf_hooks');
const { codedError } = require('../errors');

const CMD = 'NODE_RCLUSTER_CLI';
const SELF = __filename;

// process.execArgv shows what the user gave with --node-args, as without the hook.
const i = process.execArgv.indexOf(SELF);
if (i > 0 && process.execArgv[i - 1] === '--require') process.execArgv.splice(i - 1, 2);

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

let open = 0;
let total = 0;
let requests = 0;
// Every server's 'connection' (net, http, https, tls) and 'request' (http),
// counted on the way to the app's own listeners.
const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function(event, arg) {
  if (event === 'connection' && arg instanceof net.Socket) {
    open++;
    total++;
    arg.once('close', () => open--);
  } else if (event === 'request') {
    requests++;
  }
  return emit.apply(this, arguments);
};

// Ctrl-C reaches the whole foreground process group: the primary decides how
// the workers stop (a graceful disconnect), unless the app handles SIGINT itself.
// A listener of its own replaces Node's default (exit) and leaves the app's.
process.on('SIGINT', function rclusterPrimaryDecides() {});

// The app's prom-client, if it loaded one: its default registry.
function promRegistry() {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (/[\\/]prom-client[\\/]index\.js$/.test(file) && mod.exports && mod.exports.register) return mod.exports.register;
  }
  return null;
}

async function answer(what) {
  if (what === 'stats') {
    const mem = process.memoryUsage.rss();
    const cpu = process.cpuUsage();
    const out = {
      eventLoopDelay: { p50: eld.percentile(50) / 1e9, p99: eld.percentile(99) / 1e9, max: eld.max / 1e9 },
      connections: { open, total },
      requests,
      rss: mem,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    eld.reset();
    return out;
  }
  if (what === 'metrics') {
    const registry = promRegistry();
    return registry === null ? null : await registry.getMetricsAsJSON();
  }
  return null;
}

process.on('internalMessage', (message) => {
  if (message === null || typeof message !== 'object' || message.cmd !== CMD || message.seq === undefined || typeof process.send !== 'function') return;
  answer(message.what).then(
    (value) => ({ value }),
    (err) => ({ error: String(err && err.message) }),
  ).then((reply) => {
    if (process.connected) process.send({ cmd: CMD, ack: message.seq, ...reply }, undefined, { swallowErrors: true }, () => {});
  });
});

// Questions to the primary (lib/cli/run.js Runner#onWorkerAsks): `what`, and
// `fields` beside it. Resolves to its answer's value.
let asked = 0;
const waiting = new Map();
function askPrimary(what, fields) {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(codedError(Error, 'ERR_IPC_CHANNEL_CLOSED', 'not connected to the primary'));
    const id = ++asked;
    waiting.set(id, { resolve, reject });
    process.send({ ...fields, cmd: CMD, ask: id, what }, undefined, { swallowErrors: true }, () => {});
  });
}
process.on('internalMessage', (message) => {
  if (message === null || typeof message !== 'object' || message.cmd !== CMD || message.answer === undefined) return;
  const entry = waiting.get(message.answer);
  if (entry === undefined) return;
  waiting.delete(message.answer);
  if (message.error !== undefined) entry.reject(new Error(message.error));
  else entry.resolve(message.value);
});
const cluster = require('cluster');
Object.defineProperty(cluster, 'metrics', {
  configurable: true,
  enumerable: false,
  writable: true,
  // cluster.metrics() in a worker: the primary's text (lib/cli/metrics.js),
  // for an app that serves its own /metrics. Resolves to a string.
  value: function metrics() {
    return askPrimary('metrics-text');
  },
});

// An uncaught exception ends the worker as it ends a process without
// cluster (printed, exit code 1), but a route that throws crashes a worker
// at every request to it: the same stack trace at every crash would bury
// everything else. So the worker asks the primary (lib/cli/uncaught_reports.js)
// whether the cluster has seen this error (same name, message and stack
// frames): the first is printed in full, as Node would, the repeats as one
// line with their count. The app keeps Node's behaviour otherwise: an app
// with an 'uncaughtException' listener of its own handles its errors itself
// (nothing is printed, nothing ends), and --abort-on-uncaught-exception
// still aborts.
const { inspect } = require('util');
const { createHash } = require('crypto');
const { printError } = require('../worker/graceful_exit');

// Longest the dying worker waits for the primary's answer (a round trip on
// its IPC channel, usually under a millisecond) before it prints in full
// anyway. The app's pending callbacks may run meanwhile, as they may while
// exitOnUncaughtException drains.
const REPORT_WAIT_MS = 1000;

function uncaughtReport(err) {
  const isError = err instanceof Error;
  const name = isError ? String(err.name) : typeof err;
  // The pid and the worker's id vary from worker to worker, not the error.
  const id = cluster.worker?.id;
  let message = isError ? String(err.message) : inspect(err);
  message = message.replace(new RegExp(`\\b${process.pid}\\b`, 'g'), '<pid>');
  if (id !== undefined) message = message.replace(new RegExp(`\\bworker ${id}\\b`, 'gi'), 'worker <id>');
  const frames = isError && typeof err.stack === 'string' ? err.stack.split('\n').filter((l) => /^\s+at /.test(l)).map((l) => l.trim()) : [];
  const fingerprint = createHash('sha256').update(JSON.stringify([name, message, frames])).digest('hex').slice(0, 32);
  const top = frames[0]?.match(/\(?([^()\s]+:\d+:\d+)\)?$/);
  return { fingerprint, name, message: message.split('\n')[0], at: top ? top[1] : undefined };
}

// In full, as Node would; an error that cannot even be inspected (a getter
// that throws) is named at least.
function printFull(err, origin) {
  try {
    printError(err, origin);
  } catch {
    try {
      require('fs').writeSync(2, `Uncaught ${Object.prototype.toString.call(err)} (it could not be printed)\n`);
    } catch {
      // stderr is gone; there is no one left to tell.
    }
  }
}

if (!process.execArgv.includes('--abort-on-uncaught-exception')) {
  let reporting = null; // the fingerprint being reported, once dying
  process.on('uncaughtException', function rclusterReportsUncaught(err, origin) {
    if (process.listenerCount('uncaughtException') > 1) return;
    process.exitCode = 1;
    let report;
    try {
      report = uncaughtReport(err);
    } catch {
      // An error whose name, message or stack cannot be read (a getter
      // that throws): nothing to compare, so as Node would.
      printFull(err, origin);
      process.exit(1);
    }
    if (reporting !== null) {
      // Thrown while the first is reported: the same error again adds
      // nothing; another one is printed in full.
      if (report.fingerprint !== reporting) printFull(err, origin);
      return;
    }
    reporting = report.fingerprint;
    let done = false;
    const end = (answer) => {
      if (done) return;
      done = true;
      if (answer !== null && typeof answer === 'object' && answer.repeat === true && typeof answer.line === 'string') {
        try {
          require('fs').writeSync(2, `${answer.line}\n`);
        } catch {
          // stderr is gone; there is no one left to tell.
        }
      } else {
        printFull(err, origin);
      }
      process.exit(1);
    };
    setTimeout(end, REPORT_WAIT_MS);
    askPrimary('uncaught', { report }).then(end, () => end());
  });
}
