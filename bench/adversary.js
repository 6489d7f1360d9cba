'use strict';
// The attacks of __test__/adversary/, measured: the requests/s another
// listener (or the app's other workers) answers with and without each
// attack, interleaved in the same run, several rounds; prints medians and
// their ratio, then the CPU the primary (and the attacker) took in each
// phase and what the attack did. Loopback, bounded (about 4 minutes with the
// defaults), stops by itself, kills what it started.
//
//   node bench/adversary.js [rounds=5] [seconds per measurement=2] [--only proxy,sticky,...]
//
// proxy:     1,200 clients (800 silent, 400 half a PROXY header) on one
//            listener of a routing: { proxyProtocol } cluster; measured: the
//            other listener (well-formed PROXY clients, 8 at a time).
// sticky:    the same with SCHED_STICKY and routing: { sticky: { cookie } }.
// health:    1,100 idle connections to `rcluster --health`; measured: the app.
// spin:      a worker (which serves no HTTP) blocks its event loop and sends
//            nothing: the cost of a worker's CPU use alone, the floor of the
//            flood scenarios below on a machine with few cores.
// bus:       a worker (which serves no HTTP) writes raw bus records in a loop,
//            its event loop blocked: null and topic-'error' payloads to the
//            primary, reserved-topic broadcasts to every worker; measured: the
//            2 other workers.
// bus-flood: a worker (which serves no HTTP) sends to ever-new peer ids that
//            do not exist, its event loop blocked so that it reads none of
//            the answers; measured: the 2 other workers; also the primary's RSS.
// shm:       a worker (which serves no HTTP) corrupts the shared memory
//            region every 300 ms (longer than the 50 ms lock wait), in
//            turn: every counter name length, the write lock of every table
//            slot (naming the victim, a live pid), random bytes over every
//            slot, zeroes over every slot; meanwhile the primary and the
//            victim worker call every cluster.shared API every 10 ms (in both
//            phases); measured: the victim and a third worker. The region is
//            zeroed after each attack, so every baseline starts sound.
// redis:     a raw Redis publisher (another process) floods the bridge's
//            channels with null, topic-'error' broadcasts and sends, 1,100
//            counter names, hostile JSON values and mutated messages, 64 in
//            flight; measured: the 2 workers of the machine it targets.
//            Skipped when redis-server is not installed.
// control:   another process keeps 3,000 idle connections to the `rcluster`
//            command's control socket (re-opened every second as the primary
//            closes them) and sends one 24 MiB line without a newline after
//            another (the first before the idle connections; then 100 a
//            second at most: while the idle connections hold every slot, a
//            line is refused at once); measured: the app's 2 workers.
//
// The sustained attackers (redis, control) run in a child process (this
// script with --attacker), so that they do not take the measuring client's
// event loop; the bus and shm attackers are workers of the cluster measured.
const path = require('node:path');
const fs = require('node:fs');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const { redisServerPath, startRedisServer } = require('../__test__/helpers/redis-server');
const SCENARIOS = ['proxy', 'sticky', 'health', 'spin', 'bus', 'bus-flood', 'shm', 'redis', 'control'];
const CONCURRENCY = 8;
const PRIMARY = 0;
const BROADCAST = 0xFFFFFFFF;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Processes started here that are not process groups of the test helpers
// (those kill their own groups on exit): redis-server, attackers.
const children = new Set();
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Gone.
    }
  }
});

function parseArgs(argv) {
  const positional = [];
  let only = SCENARIOS;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only' || a.startsWith('--only=')) {
      const list = a === '--only' ? argv[++i] : a.slice('--only='.length);
      only = String(list ?? '').split(',').filter(Boolean);
      const unknown = only.filter((s) => !SCENARIOS.includes(s));
      if (unknown.length > 0 || only.length === 0) usage(`unknown scenario ${unknown.join(',') || '(none given)'}`);
    } else if (a === '--help' || a === '-h') {
      usage();
    } else if (/^\d+(\.\d+)?$/.test(a)) {
      positional.push(Number(a));
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  const [rounds = 5, seconds = 2] = positional;
  if (!(rounds >= 1 && seconds > 0)) usage('rounds must be at least 1, seconds more than 0');
  return { rounds: Math.floor(rounds), seconds, only };
}

function usage(error) {
  const text = `usage: node bench/adversary.js [rounds=5] [seconds=2] [--only ${SCENARIOS.join(',')}]`;
  if (error) {
    console.error(`${error}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

// ---------------------------------------------------------------------------
// Attackers run as a child process: `node bench/adversary.js --attacker
// <kind> <json>`. Each stops after `ms` (or when its parent goes away) and
// prints one JSON line of what it did.

async function redisFlood({ url, ms, machine }) {
  const Redis = require('ioredis');
  const { rng, mutate, hostileValue } = require('../__test__/helpers/mutator');
  const peer = new Redis(url, { maxRetriesPerRequest: 1 });
  const PEER = '12345678';
  const r = rng();
  const good = [{ m: PEER, f: 1, k: 'b', t: 'ping', d: 'x' }, { m: PEER, f: 'agent', k: 's', to: machine, tg: 'primary', t: 'ping', d: 1 }];
  const manyNames = JSON.stringify({ m: PEER, c: Array.from({ length: 1100 }, (_, i) => [`peer-${i}`, i]) });
  // One message of the mix, by its number.
  const message = (i, target) => {
    switch (i % 8) {
      case 0: return ['rcluster:bus', 'null'];
      case 1: return ['rcluster:counters', 'null'];
      case 2: return ['rcluster:bus', JSON.stringify({ m: PEER, f: 1, k: 'b', t: r.pick(['error', 'newListener', 'removeListener']), d: { boom: 1 } })];
      case 3: return ['rcluster:bus', JSON.stringify({ m: PEER, f: 1, k: 's', to: target, tg: r.pick(['primary', '1']), t: 'error', d: { boom: 1 } })];
      case 4: return ['rcluster:counters', manyNames];
      case 5: return [r.pick(['rcluster:bus', 'rcluster:counters']), JSON.stringify(hostileValue(r)) ?? 'undefined'];
      default: return [r.pick(['rcluster:bus', 'rcluster:counters']), mutate(r, Buffer.from(JSON.stringify(r.pick(good)))).toString('utf8')];
    }
  };
  const until = Date.now() + ms;
  let sent = 0;
  let failed = 0;
  while (Date.now() < until) {
    await Promise.all(Array.from({ length: 64 }, () => {
      const [channel, text] = message(sent++, machine);
      return peer.publish(channel, text).catch(() => {
        failed++;
      });
    }));
  }
  peer.disconnect();
  return { published: sent, failed };
}

async function controlFlood({ control, ms, idle = 3000 }) {
  const until = Date.now() + ms;
  const open = new Set();
  let connects = 0;
  let closedByPrimary = 0;
  let refused = 0;
  let lines = 0;
  let answered = 0;
  let lineBytes = 0;
  let finished = false;
  // Tops up to `idle` connections, in batches of 100 (a unix socket's
  // backlog refuses, EAGAIN, what it cannot queue): at most `idle` connects.
  const topUp = async () => {
    for (let missing = idle - open.size; missing > 0 && Date.now() < until; missing -= 100) {
      const n = Math.min(100, missing);
      await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
        const s = net.connect(control);
        connects++;
        open.add(s);
        s.on('error', () => {});
        s.on('connect', () => {
          s.wasConnected = true;
          resolve();
        });
        s.on('close', () => {
          if (open.delete(s) && !finished) {
            if (s.wasConnected) closedByPrimary++;
            else refused++;
          }
          resolve();
        });
      })));
    }
  };
  // One 24 MiB line without a newline after another, each written as fast
  // as the primary reads it (as the attack test does), until it answers or
  // closes (at once when the idle connections hold every slot).
  let firstLineDone;
  const firstLine = new Promise((resolve) => {
    firstLineDone = resolve;
  });
  const longLines = async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    while (Date.now() < until) {
      lines++;
      const reply = await new Promise((resolve) => {
        const s = net.connect(control);
        let text = '';
        let sent = 0;
        const more = (err) => {
          if (err || text !== '' || s.destroyed || sent >= 24 * 1024 * 1024 || Date.now() >= until) return;
          if (sent > 0) lineBytes += chunk.length;
          sent += chunk.length;
          s.write(chunk, more);
        };
        s.setEncoding('utf8');
        s.on('data', (d) => {
          text += d;
          s.destroy();
        });
        s.on('error', () => {});
        const timer = setTimeout(() => s.destroy(), Math.max(0, until - Date.now()) + 100);
        s.on('close', () => {
          clearTimeout(timer);
          resolve(text);
        });
        s.on('connect', more);
      });
      if (reply !== '') answered++;
      firstLineDone();
      // A line refused at once (every slot held) is retried 100 times a
      // second, not in a tight loop: the primary is attacked, not this CPU.
      await sleep(10);
    }
  };
  // Every second, re-opens what the primary closed.
  const idleLoop = async () => {
    // The first line gets a slot: the idle connections take all the others.
    await Promise.race([firstLine, sleep(1000)]);
    while (Date.now() < until) {
      const next = Date.now() + 1000;
      await topUp();
      await sleep(Math.min(next, until) - Date.now());
    }
  };
  await Promise.all([idleLoop(), longLines()]);
  finished = true;
  for (const s of open) s.destroy();
  return { idleConnects: connects, idleClosedByPrimary: closedByPrimary, idleRefused: refused, lines, linesAnswered: answered, lineMiBWritten: Math.round(lineBytes / 2 ** 20) };
}

async function attackerMain(kind, json) {
  // The parent went away: so does the attacker.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  const args = JSON.parse(json);
  const result = kind === 'redis' ? await redisFlood(args) : await controlFlood(args);
  const { user, system } = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ ...result, attackerCpuS: (user + system) / 1e6 })}\n`);
  process.exit(0);
}

/** Starts an attacker child; `.done` resolves with its JSON line (or { error }). */
function startAttacker(kind, args) {
  const child = track(spawn(process.execPath, [__filename, '--attacker', kind, JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  }));
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d) => {
    err = (err + d).slice(-2000);
  });
  const done = new Promise((resolve) => child.once('exit', (code, signal) => {
    try {
      resolve(JSON.parse(out.trim().split('\n').pop()));
    } catch {
      resolve({ error: `attacker ${kind} exited (${code}, ${signal}): ${err.trim()}` });
    }
  }));
  // Bounded: an attacker still there 20 s after its time is killed.
  const timer = setTimeout(() => child.kill('SIGKILL'), args.ms + 20000);
  done.then(() => clearTimeout(timer));
  return { child, done };
}

// ---------------------------------------------------------------------------
// Measuring.

let ROUNDS;
let SECONDS;

async function rate(port, make, tally, seconds = SECONDS) {
  const { request } = require('../__test__/fixtures/adversary/stage-attack');
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  let slowest = 0;
  const lane = async () => {
    for (let i = 0; Date.now() < until; i++) {
      try {
        const r = await request(port, { ...make(i), timeout: 5000 });
        done++;
        slowest = Math.max(slowest, r.ms);
        if (tally) tally.set(r.body, (tally.get(r.body) ?? 0) + 1);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return { rps: done / seconds, failed, slowest };
}

/** CPU seconds (user + system) of process `pid` so far, or NaN. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Resident memory of process `pid`, in MiB, or NaN. */
function rssMiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

/** rate(), with the CPU share (% of one core) each of `pids` ({name: pid}) took meanwhile. */
async function phase(port, make, pids, tally) {
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const t0 = process.hrtime.bigint();
  const r = await rate(port, make, tally);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, ((cpuSeconds(pid) - cpu0[k]) / wall) * 100]));
  return { ...r, cpu };
}

// Totals of facts over rounds (the highest, for a `slowest...`).
function add(totals, facts) {
  for (const [k, v] of Object.entries(facts ?? {})) {
    if (typeof v === 'number') totals[k] = k.startsWith('slowest') ? Math.max(totals[k] ?? 0, v) : (totals[k] ?? 0) + v;
    else if (v && typeof v === 'object') totals[k] = add(totals[k] ?? {}, v);
    else if (v !== undefined) totals[k] = v;
  }
  return totals;
}

const describe = (facts) => Object.entries(facts).map(([k, v]) =>
  `${k} ${v && typeof v === 'object' ? `{${describe(v) || 'none'}}` : typeof v === 'number' ? Math.round(v * 10) / 10 : v}`).join(', ');

/**
 * Half a second of the client unmeasured (the app's code gets compiled),
 * then rounds of: `background` + the client without the attack, then
 * `attack` (whose close() may resolve with facts to total), `background` +
 * the client again. `background()` (if any) starts work the app does in both
 * phases and resolves with its facts when done; `pid` is the primary's,
 * `pids` ({name: pid}) other processes whose CPU is reported.
 */
async function measure(name, { target, make = () => ({}), attack, background, pid, pids = {}, tally = false, extra }) {
  const base = [];
  const hit = [];
  const watched = { primary: pid, ...pids };
  const cpu = { without: [], with: [] };
  const served = { without: new Map(), with: new Map() };
  const bg = { without: {}, with: {} };
  const attackFacts = {};
  let failed = 0;
  let slowest = 0;
  await rate(target, make, null, 0.5);
  for (let round = 0; round < ROUNDS; round++) {
    let work = background?.();
    const b = await phase(target, make, watched, tally && served.without);
    add(bg.without, await work);
    base.push(b.rps);
    cpu.without.push(b.cpu);
    const held = await attack(round);
    work = background?.();
    const r = await phase(target, make, watched, tally && served.with);
    add(bg.with, await work);
    hit.push(r.rps);
    cpu.with.push(r.cpu);
    failed += r.failed;
    slowest = Math.max(slowest, r.slowest);
    add(attackFacts, await held.close());
    await sleep(1000);
  }
  const row = {
    name,
    without: median(base),
    with: median(hit),
    ratio: median(hit) / median(base),
    failed,
    slowest: Math.round(slowest),
  };
  console.log(`${name.padEnd(9)} without ${row.without.toFixed(0).padStart(5)} req/s  with ${row.with.toFixed(0).padStart(5)} req/s  ratio ${row.ratio.toFixed(2)}  failed ${failed}  slowest ${row.slowest} ms  (medians of ${ROUNDS})`);
  const share = (phaseCpu, k) => median(phaseCpu.map((c) => c[k])).toFixed(0);
  const lines = [`CPU, % of one core, without/with (medians): ${Object.keys(watched).map((k) => `${k} ${share(cpu.without, k)}/${share(cpu.with, k)}`).join(', ')}`];
  if (Object.keys(attackFacts).length > 0) lines.push(`attack, over ${ROUNDS} rounds: ${describe(attackFacts)}`);
  if (tally) {
    const by = (m) => [...m].sort().map(([body, n]) => `${JSON.stringify(body)} ${n}`).join(', ');
    lines.push(`answered by, over ${ROUNDS} rounds: without ${by(served.without)}; with ${by(served.with)}`);
  }
  if (background) lines.push(`app's own work, over ${ROUNDS} rounds: without ${describe(bg.without)}; with ${describe(bg.with)}`);
  if (extra) lines.push(await extra());
  for (const line of lines) console.log(`          ${line}`);
  return row;
}

// ---------------------------------------------------------------------------
// Scenarios.

async function stageScenario(name, env, partial, make) {
  const { ClusterProcess } = require('../__test__/helpers/run-cluster');
  const { holdConnections } = require('../__test__/fixtures/adversary/stage-attack');
  const c = new ClusterProcess('adversary/stage-cluster.js', { env });
  try {
    const { ports } = await c.waitFor('ready', { timeout: 20000 });
    const [attacked, other] = ports;
    return await measure(name, {
      target: other,
      make,
      pid: c.pid,
      attack: async () => {
        const silent = await holdConnections(attacked, 800);
        const halves = await holdConnections(attacked, 400, () => partial);
        return { close: () => { silent.close(); halves.close(); } };
      },
    });
  } finally {
    await c.kill();
  }
}

async function healthScenario() {
  const { Cli, freePort } = require('../__test__/cli/cli-process');
  const port = await freePort();
  const health = await freePort();
  const app = new Cli(['-i', '2', '--health', `127.0.0.1:${health}`, 'app.js'],
    { cwd: path.join(ROOT, '__test__', 'fixtures', 'cli', 'cjs-app'), env: { APP_PORT: String(port) } });
  try {
    await app.waitFor(/listening on \d+ as \d/, { count: 2 });
    spawnSync('prlimit', ['--pid', String(app.child.pid), '--nofile=1024:1024']);
    return await measure('health', {
      target: port,
      pid: app.child.pid,
      attack: async () => {
        const sockets = [];
        for (let i = 0; i < 1100; i++) {
          const s = net.connect(health, '127.0.0.1');
          s.on('error', () => {});
          sockets.push(s);
        }
        await sleep(500);
        return { close: () => sockets.forEach((s) => s.destroy()) };
      },
    });
  } finally {
    app.killGroup('SIGKILL');
  }
}

/** A bus-attack.js cluster of 3 workers whose first one serves no HTTP: { c, port, attacker }. */
async function busCluster() {
  const { ClusterProcess } = require('../__test__/helpers/run-cluster');
  const c = new ClusterProcess('adversary/bus-attack.js', { env: { WORKERS: '3' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 20000 });
  const attacker = workers[0].id;
  await busOp(c, attacker, 'unlisten');
  return { c, port, attacker, attackerPid: workers[0].pid };
}

async function busOp(c, id, op, args = {}, timeout = 20000) {
  const answer = await c.call('worker', { worker: id, op, ...args, timeout }, { timeout: timeout + 5000 });
  if (answer.error) throw new Error(`worker ${id} ${op}: ${answer.error}`);
  return answer;
}

/** Starts a blocking op in the attacker for the whole measurement; close() waits for its answer. */
async function busAttack(c, attacker, op, args, facts) {
  const ms = SECONDS * 1000 + 500;
  const answer = busOp(c, attacker, op, { ...args, ms }, ms + 20000);
  answer.catch(() => {});
  await sleep(200);
  return { close: async () => facts(await answer) };
}

const BUS_STEPS = (() => {
  const toPrimary = ['null', '["m","error",{"boom":1},0]', '["q","error",1,1]', '["m","newListener",1,0]', '["e","error",null,1]'];
  const reserved = ['["m","error",{"message":"boom"},0]', '["m","newListener","x",0]', '["m","removeListener","x",0]', '["q","error",1,1]', 'null'];
  return [{ op: 'raw', target: PRIMARY, payloads: toPrimary }, { op: 'raw', target: BROADCAST, payloads: reserved }];
})();

// `bus`: the attacker writes hostile records as fast as it can. `spin`: the
// same worker only blocks its loop, sending nothing: what a worker that uses
// its CPU costs the others on this machine, the floor of every flood here.
async function busScenario(name = 'bus', steps = BUS_STEPS) {
  const { c, port, attacker, attackerPid } = await busCluster();
  try {
    return await measure(name, {
      target: port,
      pid: c.pid,
      pids: { attacker: attackerPid },
      tally: true,
      attack: () => busAttack(c, attacker, 'repeat', { steps }, (a) => ({ records: a.sent, stalls: a.stalls })),
      extra: async () => {
        const { rejected } = await c.call('stats');
        return `refused and counted by the primary: ${describe(rejected)}; primary alive: ${!c.exited}`;
      },
    });
  } finally {
    await c.kill();
  }
}

async function busFloodScenario() {
  const { c, port, attacker, attackerPid } = await busCluster();
  try {
    const first = await c.call('stats');
    let peak = first.rss;
    let last = first.rss;
    let next = 100000;
    const row = await measure('bus-flood', {
      target: port,
      pid: c.pid,
      pids: { attacker: attackerPid },
      tally: true,
      attack: () => busAttack(c, attacker, 'floodUnknown', { count: 1e9, firstId: next }, async (a) => {
        next += a.sent;
        const stats = await c.call('stats');
        peak = Math.max(peak, stats.rss);
        last = stats.rss;
        return { sends: a.sent };
      }),
      extra: () => {
        const grown = (last - first.rss) / 2 ** 20;
        return `primary RSS ${(first.rss / 2 ** 20).toFixed(1)} MiB before, ${(last / 2 ** 20).toFixed(1)} after the last round (${grown >= 0 ? '+' : ''}${grown.toFixed(1)}), highest after a round ${(peak / 2 ** 20).toFixed(1)}`;
      },
    });
    return row;
  } finally {
    await c.kill();
  }
}

async function shmScenario() {
  if (process.platform !== 'linux') {
    console.log('shm       skipped: the attacker finds the region through /proc/self/maps (Linux)');
    return null;
  }
  const { ClusterProcess } = require('../__test__/helpers/run-cluster');
  const c = new ClusterProcess('adversary/shm-attack.js');
  try {
    const { port, attacker: attackerPid } = await c.waitFor('ready', { timeout: 20000 });
    await c.call('fork', {}, { timeout: 20000 });
    await c.call('unlisten', {}, { timeout: 15000 });
    const ms = SECONDS * 1000;
    const use = (where) => c.call('use-loop', { where, every: 10, ms }, { timeout: ms + 30000 })
      .then(({ calls, failed, slowestMs }) => ({ [where]: { calls, failed, slowestMs } }));
    return await measure('shm', {
      target: port,
      pid: c.pid,
      pids: { attacker: attackerPid },
      tally: true,
      background: () => Promise.all([use('primary'), use('victim')]).then((xs) => Object.assign({}, ...xs)),
      attack: async () => {
        const answer = c.call('attack-loop', { kinds: ['name-length', 'lock', 'scribble', 'clear'], every: 300, ms: ms + 500 }, { timeout: ms + 20000 });
        answer.catch(() => {});
        await sleep(100);
        return {
          close: async () => {
            const { attacks } = await answer;
            await c.call('attack', { kind: 'clear' }, { timeout: 15000 });
            return { attacks };
          },
        };
      },
    });
  } finally {
    await c.kill();
  }
}

/** A private redis-server on a loopback port: { url, proc }, killed with the rest. */
async function startRedis(bin) {
  const redis = await startRedisServer(bin);
  track(redis.proc);
  return redis;
}

async function redisScenario() {
  const bin = redisServerPath();
  if (bin === null) {
    console.log('redis     skipped: redis-server is not installed (apt-get install redis-server)');
    return null;
  }
  const { ClusterProcess } = require('../__test__/helpers/run-cluster');
  const Redis = require('ioredis');
  const redis = await startRedis(bin);
  let c;
  let peer;
  try {
    c = new ClusterProcess('adversary/redis-target.js', { env: { REDIS_URL: redis.url } });
    const { machine, port } = await c.waitFor('ready', { timeout: 30000 });
    // The bridge carries a good broadcast once the primary's subscription is up.
    peer = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    for (let i = 0; ; i++) {
      const from = c.events.length;
      await peer.publish('rcluster:bus', JSON.stringify({ m: '12345678', f: 1, k: 'b', t: 'ping', d: `warm-up ${i}` }));
      try {
        await c.waitFor((e) => e.event === 'got' && e.data === `warm-up ${i}`, { from, count: 2, timeout: 300 });
        break;
      } catch (err) {
        if (i === 50) throw err;
      }
    }
    peer.disconnect();
    peer = null;
    return await measure('redis', {
      target: port,
      pid: c.pid,
      pids: { 'redis-server': redis.proc.pid },
      attack: async () => {
        const { done } = startAttacker('redis', { url: redis.url, ms: SECONDS * 1000 + 500, machine });
        await sleep(300);
        return { close: () => done };
      },
      extra: () => {
        const errors = c.all((e) => e.event === 'bus-error' || e.event === 'worker-exit').length;
        return `bus errors or worker exits seen by the app: ${errors}; pings that reached a worker: ${c.all('got').length}, the primary: ${c.all('primary-got').length}; primary alive: ${!c.exited}`;
      },
    });
  } finally {
    peer?.disconnect();
    await c?.kill();
    redis.proc.kill('SIGKILL');
  }
}

async function controlScenario() {
  const { Cli, freePort, tmpdir, statusUntil } = require('../__test__/cli/cli-process');
  const port = await freePort();
  const control = path.join(tmpdir('rcluster-bench-'), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, 'app.js'],
    { cwd: path.join(ROOT, '__test__', 'fixtures', 'cli', 'cjs-app'), env: { APP_PORT: String(port) } });
  try {
    await app.waitFor(/listening on \d+ as \d/, { count: 2 });
    await statusUntil(control, () => true);
    const fds0 = fs.readdirSync(`/proc/${app.child.pid}/fd`).length;
    return await measure('control', {
      target: port,
      pid: app.child.pid,
      attack: async () => {
        const { done } = startAttacker('control', { control, ms: SECONDS * 1000 + 500 });
        await sleep(300);
        return { close: () => done };
      },
      extra: () => `primary RSS ${rssMiB(app.child.pid).toFixed(1)} MiB, fds ${fs.readdirSync(`/proc/${app.child.pid}/fd`).length} (${fds0} at start)`,
    });
  } finally {
    app.killGroup('SIGKILL');
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  ROUNDS = opts.rounds;
  SECONDS = opts.seconds;
  // Ctrl-C or a kill: the exit handlers (here and in the helpers) kill what was started.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(130));
  // Stops by itself whatever hangs: a generous bound per scenario.
  const bound = opts.only.length * (30 + ROUNDS * (2 * SECONDS + 15));
  setTimeout(() => {
    console.error(`bench/adversary.js: still running after ${bound} s, giving up`);
    process.exit(1);
  }, bound * 1000).unref();
  const started = Date.now();
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cpus; ${ROUNDS} rounds of ${SECONDS} s each, ${CONCURRENCY} clients, a new connection per request; scenarios ${opts.only.join(',')}`);
  const run = {
    proxy: () => stageScenario('proxy', { ROUTING: JSON.stringify({ proxyProtocol: { timeout: 3000 } }) },
      'PROXY TCP4 203.0.113.9 127.0', (i) => ({ prefix: require('../__test__/fixtures/adversary/stage-attack').proxyLine(i) })),
    sticky: () => stageScenario('sticky', { POLICY: 'sticky', ROUTING: JSON.stringify({ sticky: { cookie: 'io', timeout: 1000 } }) },
      'GET / HTTP/1.1\r\nHost: x\r\nCookie: io=', (i) => ({ headers: `Cookie: io=s${i}\r\n` })),
    health: healthScenario,
    spin: () => busScenario('spin', []),
    bus: () => busScenario(),
    'bus-flood': busFloodScenario,
    shm: shmScenario,
    redis: redisScenario,
    control: controlScenario,
  };
  // A scenario that fails is reported; the others still run.
  let failures = 0;
  for (const name of opts.only) {
    try {
      await run[name]();
    } catch (err) {
      failures++;
      console.log(`${name.padEnd(9)} FAILED: ${String(err.stack || err).split('\n').slice(0, 12).join('\n          ')}`);
    }
  }
  console.log(`done in ${Math.round((Date.now() - started) / 1000)} s${failures ? `, ${failures} scenario(s) failed` : ''}`);
  process.exit(failures ? 1 : 0);
}

if (process.argv[2] === '--attacker') {
  attackerMain(process.argv[3], process.argv[4]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
