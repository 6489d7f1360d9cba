'use strict';
// cluster.scale() (lib/operations/scale.js) through the hooks lib/primary/cluster.js
// calls (lib/operations/management.js), with a fake fork and fake timers: which
// lines go first, and what a pending restart counts for. What a real cluster
// shows is in ../operations/scale.test.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const EventEmitter = require('node:events');
const { manage } = require('../../lib/operations/management');
const { WorkerRecord } = require('../../lib/primary/worker_record');

// A cluster whose fork() makes a fake worker and records it as the primary
// does; a worker asked to disconnect exits (exitedAfterDisconnect).
function fakeCluster(t, restart) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const cluster = new EventEmitter();
  const records = new Map();
  const withdrawn = [];
  const management = manage(cluster, records, {
    forkWorker: () => { throw new Error('no trial forks here'); },
    withdrawFromRotations: (worker) => withdrawn.push(worker.id),
  });
  let ids = 0;
  cluster.forked = [];
  const exit = (worker, code = 1, signal = null) => {
    worker.dead = true;
    management.exited(worker, code, signal);
    worker.emit('exit', code, signal);
  };
  cluster.fork = (env) => {
    const worker = new EventEmitter();
    worker.id = ++ids;
    worker.state = 'none';
    worker.dead = false;
    worker.isConnected = () => !worker.dead;
    worker.isDead = () => worker.dead;
    worker.disconnect = () => {
      worker.exitedAfterDisconnect = true;
      records.get(worker.id)?.disconnect();
      process.nextTick(() => exit(worker, 0));
    };
    worker.process = { connected: true, send() { return true; }, kill() {} };
    records.set(worker.id, new WorkerRecord(worker, env));
    management.forked(worker);
    cluster.forked.push(worker);
    // Online at once: ready, as a worker that listens on nothing is.
    process.nextTick(() => {
      worker.state = 'online';
      worker.emit('online');
    });
    return worker;
  };
  cluster.settings = {};
  Object.assign(cluster.settings, management.normalize({ restart }));
  management.applied({ restart });
  return { cluster, records, management, withdrawn, exit };
}

const OPTIONS = { minDelay: 100, maxDelay: 1000, resetAfter: 5000, maxRestarts: 100, window: 60000 };
const ticks = () => new Promise((resolve) => setImmediate(resolve));

test('scale down retires the newest lines first: a restarted worker keeps its line\'s place', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const { scaler } = c.management;
  assert.equal(await scaler.scale(3), 3);
  const [w1, w2, w3] = c.cluster.forked;
  const oldestLine = c.records.get(w1.id).line;
  c.exit(w1); // the oldest line's worker crashes; its replacement is the newest process
  t.mock.timers.tick(100);
  await ticks();
  const w4 = c.cluster.forked[3];
  assert.equal(c.records.get(w4.id).line, oldestLine, 'the replacement is in the line of the worker it replaces');
  const down = scaler.scale(2);
  await ticks();
  assert.deepEqual(c.withdrawn, [w3.id], 'the newest line (worker 3) goes, not worker 4');
  assert.equal(await down, 2);
  assert.deepEqual([...c.records.keys()].sort(), [w2.id, w4.id].sort());
});

test('a pending restart counts as a worker: scaling down cancels it, scaling up forks around it', async (t) => {
  const c = fakeCluster(t, OPTIONS);
  const { scaler } = c.management;
  assert.equal(await scaler.scale(2), 2);
  const [, w2] = c.cluster.forked;
  c.exit(w2);
  assert.equal(c.cluster.pendingRestarts, 1);
  assert.equal(await scaler.scale(1), 1);
  assert.equal(c.cluster.pendingRestarts, 0, 'the restart of the newest line was cancelled');
  assert.deepEqual(c.withdrawn, [], 'no running worker retired');
  t.mock.timers.tick(1000);
  assert.equal(c.cluster.forked.length, 2, 'nothing forked for the cancelled restart');

  const [w1] = c.cluster.forked;
  c.exit(w1);
  assert.equal(c.cluster.pendingRestarts, 1);
  const up = scaler.scale(2);
  assert.equal(c.cluster.forked.length, 3, 'one forked now: the pending restart is the other');
  t.mock.timers.tick(200);
  await ticks();
  assert.equal(c.cluster.forked.length, 4);
  assert.equal(await up, 2);
});

test('scale(0) retires every worker; a later call takes over an earlier one', async (t) => {
  const c = fakeCluster(t, false);
  const { scaler } = c.management;
  const first = scaler.scale(3);
  const second = scaler.scale(1);
  assert.deepEqual(await Promise.all([first, second]), [1, 1]);
  assert.equal(c.cluster.forked.length, 3);
  assert.equal(await scaler.scale(0), 0);
  assert.equal(c.records.size, 0);
  for (const worker of c.cluster.forked) assert.equal(worker.exitedAfterDisconnect, true);
});
