#!/usr/bin/env node
'use strict';
// rcluster benchmark runner: node:cluster (RR / NONE) vs rcluster (RR / NONE)
// vs a single process, on keep-alive, connection-churn and blocked-primary
// workloads. See bench/README.md. `node bench/run.js --help` lists the flags.
//
// Each round runs, for every workload, every config once (A B C D E, A B C D
// E, ...), so slow drifts of the machine hit all configs alike. Every
// measurement gets a fresh server: start, wait for READY, warm up (runner's own
// http client, see lib/warmup.js), sample the
// workers' counters and the primary's CPU, load, sample again, stop the whole
// process group.

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const { CONFIGS, WORKLOADS, MAX_PROBES, parseArgs, loadSettings } = require('./lib/options');
const { startServer, sampleServer, stopServer, sleep, tail } = require('./lib/server');
const { runLoad, buildCommand, shellQuote } = require('./lib/load');
const { warmUp } = require('./lib/warmup');
const { runProbes } = require('./lib/probe');
const { summarize, applicable, primaryCpuUsPerConnection } = require('./lib/summary');
const { markdownReport, svgChart } = require('./lib/report');
const { machineInfo } = require('./lib/proc');

// Pause after a load so in-flight requests finish and every worker has
// rewritten its stats file (they do so every 50 ms).
const SETTLE_MS = 150;
// A client/server request count differing by more than this is reported.
const MISMATCH_TOLERANCE = 0.02;
// The warm-up only has to get each worker's code compiled; a thousand node
// http clients (demo) would cost more than they add.
const WARMUP_MAX_CONNECTIONS = 50;

let liveServer = null; // stopped on Ctrl-C so no server outlives the runner

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(parsed.help);
    return;
  }
  const opts = parsed.opts;
  installSignalHandlers();

  const started = Date.now();
  const plan = buildPlan(opts);
  // Per-measurement overhead as seen on a 2-core VM.
  const seconds = sum(plan.map((s) => opts.duration + warmupSeconds(opts) + (loadSettings(opts, s.workload).tool === 'wrk' ? 0.8 : 1.5)));
  const tools = [...new Set(opts.workloads.map((w) => loadSettings(opts, w).tool))];
  log(`${plan.length} measurements (${opts.rounds} rounds), tool ${tools.join(' + ')}, about ${Math.ceil(seconds / 60)} min`);

  const { measurements, skipped } = await runPlan(plan, opts);
  const rows = summarize(measurements, opts);
  const meta = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    toolVersion: [...new Set(opts.workloads.map((w) => loadSettings(opts, w).tool))].map(toolVersion).join('; '),
    commandLine: ['node', path.relative(process.cwd(), process.argv[1]), ...process.argv.slice(2)].map(shellQuote).join(' '),
    wallSeconds: (Date.now() - started) / 1000,
  };
  const commands = exampleCommands(opts);
  const markdown = markdownReport({ meta, opts, rows, commands, skipped });
  writeResults(opts.out, {
    markdown,
    json: { meta, options: opts, commands, skipped, summary: rows, measurements },
    svg: svgChart({ meta, opts, rows }),
  });
  process.stdout.write(markdown);
  log(`wrote ${path.join(path.relative(process.cwd(), opts.out) || '.', 'latest.{md,json,svg}')}`);
}

// Runs the plan in order. A config/workload whose server failed to start is
// not tried again in later rounds: a broken build fails the same way every
// time, and a READY timeout would cost 15 s per round.
async function runPlan(plan, opts) {
  const measurements = [];
  const failedStarts = new Set();
  const skipped = new Set();
  for (const step of plan) {
    const key = `${step.config}/${step.workload}`;
    if (failedStarts.has(key)) {
      skipped.add(key);
      continue;
    }
    const m = await measure(step, opts);
    measurements.push(m);
    if (m.startFailed) failedStarts.add(key);
    logMeasurement(m, step, opts);
  }
  return { measurements, skipped: [...skipped] };
}

// --warmup is for 2 workers; more get proportionally more. Every worker
// compiles its own request path, from the requests it gets: with 16 workers
// sharing 0.5 s of traffic, the measured window ran mostly unoptimized code
// (V8's inline caches and TurboFan at the top of a profile), doubling the
// CPU per request of rcluster and node:cluster alike.
function warmupSeconds(opts) {
  return opts.warmup * Math.max(1, opts.workers / 2);
}

// Round-major, then workload, then config: A B C D E, A B C D E, ...
function buildPlan(opts) {
  const plan = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const workload of opts.workloads) {
      for (const config of opts.configs) {
        if (applicable(config, workload)) plan.push({ round, workload, config });
      }
    }
  }
  return plan;
}

// One measurement with its own server. Never throws: failures are recorded.
async function measure({ round, workload, config }, opts) {
  const m = { round, workload, config, ok: false };
  const settings = loadSettings(opts, workload);
  const env = {
    ...CONFIGS[config].env,
    ...WORKLOADS[workload].serverEnv,
    BENCH_WORKERS: String(opts.workers),
    BENCH_HANDLER: settings.handler,
  };
  let server;
  try {
    server = await startServer(env);
  } catch (err) {
    return Object.assign(m, { startFailed: true, error: err.message, stderrTail: err.stderrTail || '' });
  }
  liveServer = server;
  try {
    const load = { ...settings, port: server.port, threads: opts.threads };
    if (opts.warmup > 0) {
      m.warmup = await warmUp({ ...load, connections: Math.min(load.connections, WARMUP_MAX_CONNECTIONS), seconds: warmupSeconds(opts) });
    }
    await sleep(SETTLE_MS);
    const before = sampleServer(server);
    const probing = opts.probeInterval > 0
      ? runProbes({ port: server.port, seconds: opts.duration, intervalMs: opts.probeInterval, max: MAX_PROBES })
      : Promise.resolve(null);
    const [client, probe] = await Promise.all([runLoad({ ...load, seconds: opts.duration }), probing]);
    m.probe = probe;
    await sleep(SETTLE_MS);
    const after = sampleServer(server);
    if (server.exited) throw new Error(`server exited during the measurement (${JSON.stringify(server.exited)})`);
    Object.assign(m, { ok: true, client, server: serverDelta(before, after, config, opts) });
    m.mismatch = checkCounts(client.requests, m.server.requests, load.connections * load.pipelining);
  } catch (err) {
    Object.assign(m, { error: err.message, stderrTail: tail(server.stderr) });
  } finally {
    const survivors = await stopServer(server);
    liveServer = null;
    if (survivors.length) {
      // Should never happen after SIGKILL; reported rather than hidden.
      Object.assign(m, { ok: false, error: `processes still alive after SIGKILL: ${survivors.join(', ')}` });
    }
  }
  return m;
}

// What happened on the server between two samples: per-worker connections
// and requests, primary CPU seconds, summed worker CPU seconds.
function serverDelta(before, after, config, opts) {
  const expected = CONFIGS[config].single ? 1 : opts.workers;
  if (after.workers.length !== expected) {
    throw new Error(`expected stats from ${expected} worker(s), found ${after.workers.length}`);
  }
  const dead = after.workers.filter((w) => w.cpu === null);
  if (dead.length) {
    // Its stats file outlives it; /proc tells whether the process still exists.
    throw new Error(`worker(s) ${dead.map((w) => `${w.id} (pid ${w.pid})`).join(', ')} died during the measurement`);
  }
  // The probe's connections (one request each) are taken out, so that the
  // counters describe the load tool's traffic alone.
  const perWorker = after.workers.map((w) => {
    const b = before.workers.find((x) => x.id === w.id) || { connections: 0, requests: 0, probes: 0, cpu: null };
    const probes = (w.probes || 0) - (b.probes || 0);
    return {
      id: w.id,
      pid: w.pid,
      connections: w.connections - b.connections - probes,
      requests: w.requests - b.requests - probes,
      probes,
      cpu: w.cpu !== null && b.cpu !== null ? w.cpu - b.cpu : null,
    };
  });
  return {
    windowSeconds: Number(after.at - before.at) / 1e9,
    primaryCpu: after.primaryCpu !== null && before.primaryCpu !== null ? after.primaryCpu - before.primaryCpu : null,
    workerCpu: perWorker.reduce((s, w) => s + (w.cpu || 0), 0),
    connections: perWorker.reduce((s, w) => s + w.connections, 0),
    requests: perWorker.reduce((s, w) => s + w.requests, 0),
    probes: perWorker.reduce((s, w) => s + w.probes, 0),
    perWorker,
  };
}

// The load tool's response count should match what the workers served, up to
// the requests that were in flight when the tool stopped: at most one per
// connection, or `pipelining` per connection (demo: 10,000).
function checkCounts(clientRequests, serverRequests, inFlight) {
  const diff = Math.abs(clientRequests - serverRequests);
  if (diff <= Math.max(100, inFlight, serverRequests * MISMATCH_TOLERANCE)) return null;
  return { client: clientRequests, server: serverRequests };
}

function logMeasurement(m, step, opts) {
  const where = `[round ${step.round}/${opts.rounds}] ${step.workload.padEnd(9)} ${step.config.padEnd(13)}`;
  if (!m.ok) {
    log(`${where} FAILED: ${m.error}${m.stderrTail ? `\n    ${m.stderrTail.split('\n').slice(-5).join('\n    ')}` : ''}`);
    return;
  }
  const c = m.client;
  const conns = m.server.perWorker.map((w) => w.connections).join('/');
  const cpu = m.server.primaryCpu === null ? '?' : m.server.primaryCpu.toFixed(2);
  const perConn = primaryCpuUsPerConnection(m);
  const p99 = c.latencyValid ? `${c.latencyMs.p99.toFixed(1)} ms${c.slowLatencyMs ? ` (fast requests; slow p99 ${c.slowLatencyMs.p99.toFixed(1)} ms)` : ''}` : 'n/a';
  const probe = m.probe && m.probe.firstByteMs
    ? `  connect→1st byte p99 ${m.probe.firstByteMs.p99.toFixed(1)} ms (${m.probe.ok}/${m.probe.attempted} ok, `
      + `handshake p99 ${m.probe.connectMs ? m.probe.connectMs.p99.toFixed(1) : '?'} ms)`
    : m.probe ? `  probes ${m.probe.ok}/${m.probe.attempted} ok` : '';
  const behind = typeof c.behindSlow === 'number' ? `  ${c.behindSlow} fast behind a slow one` : '';
  log(`${where} ${Math.round(c.rps).toString().padStart(7)} req/s  p99 ${p99}${behind}${probe}  `
    + `conns ${conns}  primary CPU ${cpu} s${perConn === null ? '' : ` (${perConn.toFixed(1)} µs/conn)`}`);
}

// The exact load command per workload, with <port> for the per-run port.
function exampleCommands(opts) {
  const commands = {};
  for (const workload of opts.workloads) {
    const cmd = buildCommand({ ...loadSettings(opts, workload), port: 0, seconds: opts.duration, threads: opts.threads });
    commands[workload] = [cmd.file, ...cmd.args].map(shellQuote).join(' ').replace('127.0.0.1:0/', '127.0.0.1:<port>/');
  }
  return commands;
}

function toolVersion(tool) {
  if (tool === 'mixed') return `bench/lib/mixed-client.js on node ${process.version}`;
  if (tool === 'heavy') return `bench/lib/heavy-client.js on node ${process.version}`;
  if (tool === 'autocannon') {
    return `autocannon ${require(require.resolve('autocannon/package.json', { paths: [path.join(__dirname, '..')] })).version}`;
  }
  try {
    // wrk -v prints its version and exits non-zero.
    return execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0];
  } catch (err) {
    return String(err.stdout || 'wrk').split('\n')[0].trim();
  }
}

function writeResults(dir, { markdown, json, svg }) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.md'), markdown);
  fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'latest.svg'), svg);
}

function installSignalHandlers() {
  const bail = (signal) => {
    if (liveServer) {
      try { process.kill(-liveServer.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    log(`interrupted by ${signal}`);
    process.exit(130);
  };
  process.on('SIGINT', bail);
  process.on('SIGTERM', bail);
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

main().catch((err) => {
  if (liveServer) {
    try { process.kill(-liveServer.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
