'use strict';
// A failed reload's result in words (lib/cli/reload_result.js), as the
// `rcluster` command logs it. No processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { describeReloadFailure } = require('../../lib/cli/reload_result');

test('each reason of a rolled-back reload, with its detail', () => {
  const base = { ok: false, rolledBack: true, replaced: [], old: 1, replacement: 5 };
  assert.equal(describeReloadFailure({ ...base, reason: 'probation', code: 1, signal: null, uptime: 310.4, probation: 3000 }),
    'a new worker died during its probation (worker 5 exited with code 1 after 310 ms of its 3000 ms probation); the old workers serve on');
  assert.equal(describeReloadFailure({ ...base, reason: 'probation', code: null, signal: 'SIGKILL', uptime: 4200, probation: 3000 }),
    'a new worker died during its probation (worker 5 was killed by SIGKILL 4200 ms after it was ready, ' +
    "before the last new worker's 3000 ms probation ended); the old workers serve on");
  assert.equal(describeReloadFailure({ ...base, reason: 'exited', code: 1, signal: null }),
    'a new worker exited before it was ready (worker 5 exited with code 1); the old workers serve on');
  assert.equal(describeReloadFailure({ ...base, reason: 'readyTimeout', timeout: 30000 }),
    'a new worker was not ready in time (worker 5 did not get ready within 30000 ms); the old workers serve on');
  assert.equal(describeReloadFailure({ ok: false, rolledBack: true, replaced: [], old: 1, reason: 'forkFailed', error: { message: 'spawn EAGAIN' } }),
    'a new worker could not be started (spawn EAGAIN); the old workers serve on');
  assert.equal(describeReloadFailure({ ok: false, rolledBack: true, replaced: [], reason: 'shutdown' }),
    'the app is shutting down; the old workers serve on');
});

test('probation 0: the workers replaced before the failure are said', () => {
  assert.equal(describeReloadFailure({ ok: false, rolledBack: false, replaced: [{ old: 1, replacement: 3, killed: false }],
    reason: 'exited', old: 2, replacement: 4, code: 3, signal: null }),
  'a new worker exited before it was ready (worker 4 exited with code 3); 1 worker was replaced before it, the others serve on');
});
