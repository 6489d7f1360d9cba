'use strict';
// When every worker on a socket has died (replacements are coming), rcluster
// keeps the socket open and holds new connections until a worker listens
// again, up to `queueTimeout`; then it closes them. node:cluster closes the
// socket with its last worker and refuses connections meanwhile. Only a
// deliberate close by every worker frees the port, in both.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, tryListen } = require('../helpers/http-client');

async function waitForPending(c, n) {
  for (let i = 0; i < 200; i++) {
    const stats = await c.call('stats');
    if (stats.listeners[0] && stats.listeners[0].pending >= n) return stats;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the primary never held ${n} connections`);
}

for (const policy of ['rr', 'none']) {
  test(`[${policy}] connections made while no worker is alive are served by the replacement`,
    { skip: rclusterOnly('holding connections while no worker listens'), timeout: 60000 },
    async (t) => {
      const c = startCluster(t, 'no-worker.js', { env: { NODE_CLUSTER_SCHED_POLICY: policy } });
      const { port } = await c.waitFor('ready', { timeout: 10000 });
      await c.call('kill-all');

      const requests = Array.from({ length: 20 }, (_, i) => settle(get(port, { path: `/${i}`, timeout: 20000 })));
      // All 20 are accepted and held by the primary before any worker exists.
      await waitForPending(c, 20);
      const { worker: id, port: samePort } = await c.call('fork');
      assert.equal(samePort, port, 'the replacement listens on the socket that stayed open');

      const results = await Promise.all(requests);
      const failures = results.filter((r) => !r.ok).map((r) => `${r.error.code} ${r.error.message}`);
      assert.deepEqual(failures, [], 'no request failed');
      assert.deepEqual(results.map((r) => r.value.body), Array(20).fill(String(id)), 'all served by the replacement');
    });
}

test('connections held longer than queueTimeout are closed, and the port stays held',
  { skip: rclusterOnly('holding connections while no worker listens'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'no-worker.js', { env: { QUEUE_TIMEOUT: '300' } });
    const { port } = await c.waitFor('ready', { timeout: 10000 });
    await c.call('kill-all');

    const results = await Promise.all(Array.from({ length: 5 }, () => settle(get(port, { timeout: 15000 }))));
    for (const r of results) {
      assert.equal(r.ok, false, 'no worker answered');
      assert.notEqual(r.error.code, 'ETESTTIMEOUT', 'closed by the primary, not left hanging');
    }
    const stats = await c.call('stats');
    assert.equal(stats.listeners[0].expired, 5, 'the primary counts what it closed');
    assert.equal(stats.listeners[0].pending, 0, 'and holds nothing');
    assert.equal((await tryListen(port, '127.0.0.1')).ok, false, 'the port is still held');

    const { worker: id } = await c.call('fork');
    const r = await get(port, { timeout: 5000 });
    assert.equal(r.body, String(id), 'a new worker serves on the same port');
  });

test('a deliberate close by every worker frees the port', { timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'no-worker.js', { env: { WORKERS: '2' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('disconnect-all');
  assert.equal((await tryListen(port, '127.0.0.1')).ok, true, 'the port is free');
});

test('workers that disconnect themselves (process.disconnect()) and exit free the port', { timeout: 60000 }, async (t) => {
  // Leaving the cluster on purpose is a deliberate close, unlike dying.
  const c = startCluster(t, 'no-worker.js', { env: { WORKERS: '2' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const { exited } = await c.call('disconnect-self');
  assert.deepEqual(exited.map((e) => e.code), [0, 0]);
  assert.equal((await tryListen(port, '127.0.0.1')).ok, true, 'the port is free');
});

test('queueTimeout is validated like Node validates options', async () => {
  const { spawnSync } = require('node:child_process');
  const program = `
    const cluster = require(${JSON.stringify(require('node:path').join(__dirname, '..', '..'))});
    const out = [];
    for (const value of ['100', -1, NaN, null]) {
      try { cluster.setupPrimary({ queueTimeout: value }); out.push('accepted'); }
      catch (err) { out.push(err.name + ' ' + err.code); }
    }
    cluster.setupPrimary({ queueTimeout: Infinity });
    cluster.setupPrimary({ queueTimeout: 0 });
    console.log(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [
    'TypeError ERR_INVALID_ARG_TYPE',
    'RangeError ERR_OUT_OF_RANGE',
    'RangeError ERR_OUT_OF_RANGE',
    'TypeError ERR_INVALID_ARG_TYPE',
  ]);
});
