'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const N = 3;

test('classic fork-N + http.createServer().listen(port) program', { timeout: 60000 }, async (t) => {
  const port = await getFreePort();
  const c = startCluster(t, 'classic.js', { env: { WORKERS: String(N), PORT: String(port) } });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  const ids = ready.workers.map((w) => w.id);

  await t.test('cluster.isPrimary / isMaster / isWorker in the primary', () => {
    const p = c.all('primary')[0];
    assert.deepEqual({ isPrimary: p.isPrimary, isMaster: p.isMaster, isWorker: p.isWorker },
      { isPrimary: true, isMaster: true, isWorker: false });
  });

  await t.test('cluster.workers is keyed by worker id and holds every forked worker', () => {
    assert.equal(ids.length, N);
    assert.deepEqual(new Set(ids).size, N, 'worker ids are distinct');
    for (const w of ready.workers) {
      assert.equal(w.key, String(w.id), 'key of cluster.workers is the worker id');
      assert.equal(w.state, 'listening');
      assert.ok(Number.isInteger(w.pid) && w.pid > 0);
    }
    for (const f of c.all('forked')) assert.equal(f.inWorkers, true, 'fork() result is cluster.workers[id]');
  });

  await t.test('fork, online, listening fire per worker, in order, with state none -> online -> listening', () => {
    for (const id of ids) {
      const pick = (name) => c.all((e) => e.event === name && e.worker === id);
      const [fork] = pick('cluster-fork');
      const [online] = pick('cluster-online');
      const [wOnline] = pick('worker-online');
      const [listening] = pick('cluster-listening');
      const [wListening] = pick('worker-listening');
      for (const [name, e] of Object.entries({ fork, online, wOnline, listening, wListening })) {
        assert.ok(e, `worker ${id}: ${name} event fired`);
      }
      assert.equal(pick('cluster-fork').length, 1, 'fork fires once');
      assert.equal(pick('cluster-online').length, 1, 'online fires once');
      assert.equal(pick('cluster-listening').length, 1, 'listening fires once');
      assert.equal(fork.state, 'none');
      assert.equal(online.state, 'online');
      assert.equal(wOnline.state, 'online');
      assert.equal(listening.state, 'listening');
      assert.equal(wListening.state, 'listening');
      assert.ok(fork._index < online._index && online._index < listening._index,
        `worker ${id}: fork < online < listening`);
      assert.ok(wOnline._index < wListening._index);
      assert.equal(listening.address.port, port, 'listening address carries the port');
      assert.deepEqual(wListening.address, listening.address);
    }
  });

  await t.test('in workers: isWorker, cluster.worker.id', async () => {
    const infos = await c.waitFor('worker-info', { count: N });
    for (const info of infos) {
      assert.deepEqual({ isPrimary: info.isPrimary, isMaster: info.isMaster, isWorker: info.isWorker },
        { isPrimary: false, isMaster: false, isWorker: true });
      assert.equal(info.id, info.worker, 'cluster.worker.id matches the primary\'s worker.id');
      assert.equal(info.workerPid, info.pid, 'cluster.worker.process is the worker process');
      const fork = c.all((e) => e.event === 'cluster-fork' && e.worker === info.id)[0];
      assert.equal(fork.pid, info.pid, 'worker.process.pid in the primary is the worker pid');
    }
  });

  await t.test('200 fresh-connection requests all return 200 from a worker', async () => {
    const seen = new Map();
    await sequential(200, async (i) => {
      const res = await get(port, { path: `/${i}`, timeout: 4000 });
      assert.equal(res.status, 200);
      const m = /^hi from (\d+)$/.exec(res.body);
      assert.ok(m, `body names a worker: ${JSON.stringify(res.body)}`);
      const id = Number(m[1]);
      assert.ok(ids.includes(id), `worker id ${id} is one of ${ids}`);
      seen.set(id, (seen.get(id) || 0) + 1);
    });
    // Default policy on Linux is round-robin in both implementations.
    assert.equal(seen.size, N, `every worker served requests: ${JSON.stringify([...seen])}`);
  });
});
