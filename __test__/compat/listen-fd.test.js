'use strict';
// server.listen({ fd }) in a worker, as node:cluster does it: the fd is the
// primary's (a socket it was handed), the primary shares it with every worker
// that names it, and connections are balanced among them.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

for (const policy of ['rr', 'none']) {
  test(`listen({ fd }) in workers shares the primary's socket (${policy})`, { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'listen-fd.js', { env: { NODE_CLUSTER_SCHED_POLICY: policy } });
    const { port, listening } = await c.waitFor('ready', { timeout: 10000 });
    assert.equal(listening.length, 2, "cluster 'listening' for each worker");
    for (const info of listening) {
      assert.equal(info.fd, 3, "the 'listening' info carries the fd");
      assert.equal(info.port, port, 'and the port the socket is bound to');
    }
    const served = new Set();
    for (let i = 0; i < 4; i++) {
      const res = await get(port, { timeout: 3000 });
      assert.equal(res.status, 200);
      served.add(res.body);
    }
    // Round-robin alternates; under SCHED_NONE the kernel picks the worker.
    if (policy === 'rr') assert.deepEqual([...served].sort(), ['1', '2'], 'both workers serve the shared socket');

    const failure = await c.call('listen-file', {}, { timeout: 10000 });
    assert.equal(failure.code, 'EINVAL', 'a descriptor that is no socket cannot be listened on');
  });
}
