'use strict';
// socket.io's long-polling transport sends each request of a session on a
// connection of its own, and only the worker that opened the session knows
// its `sid`: another answers 400 "Session ID unknown". With SCHED_STICKY by
// the `sid` query parameter (the primary peeks at each connection's first
// request) and each worker claiming the sessions it opens, 20 polling-first
// clients all connect, spread over both workers. With round-robin, the same
// clients fail: that is why.
const test = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { getFreePort, HOST } = require('../helpers/http-client');

const CLIENTS = 20;

// Connects `CLIENTS` polling-only clients (no upgrade, so every message
// travels by long-polling), each allowed no retry; resolves with each
// client's worker id, or the error that ended it.
async function connectAll(t, port) {
  const clients = [];
  t.after(() => {
    for (const s of clients) s.disconnect();
  });
  const outcomes = [];
  for (let i = 0; i < CLIENTS; i++) {
    const socket = io(`http://${HOST}:${port}`, { transports: ['polling'], reconnection: false, timeout: 5000 });
    clients.push(socket);
    outcomes.push(new Promise((resolve) => {
      socket.once('connect', async () => {
        try {
          // Several round trips on the session, each a request of its own.
          let id;
          for (let k = 0; k < 3; k++) id = await socket.timeout(5000).emitWithAck('whoami');
          resolve(id);
        } catch (err) {
          resolve(err);
        }
      });
      socket.once('connect_error', resolve);
      socket.once('disconnect', (reason) => resolve(new Error(`disconnected: ${reason}`)));
    }));
  }
  return Promise.all(outcomes);
}

test('socket.io long-polling: sticky by sid connects every client, spread over both workers',
  { skip: rclusterOnly('SCHED_STICKY by query parameter'), timeout: 60000 },
  async (t) => {
    const port = await getFreePort();
    const c = startCluster(t, 'third-party/socket-io-sid.js', { env: { PORT: String(port), STICKY: 'sid' } });
    await c.waitFor('ready', { timeout: 15000 });
    const outcomes = await connectAll(t, port);
    const failed = outcomes.filter((o) => typeof o !== 'number').map((e) => e.message);
    assert.deepEqual(failed, [], 'every client connected and kept its session');
    assert.deepEqual([...new Set(outcomes)].sort(), [1, 2], 'clients are spread over both workers');
  });

test('socket.io long-polling: without sticky routing (round-robin) sessions break',
  { skip: rclusterOnly('the contrast with SCHED_STICKY'), timeout: 60000 },
  async (t) => {
    const port = await getFreePort();
    const c = startCluster(t, 'third-party/socket-io-sid.js', { env: { PORT: String(port), STICKY: 'none' } });
    await c.waitFor('ready', { timeout: 15000 });
    const outcomes = await connectAll(t, port);
    const failed = outcomes.filter((o) => typeof o !== 'number');
    t.diagnostic(`${failed.length} of ${CLIENTS} clients failed`);
    assert.ok(failed.length > 0, 'every session survived round-robin: the test shows nothing');
  });
