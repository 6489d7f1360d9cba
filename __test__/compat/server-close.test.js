'use strict';
// server.close(cb) in a worker: the callback runs, server.listening turns
// false, the remaining workers keep serving the port with no failed request
// across the close, the closed worker gets no new connection, and once every
// worker has closed its server the port is free again.
const test = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { EventEmitter } = require('node:events');
const { startCluster } = require('../helpers/run-cluster');
const { get, settle, tryListen } = require('../helpers/http-client');

test('server.close() in workers', { timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'server-close.js', { env: { WORKERS: '3' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
  const ids = workers.map((w) => w.id);
  const [first, ...rest] = ids;

  // A stream of sequential fresh-connection requests running across the close.
  const results = [];
  let stop = false;
  let closedAt = Infinity;
  const progress = new EventEmitter();
  const stream = (async () => {
    for (let i = 0; !stop && i < 5000; i++) {
      const startedAt = performance.now();
      const r = await settle(get(port, { path: `/${i}`, timeout: 3000 }));
      results.push({ ...r, startedAt });
      progress.emit('result');
    }
  })();
  const countAfterClose = () => results.filter((r) => r.startedAt > closedAt).length;
  // Resolves once pred() holds, re-checked after each finished request.
  const waitUntil = (pred, ms, what) => new Promise((resolve, reject) => {
    const check = () => {
      if (!pred()) return;
      progress.off('result', check);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      progress.off('result', check);
      reject(new Error(`timed out waiting for ${what} (${results.length} done)`));
    }, ms);
    progress.on('result', check);
    check();
  });

  await waitUntil(() => results.length >= 30, 10000, '30 requests before the close');
  const reply = await c.call('close', { worker: first }, { timeout: 10000 });
  closedAt = performance.now();
  await waitUntil(() => countAfterClose() >= 60, 15000, '60 requests after the close');
  stop = true;
  await stream;

  await t.test('the close callback runs without error and server.listening becomes false', () => {
    assert.equal(reply.cbRan, true);
    assert.equal(reply.cbError, null);
    assert.equal(reply.listeningBefore, true);
    assert.equal(reply.listeningAfterCall, false, 'listening is false right after close()');
    assert.equal(reply.listeningInCb, false);
  });

  await t.test('no request failed across the close', () => {
    const failed = results.filter((r) => !r.ok || r.value.status !== 200);
    assert.equal(failed.length, 0,
      `failed: ${failed.slice(0, 3).map((r) => (r.ok ? r.value.status : r.error.message))}`);
  });

  await t.test('after the close callback, the closed worker gets no new request; the others serve', () => {
    const after = results.filter((r) => r.ok && r.startedAt > closedAt).map((r) => Number(r.value.body));
    assert.ok(after.length >= 60);
    assert.ok(!after.includes(first), `worker ${first} served a request after its server closed`);
    for (const id of rest) assert.ok(after.includes(id), `worker ${id} keeps serving`);
  });

  await t.test('when every worker has closed, the port is free', async () => {
    const replies = await Promise.all(rest.map((id) => c.call('close', { worker: id }, { timeout: 10000 })));
    for (const r of replies) assert.equal(r.cbRan, true);
    // There is no event for "the primary released the socket": poll, bounded.
    const deadline = Date.now() + 3000;
    let res = await tryListen(port);
    while (!res.ok && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      res = await tryListen(port);
    }
    assert.ok(res.ok, `net.createServer().listen(${port}) succeeds: ${res.error}`);
  });
});
