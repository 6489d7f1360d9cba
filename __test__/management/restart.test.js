'use strict';
// setupPrimary({ restart }): a worker that exits unexpectedly is replaced by a
// fork with the same env, after a delay that doubles per consecutive crash;
// too many crashes of workers up less than minUptime in the window, with no
// worker healthy meanwhile, stop the policy with 'crashloop'; workers
// that leave by disconnect() or kill() are not replaced. Without the setting,
// nothing is replaced, as under node:cluster (that test runs on both).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no restart policy');

function start(t, { workers = 1, settings, crashAtStart } = {}) {
  const env = { WORKERS: String(workers) };
  if (settings) env.SETTINGS = JSON.stringify(settings);
  if (crashAtStart) env.CRASH_AT_START = String(crashAtStart);
  return startCluster(t, 'management.js', { env });
}

async function whoAnswers(port) {
  const res = await get(port, { timeout: 3000 });
  assert.equal(res.status, 200);
  return JSON.parse(res.body);
}

test('a SIGKILLed worker is replaced, with the same env', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { settings: { restart: true } });
  let { port, workers: [first] } = await c.waitFor('ready', { timeout: 10000 });
  assert.deepEqual(await whoAnswers(port), { id: first, tag: 'w1', envKeys: [] });

  await c.call('sigkill', { worker: first });
  const restart = await c.waitFor({ event: 'restart', old: first }, { timeout: 10000 });
  assert.equal(restart.restarts, 1, 'worker.restarts of the replacement');
  assert.equal(restart.replaces, first, 'worker.replaces names the worker it replaced');
  assert.deepEqual(
    { ...restart.info, uptime: typeof restart.info.uptime, young: typeof restart.info.young },
    { attempt: 1, delay: 100, uptime: 'number', young: 'boolean', code: null, signal: 'SIGKILL', reason: 'signal' },
  );
  const second = restart.worker;
  // With no worker left, listen(0) may have been given a new port.
  ({ port } = await c.waitFor({ event: 'listening', worker: second }, { timeout: 10000 }));
  assert.deepEqual(await whoAnswers(port), { id: second, tag: 'w1', envKeys: [] }, 'same env as the original fork');

  // process.exit() without disconnect counts as unexpected too.
  await c.call('ask', { worker: second, op: 'exit' });
  const again = await c.waitFor({ event: 'restart', old: second }, { timeout: 10000 });
  assert.equal(again.restarts, 2, 'restarts count up in the slot');
  assert.equal(again.info.reason, 'exit');
  assert.equal(again.info.code, 3);
  ({ port } = await c.waitFor({ event: 'listening', worker: again.worker }, { timeout: 10000 }));
  assert.deepEqual(await whoAnswers(port), { id: again.worker, tag: 'w1', envKeys: [] });
  const forks = c.all('fork').map((e) => e.worker);
  assert.deepEqual(forks, [first, second, again.worker], 'one fork per restart, no more');
});

test('backoff doubles per consecutive crash up to maxDelay, then the crash-loop budget stops it',
  { skip, timeout: 60000 }, async (t) => {
    const settings = { restart: { minDelay: 50, maxDelay: 400, maxRestarts: 6, window: 60000 } };
    const c = start(t, { settings, crashAtStart: 3 });
    const crashloop = await c.waitFor('crashloop', { timeout: 30000 });
    const restarts = c.all('restart');
    assert.deepEqual(restarts.map((e) => e.info.delay), [50, 100, 200, 400, 400, 400]);
    assert.deepEqual(restarts.map((e) => e.info.attempt), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(restarts.map((e) => e.restarts), [1, 2, 3, 4, 5, 6]);
    for (const e of restarts) assert.deepEqual([e.info.reason, e.info.code, e.info.signal], ['exit', 3, null]);
    assert.deepEqual(
      { restarts: crashloop.restarts, maxRestarts: crashloop.maxRestarts, window: crashloop.window, code: crashloop.code, reason: crashloop.reason },
      { restarts: 6, maxRestarts: 6, window: 60000, code: 3, reason: 'exit' },
    );
    assert.equal(crashloop.worker, restarts[5].worker, 'the crash loop names the last worker');
    const state = await c.call('state');
    assert.deepEqual([state.workers, state.pendingRestarts], [[], 0], 'no restart after the crash loop');
    assert.equal(c.all('fork').length, 7, 'the original and 6 replacements');
  });

test('crashes past maxRestarts never stop the restarts while another worker is healthy (up minUptime and listening)',
  { skip, timeout: 60000 }, async (t) => {
    const settings = { restart: { minDelay: 0, maxDelay: 0, maxRestarts: 1, minUptime: 3000 } };
    const c = start(t, { workers: 2, settings });
    let { workers: [crashing] } = await c.waitFor('ready', { timeout: 10000 });
    await new Promise((resolve) => setTimeout(resolve, 3200));
    let young = 0;
    for (let i = 0; i < 4; i++) {
      await c.call('sigkill', { worker: crashing });
      const restart = await c.waitFor({ event: 'restart', old: crashing }, { timeout: 10000 });
      // Killed as soon as it listens, it dies young: only the healthy worker beside it keeps the policy going.
      if (restart.info.young) young++;
      crashing = restart.worker;
      await c.waitFor({ event: 'listening', worker: crashing }, { timeout: 10000 });
    }
    assert.ok(young > settings.restart.maxRestarts, `young crashes past maxRestarts: ${young}`);
    assert.deepEqual(c.all('crashloop'), []);
    assert.equal((await c.call('state')).workers.length, 2);
  });

test('a worker that ran resetAfter ms starts the backoff over', { skip, timeout: 30000 }, async (t) => {
  // resetAfter 0: every worker counts as having run long enough.
  const settings = { restart: { minDelay: 30, resetAfter: 0, maxRestarts: 3 } };
  const c = start(t, { settings, crashAtStart: 3 });
  await c.waitFor('crashloop', { timeout: 20000 });
  assert.deepEqual(c.all('restart').map((e) => [e.info.attempt, e.info.delay]), [[1, 30], [1, 30], [1, 30]]);
});

test('setupPrimary({ restart }) again after a crash loop starts over', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { settings: { restart: { minDelay: 0, maxRestarts: 1 } }, crashAtStart: 3 });
  await c.waitFor('crashloop', { timeout: 10000 });
  await c.call('setup', { settings: { restart: { minDelay: 0, maxRestarts: 2 } } });
  const from = c.events.length;
  await c.call('fork', { env: { CRASH_AT_START: '4' } });
  const second = await c.waitFor('crashloop', { timeout: 10000, from });
  assert.equal(second.code, 4);
  assert.equal(c.all('restart').length, 3, 'one restart before the first crash loop, two before the second');
});

test('no restart after disconnect(), kill() or cluster.disconnect()', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { restart: { minDelay: 0 } } });
  const { workers: [a, b] } = await c.waitFor('ready', { timeout: 10000 });

  await c.call('disconnect', { worker: a });
  const exitA = await c.waitFor({ event: 'exit', worker: a }, { timeout: 10000 });
  assert.equal(exitA.exitedAfterDisconnect, true);
  // The policy decides in the worker's own 'exit', before the cluster's.
  assert.equal((await c.call('state')).pendingRestarts, 0);

  // Node 20's kill() only signals (exitedAfterDisconnect stays false), but the
  // primary asked for it: not replaced.
  await c.call('kill', { worker: b });
  const exitB = await c.waitFor({ event: 'exit', worker: b }, { timeout: 10000 });
  assert.deepEqual([exitB.signal, exitB.exitedAfterDisconnect], ['SIGTERM', false]);
  assert.equal((await c.call('state')).pendingRestarts, 0);

  const { worker: d } = await c.call('fork', { env: {} });
  await c.waitFor({ event: 'listening', worker: d }, { timeout: 10000 });
  await c.call('clusterDisconnect');
  await c.waitFor({ event: 'exit', worker: d }, { timeout: 10000 });
  const state = await c.call('state');
  assert.deepEqual([state.workers, state.pendingRestarts], [[], 0]);
  assert.deepEqual(c.all('restart'), []);
});

test('without the restart setting a killed worker is not replaced (as in node:cluster)', { timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 2 });
  const { workers: [a, b] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('sigkill', { worker: a });
  await c.waitFor({ event: 'exit', worker: a }, { timeout: 10000 });
  const state = await c.call('state');
  assert.deepEqual(state.workers, [b]);
  assert.deepEqual(c.all('fork').map((e) => e.worker), [a, b]);
  assert.deepEqual(c.all('restart'), []);
});
