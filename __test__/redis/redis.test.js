'use strict';
// [rcluster-only] bus.redis: two primaries on this machine stand for two
// machines, sharing one real redis-server that the test starts on a private
// port (.ci/run installs the Debian package when it is missing).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { redisServerPath, startRedisServer } = require('../helpers/redis-server');

const REDIS = redisServerPath();
const skip = rclusterOnly('bus.redis is rcluster\'s') ||
  (REDIS === null && 'redis-server is not installed (apt-get install redis-server; .ci/run does it)');


async function startRedis(t) {
  const redis = await startRedisServer(REDIS);
  t.after(() => redis.proc.kill('SIGKILL'));
  return redis;
}

async function twoMachines(t) {
  const redis = await startRedis(t);
  const a = startCluster(t, 'redis-bus.js', { env: { REDIS_URL: redis.url } });
  const b = startCluster(t, 'redis-bus.js', { env: { REDIS_URL: redis.url } });
  const [ra, rb] = await Promise.all([a.waitFor('ready', { timeout: 20000 }), b.waitFor('ready', { timeout: 20000 })]);
  // Subscriptions are set up asynchronously: wait until a broadcast crosses.
  for (let i = 0; ; i++) {
    const from = b.events.length;
    await a.call('broadcast', { topic: 'ping', data: `warm-up ${i}` });
    try {
      await b.waitFor((e) => e.event === 'got' && e.data === `warm-up ${i}`, { from, timeout: 300 });
      break;
    } catch (err) {
      if (i === 30) throw err;
    }
  }
  return { redis, a, b, ma: ra.machine, mb: rb.machine, wa: ra.workers, wb: rb.workers };
}

test('a broadcast from one machine reaches the workers of both; send crosses too', { skip, timeout: 90000 }, async (t) => {
  const { a, b, ma, mb, wa, wb } = await twoMachines(t);
  assert.notEqual(ma, mb);
  const fromA = a.events.length;
  const fromB = b.events.length;
  await a.call('worker', { worker: wa[0], op: { do: 'broadcast', topic: 'ping', data: 'hello' } });
  const gotA = await a.waitFor((e) => e.event === 'got' && e.data === 'hello', { from: fromA, count: 2, timeout: 10000 });
  const gotB = await b.waitFor((e) => e.event === 'got' && e.data === 'hello', { from: fromB, count: 2, timeout: 10000 });
  assert.deepEqual(gotA.map((g) => g.worker).sort(), [...wa].sort());
  assert.deepEqual(gotB.map((g) => g.worker).sort(), [...wb].sort());
  assert.ok(gotA.every((g) => g.from === wa[0]), 'on its own machine the sender is a local worker');
  assert.ok(gotB.every((g) => g.from === `${ma}/${wa[0]}`), 'elsewhere it is machine/worker');
  assert.ok(gotB.every((g) => g.machine === mb), 'workers know their machine');

  const before = b.events.length;
  await a.call('worker', { worker: wa[1], op: { do: 'send', to: `${mb}/${wb[1]}`, topic: 'ping', data: 'direct' } });
  const direct = await b.waitFor((e) => e.event === 'got' && e.data === 'direct', { from: before, timeout: 10000 });
  assert.equal(direct.worker, wb[1]);
  assert.equal(direct.from, `${ma}/${wa[1]}`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(b.all((e) => e.event === 'got' && e.data === 'direct').length, 1, 'only its target got it');
});

test('counters are sums over both machines', { skip, timeout: 90000 }, async (t) => {
  const { a, b, wa, wb } = await twoMachines(t);
  await Promise.all([
    a.call('worker', { worker: wa[0], op: { do: 'add', name: 'hits', n: 100 } }),
    a.call('worker', { worker: wa[1], op: { do: 'add', name: 'hits', n: 200 } }),
    b.call('worker', { worker: wb[0], op: { do: 'add', name: 'hits', n: 1000 } }),
    b.call('worker', { worker: wb[1], op: { do: 'add', name: 'hits', n: 2000 } }),
  ]);
  const [ca, cb] = await Promise.all([a.call('counter', { name: 'hits' }), b.call('counter', { name: 'hits' })]);
  assert.equal(ca.local, 300);
  assert.equal(cb.local, 3000);
  assert.equal(ca.value, 3300);
  assert.equal(cb.value, 3300);
  const inWorker = await b.call('worker', { worker: wb[0], op: { do: 'get', name: 'hits' } });
  assert.equal(inWorker.value, 3300, 'a worker sees the total too');
  // Without sync, within the exchange interval (100 ms).
  await a.call('worker', { worker: wa[0], op: { do: 'add', name: 'hits', n: 7 } });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await b.call('worker', { worker: wb[1], op: { do: 'get', name: 'hits' } })).value, 3307);
});

test('stopping Redis mid-run loses no local message and says so', { skip, timeout: 90000 }, async (t) => {
  const { redis, a, wa } = await twoMachines(t);
  const from = a.events.length;
  const run = a.call('worker', { worker: wa[0], op: { do: 'sequence', to: wa[1] } }, { timeout: 30000 });
  await new Promise((r) => setTimeout(r, 100));
  redis.proc.kill('SIGKILL');
  const sent = await run;
  assert.equal(sent.sent, 3000);
  const got = await a.waitFor((e) => e.event === 'got' && e.topic === 'seq', { from, timeout: 20000 });
  assert.equal(got.received, 3000);
  assert.equal(got.outOfOrder, 0);
  const err = await a.waitFor('bus-error', { timeout: 10000 });
  assert.equal(err.code, 'ERR_RCLUSTER_REDIS_DOWN');
  // Nothing waits on Redis: a counter still counts, and its sync returns.
  await a.call('worker', { worker: wa[0], op: { do: 'add', name: 'n', n: 5 } });
  const c = await a.call('counter', { name: 'n' }, { timeout: 5000 });
  assert.equal(c.value, 5);
});
