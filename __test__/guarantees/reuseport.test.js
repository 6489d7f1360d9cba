'use strict';
// SCHED_REUSEPORT: each worker accepts from a SO_REUSEPORT socket of its own,
// which the primary created and keeps. When a worker dies, the connections
// queued on its socket are not dropped: the primary accepts them and deals
// them to the workers still listening, and its replacement takes the socket
// over.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, connect } = require('../helpers/http-client');

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

// TCP_DEFER_ACCEPT, as nginx's `listen ... deferred`: an HTTP server's
// sockets queue a connection only once its request is in, so a worker never
// accepts one it must then wait on. A connection that sends nothing does not
// reach the server (for about a second); one that sends is served at once.
const total = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);

async function idleConnectionSeen(t, routing) {
  const env = { POLICY: 'reuseport', WORKERS: '2', COUNT_CONNECTIONS: '1', ...(routing ? { ROUTING: JSON.stringify(routing) } : {}) };
  const c = startCluster(t, 'routing.js', { env });
  const { port } = await c.waitFor('ready', { timeout: 15000 });
  const listener = (await c.call('stats')).listeners[0];
  const idle = await connect(port);
  t.after(() => idle.destroy());
  // Long enough for any worker to accept and report it, well short of the
  // kernel's one-second deferral.
  const deadline = Date.now() + 400;
  let seen = 0;
  while (Date.now() < deadline && seen === 0) {
    await sleep(25);
    seen = total((await c.call('connections')).connections);
  }
  // Either way, the request it then sends is answered.
  idle.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const res = await idle.response(0, 5000);
  assert.equal(res.status, 200);
  return { listener, seenBeforeRequest: seen };
}

test('reuseport: an HTTP server\'s sockets hold a connection until its request arrives (deferAccept)',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const { listener, seenBeforeRequest } = await idleConnectionSeen(t);
    assert.equal(listener.deferAccept, true);
    assert.equal(seenBeforeRequest, 0, 'a worker accepted a connection that had sent nothing');
  });

test('reuseport: routing.deferAccept false has workers accept connections as they come',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const { listener, seenBeforeRequest } = await idleConnectionSeen(t, { deferAccept: false });
    assert.equal(listener.deferAccept, false);
    assert.equal(seenBeforeRequest, 1, 'the idle connection never reached a worker');
  });

test('reuseport: a server that writes first is never deferred: its greeting comes unasked',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'reuseport', WORKERS: '2', SERVER: 'greeting', COUNT_CONNECTIONS: '1' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    assert.equal((await c.call('stats')).listeners[0].deferAccept, false);
    const conn = await connect(port);
    t.after(() => conn.destroy());
    await conn.until((x) => /^hello [12]\n$/.test(x.data), 5000, 'the greeting');
    // The worker's report of it follows on its IPC channel.
    let seen = 0;
    for (let i = 0; i < 100 && seen === 0; i++) {
      seen = total((await c.call('connections')).connections);
      if (seen === 0) await sleep(20);
    }
    assert.equal(seen, 1);
  });

test('reuseport: an HTTPS server\'s clients speak first too (the TLS ClientHello): deferred, and served',
  { skip: rclusterOnly('SCHED_REUSEPORT'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'reuseport', WORKERS: '2', SERVER: 'https' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    assert.equal((await c.call('stats')).listeners[0].deferAccept, true);
    const body = await new Promise((resolve, reject) => {
      const req = require('node:https').get({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, timeout: 5000 }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { data += d; });
        res.on('end', () => resolve(data));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
    });
    assert.match(body, /^[12]$/);
  });
