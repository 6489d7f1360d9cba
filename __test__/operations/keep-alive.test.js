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
