'use strict';
// The same cluster program under node:cluster and under rcluster, in one
// test: the observable traces must be identical (events, their order, worker
// states, exitedAfterDisconnect, settings, messages).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');

async function traceOf(t, impl) {
  // An empty RCLUSTER_TEST_IMPL makes the fixture require this package.
  const c = startCluster(t, 'lifecycle-trace.js', { env: { RCLUSTER_TEST_IMPL: impl } });
  const { trace } = await c.waitFor('trace', { timeout: 20000 });
  return trace;
}

test('a full worker lifecycle traces the same under node:cluster and rcluster', { timeout: 60000 }, async (t) => {
  const expected = await traceOf(t, 'node:cluster');
  const actual = await traceOf(t, '');
  assert.deepEqual(actual, expected);
});
