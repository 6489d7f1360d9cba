'use strict';
// `import cluster from 'rcluster'` and named imports, in the primary and in
// workers, compared with what node:cluster's own ES module gives in each role.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startCluster, IMPL } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const N = 2;
const HOOK = path.join(__dirname, '..', 'helpers', 'esm-impl.mjs');
// Names rcluster adds to node:cluster's (primary only; `shutdown`, `reload` and `scale` are
// undefined until the primary has them).
const ADDITIONS = ['stats', 'shutdown', 'reload', 'scale'];

// Runs esm-primary.mjs on `impl` ('' = rcluster) and resolves with the
// primary's report, the workers' reports and the ready event.
async function runEsm(t, impl) {
  const port = await getFreePort();
  const env = { WORKERS: String(N), PORT: String(port), RCLUSTER_TEST_IMPL: impl };
  if (impl) env.NODE_OPTIONS = `${process.env.NODE_OPTIONS || ''} --import ${HOOK}`.trim();
  const c = startCluster(t, 'esm-primary.mjs', { env });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  const workers = await c.waitFor('worker-report', { count: N });
  return { c, port, primary: c.all('primary')[0], workers, ready };
}

test('ES module cluster program: default and named imports of rcluster', { timeout: 60000 }, async (t) => {
  const run = await runEsm(t, IMPL);
  // node:cluster's names in each role, from the same program on node:cluster.
  const ref = IMPL === 'node:cluster' ? run : await runEsm(t, 'node:cluster');

  await t.test('the default export is the cluster object require() gives, in primary and workers', () => {
    for (const r of [run.primary, ...run.workers]) {
      assert.equal(r.defaultIsCluster, true);
      assert.equal(r.requireGivesSameCluster, true, `pid ${r.pid}: import and require give one cluster`);
    }
  });

  await t.test('named imports give the role flags and the worker object', () => {
    assert.deepEqual([run.primary.isPrimary, run.primary.isWorker], [true, false]);
    assert.deepEqual(run.primary.settingsBefore, {});
    for (const w of run.workers) {
      assert.deepEqual([w.isPrimary, w.isWorker], [false, true]);
      assert.equal(w.workerIsClusterWorker, true);
      assert.equal(w.id, w.worker, 'the imported `worker` is this worker');
    }
  });

  await t.test('every name node:cluster exports in that role is exported, with the cluster\'s value', () => {
    const nodePrimary = ref.primary.keys;
    const nodeWorker = ref.workers[0].keys;
    assert.ok(nodePrimary.includes('fork') && nodeWorker.includes('worker'), 'reference run looks right');
    assert.ok(!nodePrimary.includes('stats'), 'the reference run is on node:cluster');
    const allowed = new Set([...nodePrimary, ...nodeWorker, ...ADDITIONS]);
    for (const [role, mine, theirs] of [['primary', run.primary.keys, nodePrimary],
      ...run.workers.map((w) => [`worker ${w.id}`, w.keys, nodeWorker])]) {
      assert.deepEqual(theirs.filter((k) => !mine.includes(k)), [], `${role}: node:cluster names missing`);
      assert.deepEqual(mine.filter((k) => !allowed.has(k)), [], `${role}: names node:cluster has in neither role`);
    }
    for (const r of [run.primary, ...run.workers]) assert.deepEqual(r.mismatches, []);
  });

  await t.test('both ESM workers serve HTTP', async () => {
    const pids = new Set(run.ready.workers.map((w) => w.pid));
    const seen = new Set();
    await sequential(20, async () => {
      const res = await get(run.port, { timeout: 4000 });
      assert.equal(res.status, 200);
      const pid = Number(res.body.split(' ')[1]);
      assert.ok(pids.has(pid), `answered by a worker: ${res.body}`);
      seen.add(pid);
    });
    assert.equal(seen.size, N, 'both workers answered');
  });
});
