#!/usr/bin/env node
'use strict';
// What the kernel alone costs a dispatching primary per connection, beside
// what rcluster's dispatcher costs, in one interleaved run: the floor is
// core/examples/dispatch_floor.rs (accept4 until EAGAIN, up to 8 descriptors
// per SCM_RIGHTS message to child processes, close its copy; no
// acknowledgements, no window, no policy), rcluster is bench/server.js under
// rcluster RR. Both serve `wrk -t1 -c50 -H 'Connection: close'` churn on
// loopback with 2 children/workers; each round measures the floor, then
// rcluster, and reports the primary's CPU (utime+stime of all its threads,
// /proc/<pid>/stat) per connection over the measured window.
//
//   node bench/dispatch-floor.js [--rounds 5] [--duration 5] [--workers 2]
//
// Writes bench/results/dispatch-floor/latest.md.

const path = require('node:path');
const fs = require('node:fs');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const { cpuSeconds } = require('./lib/proc');
const { eachFlag, numberFlag } = require('./lib/flags');
const { median } = require('./lib/summary');

const ROOT = path.join(__dirname, '..');
const OUT = path.join(__dirname, 'results', 'dispatch-floor');
const WARMUP_S = 1;

// Starts a server that prints `READY <port>`; resolves { child, port }.
function start(command, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${command} printed no READY line in 20 s`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`${command} exited (${code ?? signal}) before READY`)));
  });
}

function stop(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch { /* gone */ }
}

function wrk(port, seconds) {
  const r = spawnSync('wrk', ['-t1', '-c50', `-d${seconds}s`, '-H', 'Connection: close', `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const requests = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
  const errors = /Socket errors: (.*)/.exec(r.stdout)?.[1] ?? 'none';
  return { requests, errors };
}

async function measure(kind, workers, seconds) {
  const server = kind === 'floor'
    ? await start(path.join(ROOT, 'target', 'release', 'examples', 'dispatch_floor'), ['0', String(workers)], {})
    : await start(process.execPath, [path.join(__dirname, 'server.js')], { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'rr', BENCH_WORKERS: String(workers) });
  try {
    wrk(server.port, WARMUP_S);
    const before = cpuSeconds(server.child.pid);
    const load = wrk(server.port, seconds);
    const after = cpuSeconds(server.child.pid);
    return { kind, requests: load.requests, errors: load.errors, rate: load.requests / seconds, usPerConn: ((after - before) * 1e6) / load.requests };
  } finally {
    stop(server.child);
  }
}

async function main() {
  let rounds = 5;
  let seconds = 5;
  let workers = 2;
  eachFlag(process.argv.slice(2), (flag, value) => {
    if (flag === '--rounds') rounds = numberFlag(flag, value(), 1);
    else if (flag === '--duration') seconds = numberFlag(flag, value(), 1);
    else if (flag === '--workers') workers = numberFlag(flag, value(), 1);
    else throw new Error(`unknown flag ${flag} (--rounds N, --duration S, --workers N)`);
  });
  execFileSync('cargo', ['build', '--quiet', '--release', '-p', 'rcluster-core', '--example', 'dispatch_floor'], { cwd: ROOT, stdio: 'inherit' });
  const rows = [];
  for (let round = 1; round <= rounds; round++) {
    for (const kind of ['floor', 'rcluster']) {
      const m = await measure(kind, workers, seconds);
      rows.push({ round, ...m });
      process.stderr.write(`round ${round} ${kind}: ${Math.round(m.rate)} conn/s, ${m.usPerConn.toFixed(1)} µs/conn (socket errors: ${m.errors})\n`);
    }
  }
  const of = (kind) => rows.filter((r) => r.kind === kind);
  const floorUs = median(of('floor').map((r) => r.usPerConn));
  const rclusterUs = median(of('rcluster').map((r) => r.usPerConn));
  const lines = [
    `Churn, wrk -t1 -c50 -d${seconds}s, Connection: close, ${workers} children/workers, ${rounds} interleaved rounds; primary CPU-µs per connection.`,
    '',
    '| primary | conn/s (median) | CPU-µs/conn (median) | per round |',
    '| --- | ---: | ---: | --- |',
    `| floor: accept4 + SCM_RIGHTS (≤ 8 per message) + close | ${Math.round(median(of('floor').map((r) => r.rate))).toLocaleString('en-US')} | ${floorUs.toFixed(1)} | ${of('floor').map((r) => r.usPerConn.toFixed(1)).join(', ')} |`,
    `| rcluster RR | ${Math.round(median(of('rcluster').map((r) => r.rate))).toLocaleString('en-US')} | ${rclusterUs.toFixed(1)} | ${of('rcluster').map((r) => r.usPerConn.toFixed(1)).join(', ')} |`,
    '',
    `rcluster / floor: ${(rclusterUs / floorUs).toFixed(2)}×`,
    '',
  ];
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'latest.md'), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
