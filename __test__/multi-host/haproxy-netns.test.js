'use strict';
// examples/multi-host/ as it is documented: two rcluster hosts, each in its
// own network namespace, behind HAProxy (Debian's package) with Redis in a
// third, and a load generator in a fourth; the example's own app.js,
// rcluster.config.js and haproxy.cfg, addresses given through their
// environment variables.
//
//   client 10.213.1.2 ── 10.213.1.1 lb (HAProxy :8080, Redis :6379) 10.213.2.1 ── 10.213.2.2 a
//                                                                   10.213.3.1 ── 10.213.3.2 b
//
// Under an open-loop load through HAProxy (every request counted): host A
// reloads; host B gets SIGTERM, exits and is started again; host A's primary
// is SIGKILLed and started again. Nothing may fail but what the killed host
// held; the app sees the client's address (PROXY v2); a broadcast from A
// reaches every worker on B; a counter added to on both hosts sums exactly.
// Needs root (ip netns), haproxy and redis-server: skipped without them,
// except under CI, where their absence is a failure.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { pollUntil } = require('../helpers/poll');

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'rcluster.js');
const EXAMPLE = path.join(ROOT, 'examples', 'multi-host');
const CLIENT_JS = path.join(__dirname, 'netns-client.js');

const RATE = 500; // requests a second through HAProxy
const APP_PORT = 3000;
const HEALTH_PORT = 9000;
const LB_PORT = 8080;
const REDIS_PORT = 6379;
const COUNTER_ADDS = 50; // per host

// This run's namespaces and links: unique per test process.
const RUN = `rcmh${process.pid}`;
const NS = { client: `${RUN}-client`, lb: `${RUN}-lb`, a: `${RUN}-a`, b: `${RUN}-b` };
// [namespace, its address, the lb side's address, the link's names (<= 15 chars)]
const LINKS = {
  client: { addr: '10.213.1.2', lb: '10.213.1.1', names: [`v${process.pid}c`, `v${process.pid}lc`] },
  a: { addr: '10.213.2.2', lb: '10.213.2.1', names: [`v${process.pid}a`, `v${process.pid}la`] },
  b: { addr: '10.213.3.2', lb: '10.213.3.1', names: [`v${process.pid}b`, `v${process.pid}lb`] },
};
const FRONTEND = `${LINKS.client.lb}:${LB_PORT}`;

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// Why this machine cannot run the test, or null.
function missing() {
  if (process.platform !== 'linux') return 'network namespaces are Linux\'s';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (ip netns add)';
  for (const cmd of ['ip', 'haproxy', 'redis-server']) {
    if (which(cmd) === null) return `${cmd} is not installed`;
  }
  const probe = `${RUN}-probe`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add fails: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

const why = missing();
const inCI = Boolean(process.env.CI);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
  return r.stdout;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setUpNetwork() {
  for (const ns of Object.values(NS)) {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  for (const [side, link] of Object.entries(LINKS)) {
    const [inner, outer] = link.names;
    // Made inside the namespaces: never a name in the machine's own.
    run('ip', ['-n', NS.lb, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', NS[side]]);
    run('ip', ['-n', NS.lb, 'addr', 'add', `${link.lb}/24`, 'dev', outer]);
    run('ip', ['-n', NS[side], 'addr', 'add', `${link.addr}/24`, 'dev', inner]);
    run('ip', ['-n', NS.lb, 'link', 'set', outer, 'up']);
    run('ip', ['-n', NS[side], 'link', 'set', inner, 'up']);
  }
  // Thousands of connections a second from one address: room for them, in
  // these namespaces only.
  for (const ns of Object.values(NS)) {
    run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000']);
    run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  }
}

/** A process run in a namespace, as its own process group, its output kept. */
class Proc {
  constructor(label, ns, argv, { env = {}, cwd = ROOT, stdin = 'ignore' } = {}) {
    this.label = label;
    this.output = '';
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      cwd, env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'], detached: true,
    });
    // `ip netns exec` execs the command: this pid is the command's.
    this.pid = this.child.pid;
    live.add(this);
    this.waiters = new Set();
    const onData = (d) => {
      this.output += d;
      if (process.env.RCLUSTER_TEST_VERBOSE === '1') process.stderr.write(`[${label}] ${d}`);
      for (const w of [...this.waiters]) w();
    };
    this.child.stdout.setEncoding('utf8').on('data', onData);
    this.child.stderr.setEncoding('utf8').on('data', onData);
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      this.exitedAt = performance.now();
      live.delete(this);
      resolve({ code, signal });
      for (const w of [...this.waiters]) w();
    }));
  }

  waitFor(re, timeout = 20000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (re.test(this.output)) {
          done();
          resolve();
        } else if (this.exitedAt !== undefined) {
          done();
          reject(new Error(`${this.label} exited before printing ${re}:\n${this.output}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${re} within ${timeout} ms:\n${this.output}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  async exited(timeout) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} did not exit within ${timeout} ms:\n${this.output}`)), timeout);
    });
    try {
      return await Promise.race([this.exit, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  killGroup() {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

const live = new Set();
// Every pid this test started or learned of (workers), for the final check.
const pids = new Set();
// A test process ending without its after hooks (an uncaught error, the
// runner giving up) still takes everything with it.
process.on('exit', () => {
  for (const p of live) p.killGroup();
  if (why === null) for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

/** netns-client.js in a namespace: `call(op, fields)` resolves with its answer. */
class Client {
  constructor(ns) {
    this.proc = new Proc(`client@${ns}`, ns, [process.execPath, CLIENT_JS], { stdin: 'pipe' });
    pids.add(this.proc.pid);
    this.next = 1;
    this.pending = new Map();
    // The answers come on stdout as JSON lines; Proc keeps the text too.
    readline.createInterface({ input: this.proc.child.stdout }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      this.pending.get(msg.id)?.(msg);
      this.pending.delete(msg.id);
    });
  }

  call(op, fields = {}, timeout = 30000) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`netns client: no answer to ${op} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      this.proc.child.stdin.write(`${JSON.stringify({ id, op, ...fields })}\n`);
    });
  }
}

// HAProxy's runtime API: `show stat`, as { servers: { name: { status, check } },
// retries, redispatches } (the backend's counts since it started).
function haproxyServers(socketPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.setTimeout(2000, () => socket.destroy(new Error('HAProxy stats socket: no answer')));
    socket.on('connect', () => socket.write('show stat\n'));
    socket.on('data', (d) => {
      text += d;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const lines = text.split('\n').filter(Boolean);
      if (lines.length === 0 || !lines[0].startsWith('# ')) return reject(new Error(`HAProxy stats socket: ${text}`));
      const fields = lines[0].slice(2).split(',');
      const col = (name) => fields.indexOf(name);
      const out = { servers: {}, retries: 0, redispatches: 0 };
      for (const line of lines.slice(1)) {
        const v = line.split(',');
        if (v[col('pxname')] !== 'rcluster') continue;
        if (v[col('svname')] === 'BACKEND') {
          // Requests HAProxy sent again (retry-on) and sent to another server (redispatch).
          out.retries = Number(v[col('wretr')]) || 0;
          out.redispatches = Number(v[col('wredis')]) || 0;
        } else if (v[col('svname')] !== 'FRONTEND') {
          out.servers[v[col('svname')]] = { status: v[col('status')], check: v[col('check_status')] };
        }
      }
      resolve(out);
    });
  });
}

/**
 * Watches HAProxy's view of the servers every 50 ms and keeps each change
 * with its time: when a server went DOWN, when it came UP.
 */
class ServerStates {
  constructor(socketPath) {
    this.socketPath = socketPath;
    this.current = {};
    this.changes = []; // { at, server, status }
    this.retried = { retries: 0, redispatches: 0 };
    this.running = true;
    this.loop = this.poll();
  }

  async poll() {
    while (this.running) {
      try {
        const { servers, retries, redispatches } = await haproxyServers(this.socketPath);
        const at = performance.now();
        this.retried = { retries, redispatches };
        for (const [server, { status, check }] of Object.entries(servers)) {
          if (this.current[server]?.status !== status) this.changes.push({ at, server, status });
          this.current[server] = { status, check };
        }
      } catch {
        // HAProxy not up yet, or gone: the waits below time out with what was seen.
      }
      await sleep(50);
    }
  }

  /** The time `server`'s status first matched `re` after `since` (a performance.now()). */
  async when(server, re, since, timeout = 20000) {
    const found = () => this.changes.find((c) => c.server === server && c.at >= since && re.test(c.status));
    const hit = await pollUntil(found, { timeout, interval: 25 });
    if (!hit) {
      throw new Error(`HAProxy: ${server} did not become ${re} within ${timeout} ms; changes: ${JSON.stringify(this.changes.slice(-10))}`);
    }
    return hit.at;
  }

  isUp(server) {
    return this.current[server]?.status === 'UP' && this.current[server]?.check === 'L7OK';
  }

  async stop() {
    this.running = false;
    await this.loop;
  }
}

function rclusterCommand(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: EXAMPLE, timeout: 120000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

// Whether `pid` is a running process (a zombie, killed and not yet reaped
// by its parent or init, is not).
function alive(pid) {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// A mapped IPv4 address (::ffff:10.213.1.2) as its IPv4 form.
const ipv4 = (address) => String(address).replace(/^::ffff:/, '');

test('two rcluster hosts behind HAProxy, in network namespaces: reload, SIGTERM and restart, SIGKILL and restart', {
  skip: why !== null && !inCI ? `${why} (the test needs root, ip netns, haproxy and redis-server)` : false,
  timeout: 180000,
}, async (t) => {
  assert.strictEqual(why, null, `CI must run this test: ${why}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-multi-host-'));
  const sockets = { a: path.join(tmp, 'a.sock'), b: path.join(tmp, 'b.sock'), haproxy: path.join(tmp, 'haproxy.sock') };
  let states = null;
  let cleaned = false;
  const strays = [];
  const cleanUp = async () => {
    if (cleaned) return;
    cleaned = true;
    if (states !== null) await states.stop();
    for (const p of [...live]) p.killGroup();
    await Promise.all([...live].map((p) => p.exited(10000).catch(() => {})));
    // Whatever is still in a namespace once the process groups are gone (a
    // process that left its group) is a stray: the test fails on it (below),
    // and it goes before the namespace does.
    const inNamespaces = () => Object.values(NS).flatMap((ns) => {
      const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
      return (r.stdout || '').split(/\s+/).filter(Boolean).map(Number).filter(alive);
    });
    await pollUntil(() => inNamespaces().length === 0, { timeout: 5000, interval: 100 });
    for (const pid of inNamespaces()) {
      strays.push(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  t.after(cleanUp);

  setUpNetwork();

  // Redis and HAProxy in the balancer's namespace.
  const redis = new Proc('redis', NS.lb, ['redis-server', '--bind', LINKS.a.lb, LINKS.b.lb, '--port', String(REDIS_PORT),
    '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  pids.add(redis.pid);
  await redis.waitFor(/ready to accept connections/i);
  const haproxy = new Proc('haproxy', NS.lb, ['haproxy', '-db', '-f', path.join(EXAMPLE, 'haproxy.cfg')], {
    env: {
      FRONTEND, HOST_A: `${LINKS.a.addr}:${APP_PORT}`, HOST_B: `${LINKS.b.addr}:${APP_PORT}`,
      HEALTH_PORT: String(HEALTH_PORT), HAPROXY_SOCKET: sockets.haproxy,
    },
  });
  pids.add(haproxy.pid);
  assert.ok(await pollUntil(() => fs.existsSync(sockets.haproxy), { timeout: 10000 }), `HAProxy did not start:\n${haproxy.output}`);
  states = new ServerStates(sockets.haproxy);

  // One rcluster host: the example's directory and config, this host's
  // addresses in its environment.
  const hosts = {};
  const startHost = (side) => {
    const host = new Proc(`host ${side}`, NS[side], [process.execPath, BIN, '-i', '2', '--control', sockets[side], '--name', `${RUN}-${side}`], {
      cwd: EXAMPLE,
      env: {
        HOST_ID: side, PORT: String(APP_PORT), HEALTH_ADDR: `0.0.0.0:${HEALTH_PORT}`,
        LB_ADDRESSES: LINKS[side].lb, REDIS_URL: `redis://${LINKS[side].lb}:${REDIS_PORT}`,
        // The control socket is named; other state stays in this run's directory.
        XDG_RUNTIME_DIR: tmp,
      },
    });
    pids.add(host.pid);
    hosts[side] = host;
    return host;
  };
  const workerPids = async (side) => {
    const r = await rclusterCommand(['status', '--json', '--control', sockets[side]]);
    assert.strictEqual(r.code, 0, `rcluster status (${side}): ${r.stderr}`);
    const status = JSON.parse(r.stdout);
    for (const w of status.workers) pids.add(w.pid);
    return status.workers;
  };

  const t0 = performance.now();
  startHost('a');
  startHost('b');
  await Promise.all([states.when('host-a', /^UP$/, t0, 30000), states.when('host-b', /^UP$/, t0, 30000)]);
  assert.ok(await pollUntil(() => states.isUp('host-a') && states.isUp('host-b'), { timeout: 10000 }),
    `both hosts UP in HAProxy: ${JSON.stringify(states.current)}\n${hosts.a.output}\n${hosts.b.output}`);
  await Promise.all([workerPids('a'), workerPids('b')]);

  const client = new Client(NS.client);
  const lbClient = new Client(NS.lb);
  const table = [];
  let phaseStart = performance.now();
  // HAProxy's retries and redispatches at each phase's start.
  const retriedAt = [];
  const phase = async (name) => {
    await client.call('phase', { name });
    phaseStart = performance.now();
    retriedAt.push({ name, ...(await haproxyServers(sockets.haproxy)) });
  };

  // The load, through HAProxy, for every step below.
  await phase('warm-up');
  await client.call('load', { url: `http://${FRONTEND}/`, rate: RATE, timeout: 10000 });
  await sleep(3000);

  // Host A: a rolling reload, its result awaited.
  await phase('A: rcluster reload');
  const reload = await rclusterCommand(['reload', '--json', '--control', sockets.a]);
  assert.strictEqual(reload.code, 0, `rcluster reload: ${reload.stdout}${reload.stderr}`);
  assert.notStrictEqual(JSON.parse(reload.stdout).ok, false, reload.stdout);
  const reloadMs = performance.now() - phaseStart;
  await sleep(1000);
  // A reloading host stays ready: HAProxy never saw a check of A fail.
  const reloadChanges = states.changes.filter((c) => c.server === 'host-a' && c.at >= phaseStart);
  assert.deepStrictEqual(reloadChanges, [], 'HAProxy saw host A change state during its reload');

  // Host B: SIGTERM (as systemd, Kubernetes, docker stop send) to its primary.
  await phase('B: SIGTERM, drain, exit');
  await workerPids('b');
  let signalled = performance.now();
  process.kill(hosts.b.pid, 'SIGTERM');
  const bDown = await states.when('host-b', /^DOWN/, signalled, 30000);
  const bExit = await hosts.b.exited(60000);
  assert.deepStrictEqual(bExit, { code: 0, signal: null }, `host B's exit after SIGTERM:\n${hosts.b.output}`);
  const bStop = { down: bDown - signalled, exit: hosts.b.exitedAt - signalled };
  // The balancer saw the host go unhealthy while it still served (the drain
  // delay), not by finding it gone.
  assert.ok(bStop.down < bStop.exit, `HAProxy marked B DOWN ${Math.round(bStop.down)} ms after SIGTERM, after its exit at ${Math.round(bStop.exit)} ms`);
  await sleep(500);

  await phase('B: started again');
  let started = performance.now();
  startHost('b');
  const bUp = (await states.when('host-b', /^UP$/, started, 30000)) - started;
  await sleep(1000);

  // Host A: its primary SIGKILLed (the machine lost, the OOM killer).
  await phase('A: SIGKILL');
  const aWorkers = await workerPids('a');
  const { inflight } = await client.call('inflight');
  signalled = performance.now();
  process.kill(hosts.a.pid, 'SIGKILL');
  // Its workers follow it (they are not left serving, or holding the port).
  const [aDown, aGone] = await Promise.all([
    states.when('host-a', /^DOWN/, signalled, 30000),
    pollUntil(() => aWorkers.every((w) => !alive(w.pid)) && performance.now(), { timeout: 10000, interval: 10 }),
  ]);
  assert.ok(aGone, `host A's workers outlived its primary: ${aWorkers.filter((w) => alive(w.pid)).map((w) => w.pid)}`);
  await hosts.a.exited(10000);
  const aKill = { down: aDown - signalled, exit: aGone - signalled };
  await sleep(500);

  await phase('A: started again');
  started = performance.now();
  startHost('a');
  const aUp = (await states.when('host-a', /^UP$/, started, 30000)) - started;
  await sleep(1000);

  await phase('both up');
  await sleep(2000);
  const { phases } = await client.call('stop', {}, 60000);
  await phase('end');
  const retried = {};
  for (let i = 0; i + 1 < retriedAt.length; i++) {
    const [from, to] = [retriedAt[i], retriedAt[i + 1]];
    retried[from.name] = `${to.retries - from.retries}/${to.redispatches - from.redispatches}`;
  }

  // A broadcast from a worker on A reaches every worker on B. Each host is
  // reached directly from the balancer's namespace, with the PROXY header
  // the balancer would send.
  const direct = (side, method, urlPath) => lbClient.call('get', {
    url: `http://${LINKS[side].addr}:${APP_PORT}${urlPath}`, method,
    proxy: { src: LINKS.client.addr, dst: LINKS[side].addr },
  });
  const tag = `deploy-${process.pid}`;
  const sent = await direct('a', 'POST', `/broadcast/${tag}`);
  assert.strictEqual(sent.status, 200, JSON.stringify(sent));
  const bWorkers = (await workerPids('b')).map((w) => w.id);
  assert.strictEqual(bWorkers.length, 2);
  const heard = new Map(); // worker on B -> its notes
  const allHeard = await pollUntil(async () => {
    const r = await direct('b', 'GET', '/notes');
    if (r.status === 200) {
      const body = JSON.parse(r.body);
      if (body.notes.some((n) => n.tag === tag)) heard.set(body.worker, body.notes);
    }
    return bWorkers.every((id) => heard.has(id));
  }, { timeout: 10000, interval: 50 });
  assert.ok(allHeard, `the broadcast from A reached B's workers ${[...heard.keys()]} of ${bWorkers}`);
  for (const notes of heard.values()) {
    const note = notes.find((n) => n.tag === tag);
    assert.strictEqual(note.host, 'a');
    assert.match(note.from, /^[0-9a-f]+\/\d+$/, 'from another machine: machine/worker');
  }

  // A counter added to COUNTER_ADDS times on each host sums exactly, read
  // from either host.
  const counter = `hits-${process.pid}`;
  for (let i = 0; i < COUNTER_ADDS; i++) {
    for (const side of ['a', 'b']) {
      const r = await direct(side, 'POST', `/counter/${counter}`);
      assert.strictEqual(r.status, 200, JSON.stringify(r));
    }
  }
  const totals = {};
  const summed = await pollUntil(async () => {
    for (const side of ['a', 'b']) {
      const r = await direct(side, 'GET', `/counter/${counter}`);
      if (r.status === 200) totals[side] = JSON.parse(r.body).value;
    }
    return totals.a === 2 * COUNTER_ADDS && totals.b === 2 * COUNTER_ADDS;
  }, { timeout: 10000, interval: 100 });
  assert.ok(summed, `counter totals ${JSON.stringify(totals)}, expected ${2 * COUNTER_ADDS} on both hosts`);

  // The figures, for the CI log and the docs.
  const row = (name, extra = {}) => {
    const s = phases[name] ?? { requests: 0, failed: 0, hosts: {}, failures: {}, remoteAddresses: {} };
    table.push({
      phase: name, requests: s.requests, failed: s.failed, 'a/b': `${s.hosts.a ?? 0}/${s.hosts.b ?? 0}`,
      retried: retried[name], ...extra,
    });
  };
  const ms = (v) => Math.round(v);
  // ms from the signal to HAProxy marking the host DOWN and to the host's
  // exit (SIGKILL: its workers' end); ms from a start to HAProxy's UP.
  row('warm-up');
  row('A: rcluster reload', { note: `reload took ${ms(reloadMs)} ms` });
  row('B: SIGTERM, drain, exit', { 'to DOWN ms': ms(bStop.down), 'to exit ms': ms(bStop.exit) });
  row('B: started again', { 'to UP ms': ms(bUp) });
  row('A: SIGKILL', { 'to DOWN ms': ms(aKill.down), 'to exit ms': ms(aKill.exit), note: `${inflight} in flight at the kill` });
  row('A: started again', { 'to UP ms': ms(aUp) });
  row('both up');
  console.log(`multi-host figures (${RATE} requests/s through HAProxy):`);
  console.table(table);
  const failures = Object.entries(phases).filter(([, s]) => s.failed > 0).map(([name, s]) => `${name}: ${JSON.stringify(s.failures)}`);
  if (failures.length > 0) console.log(`failures: ${failures.join('; ')}`);

  // Nothing lost but what the killed host held.
  for (const name of ['warm-up', 'A: rcluster reload', 'B: SIGTERM, drain, exit', 'B: started again', 'A: started again', 'both up']) {
    assert.strictEqual(phases[name]?.failed, 0, `${name}: ${JSON.stringify(phases[name])}`);
    assert.ok(phases[name].requests > 0, name);
  }
  // A SIGKILLed host loses at most the requests it held; HAProxy sends
  // again what it could not deliver (retry-on conn-failure empty-response,
  // redispatch), so the loss is bounded by the requests in flight at the kill.
  assert.ok(phases['A: SIGKILL'].failed <= inflight,
    `SIGKILL lost ${phases['A: SIGKILL'].failed} requests, more than the ${inflight} in flight: ${JSON.stringify(phases['A: SIGKILL'])}`);
  // Both hosts served.
  assert.ok(phases['warm-up'].hosts.a > 0 && phases['warm-up'].hosts.b > 0, JSON.stringify(phases['warm-up']));
  // Every request reached the app with the client's address, never HAProxy's.
  for (const [name, s] of Object.entries(phases)) {
    const seen = Object.keys(s.remoteAddresses).map(ipv4);
    assert.deepStrictEqual([...new Set(seen)], s.ok > 0 ? [LINKS.client.addr] : [], `${name}: remote addresses ${JSON.stringify(s.remoteAddresses)}`);
  }

  // Nothing is left: no process of this test, no namespace, no link.
  await Promise.all([workerPids('a'), workerPids('b')]);
  await cleanUp();
  // SIGKILL is delivered at once; the processes' ends may take a moment.
  await pollUntil(() => ![...pids].some(alive), { timeout: 5000 });
  const left = [...pids].filter(alive);
  assert.deepStrictEqual(left, [], `processes left: ${left}`);
  assert.deepStrictEqual(strays, [], `processes left in the namespaces after their process groups were killed: ${strays}`);
  const namespaces = run('ip', ['netns', 'list']);
  for (const ns of Object.values(NS)) assert.ok(!namespaces.split('\n').some((l) => l.split(' ')[0] === ns), `namespace ${ns} left`);
  const links = run('ip', ['-o', 'link', 'show']);
  for (const link of Object.values(LINKS)) {
    for (const name of link.names) assert.ok(!links.includes(` ${name}@`) && !links.includes(` ${name}:`), `link ${name} left`);
  }
  console.log(`multi-host: ${Math.round((performance.now() - t0) / 1000)} s from the hosts' start to the end`);
});
