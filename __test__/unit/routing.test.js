'use strict';
// The policy names of lib/primary/routing.js and the close reports of
// lib/worker/close_reports.js. No processes, no sockets.
const test = require('node:test');
const assert = require('node:assert/strict');
const routing = require('../../lib/primary/routing');
const { CloseReports, capOf } = require('../../lib/worker/close_reports');

test('NODE_CLUSTER_SCHED_POLICY values map to the policies; anything else is round-robin', () => {
  const cases = [
    ['rr', routing.SCHED_RR], ['none', routing.SCHED_NONE], ['lc', routing.SCHED_LC],
    ['sticky', routing.SCHED_STICKY], ['reuseport', routing.SCHED_REUSEPORT],
    [undefined, routing.SCHED_RR], ['LC', routing.SCHED_RR], ['', routing.SCHED_RR],
  ];
  for (const [value, policy] of cases) assert.equal(routing.policyFromEnvValue(value), policy, String(value));
  assert.deepEqual([routing.SCHED_NONE, routing.SCHED_RR, routing.SCHED_LC, routing.SCHED_STICKY, routing.SCHED_REUSEPORT],
    [1, 2, 3, 4, 5]);
  assert.equal(routing.nativeName(routing.SCHED_REUSEPORT), 'reuseport');
  assert.ok(routing.isShared(routing.SCHED_REUSEPORT), 'a reuseport worker accepts from its own socket');
  assert.equal(routing.nativeName(routing.SCHED_LC), 'lc');
  assert.equal(routing.nativeName(routing.SCHED_STICKY), 'sticky');
  assert.ok(routing.isShared(routing.SCHED_NONE) && !routing.isShared(routing.SCHED_LC));
  assert.ok(!routing.isPolicy(6) && !routing.isPolicy('lc'));
});

test('maxConnections as the cap the channel carries (0: none)', () => {
  const cases = [[undefined, 0], [0, 0], [-1, 0], [NaN, 0], [Infinity, 0], [3, 3], [2.5, 2], [2 ** 32, 0], ['5', 0]];
  for (const [value, cap] of cases) assert.equal(capOf({ maxConnections: value }), cap, String(value));
});

test('closes are reported once per handle, batched per listener per turn, with the cap', async () => {
  const sent = [];
  const client = { channel: { reportClosed: (...args) => sent.push(args) } };
  const reports = new CloseReports(client);
  const server = { maxConnections: 0 };
  const other = { maxConnections: 0 };
  const closed = [];
  const handle = (n) => ({ close(cb) { closed.push(n); return cb; } });
  const a = [handle(1), handle(2), handle(3)];
  reports.track(7, server, a);
  reports.track(8, other, [handle(4)]);
  a[0].close();
  a[0].close(); // a second close is not a second connection
  a[1].close();
  assert.deepEqual(closed, [1, 1, 2], 'the real close still runs');
  assert.deepEqual(sent, [], 'nothing is sent before the turn ends');
  await new Promise(setImmediate);
  assert.deepEqual(sent, [[7, 2, 0]]);
  // A cap set later goes out with the next dispatch even without closes.
  other.maxConnections = 4;
  reports.track(8, other, [handle(5)]);
  await new Promise(setImmediate);
  assert.deepEqual(sent, [[7, 2, 0], [8, 0, 4]]);
  // A listener left is forgotten.
  reports.forget(7);
  a[2].close();
  await new Promise(setImmediate);
  assert.equal(sent.length, 2);
});

test('setupPrimary({ routing }) is validated with Node-style errors and expanded', () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  const { dispatcherOptions } = routing;
  const ok = [
    [{ proxyProtocol: true }, { proxyProtocol: { trusted: null, timeout: 3000 } }],
    [{ proxyProtocol: false }, { proxyProtocol: false }],
    [{}, { proxyProtocol: false }],
    [{ proxyProtocol: { trusted: ['10.0.0.0/8', '::1', 'fd00::/8', '192.0.2.1'], timeout: 250 } },
      { proxyProtocol: { trusted: ['10.0.0.0/8', '::1', 'fd00::/8', '192.0.2.1'], timeout: 250 } }],
  ];
  for (const [input, expected] of ok) {
    assert.deepEqual(normalizeSettings({ routing: input }).routing, expected, JSON.stringify(input));
  }
  const bad = [
    [5, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ proxyprotocol: true }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ proxyProtocol: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ proxyProtocol: { trusted: '10.0.0.0/8' } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ proxyProtocol: { trusted: [10] } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ proxyProtocol: { trusted: ['10.0.0.0/33'] } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ proxyProtocol: { trusted: ['10.0.0/8'] } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ proxyProtocol: { trusted: ['example.com'] } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ proxyProtocol: { timeout: '5' } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ proxyProtocol: { timeout: 0 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ proxyProtocol: { timeout: 1.5 } }, RangeError, 'ERR_OUT_OF_RANGE'],
  ];
  for (const [input, Type, code] of bad) {
    assert.throws(() => normalizeSettings({ routing: input }), (err) => err instanceof Type && err.code === code,
      JSON.stringify(input));
  }
  assert.deepEqual(dispatcherOptions(undefined), {});
  assert.deepEqual(dispatcherOptions({ proxyProtocol: false }), {});
  assert.deepEqual(dispatcherOptions({ proxyProtocol: { trusted: null, timeout: 3000 } }), { proxyProtocol: { timeoutMs: 3000 } });
  assert.deepEqual(dispatcherOptions({ proxyProtocol: { trusted: ['::1'], timeout: 9 } }),
    { proxyProtocol: { trusted: ['::1'], timeoutMs: 9 } });
});

test('setupPrimary({ routing: { sticky } }): one of query and cookie, a token, and a timeout', () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  const norm = (sticky) => normalizeSettings({ routing: { sticky } }).routing.sticky;
  assert.deepEqual(norm({ query: 'sid' }), { query: 'sid', timeout: 1000 });
  assert.deepEqual(norm({ cookie: 'io', timeout: 200 }), { cookie: 'io', timeout: 200 });
  const bad = [
    ['sid', TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{}, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ query: 'sid', cookie: 'io' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ query: 5 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ query: 'a b' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ cookie: '' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ query: 'sid', timeout: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ];
  for (const [input, Type, code] of bad) {
    assert.throws(() => norm(input), (err) => err instanceof Type && err.code === code, JSON.stringify(input));
  }
  assert.deepEqual(routing.dispatcherOptions({ proxyProtocol: false, sticky: { query: 'sid', timeout: 1000 } }),
    { stickyKey: { query: 'sid', timeoutMs: 1000 } });
  assert.deepEqual(routing.dispatcherOptions({ proxyProtocol: false, sticky: { cookie: 'io', timeout: 5 } }),
    { stickyKey: { cookie: 'io', timeoutMs: 5 } });
});

test('setupPrimary({ routing: { deferAccept } }): a boolean, on unless false', () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  const norm = (deferAccept) => normalizeSettings({ routing: { deferAccept } }).routing;
  assert.equal(norm(false).deferAccept, false);
  assert.equal(norm(true).deferAccept, true);
  assert.equal(routing.defersAccept(norm(false)), false);
  assert.equal(routing.defersAccept(norm(true)), true);
  assert.equal(routing.defersAccept(norm(undefined)), true);
  assert.equal(routing.defersAccept(undefined), true);
  for (const bad of ['yes', 1, null]) {
    assert.throws(() => norm(bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE', String(bad));
  }
});

test('setupPrimary({ routing: { busyThreshold } }): milliseconds, fractions allowed, passed to the dispatcher', () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  const norm = (busyThreshold) => normalizeSettings({ routing: { busyThreshold } }).routing;
  assert.equal(norm(2).busyThreshold, 2);
  assert.equal(norm(0.5).busyThreshold, 0.5);
  assert.equal(norm(0).busyThreshold, 0);
  assert.deepEqual(routing.dispatcherOptions(norm(3)), { busyThresholdMs: 3 });
  assert.equal('busyThreshold' in norm(undefined), false);
  assert.equal('busyThresholdMs' in routing.dispatcherOptions(norm(undefined)), false);
  for (const bad of ['1', null, true, 1n]) {
    assert.throws(() => norm(bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE', String(bad));
  }
  for (const bad of [-1, NaN, Infinity, 2 ** 31]) {
    assert.throws(() => norm(bad), (err) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE', String(bad));
  }
});

test('cluster.worker.stick(value) takes a string, and passes it to the channel', () => {
  const { stick } = require('../../lib/worker/sticky_claims');
  const sent = [];
  const client = { channel: { stick: (v) => sent.push(v) } };
  stick(client, 'abc');
  assert.deepEqual(sent, ['abc']);
  for (const bad of [5, undefined, null, {}]) {
    assert.throws(() => stick(client, bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE');
  }
});

test('setupPrimary({ routing: { dispatcherThreads } }): 1 to 64 or \'auto\'; RCLUSTER_DISPATCHER_THREADS otherwise', () => {
  const { normalizeSettings } = require('../../lib/primary/settings');
  const norm = (dispatcherThreads) => normalizeSettings({ routing: { dispatcherThreads } }).routing;
  assert.equal(routing.dispatcherThreads(norm(2), routing.SCHED_RR, {}), 2);
  assert.equal(routing.dispatcherThreads(norm(64), routing.SCHED_RR, {}), 64);
  assert.equal(routing.dispatcherThreads(norm('auto'), routing.SCHED_RR, { RCLUSTER_DISPATCHER_THREADS: '4' }), undefined, 'the option wins');
  assert.equal(routing.dispatcherThreads(norm(undefined), routing.SCHED_RR, {}), undefined, 'the native default');
  assert.equal(routing.dispatcherThreads(undefined, routing.SCHED_RR, { RCLUSTER_DISPATCHER_THREADS: '3' }), 3);
  assert.equal(routing.dispatcherThreads(undefined, routing.SCHED_RR, { RCLUSTER_DISPATCHER_THREADS: 'auto' }), undefined);
  for (const bad of ['2', null, true, {}]) {
    assert.throws(() => norm(bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE', String(bad));
  }
  for (const bad of [0, -1, 1.5, 65, NaN, Infinity]) {
    assert.throws(() => norm(bad), (err) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE', String(bad));
  }
  const warnings = [];
  const emitWarning = process.emitWarning;
  process.emitWarning = (message, options) => warnings.push({ message, code: options.code });
  try {
    for (const bad of ['0', '65', 'two', '1.5', ' 2']) {
      assert.equal(routing.dispatcherThreads(undefined, routing.SCHED_RR, { RCLUSTER_DISPATCHER_THREADS: bad }), undefined, bad);
    }
    // Sticky routing: one thread, said when more were asked.
    assert.equal(routing.dispatcherThreads(norm(4), routing.SCHED_STICKY, {}), 1);
    assert.equal(routing.dispatcherThreads(undefined, routing.SCHED_STICKY, {}), 1);
    const byCookie = normalizeSettings({ routing: { sticky: { cookie: 'sid' }, dispatcherThreads: 2 } }).routing;
    assert.equal(routing.dispatcherThreads(byCookie, routing.SCHED_RR, {}), 1);
  } finally {
    process.emitWarning = emitWarning;
  }
  assert.equal(warnings.length, 7);
  assert.ok(warnings.every((w) => w.code === 'RCLUSTER_DISPATCHER_THREADS_IGNORED'), JSON.stringify(warnings));
});
