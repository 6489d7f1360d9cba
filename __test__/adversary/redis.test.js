'use strict';
// [rcluster-only] A hostile Redis peer: a raw ioredis client publishes on
// the bridge's channels what no rcluster primary would: null, hostile JSON
// values, mutated messages, topic 'error' broadcast and sent to the primary,
// 1,100 counter names, 1,000 names only it uses. The primary and its workers
// stay up and keep serving, the bridge still carries good messages, no slot
// of this machine's counter table goes to a name only the peer uses, and the
// refusals are counted (cluster.stats().rejected.redisMessage). A real
// redis-server started here on a private loopback port, as in __test__/redis/.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { redisServerPath, startRedisServer } = require('../helpers/redis-server');
const { get } = require('../helpers/http-client');
const { rng, mutate, hostileValue } = require('../helpers/mutator');

const REDIS = redisServerPath();
const skip = rclusterOnly('bus.redis is rcluster\'s') ||
  (REDIS === null && 'redis-server is not installed (apt-get install redis-server)');

async function startRedis(t) {
  const { url, proc } = await startRedisServer(REDIS);
  t.after(() => proc.kill('SIGKILL'));
  return url;
}

const PEER = '12345678';

test('a hostile Redis peer crashes nothing, fills nothing, and is counted', { skip, timeout: 120000 }, async (t) => {
  const url = await startRedis(t);
  const Redis = require('ioredis');
  const peer = new Redis(url, { maxRetriesPerRequest: 1 });
  t.after(() => peer.disconnect());
  const c = startCluster(t, 'adversary/redis-target.js', { env: { REDIS_URL: url } });
  const { machine, port } = await c.waitFor('ready', { timeout: 30000 });
  const bus = (msg) => peer.publish('rcluster:bus', typeof msg === 'string' ? msg : JSON.stringify(msg));
  const counters = (msg) => peer.publish('rcluster:counters', typeof msg === 'string' ? msg : JSON.stringify(msg));

  // A good broadcast crosses once the primary's subscription is up.
  for (let i = 0; ; i++) {
    const from = c.events.length;
    await bus({ m: PEER, f: 1, k: 'b', t: 'ping', d: `warm-up ${i}` });
    try {
      await c.waitFor((e) => e.event === 'got' && e.data === `warm-up ${i}`, { from, count: 2, timeout: 300 });
      break;
    } catch (err) {
      if (i === 50) throw err;
    }
  }
  const before = (await c.call('stats')).rejected.redisMessage ?? 0;

  let sure = 0; // messages that must be refused
  for (const text of ['null', 'true', '[]', '{}', 'not json']) {
    await bus(text);
    await counters(text);
    sure += 2;
  }
  for (const t of ['error', 'newListener', 'removeListener']) {
    await bus({ m: PEER, f: 1, k: 'b', t, d: { boom: 1 } });
    await bus({ m: PEER, f: 1, k: 's', to: machine, tg: 'primary', t, d: { boom: 1 } });
    await bus({ m: PEER, f: 1, k: 's', to: machine, tg: '1', t, d: { boom: 1 } });
    sure += 3;
  }
  await counters({ m: PEER, c: Array.from({ length: 1100 }, (_, i) => [`peer-${i}`, i]) });
  await counters({ m: PEER, c: [['hits', 1.5]] });
  sure += 2;
  // Hostile values and mutated good messages, on both channels.
  const r = rng();
  const good = [{ m: PEER, f: 1, k: 'b', t: 'ping', d: 'x' }, { m: PEER, f: 'agent', k: 's', to: machine, tg: 'primary', t: 'ping', d: 1 }];
  for (let i = 0; i < 400; i++) {
    const channel = i % 2 === 0 ? bus : counters;
    if (i % 4 < 2) await channel(JSON.stringify(hostileValue(r)) ?? 'undefined');
    else await channel(mutate(r, Buffer.from(JSON.stringify(r.pick(good)))).toString('utf8'));
  }
  // Names only the peer uses: kept, bounded, never given a slot here; 'hits'
  // exists here and gets the peer's part.
  await counters({ m: PEER, c: [...Array.from({ length: 1000 }, (_, i) => [`only-peer-${i}`, i]), ['hits', 100]] });

  // The bridge still carries good messages, to the workers and the primary.
  const from = c.events.length;
  await bus({ m: PEER, f: 3, k: 'b', t: 'ping', d: 'after' });
  await bus({ m: PEER, f: 3, k: 's', to: machine, tg: 'primary', t: 'ping', d: 'after-send' });
  await c.waitFor((e) => e.event === 'got' && e.data === 'after', { from, count: 2, timeout: 10000 });
  await c.waitFor((e) => e.event === 'primary-got' && e.data === 'after-send', { from, timeout: 10000 });

  assert.equal(c.exited, false, 'the primary is alive');
  assert.deepEqual(c.all((e) => e.event === 'worker-exit'), [], 'no worker died');
  assert.deepEqual(c.all((e) => e.event === 'bus-error'), [], 'no error reached the application\'s bus');
  for (let i = 0; i < 20; i++) assert.equal((await get(port, { timeout: 5000 })).status, 200);

  let stats;
  for (let i = 0; ; i++) {
    stats = await c.call('stats');
    if (stats.hits === 105 || i === 50) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(stats.counters, ['hits'], 'no counter slot for a name only the peer uses');
  assert.equal(stats.hits, 105, 'the peer\'s part of a counter that exists here is in its total');
  const refused = (stats.rejected.redisMessage ?? 0) - before;
  t.diagnostic(`${refused} messages refused and counted`);
  assert.ok(refused >= sure, `${refused} refused, at least ${sure} expected`);
});
