'use strict';
// setupPrimary({ health: { hangTimeout } }): a worker whose event loop stops
// sending heartbeats is withdrawn by the dispatcher thread at once (even while
// the primary's JS is blocked), then replaced first and killed, with
// 'unhealthy' { reason: 'hung' }. Requests are all answered.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, pool } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no health checks');

function start(t, { workers = 2, settings } = {}) {
  const env = { WORKERS: String(workers) };
  if (settings) env.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'operations.js', { env });
}

test('a hung worker is withdrawn, replaced first, then killed', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { health: { hangTimeout: 500 }, restart: { minDelay: 10 } } });
  const { port, workers: [a, b] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('hang', { worker: a });
  const unhealthy = await c.waitFor({ event: 'unhealthy', worker: a }, { timeout: 10000 });
  assert.equal(unhealthy.reason, 'hung');
  assert.match(unhealthy.detail, /^no heartbeat for \d+ ms$/);
  const restart = await c.waitFor({ event: 'restart', old: a }, { timeout: 10000 });
  assert.equal(restart.reason, 'hung');
  const exit = await c.waitFor({ event: 'exit', worker: a }, { timeout: 10000 });
  assert.equal(exit.signal, 'SIGKILL');
  const fork = c.all({ event: 'fork', worker: restart.worker })[0];
  assert.ok(fork.at <= exit.at, 'the replacement was forked before the hung worker died');
  await c.waitFor({ event: 'listening', worker: restart.worker }, { timeout: 10000 });
  const answers = await pool(20, 4, () => get(port, { timeout: 5000 }));
  const ids = new Set(answers.map((r) => JSON.parse(r.body).id));
  assert.deepEqual([...ids].sort(), [b, restart.worker].sort());
  assert.equal(c.all({ event: 'unhealthy', worker: b }).length, 0, 'the healthy worker stays');
});

test("a hung worker is told as a process warning in the primary, with its code", { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { health: { hangTimeout: 500 }, restart: { minDelay: 10 } } });
  const { workers: [a] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('hang', { worker: a });
  const warning = await c.waitFor({ event: 'warning', code: 'RCLUSTER_HEARTBEAT_MISSED' }, { timeout: 10000 });
  assert.match(warning.message, new RegExp(`^worker ${a} sent no heartbeat for \\d+ ms: withdrawn$`));
});

test("the hang is caught natively while the primary's JS is blocked", { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { health: { hangTimeout: 400 }, restart: { minDelay: 10 } } });
  const { port, workers: [a, b] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('hang', { worker: a });
  await c.call('block', { ms: 3000 });
  await c.waitFor('blocking', { timeout: 5000 });
  // Well after the hang timeout, still inside the block: new connections go
  // to the healthy worker only, at once.
  await new Promise((r) => setTimeout(r, 1200));
  const during = await pool(12, 3, () => get(port, { timeout: 1500 }));
  const blockEnd = await c.waitFor('unblocked', { timeout: 10000 });
  for (const res of during) assert.equal(JSON.parse(res.body).id, b);
  assert.ok(during.every((r) => r.ms < 1000), `answered at once: ${during.map((r) => r.ms)}`);
  const unhealthy = await c.waitFor({ event: 'unhealthy', worker: a }, { timeout: 10000 });
  assert.ok(unhealthy.at >= blockEnd.at, 'reported to the JS once it could run');
  const silent = Number(/(\d+) ms/.exec(unhealthy.detail)[1]);
  assert.ok(silent < 1500, `detected by the dispatcher during the block, after ${silent} ms of silence (block: 3000 ms)`);
});

test('maxEventLoopDelay: a worker whose loop lags is replaced first, then killed', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { health: { maxEventLoopDelay: 100 }, restart: { minDelay: 10 } } });
  const { port, workers: [a, b] } = await c.waitFor('ready', { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(c.all('unhealthy').length, 0, 'healthy workers are left alone');
  await c.call('lag', { worker: a });
  const unhealthy = await c.waitFor({ event: 'unhealthy', worker: a }, { timeout: 10000 });
  assert.equal(unhealthy.reason, 'eventLoopDelay');
  const delay = Number(/delay (\d+) ms/.exec(unhealthy.detail)[1]);
  assert.ok(delay > 100, unhealthy.detail);
  const restart = await c.waitFor({ event: 'restart', old: a }, { timeout: 10000 });
  assert.equal(restart.reason, 'eventLoopDelay');
  const exit = await c.waitFor({ event: 'exit', worker: a }, { timeout: 10000 });
  assert.equal(exit.signal, 'SIGKILL');
  assert.ok(c.all({ event: 'fork', worker: restart.worker })[0].at <= exit.at, 'replacement forked first');
  await c.waitFor({ event: 'listening', worker: restart.worker }, { timeout: 10000 });
  const res = await get(port);
  assert.ok([b, restart.worker].includes(JSON.parse(res.body).id));
  assert.equal(c.all({ event: 'unhealthy', worker: b }).length, 0);
});

test('health settings are validated', { timeout: 10000 }, () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  assert.deepEqual(normalizeSettings({ health: { hangTimeout: 1000 } }).health, { hangTimeout: 1000 });
  assert.throws(() => normalizeSettings({ health: { hangTimeout: 5 } }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeSettings({ health: {} }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.deepEqual(normalizeSettings({ health: { maxEventLoopDelay: 200 } }).health, { maxEventLoopDelay: 200 });
  assert.throws(() => normalizeSettings({ health: { maxEventLoopDelay: 0 } }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeSettings({ health: { hangTimeout: 1000, maxEventLoopDelay: '1s' } }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => normalizeSettings({ health: 1000 }), { code: 'ERR_INVALID_ARG_TYPE' });
});
