'use strict';
// The net/http server API inside cluster workers behaves as on a plain
// (non-cluster) server: 'listening', server.listening, server.address(), the
// listen() call forms, getConnections(), maxConnections, unref(), and the
// http keepAliveTimeout / headersTimeout.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startCluster } = require('../helpers/run-cluster');
const { get, settle, getFreePort, connect } = require('../helpers/http-client');

const REQ = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

/** What a plain server in this process reports for the same host argument. */
function plainAddress(host) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(host ? { port: 0, host } : { port: 0 }, () => {
      const { address, family } = s.address();
      s.close(() => resolve({ address, family }));
    });
  });
}

const FORMS = [
  // [FORM, description, host used, listen callback given]
  ['port', 'listen(port)', null, false],
  ['port-host', 'listen(port, host)', '127.0.0.1', false],
  ['port-host-backlog-cb', 'listen(port, host, backlog, cb)', '127.0.0.1', true],
  ['options', 'listen({port, host})', '127.0.0.1', false],
  ['port-cb', 'listen(port, cb)', null, true],
];

for (const [form, desc, host, hasCb] of FORMS) {
  test(`${desc}: 'listening', server.listening, server.address(), requests served`, { timeout: 20000 }, async (t) => {
    const port = await getFreePort();
    const expected = { ...(await plainAddress(host)), port };
    const c = startCluster(t, 'server-api.js', { env: { FORM: form, PORT: String(port), WORKERS: '2' } });
    const ready = await c.waitFor('ready', { timeout: 10000 });
    const reports = await c.waitFor('worker-listen', { count: 2 });
    for (const r of reports) {
      assert.equal(r.listeningEvents, 1, `worker ${r.worker}: 'listening' fired once`);
      assert.equal(r.cbCalls, hasCb ? 1 : 0, `worker ${r.worker}: listen callback calls`);
      assert.equal(r.listening, true, 'server.listening');
      assert.deepEqual(r.address, expected, 'server.address()');
      assert.equal(r.connectionKey, `4:${host}:${port}`, 'server._connectionKey, as net.js sets it in a worker');
    }
    for (const l of ready.listenAddresses) assert.equal(l.address.port, port, 'cluster listening event port');
    const ids = ready.workers.map((w) => w.id);
    for (let i = 0; i < 10; i++) {
      const res = await get(port, { timeout: 3000 });
      assert.equal(res.status, 200);
      assert.ok(ids.includes(Number(res.body)));
    }
  });
}

for (const [form, host] of [['port', null], ['port-host', '127.0.0.1']]) {
  test(`listen(0${host ? ', host' : ''}): every worker reports the same real port`, { timeout: 20000 }, async (t) => {
    const expected = await plainAddress(host);
    const c = startCluster(t, 'server-api.js', { env: { FORM: form, PORT: '0', WORKERS: '3' } });
    const ready = await c.waitFor('ready', { timeout: 10000 });
    const reports = await c.waitFor('worker-listen', { count: 3 });
    const port = reports[0].address.port;
    assert.ok(Number.isInteger(port) && port > 0, `a real port, not 0: ${port}`);
    for (const r of reports) {
      assert.equal(r.listening, true);
      assert.deepEqual(r.address, { ...expected, port }, `worker ${r.worker}: server.address()`);
    }
    for (const l of ready.listenAddresses) assert.equal(l.address.port, port, 'cluster listening event port');
    const ids = ready.workers.map((w) => w.id);
    for (let i = 0; i < 9; i++) {
      const res = await get(port, { timeout: 3000 });
      assert.equal(res.status, 200);
      assert.ok(ids.includes(Number(res.body)));
    }
  });
}

test('server.getConnections(cb) counts the connections a worker holds', { timeout: 20000 }, async (t) => {
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '2' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
  const conns = [];
  t.after(() => conns.forEach((x) => x.destroy()));
  const expected = Object.fromEntries(workers.map((w) => [w.id, 0]));
  for (let i = 0; i < 5; i++) {
    const conn = await connect(port);
    conns.push(conn);
    conn.write(REQ);
    const res = await conn.response();
    assert.equal(res.status, 200);
    expected[res.body]++;
  }
  const { counts } = await c.call('connections');
  assert.deepEqual(counts, expected, 'each worker counts the open keep-alive connections it served');

  // After the client closes them, the counts drop to 0 (no event: poll, bounded).
  conns.forEach((x) => x.destroy());
  const deadline = Date.now() + 3000;
  let last;
  do {
    last = (await c.call('connections')).counts;
    if (Object.values(last).every((n) => n === 0)) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  assert.deepEqual(Object.values(last), [0, 0], 'counts drop to 0 once the client closed');
});

test('server.maxConnections: a worker serves no more connections than the limit', { timeout: 20000 }, async (t) => {
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '1', MAX_CONN: '1' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const { state } = await c.call('state');
  assert.equal(Object.values(state)[0].maxConnections, 1, 'server.maxConnections reads back');

  const a1 = await connect(port);
  t.after(() => a1.destroy());
  a1.write(REQ);
  assert.equal((await a1.response()).status, 200);

  // Over the limit: node drops the connection (SCHED_NONE / plain net) or
  // holds it back until a slot frees (node:cluster RR). Either way it gets no
  // response while a1 is open. A negative check needs a window: 1 s.
  const a2 = await connect(port);
  t.after(() => a2.destroy());
  a2.write(REQ);
  const r2 = await settle(a2.response(0, 1000));
  assert.equal(r2.ok, false, `no response over maxConnections, got ${r2.ok && r2.value.status}`);
  assert.equal((await c.call('connections')).counts[Object.keys(state)[0]], 1, 'getConnections() stays at 1');
  a2.destroy();
  a1.destroy();

  // Once a1 is gone a new connection is served (the close reaches the worker
  // asynchronously, so retry a few fresh connections).
  let ok = false;
  for (let i = 0; i < 5 && !ok; i++) {
    const r = await settle(get(port, { timeout: 1000 }));
    ok = r.ok && r.value.status === 200;
  }
  assert.ok(ok, 'served again once below maxConnections');
});

test('round-robin: a connection over maxConnections waits and is served once a slot frees', {
  timeout: 30000,
  skip: process.env.NODE_CLUSTER_SCHED_POLICY === 'none' && 'SCHED_NONE drops it, as a lone server does',
}, async (t) => {
  // node:cluster's round-robin hands a refused connection around until a
  // worker takes it; the client sees a slow answer, not a reset.
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '2', MAX_CONN: '1' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const held = [];
  t.after(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = await connect(port);
    held.push(s);
    s.write(REQ);
    assert.equal((await s.response()).status, 200, 'each worker takes one connection');
  }
  const waiting = await connect(port);
  t.after(() => waiting.destroy());
  waiting.write(REQ);
  const early = await settle(waiting.response(0, 500));
  assert.equal(early.ok, false, 'no answer while both workers are at maxConnections');
  held[0].destroy();
  const r = await waiting.response(0, 10000);
  assert.equal(r.status, 200, 'the same connection is answered once a slot frees');
});

test('server.unref() in a worker: the worker stays alive (cluster IPC keeps it) and keeps serving', { timeout: 20000 }, async (t) => {
  // Checked on node:cluster first: a worker whose only server is unref()'d
  // does not exit, because the worker's IPC channel to the primary is ref'd.
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '1', UNREF: '1' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
  const report = await c.waitFor('worker-listen');
  assert.equal(report.unref, true);
  assert.equal((await get(port, { timeout: 3000 })).body, String(workers[0].id));
  // Negative check needs a window: an exiting worker would be gone well within 1.5 s.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(c.has('worker-exit'), false, 'worker did not exit');
  const { workers: after } = await c.call('workers');
  assert.deepEqual(after.map((w) => ({ id: w.id, isDead: w.isDead })), [{ id: workers[0].id, isDead: false }]);
  assert.equal((await get(port, { timeout: 3000 })).status, 200, 'still serving');
});

test('http server.keepAliveTimeout closes an idle keep-alive connection', { timeout: 20000 }, async (t) => {
  const KA = 1000;
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '1', KEEP_ALIVE_MS: String(KA) } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const conn = await connect(port);
  t.after(() => conn.destroy());
  conn.write(REQ);
  const res = await conn.response();
  const t0 = Date.now();
  assert.equal(res.status, 200);
  assert.equal(res.headers['keep-alive'], `timeout=${Math.floor(KA / 1000)}`);
  await conn.waitClosed(5000); // the default keepAliveTimeout (5 s) would miss this deadline
  const idle = Date.now() - t0;
  // Node 20 closes at keepAliveTimeout plus a ~1 s grace.
  assert.ok(idle >= KA - 100 && idle <= KA + 2500, `closed after ${idle} ms, keepAliveTimeout ${KA}`);
});

test('http server.headersTimeout answers 408 and closes a connection with incomplete headers', { timeout: 20000 }, async (t) => {
  const HT = 1000;
  const c = startCluster(t, 'server-api.js', { env: { FORM: 'port', PORT: '0', WORKERS: '1', HEADERS_TIMEOUT_MS: String(HT) } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const conn = await connect(port);
  t.after(() => conn.destroy());
  const t0 = Date.now();
  conn.write('GET / HTTP/1.1\r\nHost: x\r\n'); // headers never finished
  await conn.waitClosed(4000);
  const ms = Date.now() - t0;
  assert.match(conn.data, /^HTTP\/1\.1 408 /, 'a 408 Request Timeout response');
  assert.ok(ms >= HT - 100 && ms <= HT + 2500, `closed after ${ms} ms, headersTimeout ${HT}`);
});
