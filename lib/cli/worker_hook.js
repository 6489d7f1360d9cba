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

// cluster.metrics() in a worker: the primary's text (lib/cli/metrics.js), for
// an app that serves its own /metrics. Resolves to a string.
let asked = 0;
const waiting = new Map();
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
  value: function metrics() {
    return new Promise((resolve, reject) => {
      if (!process.connected) return reject(codedError(Error, 'ERR_IPC_CHANNEL_CLOSED', 'not connected to the primary'));
      const id = ++asked;
      waiting.set(id, { resolve, reject });
      process.send({ cmd: CMD, ask: id, what: 'metrics-text' });
    });
  },
});
