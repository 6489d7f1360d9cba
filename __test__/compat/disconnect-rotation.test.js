'use strict';
// worker.disconnect() in the primary takes the worker out of every listener's
// rotation right away, as node:cluster's removeHandlesForWorker does, without
// waiting for the worker to close its servers: new connections go to the other
// workers, and a port whose last worker is disconnected stops accepting.
// The worker here is made too busy to act on the disconnect until released.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startCluster } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

function releaseFile(t) {
  const file = path.join(os.tmpdir(), `rcluster-release-${process.pid}-${Math.random().toString(36).slice(2)}`);
  // A worker never released is killed with its cluster when the test ends.
  t.after(() => fs.rmSync(file, { force: true }));
  return file;
}

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', (e) => resolve(e.code === 'ECONNREFUSED'));
  });
}

test('new connections skip a disconnected worker at once', { timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'disconnect-rotation.js', { env: { WORKERS: '2' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const file = releaseFile(t);
  await c.call('block', { worker: 1, file });
  await c.call('disconnect', { worker: 1 });
  for (let i = 0; i < 4; i++) {
    const res = await get(port, { timeout: 3000 });
    assert.equal(res.body, '2', `request ${i} is served by the worker still in rotation`);
  }
  fs.writeFileSync(file, '');
  const exit = await c.waitFor({ event: 'exit', worker: 1 }, { timeout: 10000 });
  assert.equal(exit.code, 0);
});

// Under SCHED_NONE a disconnected worker keeps listening on its own copy of
// the socket until its server closes, in node:cluster as in rcluster.
test('the port stops accepting once its last worker is disconnected', {
  timeout: 30000,
  skip: process.env.NODE_CLUSTER_SCHED_POLICY === 'none' && 'round-robin behaviour',
}, async (t) => {
  const c = startCluster(t, 'disconnect-rotation.js', { env: { WORKERS: '1' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const file = releaseFile(t);
  await c.call('block', { worker: 1, file });
  await c.call('disconnect', { worker: 1 });
  // The primary closes the socket as it handles the call; a few tries cover
  // the hand-off to the thread that owns it.
  let closed = false;
  for (let i = 0; i < 50 && !closed; i++) {
    closed = await refused(port);
    if (!closed) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(closed, 'connections are refused while the worker is still busy');
  fs.writeFileSync(file, '');
  const exit = await c.waitFor({ event: 'exit', worker: 1 }, { timeout: 10000 });
  assert.equal(exit.code, 0);
});
