'use strict';
// [rcluster-only] Validation of rcluster's setupPrimary() settings and of
// cluster.shutdown()'s options: Node-style TypeError/RangeError with codes,
// nothing changed by a rejected call, defaults filled in, settings cumulative.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

const skip = rclusterOnly('node:cluster has no restart, shutdown or exitOnUncaughtException settings');

const BAD_SETTINGS = [
  [{ restart: 'yes' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: null }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: [] }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: { minDelay: '100' } }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: { minDelay: -1 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { maxDelay: 1.5 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { minDelay: 500, maxDelay: 100 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { resetAfter: 2 ** 31 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { maxRestarts: -1 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { maxRestarts: true } }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: { window: 0 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ restart: { minUptime: '1s' } }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ restart: { minUptime: -1 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ shutdownSignals: 'SIGTERM' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ shutdownSignals: [15] }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ shutdownSignals: ['SIGNOPE'] }, 'TypeError', 'ERR_UNKNOWN_SIGNAL'],
  [{ shutdownSignals: ['SIGKILL'] }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
  [{ shutdownTimeout: '1000' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ shutdownTimeout: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  [{ exitOnUncaughtException: 'on' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ exitOnUncaughtException: { timeout: '5s' } }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  [{ exitOnUncaughtException: { timeout: -5 } }, 'RangeError', 'ERR_OUT_OF_RANGE'],
];

test('bad settings throw Node-style errors and change nothing', { skip, timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'management.js', { env: { WORKERS: '0' } });
  const before = await c.call('setup', { settings: {} });
  for (const [settings, name, code] of BAD_SETTINGS) {
    const r = await c.call('setup', { settings });
    const what = JSON.stringify(settings);
    assert.equal(r.ok, false, `${what} is rejected`);
    assert.deepEqual([r.name, r.code], [name, code], `${what}: ${r.message}`);
    assert.equal(name === 'TypeError' ? r.isTypeError : r.isRangeError, true, `${what} is a real ${name}`);
    assert.match(r.message, /options\.|signal/i, `${what}: the message names the setting`);
    assert.deepEqual(r.settings, before.settings, `${what} left cluster.settings alone`);
  }
});

test('cluster.shutdown() validates its options', { skip, timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'management.js', { env: { WORKERS: '0' } });
  for (const [options, name, code] of [
    ['soon', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ timeout: '1s' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ timeout: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ timeout: 0.5 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ]) {
    const r = await c.call('tryShutdown', { options });
    assert.deepEqual([r.ok, r.name, r.code], [false, name, code], JSON.stringify(options));
  }
  assert.equal(c.has('shutdown'), false, 'a rejected call starts no shutdown');
});

test('good settings: defaults filled in, cumulative across setupPrimary calls', { skip, timeout: 30000 }, async (t) => {
  const c = startCluster(t, 'management.js', { env: { WORKERS: '0' } });
  const plain = await c.call('setup', { settings: { silent: true } });
  for (const key of ['restart', 'shutdownSignals', 'shutdownTimeout', 'exitOnUncaughtException']) {
    assert.equal(key in plain.settings, false, `no ${key} unless asked for`);
  }
  const on = await c.call('setup', { settings: { restart: true, exitOnUncaughtException: true } });
  assert.deepEqual(on.settings.restart, { minDelay: 100, maxDelay: 15000, resetAfter: 30000, minUptime: 1000, maxRestarts: 10, window: 60000 });
  assert.deepEqual(on.settings.exitOnUncaughtException, { timeout: 5000 });

  const partial = await c.call('setup', { settings: { restart: { maxRestarts: 3 }, shutdownSignals: ['SIGTERM', 'SIGTERM'] } });
  assert.deepEqual(partial.settings.restart, { minDelay: 100, maxDelay: 15000, resetAfter: 30000, minUptime: 1000, maxRestarts: 3, window: 60000 });
  assert.deepEqual(partial.settings.shutdownSignals, ['SIGTERM']);

  const later = await c.call('setup', { settings: { silent: false } });
  assert.deepEqual(later.settings.restart, partial.settings.restart, 'kept by a later setupPrimary()');
  assert.deepEqual(later.settings.exitOnUncaughtException, { timeout: 5000 });
  assert.equal(later.settings.silent, false);

  const off = await c.call('setup', { settings: { restart: false } });
  assert.equal(off.settings.restart, false);
});
