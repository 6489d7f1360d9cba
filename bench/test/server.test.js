'use strict';
// bench/server.js keeps probe requests apart in its workers' counters, which
// run.js relies on to take them out of the load tool's numbers.
// Run with `node --test bench/test/`.

const test = require('node:test');
const assert = require('node:assert');
const http = require('node:http');

const { startServer, sampleServer, stopServer, sleep } = require('../lib/server');
const { probeOnce } = require('../lib/probe');

for (const impl of ['single', 'rcluster']) {
  test(`${impl}: a probe counts as a connection, a request and a probe; a plain request does not count as a probe`, async (t) => {
    const server = await startServer({ BENCH_IMPL: impl, BENCH_WORKERS: '1' });
    t.after(() => stopServer(server));
    const r = await probeOnce(server.port);
    assert.strictEqual(r.ok, true, JSON.stringify(r));
    await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.port, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    await sleep(200); // workers rewrite their stats file every 50 ms
    const [w] = sampleServer(server).workers;
    assert.deepStrictEqual({ connections: w.connections, requests: w.requests, probes: w.probes },
      { connections: 2, requests: 2, probes: 1 });
  });
}
