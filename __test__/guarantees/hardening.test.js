'use strict';
// [rcluster-only] No worker can harm another, and faults in the primary are
// survived: forged or malformed control messages (an `act` named after an
// Object.prototype method crashes node:cluster's primary) are refused or
// ignored; cluster.stats() forgets a worker by its 'exit'; a fork out of fds
// is retried with backoff under the restart policy; a shutdown that had to
// SIGKILL a worker exits non-zero. Fixture: hardening.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { uvErrno } = require('../../lib/uv_constants');

const skip = rclusterOnly('hardening of the primary against its workers and the system');

async function run(t, ...args) {
  const c = startCluster(t, 'hardening.js', { args });
  const result = await c.waitFor('result', { timeout: 15000 });
  assert.equal(result.error, undefined, result.error);
  return { c, result };
}

test("forged control messages: prototype-named acts and malformed fields are ignored or refused, a listen on another worker's socket is EEXIST, and the port stays served", { skip, timeout: 30000 }, async (t) => {
  const { c, result: r } = await run(t, 'forged-query');
  assert.deepEqual(r.replies, {
    fd: { errno: uvErrno('EEXIST') },
    badAddress: { errno: uvErrno('EINVAL') },
    badPort: { errno: uvErrno('EINVAL') },
    badFd: { errno: uvErrno('EINVAL') },
  });
  assert.deepEqual(r.bodies, Array(6).fill(r.first), 'every request served by the first worker');
  assert.equal(c.exited, false, 'the primary is alive');
});

test("cluster.stats() in the cluster's 'exit' listener no longer lists the worker", { skip, timeout: 30000 }, async (t) => {
  const { result: r } = await run(t, 'stats-after-exit');
  assert.equal(r.ids.includes(r.killed), false, `stats() listed ${r.ids}`);
});

test('a fork out of fds under the restart policy is retried with backoff until it succeeds', { skip, timeout: 30000 }, async (t) => {
  const { result: r } = await run(t, 'fork-emfile-restart');
  assert.ok(r.restarts.length >= 1);
  for (const [i, info] of r.restarts.entries()) {
    assert.equal(info.reason, 'forkFailed');
    assert.equal(info.attempt, i + 1);
  }
  const delays = r.restarts.map((info) => info.delay);
  assert.deepEqual(delays, [...delays].sort((a, b) => a - b), `the delay grows: ${delays}`);
  assert.ok(r.listeningId > r.firstId);
});

for (const [kind, expected] of [['stuck', 1], ['clean', 0]]) {
  test(`SIGTERM shutdown ${kind === 'stuck' ? 'that SIGKILLs a worker at shutdownTimeout exits 1' : 'with every worker leaving in time exits 0'}`, { skip, timeout: 30000 }, async (t) => {
    const { c } = await run(t, 'shutdown-forced', kind);
    process.kill(c.pid, 'SIGTERM');
    const { code, signal } = await c.exitPromise;
    assert.deepEqual({ code, signal }, { code: expected, signal: null });
  });
}

test('a worker SIGKILLed while its JS spins takes only the request it was handling: the connections it never read are served by another worker', { skip, timeout: 60000 }, async (t) => {
  const { get, settle } = require('../helpers/http-client');
  const c = startCluster(t, 'hardening.js', { args: ['spin-kill'] });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  // While the worker is busy, /spin then the others arrive, bytes and all:
  // it then takes them in one batch and reads /spin first, and spins. The
  // others it was sent are unread, and must not die with it.
  const block = settle(get(port, { path: '/block', timeout: 20000 }));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const spin = settle(get(port, { path: '/spin', timeout: 20000 }));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const others = Array.from({ length: 12 }, () => settle(get(port, { timeout: 20000 })));
  assert.equal((await block).ok, true);
  const result = await c.waitFor('result', { timeout: 20000 });
  const answers = await Promise.all(others);
  const failed = answers.filter((a) => !a.ok || a.value.status !== 200);
  assert.deepEqual(failed.map((a) => a.error?.code ?? a.error?.message ?? a.value.status), [], 'every request but /spin was served');
  const bodies = answers.map((a) => a.value.body);
  assert.ok(bodies.every((b) => b === String(result.spinner) || b === String(result.other)), bodies.join());
  assert.equal((await spin).ok, false, '/spin died with its worker');
});
