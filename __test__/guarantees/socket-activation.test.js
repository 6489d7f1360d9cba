'use strict';
// systemd socket activation: a primary started with LISTEN_PID (its own pid)
// and LISTEN_FDS adopts the sockets it inherited as fds 3, ...; a worker's
// listen on the address of one gets it instead of binding. systemd keeps its
// copy, so connections queue in it while the whole service restarts. The
// test plays systemd: it binds the socket, passes it as fd 3, and keeps it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle } = require('../helpers/http-client');
const { listenFds, takeListenFds } = require('../../lib/primary/socket_activation');

const SKIP = rclusterOnly('LISTEN_FDS');
// LISTEN_PID must be the primary's pid, known only once it runs: a shell
// exports its own pid and execs node, which keeps it.
const AS_SYSTEMD = ['sh', '-c', 'export LISTEN_PID=$$; exec "$0" "$@"'];

// Bound, not listening and not polled here: only the primary will accept.
function systemdSocket(t) {
  const handle = net._createServerHandle('127.0.0.1', 0, 4);
  assert.equal(typeof handle, 'object', `bind failed: ${handle}`);
  t.after(() => handle.close());
  const out = {};
  handle.getsockname(out);
  return { fd: handle.fd, port: out.port };
}

test('LISTEN_FDS: workers listening on the inherited socket\'s port get it, and it queues across a restart',
  { skip: SKIP, timeout: 60000 },
  async (t) => {
    const socket = systemdSocket(t);
    const start = () => startCluster(t, 'routing.js', {
      env: { PORT: String(socket.port), LISTEN_FDS: '1', LISTEN_FDNAMES: 'web', WORKERS: '2' },
      prefix: AS_SYSTEMD,
      extraFds: [socket.fd],
    });
    const first = start();
    const { port } = await first.waitFor('ready', { timeout: 15000 });
    assert.equal(port, socket.port);
    const bodies = new Set();
    for (let i = 0; i < 6; i++) bodies.add((await get(port)).body);
    assert.deepEqual([...bodies].sort(), ['1', '2']);

    // The whole service goes down; clients keep connecting meanwhile.
    await first.kill();
    const waiting = Array.from({ length: 5 }, () => settle(get(port, { timeout: 20000 })));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = start();
    await second.waitFor('ready', { timeout: 15000 });
    const results = await Promise.all(waiting);
    assert.deepEqual(results.map((r) => (r.ok ? r.value.status : r.error.code)), [200, 200, 200, 200, 200]);
  });

test('without LISTEN_FDS for it (or for another pid) the socket is not adopted: nothing queues once the service is down',
  { skip: SKIP, timeout: 60000 },
  async (t) => {
    for (const env of [{}, { LISTEN_FDS: '1', LISTEN_PID: '1' }]) {
      const socket = systemdSocket(t);
      const c = startCluster(t, 'routing.js', {
        env: { PORT: String(socket.port), WORKERS: '1', ...env },
        extraFds: [socket.fd],
      });
      // The primary binds a socket of its own beside the inherited one
      // (which nobody listens on, so the port is not in use).
      await c.waitFor('ready', { timeout: 15000 });
      assert.equal((await get(socket.port)).status, 200);
      await c.kill();
      const after = await settle(get(socket.port, { timeout: 5000 }));
      assert.equal(after.ok ? after.value.status : after.error.code, 'ECONNREFUSED', JSON.stringify(env));
    }
  });

// Skipped while the dispatcher is configured, before it has anyone to tell;
// the warning goes out through the dispatcher's events once its thread runs.
test('a LISTEN_FDS descriptor that is no socket is skipped, with a process warning in the primary',
  { skip: SKIP, timeout: 30000 },
  async (t) => {
    const file = fs.openSync('/dev/null', 'r');
    t.after(() => fs.closeSync(file));
    const c = startCluster(t, 'routing.js', {
      env: { WORKERS: '1', LISTEN_FDS: '1' },
      prefix: AS_SYSTEMD,
      extraFds: [file],
    });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    assert.equal((await get(port)).status, 200);
    const warning = await c.waitFor({ event: 'warning', code: 'RCLUSTER_LISTEN_FDS_IGNORED' }, { timeout: 10000 });
    assert.match(warning.message, /^LISTEN_FDS: fd 3 is not a bound socket \(.+\); ignored$/);
  });

test('LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are read for this pid only, then taken out of the environment', () => {
  assert.deepEqual(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:admin' }, 42),
    [{ fd: 3, name: 'web' }, { fd: 4, name: 'admin' }]);
  assert.deepEqual(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42), [{ fd: 3 }]);
  for (const env of [{ LISTEN_PID: '41', LISTEN_FDS: '1' }, { LISTEN_FDS: '1' }, { LISTEN_PID: '42' },
    { LISTEN_PID: '42', LISTEN_FDS: 'x' }, { LISTEN_PID: '42x', LISTEN_FDS: '1' }]) {
    assert.deepEqual(listenFds(env, 42), [], JSON.stringify(env));
  }
  const env = { LISTEN_PID: '42', LISTEN_FDS: '1', LISTEN_FDNAMES: 'web', OTHER: 'x' };
  assert.deepEqual(takeListenFds(env, 42), [{ fd: 3, name: 'web' }]);
  assert.deepEqual(env, { OTHER: 'x' });
  const foreign = { LISTEN_PID: '41', LISTEN_FDS: '1' };
  assert.deepEqual(takeListenFds(foreign, 42), []);
  assert.deepEqual(foreign, { LISTEN_PID: '41', LISTEN_FDS: '1' }, 'another process\'s variables are left alone');
});
