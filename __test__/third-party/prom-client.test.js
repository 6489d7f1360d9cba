'use strict';
// prom-client's AggregatorRegistry in the primary asks `require('cluster')`'s
// workers for their metrics: with rcluster it gets rcluster's workers, and
// the primary's /metrics shows the sum of every worker's counter.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const REQUESTS = 20;

test('prom-client AggregatorRegistry: the primary\'s /metrics sums both workers\' counters', { timeout: 30000 }, async (t) => {
  const port = await getFreePort();
  const c = startCluster(t, 'third-party/prom-client.js', { env: { PORT: String(port) } });
  const { metricsPort } = await c.waitFor('ready', { timeout: 15000 });

  const served = await sequential(REQUESTS, async () => (await get(port, { headers: { connection: 'close' } })).body);
  const perWorker = {};
  for (const id of served) perWorker[id] = (perWorker[id] || 0) + 1;
  assert.deepEqual(Object.keys(perWorker).sort(), ['1', '2'], `both workers counted requests: ${JSON.stringify(perWorker)}`);

  const res = await get(metricsPort, { path: '/metrics', timeout: 10000 });
  assert.equal(res.status, 200, res.body);
  const line = res.body.split('\n').find((l) => l.startsWith('fixture_hits_total'));
  assert.ok(line, `the counter is in the primary's metrics:\n${res.body}${c.diag()}`);
  assert.equal(Number(line.split(' ').pop()), REQUESTS, line);
});
