'use strict';
// A worker exits when its primary dies or cuts its IPC channel unexpectedly,
// as in node:cluster: it does not linger, holding its server and connections,
// with nobody to manage it.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startCluster } = require('../helpers/run-cluster');
const { pollUntil } = require('../helpers/poll');

// The {"workerExit":pid,"code":code} lines the fixture's workers wrote.
function workerExits(c) {
  return c.stderr.split('\n').flatMap((line) => {
    try {
      const x = JSON.parse(line);
      return x && x.workerExit !== undefined ? [x] : [];
    } catch {
      return [];
    }
  });
}

// An HTTP/1.1 keep-alive connection that has been answered once and stays open.
function keepAliveConnection(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    socket.once('data', (data) => {
      assert.match(data, /^HTTP\/1\.1 200/);
      const closed = new Promise((done) => socket.once('close', done));
      resolve({ socket, closed });
    });
  });
}

test('the primary is SIGKILLed: every worker exits with code 0 and its open connections close',
  { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'primary-death.js', { env: { WORKERS: '2' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
    const held = await keepAliveConnection(port);
    t.after(() => held.socket.destroy());

    process.kill(c.pid, 'SIGKILL');
    assert.ok(await pollUntil(() => workerExits(c).length === 2, { timeout: 10000 }), 'both workers exit within 10 s');
    assert.deepEqual(
      workerExits(c).map((x) => [x.workerExit, x.code]).sort(),
      workers.map((w) => [w.pid, 0]).sort(),
    );
    await held.closed;
  });

test('the primary cuts a worker\'s channel (worker.process.disconnect()): the worker exits with code 0',
  { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'primary-death.js', { env: { WORKERS: '2' } });
    const { workers: [cut, kept] } = await c.waitFor('ready', { timeout: 10000 });
    await c.call('cut', { worker: cut.id });
    const exit = await c.waitFor({ event: 'exit', worker: cut.id }, { timeout: 10000 });
    assert.deepEqual([exit.code, exit.signal, exit.exitedAfterDisconnect], [0, null, false]);
    // The worker's own line comes on stderr, a pipe of its own that may be
    // read after the primary's stdout reported the exit.
    assert.ok(await pollUntil(() => workerExits(c).length > 0, { timeout: 5000 }), 'the worker reported its exit');
    assert.deepEqual(workerExits(c), [{ workerExit: cut.pid, code: 0 }]);
    assert.equal(c.has({ event: 'exit', worker: kept.id }), false, 'the other worker lives on');
  });
