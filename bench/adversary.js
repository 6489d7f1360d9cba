'use strict';
// The header-stage and endpoint attacks of __test__/adversary/, measured:
// the requests/s another listener (or the app) answers with and without
// each attack, interleaved in the same run, several rounds; prints medians
// and their ratio. Loopback, bounded (about a minute), stops by itself.
//
//   node bench/adversary.js [rounds=5] [seconds per measurement=2]
//
// proxy:   1,200 clients (800 silent, 400 half a PROXY header) on one
//          listener of a routing: { proxyProtocol } cluster; measured: the
//          other listener (well-formed PROXY clients, 8 at a time).
// sticky:  the same with SCHED_STICKY and routing: { sticky: { cookie } }.
// health:  1,100 idle connections to `rcluster --health`; measured: the app.
const path = require('node:path');
const net = require('node:net');
const { ClusterProcess } = require('../__test__/helpers/run-cluster');
const { Cli, freePort } = require('../__test__/cli/cli-process');
const { proxyLine, holdConnections, request } = require('../__test__/fixtures/adversary/stage-attack');

const ROUNDS = Number(process.argv[2] || 5);
const SECONDS = Number(process.argv[3] || 2);
const CONCURRENCY = 8;

async function rate(port, make) {
  const until = Date.now() + SECONDS * 1000;
  let done = 0;
  let failed = 0;
  let slowest = 0;
  const lane = async () => {
    for (let i = 0; Date.now() < until; i++) {
      try {
        const r = await request(port, { ...make(i), timeout: 5000 });
        done++;
        slowest = Math.max(slowest, r.ms);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return { rps: done / SECONDS, failed, slowest };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(name, { target, make, attack }) {
  const base = [];
  const hit = [];
  let failed = 0;
  let slowest = 0;
  for (let round = 0; round < ROUNDS; round++) {
    base.push((await rate(target, make)).rps);
    const held = await attack();
    const r = await rate(target, make);
    hit.push(r.rps);
    failed += r.failed;
    slowest = Math.max(slowest, r.slowest);
    held.close();
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
  console.log(`${name.padEnd(8)} without ${row.without.toFixed(0).padStart(5)} req/s  with ${row.with.toFixed(0).padStart(5)} req/s  ratio ${row.ratio.toFixed(2)}  failed ${failed}  slowest ${row.slowest} ms  (medians of ${ROUNDS})`);
  return row;
}

async function stageScenario(name, env, partial, make) {
  const c = new ClusterProcess('adversary/stage-cluster.js', { env });
  try {
    const { ports } = await c.waitFor('ready', { timeout: 20000 });
    const [attacked, other] = ports;
    return await measure(name, {
      target: other,
      make,
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
  const port = await freePort();
  const health = await freePort();
  const app = new Cli(['-i', '2', '--health', `127.0.0.1:${health}`, 'app.js'],
    { cwd: path.join(__dirname, '..', '__test__', 'fixtures', 'cli', 'cjs-app'), env: { APP_PORT: String(port) } });
  try {
    await app.waitFor(/listening on \d+ as \d/, { count: 2 });
    require('node:child_process').spawnSync('prlimit', ['--pid', String(app.child.pid), '--nofile=1024:1024']);
    return await measure('health', {
      target: port,
      make: () => ({}),
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

(async () => {
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cpus; ${ROUNDS} rounds of ${SECONDS} s each, ${CONCURRENCY} clients, a new connection per request`);
  await stageScenario('proxy', { ROUTING: JSON.stringify({ proxyProtocol: { timeout: 3000 } }) },
    'PROXY TCP4 203.0.113.9 127.0', (i) => ({ prefix: proxyLine(i) }));
  await stageScenario('sticky', { POLICY: 'sticky', ROUTING: JSON.stringify({ sticky: { cookie: 'io', timeout: 1000 } }) },
    'GET / HTTP/1.1\r\nHost: x\r\nCookie: io=', (i) => ({ headers: `Cookie: io=s${i}\r\n` }));
  await healthScenario();
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
