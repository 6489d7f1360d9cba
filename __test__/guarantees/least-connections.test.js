'use strict';
// SCHED_LC: a new connection goes to the worker holding the fewest open,
// as each worker's close reports tell the primary's dispatcher.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');
const { pollUntil } = require('../helpers/poll');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Slow and fast requests alternate, each fast one answered before the next
// request starts. Round-robin alternates workers too, so it puts every slow
// request on the same worker; least connections spreads them.
async function alternate(port, pairs) {
  const slow = [];
  for (let i = 0; i < pairs; i++) {
    slow.push(get(port, { path: '/slow?ms=1500', timeout: 10000 }));
    // Let the slow connection be dealt before the fast one arrives.
    await sleep(50);
    await get(port, { path: '/', timeout: 5000 });
    // Let the fast connection's close report reach the primary.
    await sleep(50);
  }
  return (await Promise.all(slow)).map((r) => r.body);
}

function counts(ids) {
  const out = {};
  for (const id of ids) out[id] = (out[id] || 0) + 1;
  return out;
}

test('lc: with fast and slow requests mixed, no worker holds more than its share of slow ones',
  { skip: rclusterOnly('SCHED_LC'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'lc', WORKERS: '2' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    const slowOn = counts(await alternate(port, 6));
    t.diagnostic(`slow requests per worker: ${JSON.stringify(slowOn)}`);
    assert.deepEqual(Object.values(slowOn).sort(), [3, 3], JSON.stringify(slowOn));
  });

test('lc: cluster.stats() shows the policy and each worker\'s open connections',
  { skip: rclusterOnly('cluster.stats()'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'lc', WORKERS: '2', MAX_CONNECTIONS: '1:5' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    const held = [0, 1, 2, 3].map(() => get(port, { path: '/slow?ms=1500', timeout: 10000 }));
    let listener;
    const held4 = await pollUntil(async () => {
      listener = (await c.call('stats')).listeners[0];
      return listener.connections.reduce((sum, w) => sum + w.open, 0) === 4;
    });
    assert.ok(held4, `four open connections in stats: ${JSON.stringify(listener)}`);
    assert.equal(listener.policy, 'lc');
    assert.deepEqual(listener.connections.map((w) => w.open), [2, 2]);
    await Promise.all(held);
    const closed = await pollUntil(async () => {
      listener = (await c.call('stats')).listeners[0];
      return listener.connections.every((w) => w.open === 0);
    });
    assert.ok(closed, `every connection reported closed: ${JSON.stringify(listener)}`);
    // Worker 1's maxConnections reached the primary with its reports.
    assert.deepEqual(listener.connections.map((w) => w.maxConnections ?? null), [5, null]);
  });

test('lc: a worker at its maxConnections is not dealt more; the others are, and held ones wait',
  { skip: rclusterOnly('SCHED_LC'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'lc', WORKERS: '2', MAX_CONNECTIONS: '1:1,2:1' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    // Two slow requests fill both workers; a third waits for a close, and
    // is then served rather than refused or dropped.
    const first = [get(port, { path: '/slow?ms=800', timeout: 10000 }), get(port, { path: '/slow?ms=800', timeout: 10000 })];
    await sleep(200);
    const started = Date.now();
    const third = await get(port, { path: '/', timeout: 10000 });
    const waited = Date.now() - started;
    const bodies = (await Promise.all(first)).map((r) => r.body).sort();
    assert.deepEqual(bodies, ['1', '2']);
    assert.equal(third.status, 200);
    assert.ok(waited >= 400, `the third request was served after ${waited} ms, before a slot was free`);
  });
