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
// Then messages between two workers, Node's IPC relayed by the primary's JS
// (worker -> primary -> worker, as the article does it) against cluster.bus
// (relayed by the dispatcher thread):
// - latency: one request at a time, A asks B and waits for the answer; round
//   trips per second and the mean round trip;
// - throughput: A sends as fast as B acknowledges (every 64 messages, at
//   most 1024 unacknowledged); messages per second;
// - busy: latency again while the primary's JS is busy half the time (10 ms
//   of work every 20 ms), as a primary doing its own work would be.
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

// --- messages between two workers (BENCH_MODE msg-<latency|throughput>-<ipc|bus>) ---
function runMessages() {
  const cluster = require('..');
  const [, kind, way] = process.env.BENCH_MODE.split('-');
  const durationMs = Number(process.env.BENCH_DURATION) * 1000;
  if (cluster.isPrimary) {
    if (kind === 'busy') {
      setInterval(() => {
        const until = Date.now() + 10;
        while (Date.now() < until);
      }, 20);
    }
    const a = cluster.fork({ ROLE: 'a' });
    const b = cluster.fork({ ROLE: 'b' });
    const byId = { [a.id]: a, [b.id]: b };
    let ready = 0;
    for (const w of [a, b]) {
      w.on('message', (msg) => {
        // The article's relay: the primary's JS passes every message on.
        if (msg.to !== undefined) byId[msg.to].send(msg);
        else if (msg.cmd === 'ready' && ++ready === 2) {
          a.send({ cmd: 'go', peer: b.id, durationMs });
          b.send({ cmd: 'peer', peer: a.id });
        } else if (msg.cmd === 'result') {
          process.stdout.write(`${JSON.stringify({ mode: process.env.BENCH_MODE, ...msg.result })}\n`);
          a.process.kill('SIGKILL');
          b.process.kill('SIGKILL');
          process.exit(0);
        }
      });
    }
    return;
  }
  const bus = cluster.bus;
  let peer = 0;
  const me = cluster.worker.id;
  // B's side: echo requests, count messages and acknowledge every 64.
  let received = 0;
  const ack = (n) => (way === 'bus' ? bus.send(peer, 'ack', n) : process.send({ to: peer, t: 'ack', n }));
  const onMessage = (t, data) => {
    if (t === 'echo') {
      if (way === 'bus') return; // answered by respond()
      process.send({ to: peer, t: 'echoed', data });
    } else if (t === 'msg') {
      received++;
      if (received % 64 === 0) ack(received);
    }
  };
  bus.respond('echo', (data) => data);
  bus.on('msg', () => onMessage('msg'));
  let waiter = null;
  let acked = 0;
  bus.on('ack', (n) => { acked = n; pump(); });
  process.on('message', (msg) => {
    if (msg.cmd === 'peer') peer = msg.peer;
    else if (msg.cmd === 'go') {
      peer = msg.peer;
      if (kind === 'latency' || kind === 'busy') latency(msg.durationMs);
      else throughput(msg.durationMs);
    } else if (msg.t === 'echoed') waiter(msg.data);
    else if (msg.t === 'ack') { acked = msg.n; pump(); }
    else if (msg.t !== undefined) onMessage(msg.t, msg.data);
  });
  let sent = 0;
  let running = false;
  function pump() {
    while (running && sent - acked < 1024) {
      sent++;
      if (way === 'bus') bus.send(peer, 'msg', sent);
      else process.send({ to: peer, t: 'msg', data: sent });
    }
  }
  async function latency(ms) {
    const end = Date.now() + ms;
    let trips = 0;
    const t0 = process.hrtime.bigint();
    while (Date.now() < end) {
      if (way === 'bus') await bus.request(peer, 'echo', trips);
      else await new Promise((resolve) => { waiter = resolve; process.send({ to: peer, t: 'echo', data: trips, from: me }); });
      trips++;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.send({ cmd: 'result', result: { perSec: trips / seconds, meanUs: (seconds / trips) * 1e6 } });
  }
  function throughput(ms) {
    running = true;
    const t0 = process.hrtime.bigint();
    pump();
    setTimeout(() => {
      running = false;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      process.send({ cmd: 'result', result: { perSec: acked / seconds } });
    }, ms);
  }
  process.send({ cmd: 'ready' });
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

function measure(mode, opts, field = 'opsPerSec') {
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
      const result = JSON.parse(line);
      resolve(field === null ? result : result[field]);
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
  const messages = {};
  for (let round = 1; round <= opts.rounds; round++) {
    for (const kind of ['latency', 'throughput', 'busy']) {
      for (const way of ['ipc', 'bus']) {
        const mode = `msg-${kind}-${way}`;
        const r = await measure(mode, opts, null);
        (messages[mode] ??= []).push(r);
        process.stderr.write(`round ${round}: ${mode} ${fmt(r.perSec)}/s${r.meanUs ? `, ${r.meanUs.toFixed(1)} µs per round trip` : ''}\n`);
      }
    }
  }
  const m = (mode, key = 'perSec') => median(messages[mode].map((r) => r[key]));
  const md = [
    `Visit counter, ${opts.workers} workers flat out, ${opts.rounds} rounds of ${opts.duration} s (median):`,
    '',
    '| way | visits/s | vs the article |',
    '| --- | ---: | ---: |',
    `| IPC report + broadcast from the primary (the article) | ${fmt(ipc)} | 1× |`,
    `| \`cluster.shared.counter('visits').add()\` | ${fmt(shared)} | ${(shared / ipc).toFixed(0)}× |`,
    '',
    'Messages between two workers (median):',
    '',
    '| | Node IPC through the primary\'s JS | `cluster.bus` | bus vs IPC |',
    '| --- | ---: | ---: | ---: |',
    `| round trips/s (one at a time) | ${fmt(m('msg-latency-ipc'))} | ${fmt(m('msg-latency-bus'))} | ${(m('msg-latency-bus') / m('msg-latency-ipc')).toFixed(2)}× |`,
    `| mean round trip (µs) | ${m('msg-latency-ipc', 'meanUs').toFixed(1)} | ${m('msg-latency-bus', 'meanUs').toFixed(1)} | |`,
    `| messages/s (windowed) | ${fmt(m('msg-throughput-ipc'))} | ${fmt(m('msg-throughput-bus'))} | ${(m('msg-throughput-bus') / m('msg-throughput-ipc')).toFixed(2)}× |`,
    `| round trips/s, primary's JS busy half the time | ${fmt(m('msg-busy-ipc'))} | ${fmt(m('msg-busy-bus'))} | ${(m('msg-busy-bus') / m('msg-busy-ipc')).toFixed(2)}× |`,
    `| mean round trip (µs), primary busy | ${m('msg-busy-ipc', 'meanUs').toFixed(1)} | ${m('msg-busy-bus', 'meanUs').toFixed(1)} | |`,
    '',
  ].join('\n');
  process.stdout.write(md);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(`${opts.out}.json`, JSON.stringify({ opts, results, messages, median: { ipc, shared } }, null, 2));
  fs.writeFileSync(`${opts.out}.md`, md);
}

if (process.env.BENCH_MODE?.startsWith('msg-')) {
  runMessages();
} else if (process.env.BENCH_MODE) {
  runCluster();
} else {
  main().catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}
