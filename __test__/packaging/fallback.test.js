'use strict';
// Where rcluster cannot run (no Unix fd passing, or its native addon does not
// load), require('rcluster') gives node:cluster and warns once per process
// (RCLUSTER_FALLBACK). The conditions are made with a `--require` preload in
// NODE_OPTIONS, which workers inherit. This is about rcluster's own require,
// so the fixture always loads rcluster, whatever RCLUSTER_TEST_IMPL says.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const N = 2;
const WARNING = /^\(node:(\d+)\) \[RCLUSTER_FALLBACK\] Warning: rcluster is using node:cluster because (.*)$/gm;

function warningsByPid(stderr) {
  const counts = new Map();
  const reasons = new Set();
  for (const m of stderr.matchAll(WARNING)) {
    counts.set(Number(m[1]), (counts.get(Number(m[1])) || 0) + 1);
    reasons.add(m[2]);
  }
  return { counts, reasons };
}

async function runFallback(t, preload) {
  const port = await getFreePort();
  const env = { WORKERS: String(N), PORT: String(port), RCLUSTER_TEST_IMPL: '' };
  if (preload) {
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS || ''} --require ${path.join(__dirname, '..', 'helpers', preload)}`.trim();
  }
  const c = startCluster(t, 'fallback.js', { env });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  const facts = [c.all('primary')[0], ...await c.waitFor('worker-facts', { count: N })];
  const pids = ready.workers.map((w) => w.pid);
  const answered = new Set();
  await sequential(10, async () => {
    const res = await get(ready.port, { timeout: 4000 });
    assert.equal(res.status, 200);
    assert.ok(pids.includes(Number(res.body)), `answered by a worker: ${res.body}`);
    answered.add(Number(res.body));
  });
  // Each process warns as it starts, before it listens; the requests also
  // give the test time to read the shared stderr pipe that far.
  return { c, facts, pids, answered };
}

for (const [name, preload, reason] of [
  ['on a platform without Unix fd passing (process.platform is win32)', 'pretend-win32.js',
    /no Unix file descriptor passing/],
  ['when the native addon cannot be loaded', 'no-native-addons.js', /native addon did not load/],
]) {
  test(`fallback ${name}: node:cluster, one RCLUSTER_FALLBACK warning per process`, { timeout: 60000 }, async (t) => {
    const { c, facts, pids, answered } = await runFallback(t, preload);
    for (const f of facts) {
      assert.equal(f.isNodeCluster, true, `pid ${f.pid}: require('rcluster') is node:cluster`);
      assert.equal(f.secondCopyIsSame, true, `pid ${f.pid}: a second copy of rcluster is the same module`);
    }
    assert.ok(answered.size >= 1, 'the workers serve HTTP');
    const { counts, reasons } = warningsByPid(c.stderr);
    const expected = new Map([[c.pid, 1], ...pids.map((pid) => [pid, 1])]);
    assert.deepEqual(counts, expected, `one warning in the primary and in each worker${c.diag()}`);
    assert.equal(reasons.size, 1);
    assert.match([...reasons][0], reason);
  });
}

test('no fallback where rcluster runs: no warning, not node:cluster', { timeout: 60000 }, async (t) => {
  const { c, facts, answered } = await runFallback(t, null);
  for (const f of facts) assert.equal(f.isNodeCluster, false, `pid ${f.pid}`);
  // rcluster's default round-robin.
  assert.equal(answered.size, N, 'both workers answered');
  assert.equal(warningsByPid(c.stderr).counts.size, 0, c.stderr);
});
