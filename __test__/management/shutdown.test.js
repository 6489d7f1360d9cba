'use strict';
// [rcluster-only] cluster.shutdown({ timeout }) and setupPrimary({
// shutdownSignals }): requests in progress finish before the workers exit,
// workers that do not exit by the deadline are SIGKILLed, nothing is
// restarted, and a SIGTERM'd primary exits 0 after its workers.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no cluster.shutdown() or shutdownSignals');

function start(t, { workers = 2, settings } = {}) {
  const env = { WORKERS: String(workers) };
  if (settings) env.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'management.js', { env });
}

// Resolves once process `pid` no longer exists (it may be a zombie briefly).
async function gone(pid, what) {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if (err.code === 'ESRCH') return;
      throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what} (pid ${pid}) is still alive`);
}

test('shutdown lets a slow request in progress finish, then resolves', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { settings: { restart: true } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });

  const slow = get(port, { path: '/slow', timeout: 15000 });
  const { worker: holder } = await c.waitFor('held', { timeout: 5000 });
  const other = workers.find((id) => id !== holder);

  const from = c.events.length;
  c.send({ cmd: 'shutdown', id: 'shutdown' });
  // The idle worker is gone; the one holding the request waits for it.
  const otherExit = await c.waitFor({ event: 'exit', worker: other }, { timeout: 10000, from });
  assert.equal(otherExit.code, 0);
  assert.equal(otherExit.exitedAfterDisconnect, true);
  assert.equal(c.has({ event: 'exit', worker: holder }), false, 'the worker holding a request is still there');
  assert.equal(c.has({ event: 'shutdown' }), false, 'shutdown is not done while a request is in progress');

  await c.call('ask', { worker: holder, op: 'release' });
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, `slow done by ${holder}`);

  const holderExit = await c.waitFor({ event: 'exit', worker: holder }, { timeout: 10000, from });
  assert.equal(holderExit.code, 0);
  assert.equal(holderExit.exitedAfterDisconnect, true);
  const reply = await c.waitFor({ event: 'reply', id: 'shutdown' }, { timeout: 10000 });
  assert.deepEqual({ workers: reply.workers, killed: reply.killed }, { workers: 2, killed: 0 });
  const done = c.all('shutdown');
  assert.equal(done.length, 1);
  assert.ok(done[0]._index > holderExit._index, "'shutdown' is emitted after the last worker's 'exit'");
  assert.deepEqual(c.all('restart'), [], 'nothing is restarted during shutdown');
  const state = await c.call('state');
  assert.deepEqual([state.workers, state.pendingRestarts], [[], 0]);
});

test('shutdown SIGKILLs the workers that have not exited at the deadline', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 3, settings: { restart: true } });
  const { workers: [busy, keepOpen, normal] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('ask', { worker: busy, op: 'busy' }); // never reads the disconnect request
  await c.call('ask', { worker: keepOpen, op: 'keepOpen' }); // disconnects but never exits

  const summary = await c.call('shutdown', { timeout: 1000 }, { timeout: 15000 });
  assert.deepEqual({ workers: summary.workers, killed: summary.killed }, { workers: 3, killed: 2 });
  for (const id of [busy, keepOpen]) {
    const exit = c.all({ event: 'exit', worker: id })[0];
    assert.equal(exit && exit.signal, 'SIGKILL', `worker ${id} was SIGKILLed`);
  }
  const normalExit = c.all({ event: 'exit', worker: normal })[0];
  assert.equal(normalExit.code, 0);
  assert.equal(normalExit.exitedAfterDisconnect, true);
  assert.deepEqual(c.all('restart'), [], 'workers killed by shutdown are not restarted');
  const state = await c.call('state');
  assert.deepEqual([state.workers, state.pendingRestarts], [[], 0]);
});

test('calling shutdown twice returns the same promise', { skip, timeout: 30000 }, async (t) => {
  const c = start(t);
  await c.waitFor('ready', { timeout: 10000 });
  const reply = await c.call('shutdownTwice', {}, { timeout: 10000 });
  assert.equal(reply.same, true);
  assert.deepEqual(reply.summary, { workers: 2, killed: 0 });
  assert.equal(c.all('shutdown').length, 1);
});

test('SIGTERM with shutdownSignals: the primary exits 0 after its workers exit', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { settings: { shutdownSignals: ['SIGTERM', 'SIGINT'], shutdownTimeout: 10000 } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
  assert.equal((await get(port, { timeout: 3000 })).status, 200);

  process.kill(c.pid, 'SIGTERM');
  const { code, signal } = await c.exitPromise;
  assert.deepEqual({ code, signal }, { code: 0, signal: null });
  for (const id of workers) {
    const exit = c.all({ event: 'exit', worker: id })[0];
    assert.ok(exit, `worker ${id} exited before the primary`);
    assert.equal(exit.code, 0);
    assert.equal(exit.exitedAfterDisconnect, true);
  }
  assert.deepEqual(c.all('shutdown').map((e) => e.killed), [0]);
});

test('SIGINT to the whole process group (Ctrl-C): workers finish their requests, then all exit 0',
  { skip, timeout: 30000 }, async (t) => {
    const c = start(t, { settings: { shutdownSignals: ['SIGINT'] } });
    const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
    // The worker answers 1 s after the request, if it survives the signal.
    const slow = get(port, { path: '/slow?ms=1000', timeout: 15000 });
    const { worker: holder } = await c.waitFor('held', { timeout: 5000 });

    process.kill(-c.pid, 'SIGINT');
    const res = await slow;
    assert.deepEqual([res.status, res.body], [200, `slow done by ${holder}`]);
    const { code, signal } = await c.exitPromise;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    for (const id of workers) {
      const exit = c.all({ event: 'exit', worker: id })[0];
      assert.deepEqual([exit.code, exit.signal, exit.exitedAfterDisconnect], [0, null, true], `worker ${id}`);
    }
  });

test('a second SIGTERM kills the workers and exits at once', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { settings: { shutdownSignals: ['SIGTERM'], shutdownTimeout: 60000 } });
  const { workers: [busy, normal] } = await c.waitFor('ready', { timeout: 10000 });
  const { pid: busyPid } = c.all({ event: 'fork', worker: busy })[0];
  await c.call('ask', { worker: busy, op: 'busy' });

  process.kill(c.pid, 'SIGTERM');
  // Shutdown is under way: the idle worker is gone, the busy one would take
  // the whole 60 s deadline.
  await c.waitFor({ event: 'exit', worker: normal }, { timeout: 10000 });
  process.kill(c.pid, 'SIGTERM');
  const { code, signal } = await c.exitPromise;
  assert.deepEqual({ code, signal }, { code: 128 + 15, signal: null });
  assert.equal(c.has('shutdown'), false, 'the graceful shutdown never completed');
  await gone(busyPid, 'the busy worker');
});

test('without shutdownSignals, SIGTERM still terminates the primary as usual', { timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 1 });
  await c.waitFor('ready', { timeout: 10000 });
  process.kill(c.pid, 'SIGTERM');
  const { code, signal } = await c.exitPromise;
  assert.deepEqual({ code, signal }, { code: null, signal: 'SIGTERM' });
});
