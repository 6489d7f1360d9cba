'use strict';
// The zero-downtime operations settings (lib/operations/settings.js, through
// setupPrimary's normalizeSettings) and recycling's jitter. No processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { normalizeSettings } = require('../../lib/primary/settings');
const { normalizeReloadOptions, parseMemory } = require('../../lib/operations/settings');
const { jittered } = require('../../lib/operations/recycle');

test('operations settings are validated and expanded; other keys untouched', () => {
  assert.deepEqual(normalizeSettings({ exec: 'x.js' }), { exec: 'x.js' }, 'nothing added when unused');
  assert.deepEqual(
    normalizeSettings({ readyTimeout: 100, drainTimeout: 0, waitReady: true, reloadSignal: 'SIGHUP' }),
    { readyTimeout: 100, drainTimeout: 0, waitReady: true, reloadSignal: 'SIGHUP' });
  assert.deepEqual(normalizeSettings({ reloadSignal: false }), { reloadSignal: false });
  assert.deepEqual(
    normalizeSettings({ recycle: { maxMemory: '300M', maxRequests: 1000, maxAge: 3600000, jitter: 0.1, cron: '0 3 * * *' } }).recycle,
    { maxMemory: { soft: 300 * 1024 ** 2, hard: 450 * 1024 ** 2 }, maxRequests: 1000, maxAge: 3600000, jitter: 0.1, cron: '0 3 * * *' });
  assert.equal(normalizeSettings({ recycle: false }).recycle, false);
});

test('maxMemory: a size is the soft limit (hard 1.5 times it), or { soft, hard }; the result is a valid input', () => {
  const maxMemory = (value) => normalizeSettings({ recycle: { maxMemory: value } }).recycle.maxMemory;
  assert.deepEqual(maxMemory('100M'), { soft: 100 * 1024 ** 2, hard: 150 * 1024 ** 2 });
  assert.deepEqual(maxMemory(1001), { soft: 1001, hard: 1501 });
  assert.deepEqual(maxMemory({ soft: '100M' }), { soft: 100 * 1024 ** 2, hard: 150 * 1024 ** 2 });
  assert.deepEqual(maxMemory({ soft: '100M', hard: '1G' }), { soft: 100 * 1024 ** 2, hard: 1024 ** 3 });
  assert.deepEqual(maxMemory({ soft: 5000, hard: 5000 }), { soft: 5000, hard: 5000 });
  assert.deepEqual(maxMemory(maxMemory({ soft: '1M', hard: '3M' })), { soft: 1024 ** 2, hard: 3 * 1024 ** 2 });
  const cases = [
    [{ soft: '200M', hard: '100M' }, RangeError, 'ERR_OUT_OF_RANGE', /options\.recycle\.maxMemory\.hard.*>= options\.recycle\.maxMemory\.soft/],
    [{ hard: '1G' }, TypeError, 'ERR_INVALID_ARG_TYPE', /options\.recycle\.maxMemory\.soft/],
    [{ soft: '1M', hard: '1Q' }, TypeError, 'ERR_INVALID_ARG_VALUE', /options\.recycle\.maxMemory\.hard/],
    [{ soft: 0 }, RangeError, 'ERR_OUT_OF_RANGE', /options\.recycle\.maxMemory\.soft/],
    [[100], TypeError, 'ERR_INVALID_ARG_TYPE', /options\.recycle\.maxMemory"/],
    [null, TypeError, 'ERR_INVALID_ARG_TYPE', /options\.recycle\.maxMemory"/],
  ];
  for (const [value, Type, code, message] of cases) {
    assert.throws(() => maxMemory(value), (err) => err instanceof Type && err.code === code && message.test(err.message), JSON.stringify(value));
  }
});

test("maxMemory takes bytes or PM2's sizes", () => {
  assert.equal(parseMemory(1000, 'm'), 1000);
  assert.equal(parseMemory('512K', 'm'), 512 * 1024);
  assert.equal(parseMemory('1.5G', 'm'), 1.5 * 1024 ** 3);
  assert.equal(parseMemory('200mb', 'm'), 200 * 1024 ** 2);
  assert.equal(parseMemory('4096', 'm'), 4096);
});

test('bad operations settings throw Node-style errors, and change nothing', () => {
  const cases = [
    [{ readyTimeout: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ drainTimeout: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ drainTimeout: '5' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ waitReady: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ reloadSignal: 'SIGNOPE' }, TypeError, 'ERR_UNKNOWN_SIGNAL'],
    [{ reloadSignal: 'SIGKILL' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ reloadSignal: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ recycle: 5 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ recycle: { maxMemory: '12Q' } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ recycle: { maxMemory: -1 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { maxMemory: true } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ recycle: { maxRequests: 1.5 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { maxRequests: 0 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { maxAge: 0 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { jitter: '0.1' } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ recycle: { jitter: 1.5 } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { jitter: NaN } }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ recycle: { cron: '0 3 * *' } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ recycle: { cron: '61 * * * *' } }, TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ recycle: { cron: 5 } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [settings, Type, code] of cases) {
    assert.throws(() => normalizeSettings(settings), (err) => err instanceof Type && err.code === code, JSON.stringify(settings));
  }
});

test('cluster.reload() options', () => {
  assert.deepEqual(normalizeReloadOptions(undefined, 3000), { concurrency: 1, probation: 3000 });
  assert.deepEqual(normalizeReloadOptions({ concurrency: 3 }, 3000), { concurrency: 3, probation: 3000 });
  assert.deepEqual(normalizeReloadOptions({ probation: 0 }, 3000), { concurrency: 1, probation: 0 });
  assert.deepEqual(normalizeReloadOptions({ concurrency: 2, probation: 500 }, 0), { concurrency: 2, probation: 500 });
  assert.throws(() => normalizeReloadOptions({ concurrency: 0 }, 3000), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeReloadOptions(null, 3000), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => normalizeReloadOptions({ concurrency: '2' }, 3000), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => normalizeReloadOptions({ probation: -1 }, 3000), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeReloadOptions({ probation: 1.5 }, 3000), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeReloadOptions({ probation: '3s' }, 3000), {
    name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE',
    message: 'The "options.probation" property must be of type number. Received type string (\'3s\')',
  });
});

test('setupPrimary({ reload: { probation } })', () => {
  assert.deepEqual(normalizeSettings({ reload: {} }).reload, { probation: 3000 });
  assert.deepEqual(normalizeSettings({ reload: { probation: 0 } }).reload, { probation: 0 });
  assert.equal(normalizeSettings({ reload: undefined }).reload, undefined);
  assert.throws(() => normalizeSettings({ reload: true }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE',
    message: 'The "options.reload" property must be of type object. Received type boolean (true)' });
  assert.throws(() => normalizeSettings({ reload: { probation: -5 } }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => normalizeSettings({ reload: { probation: '1s' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
});

test('jitter spreads a limit over [limit, limit * (1 + jitter)]', () => {
  assert.equal(jittered(1000, 0, () => 0.9), 1000);
  assert.equal(jittered(1000, 0.5, () => 0), 1000);
  assert.equal(jittered(1000, 0.5, () => 0.999999), 1500);
  assert.equal(jittered(1000, 0.2, () => 0.5), 1100);
});
