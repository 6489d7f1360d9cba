'use strict';
// Why one cluster is slower than another under the classic demo's overload
// (autocannon -c 1000 -p 10, the CPU loop per request): runs the load once
// per config and round and records, over time, what bench/run.js only
// summarizes (docs/DESIGN.md §13):
//
// - per worker: the connections it holds, what it serves, and how long its
//   event-loop turns are (bench/server.js's BENCH_TRACE);
// - the listening socket's accept queue (`ss`'s Recv-Q), sampled here;
// - the kernel's TCP counters over the run (`nstat`): retransmitted
//   segments, SYN retransmits, listen-queue overflows and drops.
//
//   node bench/demo-trace.js --configs node-rr,rcluster-rr --rounds 2 --out /tmp/trace
//
// Writes <out>.json (everything) and <out>.md (a summary per config and a
// per-second series of the first round), and prints the summary.

const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { CONFIGS } = require('./lib/options');
const { startServer, sampleServer, stopServer, sleep } = require('./lib/server');
const { runLoad } = require('./lib/load');

const NSTAT = ['TcpRetransSegs', 'TcpExtTCPSynRetrans', 'TcpExtListenOverflows', 'TcpExtListenDrops'];

function parseArgs(argv) {
  const opts = { configs: ['node-rr', 'rcluster-rr'], rounds: 1, seconds: 10, connections: 1000, pipelining: 10, out: 'bench/results/demo/trace', traceMs: 250 };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i].replace(/^--/, ''), argv[i + 1]];
    if (name === 'configs') opts.configs = value.split(',');
    else if (['rounds', 'seconds', 'connections', 'pipelining'].includes(name)) opts[name] = Number(value);
    else if (name === 'out') opts.out = value;
    else throw new Error(`unknown option --${name}`);
  }
  for (const c of opts.configs) if (!CONFIGS[c]) throw new Error(`unknown config ${c}`);
  return opts;
}

function nstat() {
  // -a: absolute values, -s: do not touch nstat's history file, -z: zeros too.
  const out = execFileSync('nstat', ['-asz', ...NSTAT], { encoding: 'utf8' });
  const values = {};
  for (const line of out.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (NSTAT.includes(name)) values[name] = Number(value);
  }
  return values;
}

// The listening socket's accept queue: for a LISTEN socket, ss's Recv-Q is
// the number of connections waiting to be accepted.
function acceptQueue(port) {
  try {
    const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[1]), 0);
  } catch {
    return null;
  }
}

async function measure(config, opts) {
  const server = await startServer({ ...CONFIGS[config].env, BENCH_HANDLER: 'cpu', BENCH_TRACE: String(opts.traceMs) });
  try {
    const queue = [];
    const sampler = setInterval(() => queue.push([Date.now(), acceptQueue(server.port)]), opts.traceMs);
    const before = nstat();
    const started = Date.now();
    const load = await runLoad({ tool: 'autocannon', port: server.port, seconds: opts.seconds, connections: opts.connections, pipelining: opts.pipelining });
    clearInterval(sampler);
    const after = nstat();
    await sleep(150);
    const sample = sampleServer(server);
    const tcp = Object.fromEntries(NSTAT.map((k) => [k, after[k] - before[k]]));
    return { config, started, load, tcp, queue, workers: sample.workers.map((w) => ({ id: w.id, connections: w.connections, requests: w.requests, trace: w.trace || [] })) };
  } finally {
    await stopServer(server);
  }
}

// One row per second of the run: per worker open connections, requests
// served in that second, longest loop delay; the accept queue.
function perSecond(m) {
  const rows = [];
  for (let s = 1; s <= Math.ceil((m.load.seconds || 10)) + 1; s++) {
    const until = m.started + s * 1000;
    const from = until - 1000;
    const cells = m.workers.map((w) => {
      const inside = w.trace.filter((r) => r[0] > from && r[0] <= until);
      const last = inside[inside.length - 1];
      const prev = w.trace.filter((r) => r[0] <= from).pop();
      if (!last) return null;
      return { open: last[1], reqs: last[3] - (prev ? prev[3] : 0), delayMax: Math.max(...inside.map((r) => r[4])) };
    });
    const q = m.queue.filter(([t]) => t > from && t <= until).map(([, n]) => n).filter((n) => n !== null);
    rows.push({ second: s, cells, acceptQueue: q.length ? Math.max(...q) : null });
  }
  return rows;
}

function median(values) {
  const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
}

function report(results, opts) {
  const lines = [`# Demo trace: autocannon -c ${opts.connections} -p ${opts.pipelining}, ${opts.seconds} s, CPU loop per request`, '',
    `Command: \`node bench/demo-trace.js --configs ${opts.configs.join(',')} --rounds ${opts.rounds} --seconds ${opts.seconds}\`, ${new Date().toISOString()}`, '',
    '| config | req/s | p50 | p99 | mean | errors+timeouts | conns served (w1/w2) | TCP retrans segs | SYN retrans | listen overflows |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const config of opts.configs) {
    const ms = results.filter((r) => r.config === config);
    const med = (f) => median(ms.map(f));
    lines.push(`| ${config} | ${Math.round(med((m) => m.load.rps))} | ${med((m) => m.load.latencyMs.p50)} | ${med((m) => m.load.latencyMs.p99)} | ${Math.round(med((m) => m.load.latencyMs.mean))} | ${med((m) => m.load.failures.errors + m.load.failures.timeouts)} | ${ms.map((m) => m.workers.map((w) => w.connections).join('/')).join(', ')} | ${med((m) => m.tcp.TcpRetransSegs)} | ${med((m) => m.tcp.TcpExtTCPSynRetrans)} | ${med((m) => m.tcp.TcpExtListenOverflows)} |`);
  }
  for (const config of opts.configs) {
    const m = results.find((r) => r.config === config);
    if (!m) continue;
    lines.push('', `## ${config}, round 1, per second`, '', '| s | open conns (w1/w2) | req/s (w1/w2) | timer lateness ms (w1/w2) | accept queue |', '| --- | --- | --- | --- | --- |');
    for (const row of perSecond(m)) {
      const f = (k) => row.cells.map((c) => (c ? c[k] : '-')).join('/');
      lines.push(`| ${row.second} | ${f('open')} | ${f('reqs')} | ${f('delayMax')} | ${row.acceptQueue ?? '-'} |`);
    }
  }
  return lines.join('\n') + '\n';
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const results = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const config of opts.configs) {
      const m = await measure(config, opts);
      m.round = round;
      results.push(m);
      process.stderr.write(`round ${round} ${config}: ${Math.round(m.load.rps)} req/s, p50 ${m.load.latencyMs.p50} p99 ${m.load.latencyMs.p99} mean ${Math.round(m.load.latencyMs.mean)} ms, retrans ${m.tcp.TcpRetransSegs}, conns ${m.workers.map((w) => w.connections).join('/')}\n`);
    }
  }
  fs.mkdirSync(require('node:path').dirname(opts.out), { recursive: true });
  fs.writeFileSync(`${opts.out}.json`, JSON.stringify({ opts, results }));
  const md = report(results, opts);
  fs.writeFileSync(`${opts.out}.md`, md);
  process.stdout.write(md);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  });
}

module.exports = { report, perSecond };
