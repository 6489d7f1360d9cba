'use strict';
// setupPrimary({ recycle: { maxMemory } }) bounds memory: past the soft limit
// a worker is recycled, past the hard one it is SIGKILLed whatever its state
// (retired and draining included); several workers over the limit drain side
// by side; a retired worker never outlives the primary. With a real leak
// (fixtures/memory-leak.js: 1 MB Buffers kept, on a ref'd interval, so a
// retired worker drains until it is killed) under load.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { pollUntil } = require('../helpers/poll');
const { churnLoad } = require('../cli/cli-process');

const skip = rclusterOnly('node:cluster has no recycling');
const MiB = 2 ** 20;

function start(t, { workers, settings, leak }) {
  return startCluster(t, 'memory-leak.js', {
    env: { WORKERS: String(workers), SETTINGS: JSON.stringify(settings), LEAK_MB_PER_S: String(leak) },
  });
}

// A process's resident set size in bytes, or undefined once it has exited
// (gone, or a zombie: no VmRSS).
function rssOf(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

// Alive: present in /proc and not a zombie.
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function ppidOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

// Every worker the fixture forked, sampled from /proc every `interval` ms:
// stop() returns the highest RSS seen of each.
function sampleWorkers(c, interval = 50) {
  const max = new Map(); // pid -> bytes
  const timer = setInterval(() => {
    for (const { pid } of c.all('fork')) {
      const rss = rssOf(pid);
      if (rss !== undefined && rss > (max.get(pid) ?? 0)) max.set(pid, rss);
    }
  }, interval);
  return {
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

test('maxMemory { soft, hard }: under load, no worker is ever above the hard limit, and no request fails', { skip, timeout: 90000 }, async (t) => {
  const leak = 20; // MB a second
  const soft = 100 * MiB;
  const hard = 150 * MiB;
  const c = start(t, { workers: 2, leak, settings: { recycle: { maxMemory: { soft: '100M', hard: '150M' } } } });
  const { port } = await c.waitFor('ready', { timeout: 15000 });
  const samples = sampleWorkers(c);
  const load = churnLoad(port, 4);
  await new Promise((r) => setTimeout(r, 10000));
  const { answered, failures } = await load.stop();
  const max = samples.stop();
  const highest = Math.max(...max.values());
  // The primary samples a worker over the soft limit, and every retiring
  // one, every WATCH_MS (100 ms), and kills one that would pass the hard
  // limit within 300 ms at the rate it grows: a steady leak never takes a
  // worker past it.
  const margin = 0;
  t.diagnostic(`highest RSS seen: ${(highest / MiB).toFixed(1)} MiB (hard limit 150 MiB, margin ${(margin / MiB).toFixed(1)} MiB); ` +
    `${max.size} workers; ${answered} requests answered, ${failures} failed`);
  for (const [pid, rss] of max) {
    assert.ok(rss <= hard + margin, `worker pid ${pid} reached ${(rss / MiB).toFixed(1)} MiB${c.diag()}`);
  }
  assert.equal(failures, 0, `${failures} of ${answered + failures} requests failed${c.diag()}`);
  assert.ok(answered > 100, `${answered} requests answered`);
  const soft1 = c.all({ event: 'recycle', reason: 'maxMemory' });
  const hard1 = c.all({ event: 'recycle', reason: 'maxMemoryHard' });
  assert.ok(soft1.length >= 2, `soft recycles: ${soft1.length}${c.diag()}`);
  assert.ok(soft1.every((r) => r.rss > soft && r.maxMemory === soft && r.hard === hard), JSON.stringify(soft1[0]));
  // A retired worker lingers (its ref'd interval) and leaks on: the hard
  // limit ends it, long before drainTimeout (30 s).
  assert.ok(hard1.length >= 1, `hard kills: ${hard1.length}${c.diag()}`);
  assert.ok(hard1.every((r) => r.projected > hard && r.projected >= r.rss && r.hard === hard), JSON.stringify(hard1[0]));
  for (const { worker } of hard1) {
    const exit = await c.waitFor({ event: 'exit', worker }, { timeout: 5000 });
    assert.equal(exit.signal, 'SIGKILL');
  }
});

test('several workers over the soft limit drain side by side, not one after the other', { skip, timeout: 90000 }, async (t) => {
  // A hard limit far off: each retired worker drains (and leaks) for seconds.
  const c = start(t, {
    workers: 3,
    leak: 20,
    settings: { recycle: { maxMemory: { soft: '90M', hard: '400M' } }, drainTimeout: 30000 },
  });
  const { workers } = await c.waitFor('ready', { timeout: 15000 });
  // Two of the first workers retired (disconnected from the primary)...
  const retired = await c.waitFor((e) => e.event === 'disconnect' && workers.includes(e.worker), { count: 2, timeout: 30000 });
  // ... and the first had not exited when the second retired.
  const firstExit = c.all({ event: 'exit', worker: retired[0].worker })[0];
  assert.ok(firstExit === undefined || firstExit.at > retired[1].at,
    `worker ${retired[0].worker} exited before worker ${retired[1].worker} retired${c.diag()}`);
  assert.ok(alive(retired[0].pid) && alive(retired[1].pid), `both draining at once${c.diag()}`);
  // Replacements in, one at a time: every worker due was replaced.
  for (const { worker } of retired) {
    const replacement = c.all('fork').find((f) => f.replaces === worker);
    assert.ok(replacement, `a replacement for worker ${worker}`);
    assert.ok(c.all({ event: 'listening', worker: replacement.worker })[0].at <= retired.find((r) => r.worker === worker).at + 5,
      'the replacement listened before the old worker was retired');
  }
});

test('a running worker past the hard limit is killed at once and replaced, without the restart policy', { skip, timeout: 60000 }, async (t) => {
  // Soft and hard alike: the first sample over the limit kills.
  const c = start(t, { workers: 1, leak: 20, settings: { recycle: { maxMemory: { soft: '90M', hard: '90M' } } } });
  const { workers: [old] } = await c.waitFor('ready', { timeout: 15000 });
  const kill = await c.waitFor({ event: 'recycle', worker: old }, { timeout: 30000 });
  assert.equal(kill.reason, 'maxMemoryHard');
  assert.equal(c.all({ event: 'recycle', worker: old, reason: 'maxMemory' }).length, 0, 'killed, not recycled gracefully');
  const exit = await c.waitFor({ event: 'exit', worker: old }, { timeout: 5000 });
  assert.equal(exit.signal, 'SIGKILL');
  const replacement = c.all('fork').find((f) => f.replaces === old);
  assert.ok(replacement, `a replacement for worker ${old}${c.diag()}`);
  await c.waitFor({ event: 'listening', worker: replacement.worker }, { timeout: 15000 });
  assert.equal(c.all('restart').length, 0);
});

// A retired worker whose drain lingers, then the primary is SIGKILLed.
async function retiredWorker(t, drainTimeout) {
  const c = start(t, {
    workers: 1,
    leak: 5,
    settings: { recycle: { maxMemory: { soft: '60M', hard: '2G' } }, drainTimeout },
  });
  const { workers: [old] } = await c.waitFor('ready', { timeout: 15000 });
  await c.waitFor({ event: 'recycle', worker: old, reason: 'maxMemory' }, { timeout: 30000 });
  const retired = await c.waitFor({ event: 'disconnect', worker: old }, { timeout: 30000 });
  const replacement = c.all('fork').find((f) => f.replaces === old);
  assert.ok(alive(retired.pid), 'the retired worker is draining (its ref\'d interval keeps it)');
  return { c, retired, replacement };
}

test('a retired worker exits when the primary dies, not reparented to init to leak on', { skip, timeout: 60000 }, async (t) => {
  const { c, retired, replacement } = await retiredWorker(t, 60000);
  assert.equal(ppidOf(retired.pid), c.pid);
  process.kill(c.pid, 'SIGKILL');
  const gone = await pollUntil(() => !alive(retired.pid), { timeout: 5000 });
  assert.ok(gone, `the retired worker (pid ${retired.pid}) is still alive 5 s after the primary died, its parent now ${ppidOf(retired.pid)}`);
  assert.ok(await pollUntil(() => !alive(replacement.pid), { timeout: 5000 }), 'the running worker exits too');
});

test('a retired worker exits at its drain deadline even when the primary cannot kill it (stopped)', { skip, timeout: 60000 }, async (t) => {
  const drainTimeout = 2000;
  const { c, retired } = await retiredWorker(t, drainTimeout);
  process.kill(c.pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(c.pid, 'SIGCONT');
    } catch {}
  });
  const { DEADLINE_GRACE_MS } = require('../../lib/worker/retirement');
  const gone = await pollUntil(() => !alive(retired.pid), { timeout: drainTimeout + DEADLINE_GRACE_MS + 5000 });
  const after = Date.now() - retired.at;
  assert.ok(gone, `the retired worker (pid ${retired.pid}) outlived its drain deadline by more than 5 s`);
  assert.ok(after >= drainTimeout, `it drained its drainTimeout first (gone after ${after} ms)`);
  process.kill(c.pid, 'SIGCONT');
  const exit = await c.waitFor({ event: 'exit', worker: retired.worker }, { timeout: 5000 });
  assert.equal(exit.signal, 'SIGKILL');
});

test('the rcluster command logs each recycle and hard kill with its figures, and counts them in status, --json and /metrics', { skip, timeout: 90000 }, async (t) => {
  const { Cli, cli, tmpdir, freePort, get, statusUntil } = require('../cli/cli-process');
  const path = require('node:path');
  const port = await freePort();
  const mport = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--max-memory-restart', '100M', '--metrics', `127.0.0.1:${mport}`, '--control', control, 'leak-app.js'],
    { env: { APP_PORT: String(port), LEAK_MB_PER_S: '20' } });
  t.after(() => app.killGroup());
  // 100M is the soft limit; the hard one is 1.5 times it.
  const [soft] = await app.waitFor(/worker (\d+) \(slot (\d)\) recycled: memory ([\d.]+) MiB over 100 MiB; worker (\d+) replaces it/, { timeout: 30000 });
  assert.ok(Number(soft[3]) > 100, soft[0]);
  // Killed past the hard limit, or as it grows past it before the next sample.
  const [hard] = await app.waitFor(/worker (\d+) \(slot (\d)\) killed: memory ([\d.]+) MiB(?: over|, growing past) the 150 MiB hard limit/, { timeout: 30000 });
  assert.ok(Number(hard[3]) > 100, hard[0]);
  const logged = (re) => [...(app.out + app.err).matchAll(re)].length;
  const softLines = logged(/recycled: memory/g);
  const hardLines = logged(/killed: memory/g);

  const s = await statusUntil(control, (x) => x.workers.length >= 2);
  assert.ok(s.recycles.maxMemory >= softLines && s.recycles.maxMemoryHard >= hardLines, JSON.stringify(s.recycles));
  // Each worker's row has its slot's counts; together, every slot's.
  const bySlot = new Map(s.workers.map((w) => [w.slot, w.recycles]));
  const sum = (reason) => [...bySlot.values()].reduce((n, r) => n + (r[reason] ?? 0), 0);
  assert.deepEqual([sum('maxMemory'), sum('maxMemoryHard')], [s.recycles.maxMemory, s.recycles.maxMemoryHard]);
  assert.ok(s.workers.every((w) => w.restarts === 0), 'a recycle is not a restart');

  const text = await cli(['status', '--control', control]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /UPTIME +RESTARTS +RECYCLES +CONNS/);
  assert.match(text.stdout, /^w\d #\d+ +\d +\d+ +\S+ +\S+ +0 +\d+( \(\d+ killed\))? +/m);
  assert.match(text.stdout, /\nrecycles: (maxMemory \d+, maxMemoryHard \d+|maxMemoryHard \d+, maxMemory \d+)\n/);

  const metrics = await get(mport, '/metrics');
  assert.equal(metrics.status, 200);
  const samples = [...metrics.body.matchAll(/^rcluster_worker_recycles_total\{slot="(\d+)",reason="(\w+)"\} (\d+)$/gm)];
  const total = (reason) => samples.filter((m) => m[2] === reason).reduce((n, m) => n + Number(m[3]), 0);
  assert.ok(total('maxMemory') >= s.recycles.maxMemory && total('maxMemoryHard') >= s.recycles.maxMemoryHard, metrics.body);
  assert.match(metrics.body, /^# TYPE rcluster_worker_recycles_total counter$/m);
  assert.doesNotMatch(metrics.body, /^rcluster_worker_restarts_total\{/m, 'recycles are not restarts');
  const { spawnSync } = require('node:child_process');
  if (spawnSync('promtool', ['--version']).status === 0) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics.body, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  }
  app.signal('SIGTERM');
  await app.exited();
});
