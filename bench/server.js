'use strict';
// The clustered hello-world HTTP app that bench/run.js measures.
//
// Everything is chosen by environment variables so that run.js can start the
// exact same file for every configuration and only swap the cluster module:
//
//   BENCH_IMPL           node | rcluster | single         (default: node)
//   BENCH_POLICY         rr | none | lc | sticky | reuseport  (default: rr;
//                        lc, sticky and reuseport are rcluster's own)
//   BENCH_WORKERS        number of workers                (default: 2)
//   BENCH_PORT           port to listen on, 127.0.0.1     (default: 0 = any)
//   BENCH_DEFER_ACCEPT   0: setupPrimary({ routing: { deferAccept: false } })
//   BENCH_BLOCK_PRIMARY  "BUSY/PERIOD" in ms, e.g. 200/250: once every worker
//                        listens, the primary's JS spins BUSY ms of every PERIOD
//   BENCH_HANDLER        hello | cpu | mixed  (cpu: an empty 1e5 loop per
//                        request; mixed: /slow takes BENCH_MIXED_SLOW_MS (100)
//                        of CPU, or of a timer with BENCH_MIXED_SLOW=timer,
//                        anything else 1 ms of CPU; heavy: /slow takes
//                        BENCH_HEAVY_SLOW_MS (50) of CPU, anything else
//                        answers hello at once)
//   BENCH_TRACE          sampling interval in ms: each worker also keeps a
//                        `trace` in its stats file, one row per interval:
//                        [wall-clock ms, open connections, connections so
//                        far, requests so far, how late the sampling timer
//                        ran in ms, 0] (bench/demo-trace.js reads it)
//   BENCH_STATS_DIR      directory where each worker keeps worker-<id>.json
//                        with its connection and request counters; requests
//                        for PROBE_PATH (run.js's connect-time probe, one per
//                        connection) are also counted as `probes`
//
// Protocol with run.js: the primary prints exactly one line `READY <port>` on
// stdout once every worker is listening. Counters are read from the stats
// files, never from the primary, because the primary may be busy-looping (the
// `blocked` workload) and must not be on the stats path either.

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { PROBE_PATH } = require('./lib/probe');

const IMPL = process.env.BENCH_IMPL || 'node';
const POLICY = process.env.BENCH_POLICY || 'rr';
const WORKERS = positiveInt(process.env.BENCH_WORKERS || '2', 'BENCH_WORKERS');
const PORT = Number(process.env.BENCH_PORT || 0);
const HANDLER = process.env.BENCH_HANDLER || 'hello';
const STATS_DIR = process.env.BENCH_STATS_DIR || '';
const STATS_INTERVAL_MS = 50;
const TRACE_MS = Number(process.env.BENCH_TRACE || 0);

function positiveInt(text, name) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer, got ${text}`);
  return n;
}

function fail(message) {
  process.stderr.write(`bench/server: ${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------- worker side

// One HTTP server; counts connections and requests, and mirrors the counters
// into STATS_DIR so they can be read while the primary is blocked.
function runWorker(workerId, onListening) {
  const counts = { id: workerId, pid: process.pid, connections: 0, requests: 0, probes: 0 };
  const spin = HANDLER === 'cpu';
  const mixed = HANDLER === 'mixed';
  const heavy = HANDLER === 'heavy';

  const server = http.createServer((req, res) => {
    counts.requests++;
    if (req.url === PROBE_PATH) counts.probes++;
    if (spin) for (let i = 0; i < 1e5; i++) {} // eslint-disable-line no-empty
    if (mixed) return mixedRequest(req, res);
    if (heavy) {
      // Who answered, so that the client can tell the fast requests that
      // waited behind a slow one on the same worker.
      if (req.url === '/slow') busy(HEAVY_SLOW_MS);
      return res.end(`${req.url === '/slow' ? 'slow' : 'hello'} ${workerId}`);
    }
    res.end('Hello World');
  });
  server.on('connection', () => { counts.connections++; });
  if (TRACE_MS > 0) startTrace(server, counts);
  server.on('error', (err) => fail(`worker ${workerId}: ${err.stack || err}`));
  server.listen(PORT, '127.0.0.1', () => {
    startStatsWriter(counts);
    if (onListening) onListening(server.address().port);
  });
}

// Per-worker time series for bench/demo-trace.js: how many connections the
// worker holds, what it served, and how late its sampling timer ran, which
// is about the length of the event-loop turn that kept it waiting.
function startTrace(server, counts) {
  counts.trace = [];
  let open = 0;
  server.on('connection', (socket) => {
    open++;
    socket.once('close', () => { open--; });
  });
  let due = Date.now() + TRACE_MS;
  const sample = () => {
    const now = Date.now();
    counts.trace.push([now, open, counts.connections, counts.requests, Math.max(0, now - due), 0]);
    due = now + TRACE_MS;
    setTimeout(sample, TRACE_MS).unref();
  };
  setTimeout(sample, TRACE_MS).unref();
}

const MIXED_SLOW_MS = Number(process.env.BENCH_MIXED_SLOW_MS || 100);
const MIXED_SLOW_TIMER = process.env.BENCH_MIXED_SLOW === 'timer';
const HEAVY_SLOW_MS = Number(process.env.BENCH_HEAVY_SLOW_MS || 50);

function busy(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {} // eslint-disable-line no-empty
}

function mixedRequest(req, res) {
  if (req.url !== '/slow') {
    busy(1);
    return res.end('fast');
  }
  if (MIXED_SLOW_TIMER) return setTimeout(() => res.end('slow'), MIXED_SLOW_MS);
  busy(MIXED_SLOW_MS);
  res.end('slow');
}

// Writes the counters whenever they changed, at most every STATS_INTERVAL_MS.
// write-then-rename so a reader never sees a half-written file.
function startStatsWriter(counts) {
  if (!STATS_DIR) return;
  const file = path.join(STATS_DIR, `worker-${counts.id}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  let last = '';
  const write = () => {
    const text = JSON.stringify(counts);
    if (text === last) return;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
    last = text;
  };
  write();
  setInterval(write, STATS_INTERVAL_MS).unref();
}

// --------------------------------------------------------------- primary side

function runPrimary(cluster) {
  // Both the env var (read by node:cluster when it is loaded, and inherited by
  // the workers) and the property are set, so whichever one an implementation
  // honours, the requested policy is in force before the first fork.
  const policies = {
    rr: cluster.SCHED_RR, none: cluster.SCHED_NONE, lc: cluster.SCHED_LC, sticky: cluster.SCHED_STICKY,
    reuseport: cluster.SCHED_REUSEPORT,
  };
  if (policies[POLICY] === undefined) fail(`BENCH_POLICY ${POLICY} is not a policy of ${IMPL === 'node' ? 'node:cluster' : 'this cluster module'}`);
  cluster.schedulingPolicy = policies[POLICY];
  // SCHED_REUSEPORT's deferred accept (on by default for an HTTP server).
  if (process.env.BENCH_DEFER_ACCEPT === '0') cluster.setupPrimary({ routing: { deferAccept: false } });

  const ports = new Map(); // worker.id -> port it listens on
  let ready = false;
  let stopping = false;

  cluster.on('listening', (worker, address) => {
    ports.set(worker.id, address.port);
    if (ready || ports.size < WORKERS) return;
    const distinct = new Set(ports.values());
    if (distinct.size !== 1) fail(`workers listen on different ports: ${[...distinct].join(', ')}`);
    ready = true;
    process.stdout.write(`READY ${[...distinct][0]}\n`);
    if (process.env.BENCH_BLOCK_PRIMARY) blockPrimary(process.env.BENCH_BLOCK_PRIMARY);
  });

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    // A worker that dies before READY means the server failed to start;
    // one that dies later is reported but the run.js side notices the gap.
    process.stderr.write(`bench/server: worker ${worker.id} exited (code ${code}, signal ${signal})\n`);
    if (!ready) process.exit(1);
  });

  // The polite path only: run.js signals the whole process group and follows
  // up with SIGKILL, so a primary that cannot stop cleanly still goes away.
  const stop = () => {
    stopping = true;
    const alive = Object.values(cluster.workers || {});
    if (alive.length === 0) process.exit(0);
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers || {}).length === 0) process.exit(0);
    });
    for (const worker of alive) worker.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  for (let i = 0; i < WORKERS; i++) cluster.fork();
}

// Keeps the primary's JS thread busy BUSY ms out of every PERIOD ms. Node
// reschedules a repeating timer from the moment its callback started, so a
// 200 ms spin every 250 ms leaves the event loop 50 ms of every 250 ms.
function blockPrimary(spec) {
  const [busy, period] = spec.split('/').map(Number);
  if (!(busy > 0 && period > busy)) fail(`BENCH_BLOCK_PRIMARY must be BUSY/PERIOD with PERIOD > BUSY, got ${spec}`);
  setInterval(() => {
    const end = Date.now() + busy;
    while (Date.now() < end) {} // eslint-disable-line no-empty
  }, period);
}

// ------------------------------------------------------------------- startup

function main() {
  if (!['node', 'rcluster', 'single'].includes(IMPL)) fail(`unknown BENCH_IMPL ${IMPL}`);
  if (!['rr', 'none', 'lc', 'sticky', 'reuseport'].includes(POLICY)) fail(`unknown BENCH_POLICY ${POLICY}`);
  if (!['hello', 'cpu', 'mixed', 'heavy'].includes(HANDLER)) fail(`unknown BENCH_HANDLER ${HANDLER}`);

  if (IMPL === 'single') {
    // No cluster at all: this one process is the whole server.
    runWorker(1, (port) => process.stdout.write(`READY ${port}\n`));
    return;
  }

  // node:cluster reads NODE_CLUSTER_SCHED_POLICY when it is first loaded.
  process.env.NODE_CLUSTER_SCHED_POLICY = POLICY;
  const rclusterPath = process.env.BENCH_RCLUSTER_PATH || path.join(__dirname, '..');
  const cluster = IMPL === 'rcluster' ? require(rclusterPath) : require('node:cluster');
  // Without its addon rcluster is node:cluster under another name: a figure
  // measured so would be node's, reported as rcluster's.
  const fallback = IMPL === 'rcluster' && require(path.join(rclusterPath, 'lib', 'native')).fallbackReason;
  if (fallback && cluster.isPrimary) fail(`rcluster fell back to node:cluster (${fallback}); build it first (npm run build)`);

  if (cluster.isPrimary) runPrimary(cluster);
  else runWorker(cluster.worker ? cluster.worker.id : process.pid);
}

main();
