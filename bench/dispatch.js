#!/usr/bin/env node
'use strict';
// The dispatcher's ceiling: connections dispatched per second of the
// primary's CPU, for 2, 16 and 64 workers that answer and close at once
// (bench/run.js's `dispatch` workload: churn, rcluster RR with one and two
// dispatcher threads and node:cluster RR,
// interleaved rounds). One bench/run.js run per worker count, each writing to
// bench/results/dispatch/<N>-workers/, then one table of all of them.
// Options after `--` go to every bench/run.js run (e.g. -- --rounds 5).

const path = require('node:path');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');

const WORKER_COUNTS = [2, 16, 64];
const OUT = path.join(__dirname, 'results', 'dispatch');
const RUN = path.join(__dirname, 'run.js');

function main() {
  const extra = process.argv.slice(2).filter((a) => a !== '--');
  if (extra.includes('-h') || extra.includes('--help')) {
    process.stdout.write('Usage: node bench/dispatch.js [bench/run.js options, e.g. --rounds 3 --duration 5]\n'
      + `Runs the dispatch workload at ${WORKER_COUNTS.join(', ')} workers and prints connections dispatched per primary CPU-second.\n`);
    return;
  }
  const rows = [];
  for (const workers of WORKER_COUNTS) {
    const out = path.join(OUT, `${workers}-workers`);
    const args = [RUN, '--workloads', 'dispatch', '--configs', 'node-rr,rcluster-rr,rcluster-rr-2t', '--rounds', '3', '--workers', String(workers), '--out', out, ...extra];
    const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    if (run.status !== 0) {
      process.stderr.write(`bench/run.js with ${workers} workers exited with ${run.status ?? run.signal}\n`);
      process.exitCode = 1;
      continue;
    }
    const { summary } = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
    for (const row of summary) {
      if (row.rps) rows.push({ workers, label: row.label, rps: row.rps.median, us: row.primaryCpuUsPerConnection });
    }
  }
  const lines = ['| workers | config | req/s (median) | primary CPU-µs/conn | connections per primary CPU-second |', '| ---: | --- | ---: | ---: | ---: |'];
  for (const r of rows) {
    const perSecond = r.us ? Math.round(1e6 / r.us).toLocaleString('en-US') : 'n/a';
    lines.push(`| ${r.workers} | ${r.label} | ${Math.round(r.rps).toLocaleString('en-US')} | ${r.us ? r.us.toFixed(1) : 'n/a'} | ${perSecond} |`);
  }
  const table = `${lines.join('\n')}\n`;
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'latest.md'), table);
  process.stdout.write(table);
}

main();
