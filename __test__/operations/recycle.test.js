'use strict';
// setupPrimary({ recycle }): a worker past its memory, request or age limit
// is replaced gracefully, replacement first, and 'recycle' names it and why.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, sequential } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no recycling');

function start(t, { workers = 1, settings, env = {} } = {}) {
  const e = { WORKERS: String(workers), ...env };
  if (settings) e.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'operations.js', { env: e });
}

// The old worker left only after its replacement listened, and drained.
async function assertReplacedFirst(c, old) {
  const exit = await c.waitFor({ event: 'exit', worker: old }, { timeout: 20000 });
  const replacement = c.all('fork').find((f) => f.replaces === old);
  assert.ok(replacement, `a replacement for worker ${old}`);
  const listening = c.all({ event: 'listening', worker: replacement.worker })[0];
  assert.ok(listening && listening.at <= exit.at, 'the replacement listened before the old worker left');
  assert.equal(exit.exitedAfterDisconnect, true);
  assert.equal(exit.signal, null, 'drained, not killed');
  return replacement.worker;
}

test('maxMemory: a worker that leaks is recycled once its RSS passes the limit', { skip, timeout: 60000 }, async (t) => {
  // The hard limit far off: this fixture leaks 80 MB/s, and a worker past
  // the default one (1.5 x 120M) before its replacement is ready is killed.
  const c = start(t, { settings: { recycle: { maxMemory: { soft: '120M', hard: '1G' } } } });
  const { workers: [old] } = await c.waitFor('ready', { timeout: 10000 });
  assert.equal(c.all('recycle').length, 0);
  await c.call('setMode', { mode: 'leak' });
  // Only workers forked from now on leak: reload into one.
  const reload = await c.call('reload', {}, { timeout: 20000 });
  assert.equal(reload.ok, true);
  const leaker = reload.replaced[0].replacement;
  await c.call('setMode', { mode: '' });
  const recycle = await c.waitFor({ event: 'recycle', worker: leaker }, { timeout: 20000 });
  assert.equal(recycle.reason, 'maxMemory');
  assert.equal(recycle.maxMemory, 120 * 1024 * 1024);
  assert.ok(recycle.rss > recycle.maxMemory, `rss ${recycle.rss}`);
  await assertReplacedFirst(c, leaker);
  assert.equal(c.all({ event: 'recycle', worker: old }).length, 0, 'the worker that did not leak was not recycled');
});

test('maxRequests: a worker is recycled after serving its budget', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { recycle: { maxRequests: 10 } } });
  const { port, workers: [old] } = await c.waitFor('ready', { timeout: 10000 });
  const answers = await sequential(9, () => get(port));
  assert.ok(answers.every((r) => JSON.parse(r.body).id === old));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.all('recycle').length, 0, 'not before the budget');
  await get(port);
  const recycle = await c.waitFor({ event: 'recycle', worker: old }, { timeout: 10000 });
  assert.deepEqual([recycle.reason, recycle.requests], ['maxRequests', 10]);
  const replacement = await assertReplacedFirst(c, old);
  const res = await get(port);
  assert.equal(JSON.parse(res.body).id, replacement);
});

test('maxAge with jitter: each worker is recycled between maxAge and maxAge * (1 + jitter)', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { recycle: { maxAge: 2000, jitter: 0.5 } } });
  const { workers } = await c.waitFor('ready', { timeout: 10000 });
  for (const id of workers) {
    const recycle = await c.waitFor({ event: 'recycle', worker: id }, { timeout: 20000 });
    const fork = c.all({ event: 'fork', worker: id })[0];
    assert.equal(recycle.reason, 'maxAge');
    assert.ok(recycle.age >= 2000 && recycle.age <= 3000 + 1500, `age ${recycle.age}`);
    assert.ok(recycle.at - fork.at >= 2000);
    await assertReplacedFirst(c, id);
  }
});
