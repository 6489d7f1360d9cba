'use strict';
// Once rcluster is loaded, every `cluster` in the process is rcluster:
// require('cluster'), require('node:cluster') and `import ... from
// 'node:cluster'`, in the primary and in every worker, whether the app loads
// rcluster itself (a library having taken `cluster` before) or is started
// with `-r rcluster/register` / `--import rcluster/register`. Under
// node:cluster (RCLUSTER_TEST_IMPL) the same programs run without rcluster.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, IMPL } = require('../helpers/run-cluster');
const { get, getFreePort } = require('../helpers/http-client');

const ON_RCLUSTER = !IMPL;

const cases = [
  { fixture: 'identity.js', mode: 'plain', nodeArgs: [] },
  { fixture: 'identity.js', mode: 'register', nodeArgs: ['-r', 'rcluster/register'], policy: 'none' },
  { fixture: 'identity.mjs', mode: 'plain', nodeArgs: [] },
  { fixture: 'identity.mjs', mode: 'register', nodeArgs: ['--import', 'rcluster/register'], policy: 'none' },
];

for (const { fixture, mode, nodeArgs, policy = 'rr' } of cases) {
  const how = mode === 'register' ? `node ${nodeArgs.join(' ')}` : 'the app loads rcluster after a library took cluster';
  test(`${fixture}, ${how} (${policy}): one cluster in every process`, { timeout: 30000 }, async (t) => {
    const port = await getFreePort();
    const c = startCluster(t, `third-party/${fixture}`, {
      env: { MODE: mode, PORT: String(port), NODE_CLUSTER_SCHED_POLICY: policy },
      // Under node:cluster the program runs as is, without rcluster.
      nodeArgs: ON_RCLUSTER ? nodeArgs : [],
    });
    const primary = await c.waitFor('primary', { timeout: 10000 });
    const ready = await c.waitFor('ready', { timeout: 15000 });
    const workers = await c.waitFor('worker-facts', { count: 2, timeout: 5000 });

    for (const f of [primary, ...workers]) {
      const who = f.worker === undefined ? 'primary' : `worker ${f.worker}`;
      for (const key of ['requireCluster', 'requireNodeCluster', 'earlyLib', 'defaultImport', 'namespaceDefault', 'namedRole', 'namedObject']) {
        if (key in f) assert.equal(f[key], true, `${who}: ${key}${c.diag()}`);
      }
      if (ON_RCLUSTER) {
        assert.equal(f.isRcluster, true, `${who} runs rcluster`);
        assert.equal(f.requireRcluster, true, `${who}: require('rcluster')`);
        if ('importRcluster' in f) assert.equal(f.importRcluster, true, `${who}: import('rcluster')`);
      }
      // As under node:cluster, whose bootstrap deletes it.
      assert.equal(f.uniqueId, null, `${who}: process.env.NODE_UNIQUE_ID`);
    }
    assert.deepEqual([primary.isPrimary, primary.isWorker], [true, false]);
    for (const w of workers) {
      assert.deepEqual([w.isPrimary, w.isWorker, w.earlyIsWorker], [false, true, true]);
      assert.equal(w.workerId, w.worker, 'cluster.worker.id is the primary\'s id for it');
      assert.equal(w.earlyWorkerId, w.worker, 'the library sees the same cluster.worker');
    }
    assert.deepEqual(ready.earlyWorkerIds, ready.workerIds, 'the library sees the primary\'s workers');
    assert.equal(ready.workerIds.length, 2);
    if ('namedObject' in ready) assert.equal(ready.namedObject, true, 'named import `workers` is the cluster\'s');

    // Both workers serve, through Node's own listen path.
    const seen = new Set();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await get(port, { headers: { connection: 'close' } });
      seen.add(res.body);
    }
    if (policy === 'rr') assert.deepEqual([...seen].sort(), ['1', '2']);
    else assert.ok(seen.size >= 1, 'served');
  });
}
