'use strict';
// Beyond a plain TCP port: a unix socket path shared by the workers, an IPv6
// loopback address, a bind error reaching the worker's server in Node's exact
// shape, and `exclusive: true` (each worker binds a port of its own).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startCluster } = require('../helpers/run-cluster');

function getOverUnixSocket(socketPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

test('workers share unix socket, IPv6 and exclusive listeners; bind errors reach the server', { timeout: 30000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-listen-'));
  const socketPath = path.join(dir, 'app.sock');
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const busyPort = blocker.address().port;
  t.after(() => {
    blocker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const c = startCluster(t, 'listen-targets.js', {
    env: { SOCKET_PATH: socketPath, BUSY_PORT: String(busyPort) },
  });
  const { reports } = await c.waitFor('reports', { timeout: 15000 });
  const by = (check) => reports.filter((r) => r.check === check);

  await t.test('a unix socket path is shared and served by every worker', async () => {
    for (const r of by('unix')) {
      assert.equal(r.value.address, socketPath);
      assert.equal(r.value.listening, true);
    }
    const served = new Set();
    for (let i = 0; i < 20; i++) served.add(await getOverUnixSocket(socketPath));
    assert.deepEqual([...served].sort(), ['1', '2']);
  });

  await t.test('an IPv6 loopback listener reports its address, and every worker the same port', () => {
    const addrs = by('ipv6').map((r) => r.value);
    assert.equal(addrs.length, 2);
    for (const a of addrs) {
      assert.equal(a.address, '::1');
      assert.equal(a.family, 'IPv6');
      assert.ok(a.port > 0);
    }
    assert.equal(addrs[0].port, addrs[1].port);
  });

  await t.test('EADDRINUSE reaches the worker\'s server as Node reports it', () => {
    for (const r of by('busy')) {
      assert.deepEqual(r.value, {
        code: 'EADDRINUSE',
        syscall: 'bind',
        address: '127.0.0.1',
        port: busyPort,
        message: `bind EADDRINUSE 127.0.0.1:${busyPort}`,
      });
    }
  });

  await t.test('exclusive: true gives each worker its own port', () => {
    const ports = by('exclusive').map((r) => r.value.port);
    assert.equal(ports.length, 2);
    assert.notEqual(ports[0], ports[1]);
  });
});
