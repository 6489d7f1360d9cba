'use strict';
// worker.disconnect() that crosses a worker's listen or bind: the worker
// still closes what it got and exits; nothing keeps it alive.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

for (const policy of ['rr', 'none']) {
  for (const kind of ['tcp', 'udp']) {
    // Node 20's own primary crashes in the round-robin TCP case
    // (RoundRobinHandle#remove before the handle listens: "Cannot read
    // properties of null (reading 'close')").
    const skip = policy === 'rr' && kind === 'tcp' && rclusterOnly('node:cluster crashes here');
    test(`[${policy}] ${kind}: workers disconnected mid-listen all exit`, { skip, timeout: 30000 }, async (t) => {
      const c = startCluster(t, 'disconnect-during-listen.js', { env: { NODE_CLUSTER_SCHED_POLICY: policy, KIND: kind } });
      const { exits } = await c.waitFor('all-exited', { timeout: 20000 });
      assert.deepEqual(exits.map((e) => [e.code, e.signal, e.exitedAfterDisconnect]), Array(5).fill([0, null, true]));
    });
  }
}
