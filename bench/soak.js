#!/usr/bin/env node
'use strict';
// Soak: about a million churned connections (`Connection: close`) against a
// 2-worker rcluster app whose workers are SIGKILLed along the way (the restart
// policy replaces them). After every segment of load the primary's open fds
// and resident memory are sampled once the load stops: they must stay flat.
// Loopback only, bounded by the target count and by --max-seconds.
// See `node bench/soak.js --help` and bench/README.md.

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { startServer, stopServer, sleep } = require('./lib/server');
const { runLoad } = require('./lib/load');
const { processGroupMembers, machineInfo } = require('./lib/proc');
const { eachFlag, numberFlag } = require('./lib/flags');

const CHAOS_SERVER = path.join(__dirname, 'chaos-server.js');

const HELP = `Usage: node bench/soak.js [options]

  --connections N    target of churned connections (default 1000000)
  --quick            --connections 100000
  --segment S        seconds of load between samples (default 10)
  --kill-every S     a SIGKILL of a random worker every S seconds of load (default 3)
  --max-seconds S    stop after this much load even if the target is not reached (default 600)
  --out DIR          where soak.md and soak.json go (default bench/results)
`;

function parseArgs(argv) {
  const opts = { connections: 1e6, segment: 10, killEvery: 3, maxSeconds: 600, out: path.join(__dirname, 'results') };
  let help = false;
  eachFlag(argv, (flag, value) => {
    const number = (min = 1) => numberFlag(flag, value(), min);
    switch (flag) {
      case '--help': case '-h': help = true; return true;
      case '--quick': opts.connections = 1e5; break;
      case '--connections': opts.connections = number(); break;
      case '--segment': opts.segment = number(); break;
      case '--kill-every': opts.killEvery = number(0.1); break;
      case '--max-seconds': opts.maxSeconds = number(); break;
      case '--out': opts.out = path.resolve(value()); break;
      default: throw new Error(`unknown option ${flag}\n${HELP}`);
    }
    return false;
  });
  if (help) return { help: HELP };
  return opts;
}

function hasWrk() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status === 1; // wrk --version exits 1 after printing its version
  }
}

/** The primary's open descriptors and resident memory (KiB), from /proc. */
function samplePrimary(pid) {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { fds, rssKiB };
}

/** SIGKILLs a random worker of the server every `everyMs` until stopped. */
function startKiller(server, everyMs) {
  let kills = 0;
  const timer = setInterval(() => {
    const workers = processGroupMembers(server.pid).filter((pid) => pid !== server.pid);
    if (workers.length === 0) return;
    const victim = workers[Math.floor(Math.random() * workers.length)];
    try {
      process.kill(victim, 'SIGKILL');
      kills++;
    } catch { /* it died meanwhile */ }
  }, everyMs);
  return { stop: () => { clearInterval(timer); return kills; } };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(opts.help);
    return;
  }
  const tool = hasWrk() ? 'wrk' : 'autocannon';
  const server = await startServer({ CHAOS_IMPL: 'rcluster', BENCH_WORKERS: '2' }, CHAOS_SERVER);
  const samples = [];
  let total = { requests: 0, errors: 0, timeouts: 0, non2xx: 0, kills: 0, seconds: 0 };
  try {
    await sleep(500);
    samples.push({ connections: 0, kills: 0, ...samplePrimary(server.pid) });
    while (total.requests < opts.connections && total.seconds < opts.maxSeconds) {
      const killer = startKiller(server, opts.killEvery * 1000);
      const r = await runLoad({ tool, port: server.port, seconds: opts.segment, connections: 50, threads: 2, churn: true });
      total.kills += killer.stop();
      total.requests += r.requests;
      total.errors += r.failures.errors;
      total.timeouts += r.failures.timeouts;
      total.non2xx += r.failures.non2xx;
      total.seconds += r.seconds;
      // Let replacements come up and in-flight connections drain before sampling.
      await sleep(1000);
      if (server.exited) throw new Error(`the primary exited: ${JSON.stringify(server.exited)}\n${server.stderr}`);
      const sample = { connections: total.requests, kills: total.kills, ...samplePrimary(server.pid) };
      samples.push(sample);
      process.stderr.write(`soak: ${sample.connections} connections, ${sample.kills} kills, ` +
        `primary ${sample.fds} fds, ${(sample.rssKiB / 1024).toFixed(1)} MiB\n`);
    }
  } finally {
    await stopServer(server);
  }
  const report = { tool, machine: machineInfo(), date: new Date().toISOString(), options: opts, total, samples };
  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(path.join(opts.out, 'soak.json'), JSON.stringify(report, null, 2) + '\n');
  fs.writeFileSync(path.join(opts.out, 'soak.md'), markdown(report));
  process.stdout.write(markdown(report));
}

function markdown({ tool, machine, date, total, samples }) {
  const first = samples[1] || samples[0];
  const last = samples[samples.length - 1];
  const lines = [
    '# Soak: churned connections with workers SIGKILLed along the way',
    '',
    `${date}, ${machine.nproc} cores, node ${machine.node}, load by ${tool} (-c50, Connection: close).`,
    `2 workers, rcluster with its restart policy; a random worker SIGKILLed every few seconds.`,
    '',
    `Total: ${total.requests} connections in ${total.seconds.toFixed(0)} s, ${total.kills} kills; ` +
      `socket errors ${total.errors}, timeouts ${total.timeouts}, non-2xx ${total.non2xx}.`,
    '',
    '| connections so far | kills | primary fds | primary RSS (MiB) |',
    '|---:|---:|---:|---:|',
    ...samples.map((s) => `| ${s.connections} | ${s.kills} | ${s.fds} | ${(s.rssKiB / 1024).toFixed(1)} |`),
    '',
    `After the first segment the primary held ${first.fds} fds and ${(first.rssKiB / 1024).toFixed(1)} MiB; ` +
      `at the end ${last.fds} fds and ${(last.rssKiB / 1024).toFixed(1)} MiB.`,
    '',
  ];
  return lines.join('\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n${err.stderrTail || ''}\n`);
  process.exit(1);
});
