#!/usr/bin/env node
'use strict';
// The `mixed` workload's load generator (bench/run.js runs it as its own
// process, like wrk or autocannon): `--rate` requests a second on average,
// open loop (Poisson arrivals: each starts on schedule whether or not earlier
// ones are answered), each on a fresh connection (Connection: close), one in
// ten at random to /slow, the rest to /fast. The randomness is seeded, so
// every config gets the same sequence; a fixed rhythm would let round-robin
// dodge the slow requests by luck of phase. bench/server.js's
// `mixed` handler spends ~100 ms (CPU, or a timer with BENCH_MIXED_SLOW=timer)
// on /slow and ~1 ms of CPU on /fast. What matters is the fast requests'
// latency: a policy that keeps dealing connections to a worker busy with a
// slow request makes fast ones queue behind it. The rate is kept well below
// what the workers can serve (a slow request is 100 ms of CPU): saturated,
// every worker is busy all the time and no policy can help.
//
// Prints one JSON line: { requests, seconds, fast: {...}, slow: {...},
// fastSamples: [...], errors, timeouts, non2xx }, latencies in ms; run.js
// pools fastSamples over rounds (a round has too few for a p99 of its own).

const http = require('node:http');
const { describe } = require('./latency_summary');

const REQUEST_TIMEOUT_MS = 10000;
const SLOW_SHARE = 0.1;
const SEED = 0x5eed;

// mulberry32: a small seeded PRNG, uniform in [0, 1).
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parse(argv) {
  const out = { port: 0, seconds: 5, rate: 20 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in out)) throw new Error(`unknown option ${argv[i]}`);
    out[name] = Number(argv[i + 1]);
  }
  if (!(out.port > 0)) throw new Error('--port is required');
  return out;
}

function request(port, path) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
      res.on('error', (err) => resolve({ error: err }));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => resolve({ error: err }));
  });
}

async function main() {
  const opts = parse(process.argv.slice(2));
  const fast = [];
  const slow = [];
  const counts = { errors: 0, timeouts: 0, non2xx: 0 };
  const random = prng(SEED);
  const started = performance.now();
  const end = started + opts.seconds * 1000;
  const pending = [];
  for (let due = started; ; ) {
    due += (-Math.log(1 - random()) / opts.rate) * 1000;
    if (due >= end) break;
    const isSlow = random() < SLOW_SHARE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(request(opts.port, isSlow ? '/slow' : '/fast').then((r) => {
      if (r.error) {
        if (r.error.code === 'ETIMEDOUT') counts.timeouts++;
        else counts.errors++;
        return;
      }
      if (r.status < 200 || r.status >= 300) counts.non2xx++;
      (isSlow ? slow : fast).push(r.ms);
    }));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({
    requests: fast.length + slow.length, seconds, fast: describe(fast), slow: describe(slow),
    fastSamples: fast.map((ms) => Math.round(ms * 100) / 100), ...counts,
  })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
