'use strict';
// The restart policy (lib/operations/restart_policy.js) through the hooks lib/primary/cluster.js
// calls (lib/operations/management.js), with fake timers and a fake fork: no process is
// spawned. What a real cluster shows is in ../management/restart.test.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const EventEmitter = require('node:events');
const { manage } = require('../../lib/operations/management');
const { WorkerRecord, Fate } = require('../../lib/primary/worker_record');

// A cluster whose fork() makes a fake worker and records it as the primary
// does; exit() is what the primary does when a worker's process exits.
function fakeCluster(t, restart) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const cluster = new EventEmitter();
  const records = new Map();
  const management = manage(cluster, records);
  const restarts = [];
  const crashloops = [];
  let ids = 0;
  cluster.failForks = 0;
  cluster.forked = [];
  cluster.fork = (env) => {
    if (cluster.failForks > 0) {
      cluster.failForks--;
      throw new Error('spawn EAGAIN');
    }
    const worker = new EventEmitter();
    worker.id = ++ids;
    worker.isConnected = () => false;
    worker.process = { kill() {} };
    records.set(worker.id, new WorkerRecord(worker, env));
    management.forked(worker);
    cluster.forked.push(worker);
    return worker;
  };
  cluster.on('restart', (worker, old, info) => restarts.push({ worker, old, info }));
  cluster.on('crashloop', (info) => crashloops.push(info));
  const exit = (worker, code = 1, signal = null) => {
    management.exited(worker, code, signal);
    worker.emit('exit', code, signal);
  };
  const c = { cluster, records, management, restarts, crashloops, exit };
  cluster.settings = {};
  setRestart(c, restart);
  return c;
}

// setupPrimary({ restart }) as lib/primary/cluster.js runs it.
function setRestart(c, restart) {
  Object.assign(c.cluster.settings, c.management.normalize({ restart }));
  c.management.applied({ restart });
}

// The 'restart' event follows the fork by a tick (after the 'fork' event).
const ticks = () => new Promise((resolve) => setImmediate(resolve));

// Advances the fake clock to just before `delay`, checks nothing was forked,
// then to `delay`: returns the replacement.
async function replacementAfter(t, c, delay) {
  const before = c.cluster.forked.length;
  if (delay > 0) {
    t.mock.timers.tick(delay - 1);
    assert.equal(c.cluster.forked.length, before, `nothing forked ${delay - 1} ms after the crash`);
  }
  t.mock.timers.tick(delay > 0 ? 1 : 0);
  assert.equal(c.cluster.forked.length, before + 1, `one replacement forked ${delay} ms after the crash`);
  await ticks();
  return c.cluster.forked.at(-1);
}

const OPTIONS = { minDelay: 100, maxDelay: 1000, resetAfter: 5000, maxRestarts: 100, window: 60000 };

test('a crashed worker is replaced with the same env; the backoff doubles per consecutive crash, up to maxDelay', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  let worker = c.cluster.fork({ ROLE: 'web' });
  const first = worker;
  const delays = [];
  for (const expected of [100, 200, 400, 800, 1000, 1000]) {
    c.exit(worker, 1);
    assert.equal(c.cluster.pendingRestarts, 1);
    const next = await replacementAfter(t, c, expected);
    delays.push(c.restarts.at(-1).info.delay);
    const { old, info } = c.restarts.at(-1);
    assert.equal(old, worker);
    assert.equal(info.reason, 'exit');
    assert.equal(next.replaces, worker.id);
    assert.equal(next.restarts, worker.restarts + 1);
    assert.deepEqual(c.records.get(next.id).env, { ROLE: 'web' });
    worker = next;
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual(c.restarts.map((r) => r.info.attempt), [1, 2, 3, 4, 5, 6]);
  assert.equal(first.restarts, 0);
  assert.equal(c.cluster.pendingRestarts, 0);
});

test('a signal is the reason when the worker was killed from outside', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const worker = c.cluster.fork();
  c.exit(worker, null, 'SIGKILL');
  await replacementAfter(t, c, 100);
  assert.deepEqual(
    (({ reason, code, signal, uptime }) => ({ reason, code, signal, uptime }))(c.restarts[0].info),
    { reason: 'signal', code: null, signal: 'SIGKILL', uptime: 0 });
});

test('a worker the primary killed for failing is replaced, with the failure as the reason', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const worker = c.cluster.fork();
  c.records.get(worker.id).failed('channelFailed');
  c.exit(worker, null, 'SIGKILL');
  await replacementAfter(t, c, 100);
  assert.deepEqual(
    (({ reason, code, signal }) => ({ reason, code, signal }))(c.restarts[0].info),
    { reason: 'channelFailed', code: null, signal: 'SIGKILL' });
});

test('the backoff starts again at minDelay once a worker of the slot ran resetAfter ms', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  let worker = c.cluster.fork();
  c.exit(worker);
  worker = await replacementAfter(t, c, 100);
  c.exit(worker);
  worker = await replacementAfter(t, c, 200);
  t.mock.timers.tick(OPTIONS.resetAfter - 1);
  c.exit(worker);
  worker = await replacementAfter(t, c, 400);
  t.mock.timers.tick(OPTIONS.resetAfter);
  c.exit(worker);
  await replacementAfter(t, c, 100);
  assert.deepEqual(c.restarts.map((r) => r.info.attempt), [1, 2, 3, 1]);
  assert.equal(c.restarts.at(-1).info.uptime, OPTIONS.resetAfter);
});

test('each slot has its own backoff', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const a = c.cluster.fork();
  const b = c.cluster.fork();
  c.exit(a);
  const a2 = await replacementAfter(t, c, 100);
  c.exit(a2);
  await replacementAfter(t, c, 200);
  c.exit(b);
  await replacementAfter(t, c, 100);
});

test('the crash-loop budget is cluster-wide: maxRestarts in a window, across slots, then no more restarts', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, maxRestarts: 3, window: 10000 });
  const workers = [c.cluster.fork(), c.cluster.fork(), c.cluster.fork(), c.cluster.fork()];
  for (const worker of workers.slice(0, 3)) {
    c.exit(worker);
    await replacementAfter(t, c, 100);
  }
  assert.equal(c.crashloops.length, 0);
  c.exit(workers[3], 7);
  assert.equal(c.crashloops.length, 1, 'the fourth crash in the window is a crash loop');
  assert.deepEqual(
    (({ restarts, maxRestarts, window, worker, code, reason }) => ({ restarts, maxRestarts, window, worker, code, reason }))(c.crashloops[0]),
    { restarts: 3, maxRestarts: 3, window: 10000, worker: workers[3], code: 7, reason: 'exit' });
  assert.equal(c.cluster.pendingRestarts, 0);
  const forked = c.cluster.forked.length;
  // The policy is stopped now: a later crash is not replaced either.
  c.exit(c.cluster.forked.at(-1));
  t.mock.timers.tick(60000);
  assert.equal(c.cluster.forked.length, forked);
});

test('crashes older than the window leave the budget', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minDelay: 0, maxDelay: 0, maxRestarts: 2, window: 1000 });
  let worker = c.cluster.fork();
  c.exit(worker);
  worker = await replacementAfter(t, c, 0);
  c.exit(worker);
  worker = await replacementAfter(t, c, 0);
  t.mock.timers.tick(1000);
  c.exit(worker);
  await replacementAfter(t, c, 0);
  assert.equal(c.crashloops.length, 0);
});

test('a replacement that cannot be forked counts as one more crash of its slot', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.removeListener('warning', onWarning));
  const worker = c.cluster.fork();
  c.cluster.failForks = 1;
  c.exit(worker);
  t.mock.timers.tick(100);
  assert.equal(c.cluster.forked.length, 1, 'the first fork failed');
  await replacementAfter(t, c, 200);
  assert.equal(c.restarts[0].info.reason, 'forkFailed');
  assert.equal(c.restarts[0].info.attempt, 2);
  assert.deepEqual(warnings.map((w) => w.code), ['RCLUSTER_RESTART_FAILED']);
});

test('an uncaught exception is replaced at once, and its exit is not replaced again', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const worker = c.cluster.fork();
  const error = { name: 'Error', message: 'boom' };
  assert.equal(c.management.uncaughtException(worker, { error }), true);
  assert.equal(c.records.get(worker.id).fate, Fate.Replaced);
  await replacementAfter(t, c, 0);
  assert.deepEqual([c.restarts[0].info.reason, c.restarts[0].info.error], ['uncaughtException', error]);
  c.exit(worker, 1);
  t.mock.timers.tick(60000);
  assert.equal(c.cluster.forked.length, 2, 'no second replacement');
});

test('an uncaught exception in a slot that is already crashing waits for the backoff', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const worker = c.cluster.fork();
  c.exit(worker);
  const next = await replacementAfter(t, c, 100);
  c.management.uncaughtException(next, { error: { name: 'Error', message: 'again' } });
  await replacementAfter(t, c, 200);
});

test('without the policy, a failing worker that exits later is reported as an uncaught exception once the policy is on', async (t) => {
  const c = fakeCluster(t, false);
  const worker = c.cluster.fork();
  const error = { name: 'TypeError', message: 'x' };
  assert.equal(c.management.uncaughtException(worker, { error }), false);
  assert.equal(c.records.get(worker.id).fate, Fate.Failing);
  setRestart(c, OPTIONS);
  c.exit(worker, 1);
  await replacementAfter(t, c, 100);
  assert.deepEqual([c.restarts[0].info.reason, c.restarts[0].info.error], ['uncaughtException', error]);
});

// Each deliberate end, and each state of the policy that restarts nothing.
const NOT_REPLACED = {
  'killed by the primary (worker.kill())': (c, w) => c.management.killed(w),
  'disconnected (exitedAfterDisconnect)': (c, w) => c.management.disconnecting(w),
  'killed after it disconnected': (c, w) => { c.management.disconnecting(w); c.management.killed(w); },
  'failed after the app killed it': (c, w) => { c.management.killed(w); c.records.get(w.id).failed('channelFailed'); },
  'disconnected after an uncaught exception, the policy on again before the exit': (c, w) => {
    setRestart(c, false);
    c.management.uncaughtException(w, { error: {} });
    c.management.disconnecting(w);
    setRestart(c, OPTIONS);
  },
  'crash loop refused its replacement, the policy on again before the exit': (c, w) => {
    setRestart(c, { ...OPTIONS, maxRestarts: 0 });
    c.management.uncaughtException(w, { error: {} });
    assert.equal(c.records.get(w.id).fate, Fate.CrashLooped);
    setRestart(c, OPTIONS);
  },
  'the policy turned off (restart: false)': (c) => setRestart(c, false),
  'the policy stopped by cluster.shutdown()': (c) => { c.cluster.shutdown({ timeout: 1000 }); },
};

for (const [name, act] of Object.entries(NOT_REPLACED)) {
  test(`no restart: ${name}`, async (t) => {
    const c = fakeCluster(t, OPTIONS);
    const worker = c.cluster.fork();
    act(c, worker);
    c.exit(worker, 0);
    assert.equal(c.cluster.pendingRestarts, 0);
    t.mock.timers.tick(60000);
    await ticks();
    assert.equal(c.cluster.forked.length, 1);
    assert.deepEqual(c.restarts, []);
    assert.equal(c.records.size, 0, 'the record is gone with the process');
  });
}

test('shutdown cancels a restart waiting for its delay', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const worker = c.cluster.fork();
  c.exit(worker);
  assert.equal(c.cluster.pendingRestarts, 1);
  c.cluster.shutdown({ timeout: 1000 });
  assert.equal(c.cluster.pendingRestarts, 0);
  t.mock.timers.tick(60000);
  assert.equal(c.cluster.forked.length, 1);
});

// PM2's min_uptime: only crashes of workers up less than minUptime count
// toward the crash-loop budget, and a healthy worker (alive, ready, up
// minUptime) keeps the policy going.

// What the primary records as a worker listens.
function listening(c, worker) {
  worker.state = 'listening';
  c.records.get(worker.id).listened({ address: '127.0.0.1', port: 3000, addressType: 4, fd: -1 });
}

test('a worker up minUptime that crashes grows its slot\'s backoff but never counts toward a crash loop', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minUptime: 1000, maxRestarts: 1, window: 60000 });
  let worker = c.cluster.fork();
  for (const expected of [100, 200, 400, 800, 1000, 1000]) {
    listening(c, worker);
    t.mock.timers.tick(1000);
    c.exit(worker);
    worker = await replacementAfter(t, c, expected);
    assert.equal(c.restarts.at(-1).info.young, false);
  }
  assert.deepEqual(c.crashloops, []);
});

test('young crashes never end in a crash loop while another worker is healthy', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minUptime: 1000, maxRestarts: 2, window: 10000 });
  const healthy = c.cluster.fork();
  let crashing = c.cluster.fork();
  listening(c, healthy);
  t.mock.timers.tick(1000);
  for (let i = 0; i < 8; i++) {
    c.exit(crashing);
    crashing = await replacementAfter(t, c, Math.min(1000, 100 * 2 ** i));
    assert.equal(c.restarts.at(-1).info.young, i > 0, 'the first crashing worker was up minUptime');
  }
  assert.deepEqual(c.crashloops, []);
});

test('young crashes end in a crash loop once no worker has been healthy for a whole window', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minDelay: 0, maxDelay: 0, minUptime: 1000, maxRestarts: 2, window: 10000 });
  let worker = c.cluster.fork();
  listening(c, worker);
  t.mock.timers.tick(5000);
  // Healthy until this crash: the window runs from here.
  c.exit(worker);
  worker = await replacementAfter(t, c, 0);
  const healthyUntil = Date.now();
  while (Date.now() + 500 - healthyUntil < 10000) {
    t.mock.timers.tick(500);
    c.exit(worker);
    assert.deepEqual(c.crashloops, [], `no crash loop ${Date.now() - healthyUntil} ms after the last healthy worker`);
    worker = await replacementAfter(t, c, 0);
  }
  t.mock.timers.tick(500);
  c.exit(worker, 3);
  assert.equal(c.crashloops.length, 1);
  assert.deepEqual(
    (({ restarts, maxRestarts, window, minUptime, code, reason }) => ({ restarts, maxRestarts, window, minUptime, code, reason }))(c.crashloops[0]),
    { restarts: 19, maxRestarts: 2, window: 10000, minUptime: 1000, code: 3, reason: 'exit' });
});

test('a worker up minUptime is not healthy unless it is ready: listening where the others listen, or signalled with waitReady', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minDelay: 0, maxDelay: 0, minUptime: 1000, maxRestarts: 2, window: 10000 });
  const other = c.cluster.fork();
  const stuck = c.cluster.fork();
  listening(c, other);
  // Online but not listening, while a worker of the cluster listens.
  stuck.state = 'online';
  t.mock.timers.tick(1000);
  // The listening worker leaves on purpose, healthy: the window starts.
  c.management.disconnecting(other);
  c.exit(other, 0);
  t.mock.timers.tick(10000);
  // Every crash from here is young (of workers that listened), and `stuck`
  // is not ready: a crash loop at the third.
  let worker = c.cluster.fork();
  for (let i = 0; i < 2; i++) {
    listening(c, worker);
    c.exit(worker);
    worker = await replacementAfter(t, c, 0);
  }
  listening(c, worker);
  c.exit(worker);
  assert.equal(c.crashloops.length, 1);

});

for (const signalled of [false, true]) {
  test(`with waitReady, a worker is ready once it said so: ${signalled ? 'signalled, healthy' : 'listening only, not healthy'}`, async (t) => {
    const c = fakeCluster(t, { ...OPTIONS, minDelay: 0, maxDelay: 0, minUptime: 1000, maxRestarts: 0, window: 10000 });
    c.cluster.settings.waitReady = true;
    const ready = c.cluster.fork();
    listening(c, ready);
    if (signalled) c.management.ready(ready);
    t.mock.timers.tick(1000);
    c.exit(c.cluster.fork());
    assert.equal(c.crashloops.length, signalled ? 0 : 1);
    assert.equal(c.cluster.pendingRestarts, signalled ? 1 : 0);
  });
}

test('a start-up crash loop (every worker dies young, none was ever healthy) stops after maxRestarts', async (t) => {
  const c = fakeCluster(t, { ...OPTIONS, minUptime: 1000, maxRestarts: 3 });
  let worker = c.cluster.fork();
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(200);
    c.exit(worker);
    worker = await replacementAfter(t, c, 100 * 2 ** i);
    assert.equal(c.restarts.at(-1).info.young, true);
  }
  t.mock.timers.tick(200);
  c.exit(worker);
  assert.equal(c.crashloops.length, 1);
  assert.equal(c.cluster.pendingRestarts, 0);
});
