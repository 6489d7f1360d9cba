'use strict';
// server.maxConnections in workers under round-robin, as node:cluster 20
// behaves: a worker at its limit refuses a connection and the primary passes
// it on; when every worker is at its limit the connection is held (not
// closed) until one has room. A limit of 0 means no limit in Node 20.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');
const { connect } = require('../helpers/http-client');

const REQ = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';

async function served(t, port) {
  const conn = await connect(port);
  t.after(() => conn.destroy());
  conn.write(REQ);
  const res = await conn.response(0, 5000);
  assert.equal(res.status, 200);
  return { conn, worker: Number(res.body) };
}

// Under SCHED_NONE each worker accepts by itself and a full one drops the
// connection, as a lone server does: this is round-robin's behaviour.
const rrOnly = process.env.NODE_CLUSTER_SCHED_POLICY === 'none' && 'round-robin behaviour';

test('every worker full: a new connection waits, then is served once a worker has room', { timeout: 30000, skip: rrOnly }, async (t) => {
  const c = startCluster(t, 'full-workers.js', { env: { WORKERS: '2', MAX_CONN: '1' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });

  const a = await served(t, port);
  const b = await served(t, port);
  assert.notEqual(a.worker, b.worker, 'the second connection goes to the worker with room');

  const waiting = await connect(port);
  t.after(() => waiting.destroy());
  waiting.write(REQ);
  // Give the primary time to offer it to both full workers (they refuse).
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(waiting.closed || waiting.ended, false, 'the connection is held, not closed');
  assert.equal(waiting.data, '', 'and not served while both workers are full');

  a.conn.destroy();
  const res = await waiting.response(0, 5000);
  assert.equal(res.status, 200);
  assert.equal(Number(res.body), a.worker, 'served by the worker that got room');
});

test('maxConnections = 0 sets no limit, as in Node 20', { timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'full-workers.js', { env: { WORKERS: '1', MAX_CONN: '0' } });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const conns = [];
  for (let i = 0; i < 3; i++) conns.push(await served(t, port));
  assert.deepEqual(conns.map((x) => x.worker), [1, 1, 1], 'one worker serves three open connections');
});
