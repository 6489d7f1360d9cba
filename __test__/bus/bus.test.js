'use strict';
// [rcluster-only] cluster.bus: broadcast, send, request/respond between the
// primary and the workers, relayed by the dispatcher thread.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

const skip = rclusterOnly('cluster.bus is rcluster\'s');

async function start(t, env = {}) {
  const c = startCluster(t, 'bus.js', { env });
  const { workers } = await c.waitFor('ready', { timeout: 15000 });
  return { c, workers };
}

test('a broadcast from the primary or a worker reaches every worker, with its sender', { skip, timeout: 60000 }, async (t) => {
  const { c, workers } = await start(t);
  let from = c.events.length;
  await c.call('broadcast', { topic: 'ping', data: { n: 1 } });
  let got = await c.waitFor({ event: 'got', topic: 'ping' }, { count: workers.length, from, timeout: 10000 });
  assert.deepEqual(got.map((g) => g.worker).sort(), [...workers].sort());
  for (const g of got) {
    assert.deepEqual(g.data, { n: 1 });
    assert.equal(g.sender, 'primary');
    assert.equal(g.from, g.worker, 'the primary sees who sent the report');
  }
  from = c.events.length;
  await c.call('worker', { worker: workers[1], op: { do: 'broadcast', topic: 'ping', data: [2] } });
  got = await c.waitFor({ event: 'got', topic: 'ping' }, { count: workers.length, from, timeout: 10000 });
  assert.deepEqual(got.map((g) => g.worker).sort(), [...workers].sort(), 'the sender is a worker too');
  assert.ok(got.every((g) => g.sender === workers[1]));
});

test('send reaches one worker only', { skip, timeout: 60000 }, async (t) => {
  const { c, workers } = await start(t);
  const from = c.events.length;
  await c.call('send', { to: workers[2], topic: 'ping', data: 'just you' });
  await c.waitFor({ event: 'got', topic: 'ping' }, { from, timeout: 10000 });
  await new Promise((r) => setTimeout(r, 300));
  const got = c.all((e) => e.event === 'got' && e._index >= from);
  assert.deepEqual(got.map((g) => g.worker), [workers[2]]);
});

test('request/respond between the primary and workers, and worker to worker', { skip, timeout: 60000 }, async (t) => {
  const { c, workers } = await start(t);
  const r1 = await c.call('request', { to: workers[0], topic: 'add', data: [2, 3] });
  assert.deepEqual(r1.value, { sum: 5, by: workers[0], from: 'primary' });
  const r2 = await c.call('worker', { worker: workers[0], op: { do: 'request', to: workers[1], topic: 'add', data: [40, 2] } });
  assert.deepEqual(r2.value, { sum: 42, by: workers[1], from: workers[0] });
  const r3 = await c.call('worker', { worker: workers[0], op: { do: 'request', to: 'primary', topic: 'whoami' } });
  assert.deepEqual(r3.value, { primary: true, from: workers[0] });
  const thrown = await c.call('request', { to: workers[1], topic: 'throw' });
  assert.deepEqual(thrown.failure, { code: 'E_NOPE', message: 'nope' });
  const none = await c.call('request', { to: workers[1], topic: 'nobody-answers-this' });
  assert.equal(none.failure.code, 'ERR_RCLUSTER_BUS_NO_RESPONDER');
  const slow = await c.call('request', { to: workers[1], topic: 'slow', options: { timeout: 300 } });
  assert.equal(slow.failure.code, 'ERR_RCLUSTER_BUS_TIMEOUT');
  assert.ok(slow.ms >= 250, `timed out after ${slow.ms} ms`);
});

test('a request to a target that dies, or does not exist, rejects at once', { skip, timeout: 60000 }, async (t) => {
  const { c, workers } = await start(t);
  const dying = await c.call('request', { to: workers[2], topic: 'die', options: { timeout: 20000 } });
  assert.equal(dying.failure?.code, 'ERR_RCLUSTER_BUS_TARGET_GONE', JSON.stringify(dying));
  assert.match(dying.failure.message, new RegExp(`worker ${workers[2]} is gone`));
  assert.ok(dying.ms < 5000, `rejected ${dying.ms} ms after the request, not at the timeout`);
  const nobody = await c.call('request', { to: 999, topic: 'add', data: [1, 1], options: { timeout: 20000 } });
  assert.equal(nobody.failure?.code, 'ERR_RCLUSTER_BUS_TARGET_GONE');
  assert.ok(nobody.ms < 5000);
  const fromWorker = await c.call('worker', { worker: workers[0], op: { do: 'request', to: workers[2], topic: 'add', data: [1, 1], options: { timeout: 20000 } } });
  assert.equal(fromWorker.failure?.code, 'ERR_RCLUSTER_BUS_TARGET_GONE', 'a worker hears of the death too');
});

test('messages from one sender arrive in the order sent', { skip, timeout: 60000 }, async (t) => {
  const { c, workers } = await start(t);
  const from = c.events.length;
  await c.call('worker', { worker: workers[0], op: { do: 'sequence', to: workers[1] } });
  const got = await c.waitFor({ event: 'got', topic: 'seq' }, { from, timeout: 20000 });
  assert.equal(got.worker, workers[1]);
  assert.equal(got.sender, workers[0]);
  assert.equal(got.outOfOrder, 0);
});

test('bad arguments give Node-style errors', { skip, timeout: 60000 }, async (t) => {
  const { c } = await start(t, { WORKERS: '1' });
  const r = await c.call('errors');
  assert.equal(r.badTarget.code, 'ERR_INVALID_ARG_VALUE');
  assert.equal(r.badTopic.code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(r.reservedTopic.code, 'ERR_INVALID_ARG_VALUE');
  assert.equal(r.tooBig.code, 'ERR_OUT_OF_RANGE');
  assert.match(r.tooBig.message, /at most 65536 bytes/);
  assert.equal(r.badTimeout.code, 'ERR_OUT_OF_RANGE');
});

test('messages to a worker that does not read are dropped past its queue, and the sender is told', { skip, timeout: 90000 }, async (t) => {
  const { c, workers } = await start(t);
  const [sender, stuck, other] = workers;
  await c.call('worker', { worker: stuck, op: { do: 'block', ms: 6000 } });
  await new Promise((r) => setTimeout(r, 100));
  // More than the 8192 messages a peer's queue holds (plus what its socket buffers).
  await c.call('worker', { worker: sender, op: { do: 'flood', to: stuck, count: 40000 } }, { timeout: 30000 });
  let report;
  for (let i = 0; i < 50; i++) {
    report = await c.call('worker', { worker: sender, op: { do: 'errors' } }, { timeout: 10000 });
    if (report.count > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(report.errors, ['ERR_RCLUSTER_BUS_FULL']);
  // Others are not held up meanwhile.
  const r = await c.call('worker', { worker: sender, op: { do: 'request', to: other, topic: 'add', data: [1, 2] } }, { timeout: 10000 });
  assert.equal(r.value.sum, 3);
  // Once it reads again, it gets what was queued for it, not more than was sent.
  await new Promise((r2) => setTimeout(r2, 6500));
  const got = await c.call('worker', { worker: stuck, op: { do: 'errors' } }, { timeout: 10000 });
  assert.ok(got.flooded > 0 && got.flooded < 40000, `the stuck worker got ${got.flooded} of 40000`);
});
