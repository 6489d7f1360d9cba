'use strict';
// A worker's process.env carries no cluster plumbing: NODE_UNIQUE_ID is gone
// and no RCLUSTER* variable is left behind (only the ones the test itself set
// for the primary), and process.execArgv shows no preload of the cluster
// module's own. Beyond that, as on node:cluster, a worker's environment
// is exactly the primary's plus what was passed to cluster.fork(env).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');

function rclusterKeys(env) {
  return Object.keys(env).filter((k) => /^RCLUSTER/i.test(k)).sort();
}

for (const [label, env] of [
  ['worker that requires the cluster module', {}],
  ['worker script that never requires it (setupPrimary({exec}))', { PLAIN_WORKER: '1' }],
]) {
  test(`worker environment: ${label}`, { timeout: 20000 }, async (t) => {
    const c = startCluster(t, 'env-check.js', { env });
    const { primary, execArgv, workers } = await c.waitFor('envs', { timeout: 10000 });
    const given = { ...process.env, ...c.spawnEnv };
    const allowed = rclusterKeys(given);

    await t.test('NODE_UNIQUE_ID is not in process.env', () => {
      for (const w of workers) {
        assert.ok(!('NODE_UNIQUE_ID' in w.env), `worker ${w.worker} has NODE_UNIQUE_ID=${w.env.NODE_UNIQUE_ID}`);
      }
      assert.ok(!('NODE_UNIQUE_ID' in primary), 'primary has no NODE_UNIQUE_ID');
    });

    await t.test('no RCLUSTER* variable besides the test harness\'s own', () => {
      for (const w of workers) assert.deepEqual(rclusterKeys(w.env), allowed, `worker ${w.worker}`);
      assert.deepEqual(rclusterKeys(primary), allowed, 'primary');
    });

    await t.test('worker env = primary env + cluster.fork(env) extras', () => {
      const byId = Object.fromEntries(workers.map((w) => [w.worker, w.env]));
      const ids = Object.keys(byId).map(Number).sort();
      assert.deepEqual(byId[ids[0]], { ...primary, FORK_EXTRA: 'from-fork' }, `worker ${ids[0]} (forked with env)`);
      assert.deepEqual(byId[ids[1]], primary, `worker ${ids[1]}`);
    });

    await t.test('worker process.execArgv is cluster.settings.execArgv, nothing added', () => {
      for (const w of workers) assert.deepEqual(w.execArgv, execArgv, `worker ${w.worker}`);
    });
  });
}
