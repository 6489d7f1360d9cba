'use strict';
// NODE_CLUSTER_SCHED_POLICY set in an ES module app's own code: its imports
// ran first, and node:cluster read the variable then (nodejs/node#49240).
// rcluster reads it when the policy is frozen (first setupPrimary or fork),
// unless the app assigned cluster.schedulingPolicy.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startCluster, rclusterOnly, IMPL } = require('../helpers/run-cluster');
const { get, getFreePort } = require('../helpers/http-client');
const { listeningFdsOf } = require('../helpers/proc-net');

const HOOK = path.join(__dirname, '..', 'helpers', 'esm-impl.mjs');

async function run(t, env) {
  const port = await getFreePort();
  const spawnEnv = { ...env, PORT: String(port), NODE_CLUSTER_SCHED_POLICY: '' };
  if (IMPL) spawnEnv.NODE_OPTIONS = `${process.env.NODE_OPTIONS || ''} --import ${HOOK}`.trim();
  const c = startCluster(t, 'esm-sched-policy.mjs', { env: spawnEnv });
  const ready = await c.waitFor('ready', { timeout: 15000 });
  const res = await get(port, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return { ready, listening: ready.workers.map((w) => listeningFdsOf(w.pid, port)) };
}

test('process.env.NODE_CLUSTER_SCHED_POLICY = \'none\' after the import: SCHED_NONE',
  { timeout: 30000, skip: rclusterOnly('node:cluster reads the variable at import, nodejs/node#49240') }, async (t) => {
    const { ready, listening } = await run(t, { LATE_POLICY: 'none' });
    assert.equal(ready.schedulingPolicy, 1);
    for (const n of listening) assert.ok(n >= 1, 'each worker listens on the shared socket itself');
  });

test('cluster.schedulingPolicy assigned by the app wins over the late variable', { timeout: 30000 }, async (t) => {
  const { ready, listening } = await run(t, { LATE_POLICY: 'none', SET_POLICY: 'rr' });
  assert.equal(ready.schedulingPolicy, 2);
  for (const n of listening) assert.equal(n, 0, 'round-robin: no worker holds a listening socket');
});
