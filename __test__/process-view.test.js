'use strict';
// What an app can inspect is node:cluster's: the module's own enumerable
// keys, and a worker's process.spawnargs (the command it was started with,
// as settings say, without anything rcluster adds).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('./helpers/run-cluster');

test('cluster keys and worker.process.spawnargs are those of node:cluster', { timeout: 20000 }, async (t) => {
  const c = startCluster(t, 'process-view.js');
  const view = await c.waitFor('view', { timeout: 10000 });
  assert.deepEqual(view.keys, [
    'SCHED_NONE', 'SCHED_RR', 'Worker', 'disconnect', 'fork', 'isMaster', 'isPrimary', 'isWorker',
    'schedulingPolicy', 'settings', 'setupMaster', 'setupPrimary', 'workers',
  ]);
  assert.deepEqual(view.spawnargs, ['--no-warnings', view.exec, 'an-arg']);
});
