'use strict';
// Several native dispatcher threads (routing.dispatcherThreads, docs/DESIGN.md
// §16): each deals the one listening socket to its own share of the workers.
// What a user sees must not change: every request served, by every worker,
// cluster.stats() one listener with every worker, the bus across threads, a
// killed worker's connections served by the others.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, pool } = require('../helpers/http-client');

const skip = rclusterOnly('native dispatcher threads');

function counts(bodies) {
  const out = {};
  for (const b of bodies) out[b] = (out[b] || 0) + 1;
  return out;
}

test('2 dispatcher threads, 4 workers: every request served, by every worker, one listener in stats()',
  { skip, timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'dispatcher-threads.js', { env: { THREADS: '2', WORKERS: '4' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 15000 });
    const bodies = await pool(400, 20, () => get(port, { headers: { connection: 'close' }, timeout: 10000 }).then((r) => r.body));
    const byWorker = counts(bodies);
    t.diagnostic(`requests per worker: ${JSON.stringify(byWorker)}`);
    assert.equal(bodies.length, 400);
    assert.deepEqual(Object.keys(byWorker).map(Number).sort(), workers.map((w) => w.id).sort(), 'every worker served');
    const stats = await c.call('stats');
    assert.equal(stats.dispatcherThreads, 2);
    assert.equal(stats.listeners.length, 1, 'one listener, not one per thread');
    assert.deepEqual(stats.listeners[0].workers, workers.map((w) => w.id).sort((a, b) => a - b));
    assert.equal(stats.listeners[0].accepted, 400);
    assert.deepEqual(stats.workers.map((w) => w.accepted).reduce((a, b) => a + b, 0), 400);
    assert.equal(stats.ackLatency.count, 400);
  });

test('2 dispatcher threads: a bus request crosses from one thread\'s worker to the other\'s and back',
  { skip, timeout: 60000 },
  async (t) => {
    // 2 threads on this many CPUs: workers alternate between them (1 and 3
    // on one, 2 and 4 on the other, when CPUs <= 2; otherwise each thread
    // takes its share first). Every pair is asked, so some pair crosses.
    const c = startCluster(t, 'dispatcher-threads.js', { env: { THREADS: '2', WORKERS: '4' } });
    const { workers } = await c.waitFor('ready', { timeout: 15000 });
    const ids = workers.map((w) => w.id);
    for (const from of ids) {
      for (const to of ids) {
        const { answer } = await c.call('ask-over-bus', { from, to });
        assert.equal(answer, to, `${from} asked ${to}`);
      }
    }
  });

test('2 dispatcher threads: a killed worker\'s share is served by the others, on either thread',
  { skip, timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'dispatcher-threads.js', { env: { THREADS: '2', WORKERS: '2' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 15000 });
    await c.call('kill', { worker: workers[1].id });
    // The dead worker was the only one on its thread: that thread takes
    // nothing more, and every request goes to the survivor.
    const bodies = await pool(100, 10, () => get(port, { headers: { connection: 'close' }, timeout: 10000 }).then((r) => r.body));
    assert.deepEqual(counts(bodies), { [workers[0].id]: 100 });
    const stats = await c.call('stats');
    assert.deepEqual(stats.listeners[0].workers, [workers[0].id]);
    assert.equal(stats.listeners[0].pending, 0, 'nothing left held on the dead worker\'s thread');
  });

test('the default is one dispatcher thread below 16 CPUs, and \'auto\' is the default',
  { skip, timeout: 60000 },
  async (t) => {
    const cpus = require('node:os').availableParallelism();
    const expected = Math.min(64, Math.max(1, Math.floor(cpus / 8)));
    for (const THREADS of ['', 'auto']) {
      const c = startCluster(t, 'dispatcher-threads.js', { env: { THREADS, WORKERS: '1', RCLUSTER_DISPATCHER_THREADS: '' } });
      await c.waitFor('ready', { timeout: 15000 });
      assert.equal((await c.call('stats')).dispatcherThreads, expected, `THREADS=${THREADS}`);
    }
  });
