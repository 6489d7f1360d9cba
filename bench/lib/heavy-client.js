#!/usr/bin/env node
'use strict';
// The `heavy` workloads' load generator (bench/run.js runs it as its own
// process, like wrk): one slow request always in progress on some worker
// (`/slow`, 50 ms of CPU in bench/server.js's `heavy` handler, issued back
// to back with a 50 ms pause between them, each on a fresh connection), and
// fast hello requests on fresh connections (`Connection: close`), either open
// loop (`--mode open`: `--rate` a second on a fixed schedule, each starting
// on time whether or not earlier ones were answered) or closed loop (`--mode
// closed`: `--concurrency` clients, each sending its next request when the
// last is answered, as `wrk -c10 -H 'Connection: close'` does). `--slow 0`
// runs the same fast load without slow requests: the baseline a policy's
// fast p99 under slow requests is compared with.
//
// What matters is the fast requests' latency: every connection dealt to the
// worker busy with the slow request waits for the rest of it.
//
// Prints one JSON line in lib/mixed-client.js's shape: { requests, seconds,
// fast: {...}, slow: {...}, fastSamples: [...], errors, timeouts, non2xx },
// latencies in ms, plus `behindSlow`: the fast requests that the worker
// busy with a slow request answered only once that one was done (each
// answer names its worker), which is what routing decides, apart from how
// busy the machine is. HEAVY_DEBUG=1 prints on stderr when each of those
// started, in ms after its slow request.

const http = require('node:http');
const { describe } = require('./latency_summary');

const REQUEST_TIMEOUT_MS = 10000;

function parse(argv) {
  const out = { port: 0, seconds: 5, mode: 'open', rate: 1000, concurrency: 10, slow: 1, pause: 50 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in out)) throw new Error(`unknown option ${argv[i]}`);
    out[name] = name === 'mode' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!(out.port > 0)) throw new Error('--port is required');
  if (!['open', 'closed'].includes(out.mode)) throw new Error('--mode must be open or closed');
  return out;
}

function request(port, path) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        const ended = process.hrtime.bigint();
        resolve({ status: res.statusCode, ms: Number(ended - started) / 1e6, start: started, end: ended, worker: body.split(' ')[1] });
      });
      res.on('error', (err) => resolve({ error: err }));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => resolve({ error: err }));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const opts = parse(process.argv.slice(2));
  const fast = [];
  const slow = [];
  // [start, end, worker] of every answered request (hrtime ns).
  const fastSpans = [];
  const slowSpans = [];
  const counts = { errors: 0, timeouts: 0, non2xx: 0 };
  const record = (into) => (r) => {
    if (r.error) {
      if (r.error.code === 'ETIMEDOUT') counts.timeouts++;
      else counts.errors++;
      return;
    }
    if (r.status < 200 || r.status >= 300) counts.non2xx++;
    into.push(r.ms);
    (into === slow ? slowSpans : fastSpans).push([r.start, r.end, r.worker]);
  };
  const started = performance.now();
  const end = started + opts.seconds * 1000;
  const running = () => performance.now() < end;

  const slowLoop = async () => {
    while (opts.slow && running()) {
      record(slow)(await request(opts.port, '/slow'));
      await sleep(opts.pause);
    }
  };
  const pending = [];
  const openLoop = async () => {
    // Every request due by now is started: a late timer sends a small burst,
    // never fewer requests than the rate says.
    let sent = 0;
    while (running()) {
      const due = Math.floor(((performance.now() - started) / 1000) * opts.rate);
      for (; sent < due; sent++) pending.push(request(opts.port, '/fast').then(record(fast)));
      await sleep(1);
    }
  };
  const closedLoop = async () => {
    const client = async () => {
      while (running()) record(fast)(await request(opts.port, '/fast'));
    };
    await Promise.all(Array.from({ length: opts.concurrency }, client));
  };
  await Promise.all([slowLoop(), opts.mode === 'open' ? openLoop() : closedLoop()]);
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  // A fast request behind a slow one: sent while that one was in progress,
  // answered by its worker within 2 ms after it.
  const GRACE = 2_000_000n;
  const behindSlow = fastSpans.filter(([start, end, worker]) => slowSpans.some(([s, e, w]) =>
    w === worker && start >= s && start < e && end >= e && end <= e + GRACE)).length;
  if (process.env.HEAVY_DEBUG) {
    const offsets = fastSpans.flatMap(([start, end, worker]) => slowSpans.filter(([s, e, w]) =>
      w === worker && start >= s && start < e && end >= e && end <= e + GRACE).map(([s]) => Number(start - s) / 1e6));
    process.stderr.write(`behind-slow offsets ms: ${offsets.map((o) => o.toFixed(1)).join(' ')}\n`);
  }
  process.stdout.write(`${JSON.stringify({
    requests: fast.length + slow.length, seconds, fast: describe(fast), slow: describe(slow), behindSlow,
    fastSamples: fast.map((ms) => Math.round(ms * 100) / 100), ...counts,
  })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
