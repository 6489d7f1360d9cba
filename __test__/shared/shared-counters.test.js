'use strict';
// [rcluster-only] cluster.shared: counters and a key/value table in shared
// memory, changed by every process with atomic operations and no IPC.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

const skip = rclusterOnly('cluster.shared is rcluster\'s');

test('2 workers x 1,000,000 increments give exactly 2,000,000', { skip, timeout: 120000 }, async (t) => {
  const c = startCluster(t, 'shared-counters.js', { env: { MODE: 'increments' } });
  const result = await c.waitFor('result', { timeout: 100000 });
  t.diagnostic(`2,000,000 increments in ${result.ms} ms (fork included)`);
  assert.equal(result.total, 2_000_000);
});

test('a worker SIGKILLed mid-run leaves the counters and the table consistent', { skip, timeout: 120000 }, async (t) => {
  const c = startCluster(t, 'shared-counters.js', { env: { MODE: 'kill' } });
  const exit = await c.waitFor('victim-exit', { timeout: 60000 });
  assert.equal(exit.signal, 'SIGKILL');
  const r = await c.waitFor('result', { timeout: 60000 });
  t.diagnostic(`victim added ${r.victimAdds} before it died; a write after it took ${r.setMs} ms`);
  assert.ok(r.victimAdds > 0, 'the victim was killed mid-run, not before it started');
  assert.equal(r.pairConsistent, true, 'the table holds one whole value, not a torn one');
  // The victim adds to 'total' first, then to 'victim': killed between the
  // two, 'total' is one ahead. Anything else is a lost or invented add.
  const extra = r.total - r.survivorAdds - r.victimAdds;
  assert.ok(extra === 0 || extra === 1, `total ${r.total} = survivor ${r.survivorAdds} + victim ${r.victimAdds} (+1)`);
  assert.deepEqual(r.afterSet, { a: -1, b: -1, pad: '' }, 'the table takes writes after its writer died');
  assert.ok(r.setMs < 5000, 'a lock held by a dead writer is taken over, not waited for');
  assert.equal(r.addAfter, true);
});

test('bad arguments and a full table give Node-style errors', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'shared-counters.js', { env: { MODE: 'errors' } });
  const r = await c.waitFor('result', { timeout: 30000 });
  assert.equal(r.badName.code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(r.longName.code, 'ERR_OUT_OF_RANGE');
  assert.match(r.longName.message, new RegExp(`1 to ${r.limits.nameMax} bytes`));
  assert.equal(r.emptyName.code, 'ERR_OUT_OF_RANGE');
  assert.equal(r.badAdd.code, 'ERR_INVALID_ARG_TYPE');
  assert.equal(r.fractionalAdd.code, 'ERR_OUT_OF_RANGE');
  assert.equal(r.bigValue.code, 'ERR_OUT_OF_RANGE');
  assert.deepEqual(r.cas, [false, true, 5]);
  assert.deepEqual(r.addReturns, [1, 11, 8]);
  assert.deepEqual(r.table, { x: [1, 2] });
  assert.equal(r.deleted, undefined);
  assert.equal(r.missing, undefined);
  assert.equal(r.full.code, 'ERR_RCLUSTER_SHARED_FULL');
  assert.match(r.full.message, new RegExp(`all ${r.limits.counters} shared counters are in use`));
  // 'a' and 'b' were named before: the table fills after limits.counters - 2 more.
  assert.equal(r.full.after, r.limits.counters - 2);
  assert.equal(r.existingWhenFull, null, 'a counter named before the table filled is still found');
});
