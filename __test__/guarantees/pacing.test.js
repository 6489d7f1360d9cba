'use strict';
// [rcluster-only] Under overload a worker is paced (one new connection per
// turn of its event loop once it holds RCLUSTER_BENCH_PACE_ABOVE open), and while
// a worker is paced and none can take one, the dispatcher holds new
// connections and serves the newest first (docs/DESIGN.md §13.3). What a client sees: a connection that
// arrives while older ones wait is answered long before them, and every
// connection is answered in the end.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

// Opens a connection that sends one request for `path` at once; resolves
// with the path the response names (or rejects).
function ask(port, path, finished) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => { data += chunk; });
    socket.on('error', reject);
    socket.on('close', () => {
      const body = data.split('\r\n\r\n')[1];
      if (!/^HTTP\/1\.1 200/.test(data) || body !== path) return reject(new Error(`${path}: got ${JSON.stringify(data)}`));
      finished.push(path);
      resolve(path);
    });
  });
}

test('under overload a fresh connection is served before the ones that waited longer, and none is lost',
  { skip: rclusterOnly('pacing and the newest-first queue are the native dispatcher\'s'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'paced-worker.js', { env: { WORKERS: '1', SPIN_MS: '40', RCLUSTER_BENCH_PACE_ABOVE: '2' } });
    const { port } = await c.waitFor('ready', { timeout: 10000 });

    const finished = [];
    const old = [];
    // More than a window's worth: the worker takes a window at once (it holds
    // none open yet), then it is paced and the dispatcher holds the rest.
    for (let i = 0; i < 20; i++) old.push(ask(port, `/old-${i}`, finished));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const fresh = ask(port, '/fresh', finished);
    await Promise.all([...old, fresh]);

    assert.equal(finished.length, 21, 'every connection was answered');
    const at = finished.indexOf('/fresh');
    t.diagnostic(`answer order: ${finished.join(' ')}`);
    // First-come, it would be answered last, after every older one; newest
    // first, it goes with the next connection the worker is given after it
    // arrived, while the older ones wait.
    const answeredAfter = finished.slice(at + 1).filter((p) => p.startsWith('/old-')).length;
    assert.ok(answeredAfter >= 5,
      `the fresh connection was answered ${at + 1}th of 21, before only ${answeredAfter} older ones`);
  });
