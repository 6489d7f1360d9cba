'use strict';
// [rcluster-only] A worker whose private channel to the dispatcher breaks
// (junk on it) can no longer be given connections; left alone it would stay
// `listening` and silent. The primary treats it as failed: 'unhealthy' with
// reason 'channelFailed', SIGKILL, and under the restart policy a replacement.
// Requests made meanwhile are answered, none lost: what the worker held goes
// to another worker, and with no other worker the port holds connections for
// the replacement.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, pool } = require('../helpers/http-client');

for (const workers of [1, 2]) {
  test(`junk on a worker's channel (${workers} worker${workers > 1 ? 's' : ''}): unhealthy, killed, replaced, nothing lost`,
    { skip: rclusterOnly('the dispatcher reporting a broken worker channel'), timeout: 60000 },
    async (t) => {
      const c = startCluster(t, 'channel-failed.js', {
        env: { WORKERS: String(workers), SETTINGS: JSON.stringify({ restart: { minDelay: 100 } }) },
      });
      const { port, workers: started } = await c.waitFor('ready', { timeout: 10000 });
      const doomed = started[0].id;
      const ids = new Set(started.map((w) => w.id));

      // Requests keep coming before, during and after the failure.
      let junked = null;
      const results = await pool(60, 4, async (i) => {
        if (i === 20) junked = c.call('junk', { worker: doomed });
        return settle(get(port, { path: `/${i}`, timeout: 20000 }));
      });
      assert.equal(typeof (await junked).wrote, 'number');

      const unhealthy = await c.waitFor('unhealthy', { timeout: 10000 });
      assert.equal(unhealthy.worker, doomed);
      assert.equal(unhealthy.isWorker, true);
      assert.equal(unhealthy.info.reason, 'channelFailed');
      assert.equal(typeof unhealthy.info.detail, 'string');
      assert.ok(unhealthy.info.detail.length > 0);
      const exit = await c.waitFor({ event: 'exit', worker: doomed }, { timeout: 10000 });
      assert.equal(exit.signal, 'SIGKILL', 'the primary killed it');
      const replacement = await c.waitFor((e) => e.event === 'listening' && !ids.has(e.worker), { timeout: 10000 });
      assert.ok(replacement._index > exit._index, 'replaced after it died');
      assert.equal(c.all('unhealthy').length, 1, 'one event');

      const failures = results.flatMap((r, i) => (r.ok && r.value.status === 200 ? [] :
        [`#${i}: ${r.ok ? `status ${r.value.status}` : `${r.error.code} ${r.error.message}`}`]));
      assert.deepEqual(failures, [], 'every request answered');

      // The replacement serves.
      const after = new Set();
      for (let i = 0; i < 2 * workers; i++) after.add(Number((await get(port, { timeout: 3000 })).body));
      assert.ok(after.has(replacement.worker), `the replacement serves (saw ${[...after]})`);
      assert.ok(!after.has(doomed), 'the failed worker does not');
    });
}
