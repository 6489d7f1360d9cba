'use strict';
// SCHED_REUSEPORT: each worker accepts from a SO_REUSEPORT socket of its own,
// which the primary created and keeps. When a worker dies, the connections
// queued on its socket are not dropped: the primary accepts them and deals
// them to the workers still listening, and its replacement takes the socket
// over.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle } = require('../helpers/http-client');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('reuseport: a socket per worker, and the kernel spreads connections over them',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'reuseport', WORKERS: '3' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    const listener = (await c.call('stats')).listeners[0];
    assert.equal(listener.policy, 'reuseport');
    assert.equal(listener.sockets, 3);
    const seen = new Set();
    for (let i = 0; i < 60 && seen.size < 3; i++) seen.add((await get(port)).body);
    assert.deepEqual([...seen].sort(), ['1', '2', '3']);
  });

test('reuseport: connections queued on a SIGKILLed worker\'s socket are served by the others, none lost',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'reuseport', WORKERS: '2' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    for (let i = 0; i < 10; i++) assert.equal((await get(port)).status, 200);
    // Worker 1 stops accepting: what the kernel puts on its socket queues there.
    await c.call('stop', { worker: 1 });
    const requests = Array.from({ length: 40 }, () => settle(get(port, { timeout: 15000 })));
    let answered = 0;
    for (const r of requests) r.then(() => { answered += 1; });
    await sleep(700);
    assert.ok(answered < requests.length, 'nothing queued on the stopped worker\'s socket');
    t.diagnostic(`${requests.length - answered} connections queued on worker 1's socket`);
    await c.call('kill', { worker: 1 });
    const results = await Promise.all(requests);
    const failed = results.filter((r) => !r.ok).map((r) => r.error.code);
    assert.deepEqual(failed, [], 'every queued connection was answered');
    assert.ok(results.every((r) => r.value.body === '2'), 'by the surviving worker');
    // A replacement takes over the dead worker's socket: no third one is bound.
    const { worker } = await c.call('fork', {}, { timeout: 15000 });
    assert.equal((await c.call('stats')).listeners[0].sockets, 2);
    const seen = new Set();
    for (let i = 0; i < 60 && !seen.has(String(worker)); i++) seen.add((await get(port)).body);
    assert.ok(seen.has(String(worker)), `the replacement (worker ${worker}) got no connection: ${[...seen]}`);
  });
