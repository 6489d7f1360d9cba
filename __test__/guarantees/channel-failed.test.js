'use strict';
// [rcluster-only] A worker whose private channel to the dispatcher breaks
// (junk on it) can no longer be given connections; left alone it would stay
// `listening` and silent. The primary treats it as failed: 'unhealthy' with
// reason 'channelFailed', SIGKILL, and under the restart policy a replacement.
// Requests made meanwhile are answered, none lost: they go to another worker,
// and with no other worker the port holds connections for the replacement.
// (Requests the worker had already taken when it was killed die with it, as
// in any crash: they are not what this tests.)
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, pool } = require('../helpers/http-client');

for (const workers of [1, 2]) {
  test(`junk on a worker's channel (${workers} worker${workers > 1 ? 's' : ''}): unhealthy, killed, replaced, nothing lost`,
    { skip: rclusterOnly('the dispatcher reporting a broken worker channel'), timeout: 60000 },
    async (t) => {
      // The replacement comes 300 ms after the death at the earliest, so
      // requests made meanwhile with no other worker wait in the primary.
      const c = startCluster(t, 'channel-failed.js', {
        env: { WORKERS: String(workers), SETTINGS: JSON.stringify({ restart: { minDelay: 300 } }) },
      });
      const { port, workers: started } = await c.waitFor('ready', { timeout: 10000 });
      const doomed = started[0].id;
      const ids = new Set(started.map((w) => w.id));
      const before = new Set();
      for (let i = 0; i < 2 * workers; i++) before.add(Number((await get(port, { timeout: 3000 })).body));
      assert.deepEqual([...before].sort(), [...ids].sort(), 'every worker served before');

      assert.equal((await c.call('junk', { worker: doomed })).sent, true);
      const unhealthy = await c.waitFor('unhealthy', { timeout: 10000 });
      assert.equal(unhealthy.worker, doomed);
      assert.equal(unhealthy.isWorker, true);
      assert.equal(unhealthy.info.reason, 'channelFailed');
      assert.equal(typeof unhealthy.info.detail, 'string');
      assert.ok(unhealthy.info.detail.length > 0);

      // From here on the dispatcher gives the failed worker nothing: every
      // request is answered, by a surviving worker or by the replacement.
      const firstRequestAt = performance.now();
      const results = await pool(30, 3, (i) => settle(get(port, { path: `/${i}`, timeout: 20000 })));
      const failures = results.flatMap((r, i) => (r.ok && r.value.status === 200 ? [] :
        [`#${i}: ${r.ok ? `status ${r.value.status}` : `${r.error.code} ${r.error.message}`}`]));
      assert.deepEqual(failures, [], 'every request answered');
      const servedBy = new Set(results.map((r) => Number(r.value.body)));
      assert.ok(!servedBy.has(doomed), 'none by the failed worker');

      const exit = await c.waitFor({ event: 'exit', worker: doomed }, { timeout: 10000 });
      assert.equal(exit.signal, 'SIGKILL', 'the primary killed it');
      const replacement = await c.waitFor((e) => e.event === 'listening' && !ids.has(e.worker), { timeout: 10000 });
      assert.ok(replacement._index > exit._index, 'replaced after it died');
      if (workers === 1) {
        assert.ok(firstRequestAt < replacement._at, 'requests were made while no worker listened');
        assert.deepEqual([...servedBy], [replacement.worker], 'held for the replacement, which served them');
      }
      assert.equal(c.all('unhealthy').length, 1, 'one event');

      // The replacement serves.
      const after = new Set();
      for (let i = 0; i < 2 * workers; i++) after.add(Number((await get(port, { timeout: 3000 })).body));
      assert.ok(after.has(replacement.worker), `the replacement serves (saw ${[...after]})`);
      assert.ok(!after.has(doomed), 'the failed worker does not');
    });
}

// The primary hears the dispatcher through a threadsafe function that must
// not keep it alive: with its only worker failed and not replaced (no
// restart policy), nothing is left, and it exits by itself.
test("the event path does not keep the primary alive: it exits once its failed worker is gone",
  { skip: rclusterOnly('the dispatcher reporting a broken worker channel'), timeout: 30000 },
  async (t) => {
    const c = startCluster(t, 'channel-failed.js', { env: { WORKERS: '1', JUNK_AT_START: '1' } });
    const unhealthy = await c.waitFor('unhealthy', { timeout: 10000 });
    assert.equal(unhealthy.info.reason, 'channelFailed');
    const exit = await c.waitFor({ event: 'exit', worker: unhealthy.worker }, { timeout: 10000 });
    assert.equal(exit.signal, 'SIGKILL');
    const primary = await Promise.race([c.exitPromise, new Promise((r) => setTimeout(r, 5000, 'still running'))]);
    assert.deepEqual(primary, { code: 0, signal: null }, 'the primary exited by itself');
    assert.ok(!c.has((e) => e.event === 'listening' && e.worker !== unhealthy.worker), 'no replacement without the policy');
  });

// The dispatcher does not wait for the primary's JS, and the event is not lost
// while that JS is busy: it runs when the loop gets to it.
test("an event raised while the primary's JS is blocked is delivered afterwards",
  { skip: rclusterOnly('the dispatcher reporting a broken worker channel'), timeout: 30000 },
  async (t) => {
    const c = startCluster(t, 'channel-failed.js', { env: { WORKERS: '2' } });
    const { workers } = await c.waitFor('ready', { timeout: 10000 });
    const doomed = workers[0].id;
    const reply = await c.call('junkWhileBusy', { worker: doomed, ms: 1500 }, { timeout: 10000 });
    assert.equal(reply.sent, true);
    assert.match(c.stderr, new RegExp(`dropping worker ${doomed}'s channel`), 'the dispatcher saw it while JS was blocked');
    const unhealthy = await c.waitFor('unhealthy', { timeout: 5000 });
    assert.equal(unhealthy.worker, doomed);
    assert.equal(unhealthy.info.reason, 'channelFailed');
    await c.waitFor({ event: 'exit', worker: doomed }, { timeout: 5000 });
  });
