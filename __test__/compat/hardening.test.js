'use strict';
// Where a worker, or the system, could harm the cluster, rcluster behaves as
// node:cluster does (and, where node:cluster itself breaks, better): a
// worker's listen({ fd }) cannot take another worker's socket, a udp4 socket
// refuses an IPv6 address, abstract unix sockets listen, a fork out of fds is
// the worker's 'error' and not the primary's crash, a fork whose env throws
// leaves nothing behind, and rcluster's own env variable names in fork(env)
// change nothing. Fixture: hardening.js, one case per run.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly, ON_NODE_CLUSTER } = require('../helpers/run-cluster');

async function run(t, ...args) {
  const c = startCluster(t, 'hardening.js', { args });
  const result = await c.waitFor('result', { timeout: 15000 });
  assert.equal(result.error, undefined, result.error);
  return result;
}

test("listen({ fd }) naming the primary's copy of another worker's socket fails with bind EEXIST; the port stays that worker's", { timeout: 30000 }, async (t) => {
  const r = await run(t, 'listen-fd-eexist');
  assert.equal(r.code, 'EEXIST');
  assert.equal(r.syscall, 'bind');
  assert.deepEqual(r.bodies, Array(6).fill(r.first), 'every request served by the first worker');
});

test('a udp4 socket bound to ::1 fails with bind EINVAL', { timeout: 30000 }, async (t) => {
  const r = await run(t, 'udp4-v6');
  assert.deepEqual(r, { event: 'result', code: 'EINVAL', syscall: 'bind' });
});

test("an abstract unix socket ('\\0name') listens and serves", { timeout: 30000 }, async (t) => {
  const r = await run(t, 'abstract');
  assert.equal(r.reply, `abstract:${r.id}`);
});

for (const free of [0, 2]) {
  test(`fork() with the primary out of fds (${free} free): the worker's 'error' is EMFILE and the primary serves on`, { timeout: 30000 }, async (t) => {
    const r = await run(t, 'fork-emfile', String(free));
    assert.equal(r.thrown, null, 'fork() did not throw');
    assert.equal(r.forkError.code, 'EMFILE');
    assert.deepEqual([...new Set(r.bodies)].length, 2, `both live workers served: ${r.bodies}`);
    // node:cluster keeps such a worker in cluster.workers for ever.
    if (!ON_NODE_CLUSTER) assert.equal(r.inWorkers, false, 'the failed worker left cluster.workers');
  });
}

test('fork(env) whose copy throws, 100 times: the error reaches the caller, and no fd or worker is left behind', { timeout: 30000 }, async (t) => {
  const r = await run(t, 'env-throws');
  assert.equal(r.errors, 100);
  assert.equal(r.after.fds, r.before.fds);
  assert.equal(r.after.workers, r.before.workers, 'cluster.stats() lists no phantom worker');
  assert.equal(r.clusterWorkers, 1);
});

test("fork(env) naming rcluster's own variables changes nothing: the worker starts, keeps its id and serves", { timeout: 30000 }, async (t) => {
  const r = await run(t, 'reserved-env');
  assert.equal(r.report.id, r.id);
  assert.deepEqual(r.bodies, [String(r.id), String(r.id)]);
  if (!ON_NODE_CLUSTER) assert.equal(r.report.shutdownSignals, null, 'the worker was not told shutdown signals');
});

test("setupPrimary({ execArgv: 'x' }) throws ERR_INVALID_ARG_TYPE", { skip: rclusterOnly('node:cluster fails later, in fork()'), timeout: 30000 }, async (t) => {
  const r = await run(t, 'exec-argv');
  assert.equal(r.threw, true);
  assert.equal(r.name, 'TypeError');
  assert.equal(r.code, 'ERR_INVALID_ARG_TYPE');
  assert.match(r.message, /options\.execArgv/);
});
