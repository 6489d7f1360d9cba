#!/usr/bin/env node
'use strict';
// Chaos bench: connection-churn load against a 2-worker HTTP app while a
// killer SIGKILLs a random worker every 1-2 s, for rcluster (restart policy)
// and node:cluster (hand-written respawn), interleaved. Loopback only,
// bounded in time. See `node bench/chaos.js --help` and bench/README.md.
//
// Every request is one fresh connection (`Connection: close`) with a deadline;
// each outcome is counted: served, failed (by error code), timed out. Every
// worker keeps, in a file rewritten on every change, how many connections its
// JS holds without having finished their response; the killer reads that file
// right after the SIGKILL, so it knows exactly what the worker held when it
// died. Those requests are lost whatever the cluster does; anything failing
// beyond them was lost by the cluster.

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { startServer, stopServer, sleep } = require('./lib/server');
const { machineInfo } = require('./lib/proc');
const { eachFlag, numberFlag } = require('./lib/flags');

const CHAOS_SERVER = path.join(__dirname, 'chaos-server.js');
const IMPLS = {
  rcluster: 'rcluster, restart policy',
  node: "node:cluster, on('exit') fork",
};

const HELP = `Usage: node bench/chaos.js [options]

  --duration S       seconds of load per implementation, split over the rounds (default 30)
  --rounds N         segments per implementation, interleaved (default 3)
  --quick            --duration 8 --rounds 2
  --concurrency N    requests in flight (default 50); with --rate, the most in flight
  --rate R           open loop: R new requests a second, whatever the answers (default:
                     closed loop, --concurrency requests always in flight). At one rate
                     both implementations hold the same requests in progress, so their
                     losses per kill compare like for like; closed-loop, the faster one
                     holds more in progress and loses more per kill
  --kill-every A-B   a kill every A to B ms (default 1000-2000)
  --timeout MS       a request without a complete response by then timed out (default 5000)
  --seed N           seed of the killer's choices and intervals (default 1)
  --impls LIST       comma-separated, from: ${Object.keys(IMPLS).join(', ')} (default all)
  --out DIR          where chaos.md and chaos.json go (default bench/results)
`;

function parseArgs(argv) {
  const opts = {
    duration: 30, rounds: 3, concurrency: 50, rate: null, killMin: 1000, killMax: 2000,
    timeout: 5000, seed: 1, impls: Object.keys(IMPLS), out: path.join(__dirname, 'results'),
  };
  let help = false;
  eachFlag(argv, (flag, value) => {
    const number = (text, min) => numberFlag(flag, text, min);
    switch (flag) {
      case '--help': case '-h': help = true; return true;
      case '--quick': opts.duration = 8; opts.rounds = 2; break;
      case '--duration': opts.duration = number(value(), 1); break;
      case '--rounds': opts.rounds = Math.floor(number(value(), 1)); break;
      case '--concurrency': opts.concurrency = Math.floor(number(value(), 1)); break;
      case '--rate': opts.rate = number(value(), 1); break;
      case '--timeout': opts.timeout = number(value(), 100); break;
      case '--seed': opts.seed = Math.floor(number(value(), 0)); break;
      case '--out': opts.out = path.resolve(value()); break;
      case '--kill-every': {
        const m = /^(\d+)-(\d+)$/.exec(value());
        if (!m || Number(m[1]) > Number(m[2]) || Number(m[1]) < 100) throw new Error('--kill-every needs A-B in ms, 100 <= A <= B');
        opts.killMin = Number(m[1]);
        opts.killMax = Number(m[2]);
        break;
      }
      case '--impls':
        opts.impls = value().split(',');
        for (const impl of opts.impls) if (!IMPLS[impl]) throw new Error(`unknown implementation ${impl}`);
        break;
      default: throw new Error(`unknown option ${flag}\n\n${HELP}`);
    }
    return false;
  });
  return help ? { help: HELP } : { opts };
}

// mulberry32: a small seeded PRNG, so that every run kills on the same schedule.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// One request on a fresh connection. Resolves with the outcome, never rejects.
function request(port, timeout) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => finish(res.statusCode === 200 && body === 'ok' ? 'served' : `status ${res.statusCode}`));
      res.on('error', (err) => finish(err.code || err.message));
    });
    const timer = setTimeout(() => {
      finish('timeout');
      req.destroy();
    }, timeout);
    req.on('error', (err) => finish(err.code || err.message));
    req.end();
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Live workers of this server, from their held-<pid> files.
function workerPids(statsDir, killed) {
  return fs.readdirSync(statsDir)
    .map((name) => /^held-(\d+)$/.exec(name))
    .filter(Boolean)
    .map((m) => Number(m[1]))
    .filter((pid) => !killed.has(pid) && alive(pid))
    .sort((a, b) => a - b);
}

async function killer(server, opts, rand, deadline, kills) {
  const killed = new Set();
  const started = Date.now();
  for (;;) {
    await sleep(opts.killMin + Math.floor(rand() * (opts.killMax - opts.killMin + 1)));
    if (Date.now() >= deadline) return;
    const pids = workerPids(server.statsDir, killed);
    const pick = rand();
    if (pids.length === 0) continue;
    const pid = pids[Math.floor(pick * pids.length)];
    process.kill(pid, 'SIGKILL');
    killed.add(pid);
    // Dead now: the file holds what its JS had when the signal landed.
    const held = Number(fs.readFileSync(path.join(server.statsDir, `held-${pid}`), 'utf8').trim());
    kills.push({ atMs: Date.now() - started, pid, held, liveWorkers: pids.length });
  }
}

let liveServer = null; // killed on Ctrl-C, so that no server outlives the bench

async function segment(impl, seconds, seed, opts) {
  const server = await startServer({ CHAOS_IMPL: impl, BENCH_WORKERS: '2' }, CHAOS_SERVER);
  liveServer = server;
  const outcomes = {};
  const kills = [];
  let sent = 0;
  const started = Date.now();
  const deadline = started + seconds * 1000;
  let shed = 0;
  const count = (outcome) => { outcomes[outcome] = (outcomes[outcome] || 0) + 1; };
  try {
    let load;
    if (opts.rate === null) {
      const lane = async () => {
        while (Date.now() < deadline) {
          sent++;
          count(await request(server.port, opts.timeout));
        }
      };
      load = Promise.all(Array.from({ length: opts.concurrency }, lane));
    } else {
      // Open loop: the requests due by now start now, paced against the
      // start time; one that finds --concurrency in flight is shed (counted,
      // never sent), so that a stall cannot pile up without bound.
      load = (async () => {
        const pending = new Set();
        let due = 0;
        while (Date.now() < deadline) {
          due = Math.floor(((Date.now() - started) * opts.rate) / 1000);
          while (sent + shed < due) {
            if (pending.size >= opts.concurrency) {
              shed++;
              continue;
            }
            sent++;
            const p = request(server.port, opts.timeout).then((outcome) => { count(outcome); pending.delete(p); });
            pending.add(p);
          }
          await sleep(1);
        }
        await Promise.all(pending);
      })();
    }
    await Promise.all([load, killer(server, opts, random(seed), deadline, kills)]);
  } finally {
    liveServer = null;
    const leftovers = await stopServer(server);
    if (leftovers.length) log(`warning: pids ${leftovers.join(', ')} survived the stop`);
  }
  const served = outcomes.served || 0;
  const timedOut = outcomes.timeout || 0;
  const failed = Object.fromEntries(Object.entries(outcomes).filter(([k]) => k !== 'served' && k !== 'timeout'));
  const lost = timedOut + Object.values(failed).reduce((a, b) => a + b, 0);
  const held = kills.reduce((sum, k) => sum + k.held, 0);
  return {
    impl, seed, seconds: (Date.now() - started) / 1000, sent, shed, served, timedOut, failed, lost, kills, held,
    // Per segment, so that one segment's surplus of held requests cannot
    // hide another's losses.
    lostBeyondHeld: Math.max(0, lost - held),
  };
}

function total(segments) {
  const failed = {};
  for (const s of segments) for (const [code, n] of Object.entries(s.failed)) failed[code] = (failed[code] || 0) + n;
  const sum = (key) => segments.reduce((acc, s) => acc + s[key], 0);
  return {
    segments: segments.length, seconds: sum('seconds'), sent: sum('sent'), shed: sum('shed'), served: sum('served'),
    failed, timedOut: sum('timedOut'), lost: sum('lost'),
    kills: segments.reduce((acc, s) => acc + s.kills.length, 0),
    held: sum('held'),
    lostBeyondHeld: sum('lostBeyondHeld'),
  };
}

// Connections reset per kill: what the issue "lose fewer connections than
// node:cluster when a worker dies" compares, implementation against
// implementation in the same run.
function resetsPerKill(failed, kills) {
  return kills === 0 ? '-' : ((failed.ECONNRESET || 0) / kills).toFixed(2);
}

// Every request a kill cost, whatever the failure: resets, other errors and
// timeouts, per kill.
function lostPerKill(t) {
  return t.kills === 0 ? '-' : (t.lost / t.kills).toFixed(2);
}

function markdown({ meta, opts, totals, segments }) {
  const codes = (failed) => Object.entries(failed).map(([code, n]) => `${code} ${n}`).join(', ') || '0';
  const lines = [
    '# Chaos bench: workers SIGKILLed under connection churn',
    '',
    `${meta.date}, node ${meta.machine.node}, ${meta.machine.nproc} cores (${meta.machine.cpuModel}), ${meta.machine.kernel}.`,
    `Command: \`${meta.commandLine}\` (${Math.round(meta.wallSeconds)} s).`,
    '',
    `2 HTTP workers, each request waits 2-5 ms on a timer; ${opts.rate === null
      ? `${opts.concurrency} requests in flight (closed loop)`
      : `${opts.rate} new requests a second (open loop, at most ${opts.concurrency} in flight)`}, each on a fresh`,
    `connection (\`Connection: close\`), ${opts.timeout} ms deadline; a random worker SIGKILLed every`,
    `${opts.killMin}-${opts.killMax} ms (seed ${opts.seed}); ${opts.duration} s per implementation in ${opts.rounds} interleaved segments.`,
    '',
    '| implementation | requests | served | failed (by code) | timed out | kills | resets per kill | lost per kill | held by killed workers | lost beyond held |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const impl of opts.impls) {
    const t = totals[impl];
    lines.push(`| ${IMPLS[impl]} | ${t.sent}${t.shed ? ` (+${t.shed} shed)` : ''} | ${t.served} | ${codes(t.failed)} | ${t.timedOut} | ${t.kills} | ${resetsPerKill(t.failed, t.kills)} | ${lostPerKill(t)} | ${t.held} | ${t.lostBeyondHeld} |`);
  }
  lines.push(
    '',
    '- **held by killed workers**: connections whose response the killed worker\'s JS had not finished when',
    '  the SIGKILL landed (each worker rewrites this count on every change; the killer reads it after the',
    '  kill). No cluster can save these: the request was already in the application\'s hands. It is',
    '  an upper bound: a response written to the kernel just before the kill, whose \'finish\' had not',
    '  run yet, still reaches its client.',
    '- **resets per kill**: ECONNRESET failures divided by kills; **lost per kill**: every failed or',
    '  timed-out request divided by kills.',
    '- **shed** (open loop only): requests due while the most allowed were in flight, never sent.',
    '- **lost beyond held**: failed + timed out - held, at least 0 per segment, summed. Requests lost although',
    '  no application code had them yet: accepted by the primary and handed to a worker that died before',
    '  its JS took them.',
    '- rcluster respawns with `restart: { minDelay: 0 }`; node:cluster with `cluster.on(\'exit\', () => cluster.fork())`.',
    '- A segment lasts its share of the load time plus the tail: requests in flight at the end run to',
    '  completion or to their deadline, so a segment with timeouts runs up to one deadline longer.',
    '',
    '## Segments',
    '',
    '| # | implementation | s | requests | served | failed | timed out | kills | held | lost beyond held |',
    '| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  );
  segments.forEach((s, i) => {
    lines.push(`| ${i + 1} | ${s.impl} | ${s.seconds.toFixed(1)} | ${s.sent} | ${s.served} | ${codes(s.failed)} | ${s.timedOut} | ${s.kills.length} | ${s.held} | ${s.lostBeyondHeld} |`);
  });
  return `${lines.join('\n')}\n`;
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    log(err.message);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(parsed.help);
    return;
  }
  const opts = parsed.opts;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (liveServer) {
        try { process.kill(-liveServer.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      log(`interrupted by ${signal}`);
      process.exit(130);
    });
  }
  const started = Date.now();
  const perSegment = opts.duration / opts.rounds;
  const segments = [];
  for (let round = 0; round < opts.rounds; round++) {
    // A B, B A, A B, ...: neither implementation always goes first.
    const order = round % 2 === 0 ? opts.impls : [...opts.impls].reverse();
    for (const impl of order) {
      // The same seed for both implementations in a round: the same kill schedule.
      const s = await segment(impl, perSegment, opts.seed + round, opts);
      log(`[round ${round + 1}/${opts.rounds}] ${impl.padEnd(8)} ${s.sent} requests, ${s.served} served, ` +
        `failed ${JSON.stringify(s.failed)}, ${s.timedOut} timed out, ${s.kills.length} kills holding ${s.held}`);
      segments.push(s);
    }
  }
  const totals = Object.fromEntries(opts.impls.map((impl) => [impl, total(segments.filter((s) => s.impl === impl))]));
  const meta = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    commandLine: ['node', path.relative(process.cwd(), process.argv[1]), ...process.argv.slice(2)].join(' '),
    wallSeconds: (Date.now() - started) / 1000,
  };
  const md = markdown({ meta, opts, totals, segments });
  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(path.join(opts.out, 'chaos.md'), md);
  fs.writeFileSync(path.join(opts.out, 'chaos.json'), `${JSON.stringify({ meta, options: opts, totals, segments }, null, 2)}\n`);
  process.stdout.write(md);
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exit(1);
});
