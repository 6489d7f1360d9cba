'use strict';
// cluster.setupPrimary({ exec }) with a worker script that never requires the
// cluster module: every worker's listen(port) joins the shared port (cluster
// 'listening' fires for each), and every request is served by one of them.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const WORKERS = 3;

test('worker script without require(cluster) still shares the port', { timeout: 30000 }, async (t) => {
  const port = await getFreePort();
  const c = startCluster(t, 'without-require.js', { env: { WORKERS: String(WORKERS), PORT: String(port) } });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  assert.equal(ready.port, port);
  assert.deepEqual(ready.listenEvents.map((e) => e.port), Array(WORKERS).fill(port),
    'cluster "listening" fired for every worker on the port');

  const pids = ready.workers.map((w) => w.pid);
  const served = new Map();
  await sequential(100, async () => {
    const res = await get(port, { timeout: 4000 });
    assert.equal(res.status, 200);
    const pid = Number(res.body);
    assert.ok(pids.includes(pid), `served by a worker (pid ${pid} in ${pids})`);
    served.set(pid, (served.get(pid) || 0) + 1);
  });
  // Default policy on Linux is round-robin: every worker takes part.
  assert.equal(served.size, WORKERS, `every worker served: ${JSON.stringify([...served])}`);
});
