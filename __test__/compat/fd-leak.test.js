'use strict';
// No file descriptor leaks: after 3000 fresh-connection requests the open fd
// count of the primary and of every worker returns to its baseline (+2 slack).
// The fd hand-off is rcluster's own machinery, but the check is just as
// valid on node:cluster, so it runs under both.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, pool } = require('../helpers/http-client');

const REQUESTS = 3000;
const CONCURRENCY = 20;
const SLACK = 2;

test(`fd counts return to baseline after ${REQUESTS} connections`, { timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'fd-count.js', { env: { WORKERS: '2' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });

  // Warm up lazily created resources (thread pools, epoll sets, ...) first.
  await pool(100, CONCURRENCY, () => get(port, { timeout: 5000 }));
  const base = await c.call('fds');
  t.diagnostic(`baseline: ${JSON.stringify({ primary: base.primary, workers: base.workers })}`);
  assert.deepEqual(Object.keys(base.workers).map(Number).sort(), workers.map((w) => w.id).sort());

  const failures = [];
  await pool(REQUESTS, CONCURRENCY, async (i) => {
    try {
      const res = await get(port, { path: `/${i}`, timeout: 5000 });
      if (res.status !== 200) failures.push(`#${i}: status ${res.status}`);
    } catch (err) {
      failures.push(`#${i}: ${err.message}`);
    }
  });
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} requests failed`);

  // Closed sockets are released asynchronously; poll (bounded) until settled.
  const within = (now) => now.primary <= base.primary + SLACK &&
    Object.entries(base.workers).every(([id, n]) => now.workers[id] <= n + SLACK);
  const deadline = Date.now() + 5000;
  let now = await c.call('fds');
  while (!within(now) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await c.call('fds');
  }
  t.diagnostic(`after: ${JSON.stringify({ primary: now.primary, workers: now.workers })}`);
  assert.ok(now.primary <= base.primary + SLACK, `primary fds ${now.primary} vs baseline ${base.primary}`);
  for (const [id, n] of Object.entries(base.workers)) {
    assert.ok(now.workers[id] <= n + SLACK, `worker ${id} fds ${now.workers[id]} vs baseline ${n}`);
  }
});
