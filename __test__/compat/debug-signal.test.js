'use strict';
// Starting the primary's inspector with SIGUSR1 starts each worker's
// inspector too, as node:cluster does (Node emits NODE_DEBUG_ENABLED on the
// primary, and the cluster passes it on to every worker).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');

test('SIGUSR1 on the primary starts every worker\'s inspector', { timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'debug-signal.js');
  await c.waitFor('ready', { timeout: 10000 });
  await c.call('sigusr1');
  const a = await c.waitFor({ event: 'worker-debugging', worker: 1 }, { timeout: 10000 });
  const b = await c.waitFor({ event: 'worker-debugging', worker: 2 }, { timeout: 10000 });
  assert.deepEqual([a.worker, b.worker], [1, 2]);
});
