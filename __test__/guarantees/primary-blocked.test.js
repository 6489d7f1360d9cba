'use strict';
// [rcluster-only] Connections are accepted and handed to workers by a native
// thread, so serving does not need the primary's JS thread: while the primary
// busy-loops for 4 s, 50 sequential fresh-connection requests all complete,
// and all of them complete before the primary prints "unblocked".
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle } = require('../helpers/http-client');

const BLOCK_MS = 4000;
const REQUESTS = 50;

test('requests are served while the primary\'s JS thread is blocked',
  { skip: rclusterOnly('node:cluster accepts and distributes connections on the primary\'s JS thread'), timeout: 30000 },
  async (t) => {
    const c = startCluster(t, 'primary-blocked.js', { env: { WORKERS: '2' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
    const ids = workers.map((w) => w.id);

    // Sanity: served before the block.
    assert.equal((await get(port, { timeout: 3000 })).status, 200);

    c.send({ cmd: 'block', ms: BLOCK_MS });
    await c.waitFor('blocking', { timeout: 3000 });

    const results = [];
    for (let i = 0; i < REQUESTS; i++) {
      // Per-request deadline longer than the block, so under an implementation
      // that needs the primary the requests complete late rather than time out.
      const r = await settle(get(port, { path: `/${i}`, timeout: BLOCK_MS + 3000 }));
      results.push({ ...r, afterUnblocked: c.has('unblocked') });
    }
    await c.waitFor('unblocked', { timeout: BLOCK_MS + 5000 });

    const failed = results.filter((r) => !r.ok);
    assert.equal(failed.length, 0, `all requests completed: ${failed.map((r) => r.error.message).slice(0, 3)}`);
    for (const r of results) {
      assert.equal(r.value.status, 200);
      assert.ok(ids.includes(Number(r.value.body)), `served by a worker: ${r.value.body}`);
    }
    const late = results.filter((r) => r.afterUnblocked).length;
    assert.equal(late, 0, `${late} of ${REQUESTS} requests only completed after the primary unblocked`);
  });
