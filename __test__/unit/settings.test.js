'use strict';
// Validation of rcluster's setupPrimary() settings and cluster.shutdown()'s
// options (lib/primary/settings.js): every key, the error class, `code` and message.
// No processes; ../management/management-settings.test.js checks the same
// through a real cluster.
const test = require('node:test');
const assert = require('node:assert/strict');
const { inspect } = require('node:util');
const {
  normalizeSettings, normalizeShutdownOptions,
  RESTART_DEFAULTS, EXIT_ON_UNCAUGHT_DEFAULTS, SHUTDOWN_TIMEOUT_DEFAULT,
} = require('../../lib/primary/settings');

const MAX = 2 ** 31 - 1;

// [options, error class, code, message]
const BAD = [
  [{ restart: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart" property must be of type boolean or an object. Received type string (\'yes\')'],
  [{ restart: null }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart" property must be of type boolean or an object. Received null'],
  [{ restart: [] }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart" property must be of type boolean or an object. Received an instance of Array'],
  [{ restart: { minDelay: '100' } }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart.minDelay" property must be of type number. Received type string (\'100\')'],
  [{ restart: { minDelay: -1 } }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.restart.minDelay" is out of range. It must be >= 0 && <= ${MAX}. Received -1`],
  [{ restart: { maxDelay: 1.5 } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxDelay" is out of range. It must be an integer. Received 1.5'],
  [{ restart: { maxDelay: NaN } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxDelay" is out of range. It must be an integer. Received NaN'],
  [{ restart: { resetAfter: 2 ** 31 } }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.restart.resetAfter" is out of range. It must be >= 0 && <= ${MAX}. Received 2147483648`],
  [{ restart: { minUptime: '1s' } }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart.minUptime" property must be of type number. Received type string (\'1s\')'],
  [{ restart: { minUptime: -1 } }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.restart.minUptime" is out of range. It must be >= 0 && <= ${MAX}. Received -1`],
  [{ restart: { minUptime: 0.5 } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.minUptime" is out of range. It must be an integer. Received 0.5'],
  [{ restart: { window: 0 } }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.restart.window" is out of range. It must be >= 1 && <= ${MAX}. Received 0`],
  [{ restart: { minDelay: 500, maxDelay: 100 } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxDelay" is out of range. It must be >= minDelay (500). Received 100'],
  [{ restart: { maxDelay: 50 } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxDelay" is out of range. It must be >= minDelay (100). Received 50'],
  [{ restart: { maxRestarts: true } }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.restart.maxRestarts" property must be of type number. Received type boolean (true)'],
  [{ restart: { maxRestarts: -1 } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxRestarts" is out of range. It must be an integer >= 0. Received -1'],
  [{ restart: { maxRestarts: Infinity } }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.restart.maxRestarts" is out of range. It must be an integer >= 0. Received Infinity'],
  [{ exitOnUncaughtException: 'on' }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.exitOnUncaughtException" property must be of type boolean or an object. Received type string (\'on\')'],
  [{ exitOnUncaughtException: { timeout: '5s' } }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.exitOnUncaughtException.timeout" property must be of type number. Received type string (\'5s\')'],
  [{ exitOnUncaughtException: { timeout: -5 } }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.exitOnUncaughtException.timeout" is out of range. It must be >= 0 && <= ${MAX}. Received -5`],
  [{ shutdownSignals: 'SIGTERM' }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.shutdownSignals" property must be an instance of Array. Received type string (\'SIGTERM\')'],
  [{ shutdownSignals: ['SIGTERM', 15] }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.shutdownSignals[1]" property must be of type string. Received type number (15)'],
  [{ shutdownSignals: ['SIGNOPE'] }, TypeError, 'ERR_UNKNOWN_SIGNAL', 'Unknown signal: SIGNOPE'],
  [{ shutdownSignals: ['SIGKILL'] }, TypeError, 'ERR_INVALID_ARG_VALUE',
    'The property \'options.shutdownSignals[0]\' cannot be handled by a process. Received \'SIGKILL\''],
  [{ shutdownSignals: ['SIGINT', 'SIGSTOP'] }, TypeError, 'ERR_INVALID_ARG_VALUE',
    'The property \'options.shutdownSignals[1]\' cannot be handled by a process. Received \'SIGSTOP\''],
  [{ shutdownTimeout: '1000' }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.shutdownTimeout" property must be of type number. Received type string (\'1000\')'],
  [{ shutdownTimeout: -1 }, RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "options.shutdownTimeout" is out of range. It must be >= 0 && <= ${MAX}. Received -1`],
  [{ queueTimeout: '5' }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "options.queueTimeout" property must be of type number. Received type string (\'5\')'],
  [{ queueTimeout: -1 }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.queueTimeout" is out of range. It must be >= 0. Received -1'],
  [{ queueTimeout: NaN }, RangeError, 'ERR_OUT_OF_RANGE',
    'The value of "options.queueTimeout" is out of range. It must be >= 0. Received NaN'],
];

test('every bad value of every key: the error class, code and message', () => {
  for (const [options, Class, code, message] of BAD) {
    const what = inspect(options);
    let caught;
    try {
      normalizeSettings(options);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof Class, `${what} throws a ${Class.name}`);
    assert.equal(caught.code, code, what);
    assert.equal(caught.message, message, what);
    assert.equal(caught.name, Class.name, `${what}: name as Node's`);
    assert.equal(String(caught), `${Class.name} [${code}]: ${message}`, `${what}: printed as Node's`);
    assert.ok(caught.stack.startsWith(`${Class.name} [${code}]: ${message}\n`), `${what}: the stack names the code`);
  }
});

test("the stack starts at the caller given (setupPrimary), not inside rcluster's validation", () => {
  function setupPrimary(options) {
    return normalizeSettings(options, setupPrimary);
  }
  function app() {
    setupPrimary({ restart: 'yes' });
  }
  let err;
  try {
    app();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof TypeError);
  const frames = err.stack.split('\n').slice(1);
  assert.match(frames[0], /\bat app\b/);
  assert.ok(!frames.some((f) => /normalizeRestart|invalidArgType|setupPrimary/.test(f)), err.stack);
});

test('booleans expand to the defaults, objects fill in what they leave out', () => {
  assert.deepEqual(normalizeSettings({ restart: true }).restart, RESTART_DEFAULTS);
  assert.deepEqual(RESTART_DEFAULTS, { minDelay: 100, maxDelay: 15000, resetAfter: 30000, minUptime: 1000, maxRestarts: 10, window: 60000 });
  assert.equal(normalizeSettings({ restart: false }).restart, false);
  assert.equal(normalizeSettings({ restart: undefined }).restart, false);
  assert.deepEqual(normalizeSettings({ restart: { minDelay: 0, maxRestarts: 0 } }).restart,
    { ...RESTART_DEFAULTS, minDelay: 0, maxRestarts: 0 });
  assert.deepEqual(normalizeSettings({ restart: { minDelay: MAX, maxDelay: MAX, resetAfter: MAX, window: MAX } }).restart,
    { ...RESTART_DEFAULTS, minDelay: MAX, maxDelay: MAX, resetAfter: MAX, window: MAX });
  assert.deepEqual(normalizeSettings({ exitOnUncaughtException: true }).exitOnUncaughtException, EXIT_ON_UNCAUGHT_DEFAULTS);
  assert.deepEqual(EXIT_ON_UNCAUGHT_DEFAULTS, { timeout: 5000 });
  assert.deepEqual(normalizeSettings({ exitOnUncaughtException: { timeout: 0 } }).exitOnUncaughtException, { timeout: 0 });
  assert.equal(normalizeSettings({ exitOnUncaughtException: false }).exitOnUncaughtException, false);
  assert.deepEqual(normalizeSettings({ shutdownSignals: ['SIGTERM', 'SIGINT', 'SIGTERM'] }).shutdownSignals, ['SIGTERM', 'SIGINT']);
  assert.deepEqual(normalizeSettings({ shutdownSignals: undefined }).shutdownSignals, []);
  assert.equal(normalizeSettings({ queueTimeout: Infinity }).queueTimeout, Infinity);
  assert.equal(normalizeSettings({ queueTimeout: 0 }).queueTimeout, 0);
  assert.equal(normalizeSettings({ shutdownTimeout: 0 }).shutdownTimeout, 0);
});

test("only the keys given are touched; node:cluster's own keys pass through; the input is not changed", () => {
  const exec = () => {};
  const options = { exec, args: ['a'], silent: true, restart: true };
  const out = normalizeSettings(options);
  assert.deepEqual(Object.keys(out), ['exec', 'args', 'silent', 'restart']);
  assert.equal(out.exec, exec);
  assert.equal(options.restart, true, 'the caller\'s object is left alone');
  assert.deepEqual(Object.keys(normalizeSettings({ silent: false })), ['silent']);
  assert.deepEqual(Object.keys(normalizeSettings({ queueTimeout: undefined, shutdownTimeout: undefined })),
    ['queueTimeout', 'shutdownTimeout']);
  for (const nothing of [undefined, null, 'x', 5]) assert.equal(normalizeSettings(nothing), nothing);
});

test("cluster.shutdown()'s options: the timeout, its default, and Node-style errors", () => {
  assert.deepEqual(normalizeShutdownOptions(undefined, {}), { timeout: SHUTDOWN_TIMEOUT_DEFAULT });
  assert.equal(SHUTDOWN_TIMEOUT_DEFAULT, 30000);
  assert.deepEqual(normalizeShutdownOptions(undefined, { shutdownTimeout: 250 }), { timeout: 250 });
  assert.deepEqual(normalizeShutdownOptions({}, { shutdownTimeout: 250 }), { timeout: 250 });
  assert.deepEqual(normalizeShutdownOptions({ timeout: 0 }, { shutdownTimeout: 250 }), { timeout: 0 });
  for (const [options, Class, code, message] of [
    ['soon', TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options" argument must be of type object. Received type string (\'soon\')'],
    [null, TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options" argument must be of type object. Received null'],
    [[], TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options" argument must be of type object. Received an instance of Array'],
    [{ timeout: '1s' }, TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options.timeout" property must be of type number. Received type string (\'1s\')'],
    [{ timeout: -1 }, RangeError, 'ERR_OUT_OF_RANGE', `The value of "options.timeout" is out of range. It must be >= 0 && <= ${MAX}. Received -1`],
    [{ timeout: 0.5 }, RangeError, 'ERR_OUT_OF_RANGE', 'The value of "options.timeout" is out of range. It must be an integer. Received 0.5'],
  ]) {
    assert.throws(() => normalizeShutdownOptions(options, {}), (err) => {
      assert.ok(err instanceof Class);
      assert.deepEqual([err.code, err.message], [code, message]);
      return true;
    });
  }
});

test("execArgv, node:cluster's own setting, must be an array of strings", () => {
  for (const [execArgv, message] of [
    ['x', `The "options.execArgv" property must be an instance of Array. Received type string ('x')`],
    [['--a', 1], 'The "options.execArgv[1]" property must be of type string. Received type number (1)'],
  ]) {
    assert.throws(() => normalizeSettings({ execArgv }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message });
  }
  assert.deepEqual(normalizeSettings({ execArgv: ['--x'] }), { execArgv: ['--x'] });
  assert.deepEqual(normalizeSettings({ execArgv: undefined }), { execArgv: undefined });
});
