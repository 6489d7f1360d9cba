'use strict';
// [rcluster-only] setupPrimary({ exitOnUncaughtException }): a worker with an
// uncaught exception prints it, stops taking connections, gets its
// replacement at once (restart policy on) and only one, finishes the request
// it holds, then exits with code 1; or after its timeout at most.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no exitOnUncaughtException');

function start(t, settings) {
  return startCluster(t, 'management.js', { env: { WORKERS: '1', SETTINGS: JSON.stringify(settings) } });
}

test('uncaught exception: replacement forked at once, the request in flight is still answered',
  { skip, timeout: 30000 }, async (t) => {
    // A drain timeout far beyond what the steps below take, even on a slow
    // machine: the failing worker must still be there when the test releases it.
    const c = start(t, { restart: true, exitOnUncaughtException: { timeout: 20000 } });
    const { port, workers: [failing] } = await c.waitFor('ready', { timeout: 10000 });
    const first = JSON.parse((await get(port, { timeout: 3000 })).body);
    assert.deepEqual(first.envKeys, [], 'the setting reaches the worker without showing in its process.env');

    const slow = get(port, { path: '/slow', timeout: 15000 });
    await c.waitFor({ event: 'held', worker: failing }, { timeout: 5000 });
    await c.call('ask', { worker: failing, op: 'throw' });

    const restart = await c.waitFor({ event: 'restart', old: failing }, { timeout: 10000 });
    assert.deepEqual(
      [restart.info.reason, restart.info.attempt, restart.info.delay, restart.info.error],
      ['uncaughtException', 1, 0, 'boom from the test'],
    );
    const replacement = restart.worker;
    const { port: newPort } = await c.waitFor({ event: 'listening', worker: replacement }, { timeout: 10000 });
    assert.equal(c.has({ event: 'exit', worker: failing }), false, 'the failing worker is still finishing its request');

    // New connections go to the replacement only: the failing worker closed its server.
    for (let i = 0; i < 5; i++) {
      const res = await get(newPort, { timeout: 3000 });
      assert.equal(JSON.parse(res.body).id, replacement);
    }

    await c.call('ask', { worker: failing, op: 'release' });
    const res = await slow;
    assert.deepEqual([res.status, res.body], [200, `slow done by ${failing}`]);

    const exit = await c.waitFor({ event: 'exit', worker: failing }, { timeout: 10000 });
    assert.deepEqual([exit.code, exit.signal, exit.exitedAfterDisconnect], [1, null, false]);
    const state = await c.call('state');
    assert.deepEqual([state.workers, state.pendingRestarts], [[replacement], 0], 'no second replacement on exit');
    assert.deepEqual(c.all('fork').map((e) => e.worker), [failing, replacement]);
    assert.match(c.stderr, /Error: boom from the test\n\s+at /, 'the error is printed with its stack');
  });

// The only worker holds a request open (/slow never answers) and then throws.
// Returns its 'exit' event and what became of the held request.
async function throwWhileHolding(c) {
  const { port, workers: [failing] } = await c.waitFor('ready', { timeout: 10000 });
  const slow = get(port, { path: '/slow', timeout: 15000 }).catch((err) => err);
  await c.waitFor({ event: 'held', worker: failing }, { timeout: 5000 });
  await c.call('ask', { worker: failing, op: 'throw' });
  const exit = await c.waitFor({ event: 'exit', worker: failing }, { timeout: 10000 });
  return { exit, slow: await slow };
}

test('uncaught exception: the worker exits with code 1 at the timeout if its requests never finish',
  { skip, timeout: 30000 }, async (t) => {
    const c = start(t, { exitOnUncaughtException: { timeout: 500 } });
    const { exit, slow } = await throwWhileHolding(c);
    assert.deepEqual([exit.code, exit.signal], [1, null]);
    assert.equal(slow.code, 'ECONNRESET', 'the request held past the timeout dies with its worker');
    assert.deepEqual(c.all('restart'), [], 'no restart policy, no replacement');
  });

test('an unhandled rejection takes the same graceful path', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { restart: true, exitOnUncaughtException: true });
  const { workers: [failing] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('ask', { worker: failing, op: 'reject' });
  const restart = await c.waitFor({ event: 'restart', old: failing }, { timeout: 10000 });
  assert.deepEqual([restart.info.reason, restart.info.error], ['uncaughtException', 'rejected in the test']);
  const exit = await c.waitFor({ event: 'exit', worker: failing }, { timeout: 10000 });
  assert.deepEqual([exit.code, exit.signal], [1, null]);
  assert.match(c.stderr, /Error: rejected in the test\n\s+at /);
});

test('without the setting an uncaught exception kills the worker at once, as in node:cluster',
  { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'management.js', { env: { WORKERS: '1' } });
    const { exit, slow } = await throwWhileHolding(c);
    assert.deepEqual([exit.code, exit.signal], [1, null]);
    assert.equal(slow.code, 'ECONNRESET');
  });

test('uncaught exception in the only worker: connections made before the replacement listens wait for it',
  { skip, timeout: 30000 }, async (t) => {
    // The failing worker closes its server at once. It was the last worker on
    // the port, yet the port stays open: its replacement is on its way.
    const c = start(t, { restart: true, exitOnUncaughtException: true });
    const { port, workers: [failing] } = await c.waitFor('ready', { timeout: 10000 });
    await c.call('ask', { worker: failing, op: 'throw' });
    // Until the primary hears of the exception, the failing worker is still in
    // the rotation and serves what it is given: a connection made then is
    // answered by it, not lost. The connections below are made after the
    // primary has heard, so only the replacement can answer them.
    const restart = await c.waitFor({ event: 'restart', old: failing }, { timeout: 10000 });
    const results = await Promise.all(Array.from({ length: 20 }, () => settle(get(port, { timeout: 15000 }))));
    const failures = results.flatMap((r) => (r.ok ? [] : [`${r.error.code} ${r.error.message}`]));
    assert.deepEqual(failures, [], 'no connection refused or reset');
    const { port: samePort } = await c.waitFor({ event: 'listening', worker: restart.worker }, { timeout: 10000 });
    assert.equal(samePort, port, 'the replacement listens on the same socket');
    assert.ok(results.every((r) => JSON.parse(r.value.body).id === restart.worker), 'all served by the replacement');
  });
