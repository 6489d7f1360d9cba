'use strict';
// Checks of the runner's connect-to-first-byte probe (bench/lib/probe.js).
// Not part of `npm test` (which covers the package); run with
//   node --test bench/test/

const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const { fork } = require('node:child_process');

const { runProbes, probeOnce, PROBE_PATH } = require('../lib/probe');

// An HTTP server in its own process, so that blocking its event loop (it
// then accepts nothing) leaves this process free to time the probe. It
// reports every request path it served over IPC.
const SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => { process.send({ path: req.url }); res.end('ok'); });
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m.block) {
    process.send({ blocking: true }, () => {
      const end = Date.now() + m.block;
      while (Date.now() < end) {}
    });
  }
});
process.on('disconnect', () => process.exit(0));
`;

function startServer(t) {
  const child = fork('-e', [SERVER], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.paths = [];
  child.on('message', (m) => { if (m.path) child.paths.push(m.path); });
  t.after(() => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    child.on('message', (m) => { if (m.port) resolve({ child, port: m.port }); });
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
}

function nextMessage(child, key) {
  return new Promise((resolve) => {
    const on = (m) => { if (m[key]) { child.off('message', on); resolve(m); } };
    child.on('message', on);
  });
}

test('the time a connection waits to be accepted is in firstByteMs, not in connectMs', async (t) => {
  const { child, port } = await startServer(t);
  const blocking = nextMessage(child, 'blocking');
  child.send({ block: 1500 });
  await blocking;
  // The kernel completes the handshake while the server's loop is blocked;
  // the request is only read, and answered, once the loop runs again.
  const r = await probeOnce(port);
  assert.strictEqual(r.ok, true, JSON.stringify(r));
  assert.ok(r.firstByteMs >= 700, `first byte after ${r.firstByteMs} ms, the server was blocked for 1500 ms`);
  assert.ok(r.connectMs < r.firstByteMs - 500, `handshake ${r.connectMs} ms, first byte ${r.firstByteMs} ms`);
});

test('runProbes opens fresh connections for PROBE_PATH, bounded by max', async (t) => {
  const { child, port } = await startServer(t);
  // 1 s start delay, then every 50 ms until 1.2 s: 5 probes.
  const all = await runProbes({ port, seconds: 1.2, intervalMs: 50, max: 100 });
  assert.strictEqual(all.attempted, 5);
  assert.strictEqual(all.ok, 5);
  assert.strictEqual(all.firstByteMs.n, 5);
  assert.ok(all.firstByteMs.p50 <= all.firstByteMs.p99 && all.firstByteMs.p99 <= all.firstByteMs.max);

  const bounded = await runProbes({ port, seconds: 1.2, intervalMs: 50, max: 2 });
  assert.strictEqual(bounded.attempted, 2);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the last IPC messages
  assert.deepStrictEqual(child.paths, Array(7).fill(PROBE_PATH));
});

test('a probe that cannot connect is counted as failed with its errno code', async () => {
  // A port that was free a moment ago: nothing listens on it.
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  const r = await runProbes({ port, seconds: 1, intervalMs: 50, max: 10 });
  assert.strictEqual(r.attempted, 1);
  assert.strictEqual(r.ok, 0);
  assert.deepStrictEqual(r.errors, { ECONNREFUSED: 1 });
  assert.strictEqual(r.firstByteMs, null);
});
