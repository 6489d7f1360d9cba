'use strict';
// socket.io with @socket.io/sticky and @socket.io/cluster-adapter on two
// workers: both libraries require('cluster') themselves. 20 clients connect
// (long-polling first, then the upgrade), reach both workers, and all get a
// broadcast one worker sends.
const test = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { startCluster } = require('../helpers/run-cluster');
const { getFreePort, HOST } = require('../helpers/http-client');

const CLIENTS = 20;

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

for (const [label, websocketOnly] of [
  ['sticky sessions (long-polling first) and the cluster adapter', false],
  ['websocket only, the cluster sharing the port, and the cluster adapter', true],
]) {
  test(`socket.io with ${label}: 20 clients, one broadcast reaches all`, { timeout: 60000 }, async (t) => {
    const port = await getFreePort();
    const env = { PORT: String(port), WEBSOCKET_ONLY: websocketOnly ? '1' : '' };
    const c = startCluster(t, 'third-party/socket-io.js', { env });
    await c.waitFor('ready', { timeout: 15000 });

    const clients = [];
    t.after(() => {
      for (const s of clients) s.disconnect();
    });
    const received = [];
    for (let i = 0; i < CLIENTS; i++) {
      // Polling first, then websocket: socket.io-client's default, as the sticky
      // README expects. A few reconnections are allowed: the sticky primary learns
      // a session's worker by IPC while the handshake answer goes to the client
      // directly, and a client quick to poll again can reach the other worker
      // first (400, 'xhr poll error'), under node:cluster alike.
      const socket = io(`http://${HOST}:${port}`, {
        reconnectionAttempts: 3, reconnectionDelay: 100, timeout: 5000,
        ...(websocketOnly ? { transports: ['websocket'] } : {}),
      });
      clients.push(socket);
      received.push(new Promise((resolve) => socket.once('news', resolve)));
    }
    await withTimeout(Promise.all(clients.map((s) => new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.io.once('reconnect_failed', () => reject(new Error(`this client could not connect${c.diag()}`)));
    }))), 20000, 'connect');

    const workers = await withTimeout(Promise.all(clients.map((s) => s.timeout(5000).emitWithAck('whoami'))), 10000, 'whoami');
    assert.deepEqual([...new Set(workers)].sort(), [1, 2], 'clients are spread over both workers');

    const reply = await c.call('broadcast', { text: 'hello' });
    assert.equal(reply.sent, true);
    const texts = await withTimeout(Promise.all(received), 10000, 'broadcast');
    assert.deepEqual(texts, new Array(CLIENTS).fill('hello'));
  });
}
