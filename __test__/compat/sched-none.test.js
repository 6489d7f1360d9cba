'use strict';
// SCHED_NONE: every worker listens on the shared port itself (holds a LISTEN
// socket for it) and the kernel spreads connections; all requests are served.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential } = require('../helpers/http-client');
const { listeningFdsOf } = require('../helpers/proc-net');

const WORKERS = 3;
const REQUESTS = 100;

for (const [label, env] of [
  ['NODE_CLUSTER_SCHED_POLICY=none', { NODE_CLUSTER_SCHED_POLICY: 'none' }],
  // Assignment in code must win over the environment variable.
  ['cluster.schedulingPolicy = SCHED_NONE in code (env says rr)', { SET_POLICY: 'none', NODE_CLUSTER_SCHED_POLICY: 'rr' }],
]) {
  test(`SCHED_NONE via ${label}`, { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'counting.js', { env: { WORKERS: String(WORKERS), PORT: '0', ...env } });
    const ready = await c.waitFor('ready', { timeout: 10000 });
    const { port } = ready;
    const ids = ready.workers.map((w) => w.id);

    await t.test('cluster.schedulingPolicy reads SCHED_NONE', () => {
      assert.equal(ready.SCHED_NONE, 1);
      assert.equal(ready.SCHED_RR, 2);
      assert.equal(ready.schedulingPolicy, ready.SCHED_NONE);
    });

    await t.test('every worker is listening on the same port', async () => {
      assert.ok(port > 0);
      assert.equal(ready.listenEvents.length, WORKERS, 'one listening event per worker');
      for (const e of ready.listenEvents) assert.equal(e.address.port, port);
      const { addresses } = await c.call('counts');
      for (const id of ids) assert.equal(addresses[id] && addresses[id].port, port, `worker ${id} server.address().port`);
      for (const w of ready.workers) {
        assert.ok(listeningFdsOf(w.pid, port) >= 1, `worker ${w.id} (pid ${w.pid}) holds a LISTEN socket on ${port}`);
      }
    });

    await t.test(`${REQUESTS} fresh-connection requests are all served`, async () => {
      const bodies = await sequential(REQUESTS, async () => {
        const res = await get(port, { timeout: 4000 });
        assert.equal(res.status, 200);
        return Number(res.body);
      });
      for (const id of bodies) assert.ok(ids.includes(id), `served by a known worker (${id})`);
      const { counts } = await c.call('counts');
      const sum = Object.values(counts).reduce((a, b) => a + b, 0);
      assert.equal(sum, REQUESTS, `each connection reached exactly one worker: ${JSON.stringify(counts)}`);
    });
  });
}
