'use strict';
// The primary's WorkerRecord (lib/primary/worker_record.js): which fate may follow
// which, and that a fate only moves forward. No processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { WorkerRecord, Fate, canMove } = require('../../lib/primary/worker_record');

let nextId = 1;
function record(fate = Fate.Running) {
  const r = new WorkerRecord({ id: nextId++ }, { FOO: 'bar' }, 1234, { trial: fate === Fate.Trial });
  // Reach `fate` by its own transition, as the primary would.
  const path = {
    [Fate.Running]: [],
    [Fate.Failing]: [(x) => x.fail(new Error('boom'))],
    [Fate.Disconnecting]: [(x) => x.disconnect()],
    [Fate.Killed]: [(x) => x.kill()],
    [Fate.Failed]: [(x) => x.failed('channelFailed')],
    [Fate.Replaced]: [(x) => x.replace()],
    [Fate.CrashLooped]: [(x) => x.crashLoop()],
    [Fate.Trial]: [],
    [Fate.Retiring]: [(x) => x.retire()],
    [Fate.Exited]: [(x) => x.exit(0, null)],
  }[fate];
  for (const step of path) step(r);
  assert.equal(r.fate, fate);
  return r;
}

const ALL = Object.values(Fate);
const ORDER = [Fate.Trial, Fate.Running, Fate.Failing, Fate.Disconnecting, Fate.Killed, Fate.Failed, Fate.Replaced, Fate.CrashLooped, Fate.Retiring, Fate.Exited];

test('a new record is running, with its fork env, time and a fresh slot', () => {
  const r = new WorkerRecord({ id: 7 }, { A: '1' }, 5000);
  assert.deepEqual(
    { id: r.id, env: r.env, forkedAt: r.forkedAt, fate: r.fate, slot: r.slot, uncaughtError: r.uncaughtError },
    { id: 7, env: { A: '1' }, forkedAt: 5000, fate: Fate.Running, slot: { consecutive: 0 }, uncaughtError: undefined });
  assert.equal(r.replaceable, true);
  assert.equal(r.exited, false);
});

test('the legal moves, and only those', () => {
  const legal = new Set([
    'running>failing', 'running>disconnecting', 'running>killed', 'running>failed', 'running>replaced', 'running>crashLooped', 'running>exited',
    'running>retiring', 'retiring>exited',
    'trial>running', 'trial>retiring', 'trial>disconnecting', 'trial>killed', 'trial>exited',
    'failing>disconnecting', 'failing>killed', 'failing>failed', 'failing>replaced', 'failing>crashLooped', 'failing>exited',
    'failed>replaced', 'failed>crashLooped', 'failed>exited',
    'disconnecting>exited', 'killed>exited', 'replaced>exited', 'crashLooped>exited',
  ]);
  for (const from of ALL) {
    for (const to of ALL) {
      assert.equal(canMove(from, to), legal.has(`${from}>${to}`), `${from} -> ${to}`);
    }
  }
});

test('a fate only moves forward', () => {
  for (const from of ALL) {
    for (const to of ALL) {
      if (canMove(from, to)) assert.ok(ORDER.indexOf(to) > ORDER.indexOf(from), `${from} -> ${to} goes back`);
    }
  }
});

test('only running, failing and failed workers are replaceable', () => {
  for (const fate of ALL) {
    assert.equal(record(fate).replaceable, [Fate.Running, Fate.Failing, Fate.Failed].includes(fate), fate);
  }
});

test("a worker the primary kills for failing keeps the reason; one whose end was decided stays as it was", () => {
  for (const fate of [Fate.Running, Fate.Failing]) {
    const r = record(fate);
    assert.equal(r.failed('channelFailed'), true);
    assert.equal(r.fate, Fate.Failed);
    assert.equal(r.failure, 'channelFailed');
    assert.equal(r.kill(), false, "the app's kill() comes too late");
  }
  for (const fate of [Fate.Disconnecting, Fate.Killed, Fate.Failed, Fate.Replaced, Fate.CrashLooped, Fate.Retiring, Fate.Exited]) {
    const r = record(fate);
    const before = r.failure;
    assert.equal(r.failed('again'), false, `failed() of a ${fate} worker`);
    assert.equal(r.fate, fate);
    assert.equal(r.failure, before);
  }
});

test("the app's calls (disconnect, kill) too late are no-ops that say so", () => {
  for (const fate of [Fate.Disconnecting, Fate.Killed, Fate.Replaced, Fate.CrashLooped, Fate.Exited]) {
    const r = record(fate);
    assert.equal(r.disconnect(), false, `disconnect() of a ${fate} worker`);
    assert.equal(r.kill(), false, `kill() of a ${fate} worker`);
    assert.equal(r.fate, fate, `a ${fate} worker stays ${fate}`);
  }
  const failing = record(Fate.Failing);
  assert.equal(failing.kill(), true);
  assert.equal(failing.fate, Fate.Killed);
});

test('an uncaught exception is recorded whatever the fate, but only a running worker becomes failing', () => {
  const err = { name: 'Error', message: 'late' };
  const r = record(Fate.Disconnecting);
  assert.equal(r.fail(err), false);
  assert.equal(r.fate, Fate.Disconnecting, 'a worker leaving on purpose stays unreplaceable');
  assert.equal(r.uncaughtError, err);

  const running = record();
  assert.equal(running.fail(err), true);
  assert.equal(running.fate, Fate.Failing);
  assert.equal(running.uncaughtError, err);
});

test("the restart policy's moves out of order are bugs, and throw", () => {
  for (const fate of [Fate.Disconnecting, Fate.Killed, Fate.Replaced, Fate.CrashLooped, Fate.Exited]) {
    assert.throws(() => record(fate).replace(), { code: 'ERR_ASSERTION' }, `replace() of a ${fate} worker`);
    assert.throws(() => record(fate).crashLoop(), { code: 'ERR_ASSERTION' }, `crashLoop() of a ${fate} worker`);
  }
});

test('exit() returns the fate the worker had, keeps code and signal, and happens once', () => {
  for (const fate of ORDER.slice(0, -1)) {
    const r = record(fate);
    assert.equal(r.exit(1, 'SIGTERM'), fate);
    assert.deepEqual([r.fate, r.exited, r.exitCode, r.signalCode], [Fate.Exited, true, 1, 'SIGTERM']);
    assert.throws(() => r.exit(0, null), { code: 'ERR_ASSERTION' });
  }
});

test('a trial replacement becomes running once ready; a retiring worker only exits', () => {
  const t = record(Fate.Trial);
  assert.equal(t.replaceable, false, 'a trial worker that dies aborts its rollover instead');
  t.promote();
  assert.equal(t.fate, Fate.Running);
  assert.throws(() => t.promote(), /no move from running to running/);
  const r = record(Fate.Running);
  assert.equal(r.retire(), true);
  assert.equal(r.disconnect(), false, 'its disconnect() changes nothing');
  assert.equal(r.kill(), false);
  assert.equal(r.fate, Fate.Retiring);
  for (const fate of [Fate.Failing, Fate.Disconnecting, Fate.Killed]) {
    assert.equal(record(fate).retire(), false, `retire() of a ${fate} worker`);
  }
  // A reload rolled back retires the replacements it started.
  const rolledBack = record(Fate.Trial);
  assert.equal(rolledBack.retire(), true);
  assert.equal(rolledBack.fate, Fate.Retiring);
  assert.equal(rolledBack.replaceable, false, 'never replaced');
});

test('a replacement on probation stands by: its listens are held until it is admitted', () => {
  const plain = new WorkerRecord({ id: nextId++ }, {}, 0, { trial: true });
  assert.equal(plain.standingBy, false);
  assert.deepEqual(plain.admit(), [], 'nothing held: nothing to repeat');
  const held = new WorkerRecord({ id: nextId++ }, {}, 0, { trial: true, standby: true });
  assert.equal(held.standingBy, true);
  held.holdListen({ key: 'a' });
  held.holdListen({ key: 'b' });
  assert.deepEqual(held.admit(), [{ key: 'a' }, { key: 'b' }]);
  assert.equal(held.standingBy, false);
  assert.deepEqual(held.admit(), [], 'admitted once');
});
