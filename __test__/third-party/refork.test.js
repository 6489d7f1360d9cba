'use strict';
// throng and cfork manage the workers themselves, with the `cluster` they
// require: an app that requires rcluster first gets its workers from
// rcluster, and a SIGKILLed worker is forked again by the library, and the
// replacement serves.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, IMPL } = require('../helpers/run-cluster');
const { get, getFreePort } = require('../helpers/http-client');

for (const lib of ['throng', 'cfork']) {
  test(`${lib}: a SIGKILLed worker is replaced, and the replacement serves`, { timeout: 40000 }, async (t) => {
    const port = await getFreePort();
    const c = startCluster(t, `third-party/${lib}.js`, { env: { PORT: String(port) } });
    const primary = await c.waitFor('primary', { timeout: 10000 });
    if (!IMPL) assert.equal(primary.isRcluster, true, `${lib} uses rcluster`);
    const first = await c.waitFor('listening', { count: 2, timeout: 15000 });
    assert.ok(first.every((e) => e.port === port));

    const victim = first[0].pid;
    process.kill(victim, 'SIGKILL');
    const next = await c.waitFor('listening', { count: 3, timeout: 15000 });
    const replacement = next[2];
    assert.ok(!first.some((e) => e.pid === replacement.pid), 'a new process');

    // Round-robin reaches the replacement within a few requests.
    const pids = new Set();
    for (let i = 0; i < 20 && !pids.has(String(replacement.pid)); i++) {
      const res = await get(port, { headers: { connection: 'close' } });
      assert.equal(res.status, 200);
      pids.add(res.body.split(' ').pop());
    }
    assert.ok(pids.has(String(replacement.pid)), `the replacement (pid ${replacement.pid}) served; saw ${[...pids]}`);
    assert.ok(!pids.has(String(victim)), 'the killed worker served nothing');
  });
}
