'use strict';
// [rcluster-only] A worker writes the shared memory region (cluster.shared)
// directly, as a compromised or buggy worker can (every process maps it
// writable): it corrupts counter name lengths, plants write locks naming a
// live process, or scribbles random bytes over every slot. Shared state may
// be lost, but the primary stays up, cluster.shared in the primary and in
// another worker returns or throws a coded error within a bound, HTTP keeps
// answering, and the corruption is counted (cluster.stats().rejected).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('cluster.shared is rcluster\'s') ||
  (process.platform !== 'linux' && 'the attacker finds the region through /proc/self/maps');

// A call may wait for a lock (50 ms) or a stable value, never longer.
const CALL_BOUND_MS = 2000;
const CODES = new Set(['ERR_RCLUSTER_SHARED_LOCK_TIMEOUT', 'ERR_RCLUSTER_SHARED_BUSY', 'ERR_RCLUSTER_SHARED_FULL']);

async function start(t) {
  const c = startCluster(t, 'adversary/shm-attack.js');
  const ready = await c.waitFor('ready', { timeout: 20000 });
  return { c, ready };
}

function checkUse(where, answer) {
  assert.equal(answer.error, undefined, `${where}: ${answer.error}`);
  assert.ok(answer.slowestMs < CALL_BOUND_MS, `${where}: a cluster.shared call took ${answer.slowestMs} ms`);
  for (const [name, r] of Object.entries(answer.results)) {
    assert.ok(r.ok || CODES.has(r.code), `${where}: ${name} threw ${r.code}: ${r.message}`);
  }
}

async function stillServing(c, port) {
  assert.equal(c.exited, false, 'the primary is alive');
  for (let i = 0; i < 20; i++) {
    const res = await get(port, { timeout: 5000 });
    assert.equal(res.status, 200);
  }
  assert.equal(c.all((e) => e.event === 'worker-exit').length, 0, 'no worker died');
}

test('a corrupt counter name length is skipped and counted, not read past', { skip, timeout: 60000 }, async (t) => {
  const { c, ready } = await start(t);
  const attack = await c.call('attack', { kind: 'name-length' });
  assert.ok(attack.corrupted >= 1, 'the attacker found a counter slot to corrupt');
  for (const where of ['primary', 'victim']) {
    const answer = await c.call('use', { where }, { timeout: 20000 });
    checkUse(where, answer);
    assert.equal(answer.results.counters.ok, true);
  }
  await stillServing(c, ready.port);
  const { rejected } = await c.call('stats');
  assert.ok(rejected.sharedMemory >= 1, `rejected: ${JSON.stringify(rejected)}`);
});

test('a write lock naming a live process fails writes with a code within the bound', { skip, timeout: 60000 }, async (t) => {
  const { c, ready } = await start(t);
  const attack = await c.call('attack', { kind: 'lock' });
  assert.ok(attack.corrupted >= 2, 'the attacker found table slots to lock');
  for (const where of ['primary', 'victim']) {
    const answer = await c.call('use', { where }, { timeout: 20000 });
    checkUse(where, answer);
    assert.equal(answer.results.set.code, 'ERR_RCLUSTER_SHARED_LOCK_TIMEOUT', `${where}: ${JSON.stringify(answer.results.set)}`);
    assert.equal(answer.results.setOther.ok, true, 'a key nobody locked is still written');
    assert.deepEqual(answer.results.get.value, { v: 1 }, 'a locked key is still read');
  }
  await stillServing(c, ready.port);
});

test('random bytes over every slot never crash or hang another process', { skip, timeout: 90000 }, async (t) => {
  const { c, ready } = await start(t);
  for (let round = 0; round < 3; round++) {
    await c.call('attack', { kind: 'scribble' });
    for (const where of ['primary', 'victim']) checkUse(where, await c.call('use', { where }, { timeout: 20000 }));
  }
  await stillServing(c, ready.port);
});

test('a worker forked after the header was overwritten still starts', { skip, timeout: 60000 }, async (t) => {
  const { c, ready } = await start(t);
  await c.call('attack', { kind: 'header' });
  const late = await c.call('fork', {}, { timeout: 20000 });
  assert.equal(late.error, undefined, late.error);
  checkUse('primary', await c.call('use', { where: 'primary' }, { timeout: 20000 }));
  await stillServing(c, ready.port);
});
