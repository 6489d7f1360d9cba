'use strict';
// A fork that child_process refuses (stdio without 'ipc') throws Node's own
// error to the caller; the primary stays usable and leaks nothing.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

test('fork() with stdio lacking ipc throws ERR_CHILD_PROCESS_IPC_REQUIRED; the primary stays usable', { timeout: 20000 }, async (t) => {
  const c = startCluster(t, 'fork-errors.js');
  const r = await c.waitFor('result', { timeout: 10000 });
  assert.deepEqual(r.error, { name: 'Error', code: 'ERR_CHILD_PROCESS_IPC_REQUIRED' });
  assert.equal(r.fdsAfter, r.fdsBefore, 'the failed fork left no descriptor open in the primary');
  assert.equal(r.workers, 2, 'the failed fork left no worker behind');
  assert.equal((await get(r.port, { timeout: 3000 })).status, 200);
});
