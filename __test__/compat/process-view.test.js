'use strict';
// What an app can inspect is node:cluster's: the module's own enumerable
// keys, and a worker's process.spawnargs and process.stdio (as the settings
// say, without anything rcluster adds).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');

test('cluster keys, worker.process.spawnargs and .stdio are those of node:cluster', { timeout: 20000 }, async (t) => {
  const c = startCluster(t, 'process-view.js');
  const view = await c.waitFor('view', { timeout: 10000 });
  assert.deepEqual(view.keys, [
    'SCHED_NONE', 'SCHED_RR', 'Worker', 'disconnect', 'fork', 'isMaster', 'isPrimary', 'isWorker',
    'schedulingPolicy', 'settings', 'setupMaster', 'setupPrimary', 'workers',
  ]);
  assert.deepEqual(view.spawnargs, ['--no-warnings', view.exec, 'an-arg']);
  assert.deepEqual(view.stdio, [null, null, null, null], 'default stdio: inherited, then the IPC slot');
  assert.deepEqual(view.pipedStdio, ['stream', null, 'stream', null, 'stream'], 'an explicit stdio array, as given');
});
