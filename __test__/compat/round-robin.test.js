'use strict';
// Round-robin scheduling: N x W sequential fresh connections are split
// exactly evenly between W workers. Each worker counts the 'connection'
// events of its own server; the primary collects the counts on request.
// The exact split is an rcluster guarantee (native scheduler hands out fds in
// strict rotation); under node:cluster only the weaker checks run.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, sequential } = require('../helpers/http-client');
const { listeningFdsOf } = require('../helpers/proc-net');

const PER_WORKER = 10;

async function runRR(t, { workers, env }) {
  const c = startCluster(t, 'counting.js', { env: { WORKERS: String(workers), PORT: '0', ...env } });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  assert.equal(ready.schedulingPolicy, ready.SCHED_RR, 'cluster.schedulingPolicy is SCHED_RR');
  const ids = ready.workers.map((w) => w.id);
  // Who owns a LISTEN socket on the port: under RR only the primary does.
  const listenFds = {
    primary: listeningFdsOf(c.pid, ready.port),
    workers: Object.fromEntries(ready.workers.map((w) => [w.id, listeningFdsOf(w.pid, ready.port)])),
  };
  const total = PER_WORKER * workers;
  const bodies = await sequential(total, async () => {
    const res = await get(ready.port, { timeout: 4000 });
    assert.equal(res.status, 200);
    return Number(res.body);
  });
  const { counts } = await c.call('counts');
  const served = {};
  for (const id of bodies) served[id] = (served[id] || 0) + 1;
  return { ids, counts, served, total, listenFds };
}

function checkServed({ ids, counts, served, total }) {
  const sum = Object.values(counts).reduce((a, b) => a + b, 0);
  assert.equal(sum, total, `every connection reached exactly one worker: ${JSON.stringify(counts)}`);
  for (const id of ids) assert.ok(served[id] > 0, `worker ${id} served requests: ${JSON.stringify(served)}`);
}

function checkExact({ ids, counts, served }) {
  const even = {};
  for (const id of ids) even[id] = PER_WORKER;
  assert.deepEqual(counts, even, 'connections split exactly evenly between workers');
  assert.deepEqual(served, even, 'responses split exactly evenly between workers');
}

const exactSkip = rclusterOnly('exact round-robin split is promised by rcluster\'s native scheduler');

for (const [label, workers, env] of [
  // (undefined: the variable is left out of the fixture's environment.)
  ['default policy (Linux: RR), 2 workers', 2, { NODE_CLUSTER_SCHED_POLICY: undefined }],
  ['default policy (Linux: RR), 3 workers', 3, { NODE_CLUSTER_SCHED_POLICY: undefined }],
  ['NODE_CLUSTER_SCHED_POLICY=rr, 2 workers', 2, { NODE_CLUSTER_SCHED_POLICY: 'rr' }],
  ['NODE_CLUSTER_SCHED_POLICY=rr, 3 workers', 3, { NODE_CLUSTER_SCHED_POLICY: 'rr' }],
  // Assignment in code must win over the environment variable.
  ['cluster.schedulingPolicy = SCHED_RR in code (env says none), 2 workers', 2,
    { SET_POLICY: 'rr', NODE_CLUSTER_SCHED_POLICY: 'none' }],
  ['cluster.schedulingPolicy = SCHED_RR in code (env says none), 3 workers', 3,
    { SET_POLICY: 'rr', NODE_CLUSTER_SCHED_POLICY: 'none' }],
]) {
  test(`round-robin: ${label}`, { timeout: 30000 }, async (t) => {
    const r = await runRR(t, { workers, env });
    await t.test('every connection served, by every worker', () => checkServed(r));
    await t.test('the primary owns the listening socket, workers do not (policy really is RR)', () => {
      assert.ok(r.listenFds.primary >= 1, `primary holds a LISTEN socket on the port: ${JSON.stringify(r.listenFds)}`);
      for (const [id, n] of Object.entries(r.listenFds.workers)) {
        assert.equal(n, 0, `worker ${id} holds no LISTEN socket on the port: ${JSON.stringify(r.listenFds)}`);
      }
    });
    await t.test(`${PER_WORKER * workers} sequential connections split exactly ${PER_WORKER} per worker`,
      { skip: exactSkip }, () => checkExact(r));
  });
}
