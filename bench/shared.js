#!/usr/bin/env node
'use strict';
// The classic cluster article's visit counter, done its way and rcluster's:
//
// - ipc:    the primary keeps the count; every worker reports each visit over
//           Node's IPC (process.send) and the primary broadcasts the new total
//           to every worker (at most WINDOW visits of a worker unanswered, so
//           nothing piles up unmeasured);
// - shared: every worker calls cluster.shared.counter('visits').add().
//
// Each measurement is a fresh cluster of --workers workers running flat out
// for --duration seconds; the result is visits counted per second. Rounds
// alternate the two ways so slow drifts of the machine hit both alike.
//
//   node bench/shared.js [--rounds 3] [--duration 5] [--workers 2] [--out bench/results/shared]
//
// Writes <out>.json and <out>.md, and prints the table.
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const WINDOW = 64;

function parseArgs(argv) {
  const opts = { rounds: 3, duration: 5, workers: 2, out: path.join(__dirname, 'results', 'shared') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--help') {
      process.stdout.write('node bench/shared.js [--rounds N] [--duration S] [--workers N] [--out PATH]\n');
      process.exit(0);
    }
    if (!['--rounds', '--duration', '--workers', '--out'].includes(flag) || value === undefined) {
      throw new Error(`unknown flag or missing value: ${flag}`);
    }
    opts[flag.slice(2)] = flag === '--out' ? value : Number(value);
    i++;
  }
  for (const k of ['rounds', 'duration', 'workers']) {
    if (!(opts[k] > 0)) throw new Error(`--${k} must be a positive number`);
  }
  return opts;
}

// --- one measurement, run as its own cluster (BENCH_MODE set) ---
function runCluster() {
  const cluster = require('..');
  const mode = process.env.BENCH_MODE;
  const durationMs = Number(process.env.BENCH_DURATION) * 1000;
  const workers = Number(process.env.BENCH_WORKERS);
  if (cluster.isPrimary) {
    let visits = 0;
    let ready = 0;
    const all = [];
    for (let i = 0; i < workers; i++) {
      const w = cluster.fork();
      all.push(w);
      w.on('message', (msg) => {
        if (msg.cmd === 'visit') {
          // The article's primary: count, then tell every worker the total.
          visits++;
          for (const other of all) other.send({ cmd: 'total', total: visits, from: w.id });
        } else if (msg.cmd === 'ready' && ++ready === workers) {
          const start = mode === 'shared' ? cluster.shared.counter('visits').get() : visits;
          for (const x of all) x.send({ cmd: 'go' });
          const t0 = process.hrtime.bigint();
          setTimeout(() => {
            const end = mode === 'shared' ? cluster.shared.counter('visits').get() : visits;
            const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
            process.stdout.write(`${JSON.stringify({ mode, opsPerSec: (end - start) / seconds })}\n`);
            for (const x of all) x.process.kill('SIGKILL');
            process.exit(0);
          }, durationMs);
        }
      });
    }
  } else {
    let running = false;
    let unanswered = 0;
    let latestTotal = 0;
    const counter = mode === 'shared' ? cluster.shared.counter('visits') : null;
    process.on('message', (msg) => {
      if (msg.cmd === 'go') {
        running = true;
        if (mode === 'shared') sharedLoop();
        else ipcPump();
      } else if (msg.cmd === 'total') {
        latestTotal = msg.total;
        if (msg.from === cluster.worker.id) {
          unanswered--;
          ipcPump();
        }
      }
    });
    // As a server would: a burst of visits, then back to the event loop.
    function sharedLoop() {
      for (let i = 0; i < 1000; i++) latestTotal = counter.add();
      if (running) setImmediate(sharedLoop);
    }
    function ipcPump() {
      while (running && unanswered < WINDOW) {
        unanswered++;
        process.send({ cmd: 'visit' });
      }
    }
    process.send({ cmd: 'ready' });
  }
}

function measure(mode, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename], {
      env: { ...process.env, BENCH_MODE: mode, BENCH_DURATION: String(opts.duration), BENCH_WORKERS: String(opts.workers) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || line === undefined) return reject(new Error(`${mode} run failed (exit ${code}): ${out}`));
      resolve(JSON.parse(line).opsPerSec);
    });
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const results = { ipc: [], shared: [] };
  for (let round = 1; round <= opts.rounds; round++) {
    for (const mode of ['ipc', 'shared']) {
      const ops = await measure(mode, opts);
      results[mode].push(ops);
      process.stderr.write(`round ${round}: ${mode} ${Math.round(ops).toLocaleString('en')} visits/s\n`);
    }
  }
  const ipc = median(results.ipc);
  const shared = median(results.shared);
  const fmt = (x) => Math.round(x).toLocaleString('en');
  const md = [
    `Visit counter, ${opts.workers} workers flat out, ${opts.rounds} rounds of ${opts.duration} s (median):`,
    '',
    '| way | visits/s | vs the article |',
    '| --- | ---: | ---: |',
    `| IPC report + broadcast from the primary (the article) | ${fmt(ipc)} | 1× |`,
    `| \`cluster.shared.counter('visits').add()\` | ${fmt(shared)} | ${(shared / ipc).toFixed(0)}× |`,
    '',
  ].join('\n');
  process.stdout.write(md);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(`${opts.out}.json`, JSON.stringify({ opts, results, median: { ipc, shared } }, null, 2));
  fs.writeFileSync(`${opts.out}.md`, md);
}

if (process.env.BENCH_MODE) {
  runCluster();
} else {
  main().catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}
