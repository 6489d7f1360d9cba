'use strict';
// A reload under keep-alive clients that keep sending: the retiring worker's
// idle connections move to another worker instead of closing under the
// client (no ECONNRESET, no hang-up), so the same TCP connection is answered
// by the old worker, then by a new one.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { HOST } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster closes idle keep-alive connections of a worker that leaves');

function request(agent, port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ socket: req.socket, status: res.statusCode, id: JSON.parse(body).id, close: res.headers.connection === 'close' }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('no response within 5000 ms')));
    req.on('error', reject);
  });
}

test('keep-alive clients send across a reload without an error; idle connections move', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'operations.js', { env: { WORKERS: '2', SETTINGS: JSON.stringify({ drainTimeout: 5000 }) } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const sockets = new Map(); // socket -> ids that answered on it, in order
  const failures = [];
  let running = true;
  let ok = 0;
  const lane = async () => {
    while (running) {
      try {
        const res = await request(agent, port);
        if (!sockets.has(res.socket)) sockets.set(res.socket, []);
        sockets.get(res.socket).push(res.id);
        ok++;
      } catch (err) {
        failures.push(`${err.code || ''} ${err.message}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const lanes = Promise.all([lane(), lane(), lane(), lane()]);
  await new Promise((r) => setTimeout(r, 300));
  const result = await c.call('reload', {}, { timeout: 40000 });
  await new Promise((r) => setTimeout(r, 300));
  running = false;
  await lanes;
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(failures, [], `failed requests (of ${ok + failures.length})`);
  const news = result.replaced.map((r) => r.replacement);
  const moved = [...sockets.values()].filter((ids) => ids.some((id) => olds.includes(id)) && ids.some((id) => news.includes(id)));
  assert.ok(moved.length > 0, `a connection answered by an old worker then by a new one: ${JSON.stringify([...sockets.values()].map((ids) => [...new Set(ids)]))}`);
});

// Sends `request` on `socket` and resolves with the response's JSON body
// (Content-Length framed), or null if the connection closes first.
function askOn(socket, request) {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(null);
    let data = '';
    const done = (value) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      clearTimeout(timer);
      resolve(value);
    };
    const onData = (d) => {
      data += d;
      const end = data.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(data);
      if (end >= 0 && length && data.length >= end + 4 + Number(length[1])) done(JSON.parse(data.slice(end + 4)));
    };
    const onClose = () => done(null);
    const timer = setTimeout(() => reject(new Error(`no response within 5000 ms: ${JSON.stringify(data)}`)), 5000);
    socket.on('data', onData);
    socket.on('close', onClose);
    if (!socket.destroyed) socket.write(request);
  });
}

test('behind the PROXY protocol, an idle keep-alive connection of a retiring worker never reaches another worker without its client\'s address', { skip, timeout: 60000 }, async (t) => {
  const net = require('node:net');
  const c = startCluster(t, 'operations.js', {
    env: { WORKERS: '2', SETTINGS: JSON.stringify({ drainTimeout: 5000, reload: { probation: 0 }, routing: { proxyProtocol: true } }) },
  });
  const { port } = await c.waitFor('ready', { timeout: 10000 });
  const request = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  const client = '192.0.2.7';
  const sockets = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  // Idle keep-alive connections on both workers, each with its PROXY header.
  for (let i = 0; i < 4; i++) {
    const socket = net.connect(port, HOST);
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`PROXY TCP4 ${client} 127.0.0.1 ${40000 + i} 80\r\n`);
    const first = await askOn(socket, request);
    assert.equal(first.remoteAddress, client);
    sockets.push(socket);
  }
  const result = await c.call('reload', {}, { timeout: 40000 });
  assert.equal(result.ok, true, JSON.stringify(result));
  // The header was stripped by the primary: a connection that moved would
  // show the primary's peer (127.0.0.1) to its new worker. It closes instead
  // (the balancer retries), or, still with its worker, shows the client.
  for (const socket of sockets) {
    const next = await askOn(socket, request);
    if (next !== null) assert.equal(next.remoteAddress, client);
  }
});
