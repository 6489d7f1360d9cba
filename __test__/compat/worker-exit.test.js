'use strict';
// Worker lifecycle: exit codes and signals, isDead(), kill(), disconnect()
// with exitedAfterDisconnect, removal from cluster.workers, and messages in
// both directions with the cluster 'message' event.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

async function setup(t) {
  const c = startCluster(t, 'worker-exit.js');
  return c;
}

/** Waits for the worker-level and cluster-level exit (and disconnect) of `id`. */
async function exitOf(c, id) {
  const [wExit, cExit] = await Promise.all([
    c.waitFor({ event: 'worker-exit', worker: id }, { timeout: 5000 }),
    c.waitFor({ event: 'cluster-exit', worker: id }, { timeout: 5000 }),
    c.waitFor({ event: 'worker-disconnect', worker: id }, { timeout: 5000 }),
    c.waitFor({ event: 'cluster-disconnect', worker: id }, { timeout: 5000 }),
  ]);
  return { wExit, cExit };
}

function checkDead(wExit, cExit, { code, signal, exitedAfterDisconnect }) {
  for (const e of [wExit, cExit]) {
    assert.equal(e.code, code, `${e.event} code`);
    assert.equal(e.signal, signal, `${e.event} signal`);
    assert.equal(e.isDead, true, `${e.event}: worker.isDead()`);
    assert.equal(e.state, 'dead', `${e.event}: worker.state`);
    assert.equal(e.exitedAfterDisconnect, exitedAfterDisconnect, `${e.event}: exitedAfterDisconnect`);
  }
  assert.ok(wExit._index < cExit._index, 'worker exit fires before cluster exit');
}

test('worker lifecycle and messaging', { timeout: 60000 }, async (t) => {
  const c = await setup(t);
  const fork = async () => (await c.call('fork', {}, { timeout: 10000 }));

  await t.test('worker.process.kill("SIGKILL") -> exit (null, "SIGKILL")', async () => {
    const { worker, port } = await fork();
    assert.equal((await get(port, { timeout: 3000 })).body, String(worker));
    await c.call('sigkill', { worker });
    const { wExit, cExit } = await exitOf(c, worker);
    checkDead(wExit, cExit, { code: null, signal: 'SIGKILL', exitedAfterDisconnect: false });
  });

  await t.test('process.exit(3) in the worker -> exit (3, null)', async () => {
    const { worker } = await fork();
    await c.call('exit', { worker, code: 3 });
    const { wExit, cExit } = await exitOf(c, worker);
    checkDead(wExit, cExit, { code: 3, signal: null, exitedAfterDisconnect: false });
  });

  // Node 20's Worker#kill(signal = 'SIGTERM') just signals the process
  // (despite the docs' "disconnects, then kills"): exit (null, signal) and
  // exitedAfterDisconnect stays false.
  await t.test('worker.kill() -> exit (null, "SIGTERM")', async () => {
    const { worker } = await fork();
    await c.call('kill', { worker });
    const { wExit, cExit } = await exitOf(c, worker);
    checkDead(wExit, cExit, { code: null, signal: 'SIGTERM', exitedAfterDisconnect: false });
  });

  await t.test('worker.kill("SIGINT") -> exit (null, "SIGINT")', async () => {
    const { worker } = await fork();
    await c.call('kill', { worker, signal: 'SIGINT' });
    const { wExit, cExit } = await exitOf(c, worker);
    checkDead(wExit, cExit, { code: null, signal: 'SIGINT', exitedAfterDisconnect: false });
  });

  await t.test('worker.disconnect() -> exit (0, null), exitedAfterDisconnect true', async () => {
    const { worker } = await fork();
    await c.call('disconnect', { worker });
    const { wExit, cExit } = await exitOf(c, worker);
    checkDead(wExit, cExit, { code: 0, signal: null, exitedAfterDisconnect: true });
    const disc = c.all({ event: 'worker-disconnect', worker })[0];
    assert.equal(disc.isConnected, false, 'isConnected() false in the disconnect event');
  });

  await t.test('dead workers are removed from cluster.workers', async () => {
    const { worker } = await fork();
    const { ids } = await c.call('workers');
    assert.deepEqual(ids, [worker], 'only the live worker is listed');
  });

  await t.test('worker.send / process.on("message") / process.send round trip, cluster "message"', async () => {
    const { worker } = await fork();
    // Worker-initiated message at start-up.
    const hello = await c.waitFor({ event: 'worker-message', worker });
    assert.deepEqual(hello.message, { hello: worker });
    const cHello = await c.waitFor({ event: 'cluster-message', worker });
    assert.deepEqual(cHello.message, { hello: worker });

    const payload = { n: 42, s: 'héllo', list: [1, 'two', { three: 3 }], nil: null, yes: true };
    const from = c.events.length;
    await c.call('send', { worker, payload });
    const echo = await c.waitFor({ event: 'worker-message', worker }, { from });
    assert.deepEqual(echo.message, { echo: payload, from: worker });
    const cEcho = await c.waitFor({ event: 'cluster-message', worker }, { from });
    assert.deepEqual(cEcho.message, { echo: payload, from: worker });
  });
});
