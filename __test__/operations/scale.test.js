'use strict';
// cluster.scale(n): missing workers are forked and answer once it resolves;
// the surplus, newest first, is retired as a reload retires an old worker
// (out of rotation, then drained), so clients see no failure; bad counts
// throw Node-style errors; a worker has no cluster.scale, as it has no
// cluster.reload.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, HOST } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no scale');

function start(t, { workers, settings }) {
  const env = { WORKERS: String(workers) };
  if (settings) env.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'operations.js', { env });
}

// One request over a keep-alive agent.
function keepAliveGet(agent, port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body).id) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('no response within 5000 ms')));
    req.on('error', reject);
  });
}

// Requests on two keep-alive lanes and two lanes of a new connection each,
// until stop(); at most `max` requests, so a slow machine is not flooded.
function load(port, { max = 4000 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let running = true;
  let sent = 0;
  const failures = [];
  const answeredBy = new Map();
  const lane = async (send) => {
    while (running && sent < max) {
      sent++;
      try {
        const id = await send();
        answeredBy.set(id, (answeredBy.get(id) || 0) + 1);
      } catch (err) {
        failures.push(`${err.code || ''} ${err.message}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const closeLane = () => lane(async () => {
    const res = await get(port, { timeout: 5000 });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return JSON.parse(res.body).id;
  });
  const keepAliveLane = () => lane(() => keepAliveGet(agent, port));
  const done = Promise.all([keepAliveLane(), keepAliveLane(), closeLane(), closeLane()]);
  return {
    async stop() {
      running = false;
      await done;
      agent.destroy();
      return { sent, failures, answeredBy };
    },
  };
}

test('scale up 1 -> 3: it resolves with 3 once the new workers are ready, and each answers', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 1 });
  const { port, workers: [first] } = await c.waitFor('ready', { timeout: 10000 });
  const result = await c.call('scale', { n: 3 }, { timeout: 30000 });
  assert.equal(result.count, 3, JSON.stringify(result));
  assert.equal(result.workers.length, 3);
  const news = result.workers.filter((id) => id !== first);
  assert.equal(news.length, 2);
  // Resolved only once each new worker listens.
  for (const id of news) assert.ok(c.has({ event: 'listening', worker: id }), `worker ${id} listened before scale resolved`);
  const seen = new Set();
  for (let i = 0; i < 60 && seen.size < 3; i++) {
    const res = await get(port, { timeout: 5000 });
    assert.equal(res.status, 200);
    seen.add(JSON.parse(res.body).id);
  }
  assert.deepEqual([...seen].sort(), [...result.workers].sort(), 'every worker answers');
  // The same count again: nothing to do.
  const again = await c.call('scale', { n: 3 }, { timeout: 5000 });
  assert.deepEqual(again.workers.sort(), [...result.workers].sort());
  assert.equal(c.all('fork').length, 3);
});

test('scale down 3 -> 1 under keep-alive and new-connection load: the newest go, no request fails', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 3, settings: { drainTimeout: 5000 } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
  const traffic = load(port);
  await new Promise((r) => setTimeout(r, 300));
  const result = await c.call('scale', { n: 1 }, { timeout: 30000 });
  await new Promise((r) => setTimeout(r, 300));
  const { sent, failures, answeredBy } = await traffic.stop();
  assert.equal(result.count, 1, JSON.stringify(result));
  const oldest = Math.min(...workers);
  assert.deepEqual(result.workers, [oldest], 'the newest workers were retired');
  assert.deepEqual(failures, [], `failed requests (of ${sent})`);
  assert.ok(sent > 20, `some load went through (${sent})`);
  assert.ok(answeredBy.get(oldest) > 0);
  for (const id of workers.filter((w) => w !== oldest)) {
    const exit = c.all({ event: 'exit', worker: id })[0];
    assert.ok(exit, `worker ${id} exited before scale resolved`);
    assert.equal(exit.exitedAfterDisconnect, true);
    assert.equal(exit.signal, null, 'drained, not killed');
  }
  assert.equal(c.all('fork').length, 3, 'nothing forked');
});

test('cluster.scale() validates its count as Node does', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 1 });
  await c.waitFor('ready', { timeout: 10000 });
  for (const [n, name, code] of [
    ['2', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [1.5, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [-1, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [4097, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ]) {
    const r = await c.call('scale', { n });
    assert.deepEqual([r.name, r.code], [name, code], `scale(${JSON.stringify(n)}): ${r.message}`);
  }
  assert.deepEqual((await c.call('state')).workers.length, 1, 'nothing forked or retired');
});

test('in a worker cluster.scale is not there, as cluster.reload is not', { skip, timeout: 30000 }, async (t) => {
  const c = start(t, { workers: 1 });
  const { workers: [id] } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('workerCalls', { worker: id });
  const { scale, reload } = await c.waitFor('workerCalls', { timeout: 5000 });
  assert.deepEqual([scale.threw, scale.name], [true, 'TypeError']);
  assert.match(scale.message, /cluster\.scale is not a function/);
  assert.deepEqual([reload.threw, reload.name], [true, 'TypeError'], 'as reload');
});
