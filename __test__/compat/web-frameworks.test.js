'use strict';
// Unmodified express and fastify apps, run as the workers of a cluster
// primary: every worker serves the app's routes on the shared port.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const N = 2;

for (const framework of ['express', 'fastify']) {
  test(`an unmodified ${framework} app in ${N} workers`, { timeout: 60000 }, async (t) => {
    const port = await getFreePort();
    const c = startCluster(t, 'web-cluster.js', {
      env: { APP: `${framework}-app.js`, WORKERS: String(N), PORT: String(port) },
    });
    const ready = await c.waitFor('ready', { timeout: 15000 });
    const pids = ready.workers.map((w) => w.pid);
    assert.equal(ready.port, port);

    const seen = new Map();
    await sequential(20, async (i) => {
      const res = await get(port, { path: `/items/${i}`, timeout: 4000 });
      assert.equal(res.status, 200, res.body);
      assert.match(res.headers['content-type'], /^application\/json/);
      const body = JSON.parse(res.body);
      assert.equal(body.framework, framework);
      assert.equal(body.id, String(i), 'the route parameter reached the app');
      assert.ok(pids.includes(body.pid), `answered by a worker: ${res.body}`);
      seen.set(body.pid, (seen.get(body.pid) || 0) + 1);
    });
    assert.equal(seen.size, N, `every worker answered: ${JSON.stringify([...seen])}`);

    const missing = await get(port, { path: '/no-such-route', timeout: 4000 });
    assert.equal(missing.status, 404, 'the framework\'s own 404');
  });
}
