'use strict';
// setupPrimary({ routing: { proxyProtocol } }): the primary reads and strips
// a PROXY protocol header (v1 or v2) from each connection, and the worker's
// socket shows the client it names as its remote end. A connection whose
// header is malformed or late, or whose peer is not trusted to send one, is
// closed and counted, never handed to a worker.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { pollUntil } = require('../helpers/poll');
const { V2_SIGNATURE, v2Header, exchange } = require('../helpers/proxy-client');

const SKIP = rclusterOnly('PROXY protocol');
const REQUEST = 'GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
function body(response) {
  return response.split('\r\n\r\n')[1];
}

async function start(t, proxyProtocol, env = {}) {
  const c = startCluster(t, 'routing.js', { env: { PROXY_PROTOCOL: JSON.stringify(proxyProtocol), WORKERS: '2', ...env } });
  const { port } = await c.waitFor('ready', { timeout: 15000 });
  return { c, port };
}

async function rejectedCount(c, expected) {
  let rejected;
  const ok = await pollUntil(async () => {
    rejected = (await c.call('stats')).listeners[0].proxyRejected;
    return rejected === expected;
  }, { timeout: 3000 });
  assert.ok(ok, `proxyRejected is ${rejected}, expected ${expected}`);
}

test('v1 and v2 headers: the worker sees the client they name, and the request after them intact',
  { skip: SKIP, timeout: 60000 },
  async (t) => {
    const { c, port } = await start(t, true);
    const cases = [
      [['PROXY TCP4 203.0.113.9 127.0.0.1 40001 80\r\n' + REQUEST], '203.0.113.9 40001 IPv4'],
      [['PROXY TCP6 2001:db8::7 ::1 40002 80\r\n' + REQUEST], '2001:db8::7 40002 IPv6'],
      [[Buffer.concat([v2Header(false, '198.51.100.4', 40003), Buffer.from(REQUEST)])], '198.51.100.4 40003 IPv4'],
      [[Buffer.concat([v2Header(true, '2001:db8::9', 40004), Buffer.from(REQUEST)])], '2001:db8::9 40004 IPv6'],
      // The proxy's own health check: the connection is shown as it is.
      [['PROXY UNKNOWN\r\n' + REQUEST], '127.0.0.1'],
    ];
    for (const [chunks, expected] of cases) {
      const shown = body(await exchange(port, chunks));
      assert.match(shown, new RegExp(`^[12] ${expected.replace(/\./g, '\\.')}`), `${JSON.stringify(String(chunks[0]).slice(0, 40))}: ${shown}`);
    }
    await rejectedCount(c, 0);
  });

test('a header that arrives in pieces is waited for', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { port } = await start(t, { timeout: 2000 });
  const v1 = 'PROXY TCP4 203.0.113.9 127.0.0.1 40005 80\r\n';
  assert.match(body(await exchange(port, [v1.slice(0, 9), v1.slice(9, 30), v1.slice(30) + REQUEST], { gap: 150 })),
    /^[12] 203\.0\.113\.9 40005 IPv4$/);
  const v2 = Buffer.concat([v2Header(false, '198.51.100.4', 40006), Buffer.from(REQUEST)]);
  assert.match(body(await exchange(port, [v2.subarray(0, 6), v2.subarray(6, 20), v2.subarray(20)], { gap: 150 })),
    /^[12] 198\.51\.100\.4 40006 IPv4$/);
});

test('malformed, late and missing headers: closed without an answer, and counted', { skip: SKIP, timeout: 60000 },
  async (t) => {
    const { c, port } = await start(t, { timeout: 500 });
    assert.equal(await exchange(port, [REQUEST]), '', 'a plain request without a header');
    assert.equal(await exchange(port, ['PROXY TCP4 203.0.113.9 nonsense 1 2\r\n' + REQUEST]), '');
    assert.equal(await exchange(port, [Buffer.concat([V2_SIGNATURE, Buffer.from([0x31, 0x11, 0, 0])])]), '', 'v2 version 3');
    const started = Date.now();
    assert.equal(await exchange(port, ['PROXY TCP4 203.0.113.9']), '', 'a header never finished');
    const waited = Date.now() - started;
    assert.ok(waited >= 400 && waited < 4000, `closed after ${waited} ms, the timeout being 500`);
    await rejectedCount(c, 4);
    // The listener still serves well-formed connections.
    assert.match(body(await exchange(port, ['PROXY TCP4 203.0.113.9 127.0.0.1 40007 80\r\n' + REQUEST])), / 40007 /);
  });

test('trusted: a header is taken only from the listed peers', { skip: SKIP, timeout: 60000 }, async (t) => {
  const header = 'PROXY TCP4 203.0.113.9 127.0.0.1 40008 80\r\n' + REQUEST;
  const untrusted = await start(t, { trusted: ['10.0.0.0/8', '::1'] });
  assert.equal(await exchange(untrusted.port, [header]), '', 'from 127.0.0.1, not in the list');
  await rejectedCount(untrusted.c, 1);
  const trusted = await start(t, { trusted: ['10.0.0.0/8', '127.0.0.0/8'] });
  assert.match(body(await exchange(trusted.port, [header])), / 203\.0\.113\.9 40008 /);
});

test('sticky routing places a proxied connection by the client its header names', { skip: SKIP, timeout: 60000 },
  async (t) => {
    const { port } = await start(t, true, { POLICY: 'sticky', WORKERS: '3' });
    const workersOf = new Map();
    for (let round = 0; round < 3; round++) {
      for (let i = 1; i <= 12; i++) {
        const shown = body(await exchange(port, [`PROXY TCP4 198.51.100.${i} 127.0.0.1 ${40000 + round} 80\r\n` + REQUEST]));
        const worker = shown.split(' ')[0];
        if (!workersOf.has(i)) workersOf.set(i, new Set());
        workersOf.get(i).add(worker);
      }
    }
    for (const [i, workers] of workersOf) assert.equal(workers.size, 1, `client 198.51.100.${i} reached ${[...workers]}`);
    const used = new Set([...workersOf.values()].map((s) => [...s][0]));
    assert.ok(used.size >= 2, `every proxied client on one worker (${[...used]}): placed by the proxy's address`);
  });
