'use strict';
// What the `rcluster` command's primary answers a worker dying of an uncaught
// exception (lib/cli/uncaught_reports.js): print it in full the first time,
// one line with the count after; bounded memory; a malformed report is
// printed in full by the worker (null). No processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { UncaughtReports, LIMIT } = require('../../lib/cli/uncaught_reports');

const FP = (n) => n.toString(16).padStart(32, '0');
const report = (n, extra = {}) => ({ fingerprint: FP(n), name: 'TypeError', message: "Cannot read properties of undefined (reading 'x')", at: '/app/server.js:12:7', ...extra });
const at = (hh, mm, ss) => new Date(2026, 0, 1, hh, mm, ss).getTime();

test('the first of a kind is printed in full; repeats are one line with their count since the first', () => {
  const reports = new UncaughtReports();
  assert.deepEqual(reports.answer(report(1), { id: 1, slot: 0 }, at(12, 0, 1)), { repeat: false });
  let answer;
  for (let i = 2; i <= 6; i++) answer = reports.answer(report(1), { id: 6 + i, slot: 1 }, at(12, 0, i));
  assert.deepEqual(answer, {
    repeat: true,
    line: "rcluster: worker 12 (slot 1): the same uncaught TypeError as before (x6 since 12:00:01): Cannot read properties of undefined (reading 'x') at /app/server.js:12:7",
  });
  assert.deepEqual(reports.answer(report(2), { id: 13, slot: 0 }), { repeat: false }, 'another error is new');
  assert.equal(reports.answer(report(1, { at: undefined }), { id: 14 }, at(12, 1, 0)).line,
    "rcluster: worker 14: the same uncaught TypeError as before (x7 since 12:00:01): Cannot read properties of undefined (reading 'x')");
});

test('at most LIMIT fingerprints are kept, the least recently seen forgotten first', () => {
  const reports = new UncaughtReports();
  for (let n = 0; n < LIMIT; n++) reports.note(FP(n));
  reports.note(FP(0)); // seen again: now the most recent
  reports.note(FP(LIMIT)); // one more: FP(1) goes
  assert.equal(reports.seen.size, LIMIT);
  assert.notEqual(reports.note(FP(0)), null);
  assert.equal(reports.note(FP(1)), null, 'forgotten, so new again');
  for (let n = 0; n < 10 * LIMIT; n++) reports.note(FP(LIMIT + 1 + n));
  assert.equal(reports.seen.size, LIMIT);
});

test('a malformed report (the worker runs the app\'s code) is refused, and what is printed is cut to size and control-free', () => {
  const reports = new UncaughtReports();
  for (const bad of [null, 'x', {}, { fingerprint: 'nothex!', name: 'E', message: 'm' }, { fingerprint: FP(1), name: 1, message: 'm' },
    { fingerprint: FP(1), name: 'E' }, { fingerprint: 'a'.repeat(65), name: 'E', message: 'm' }]) {
    assert.equal(reports.answer(bad, { id: 1 }), null, JSON.stringify(bad));
  }
  assert.equal(reports.seen.size, 0);
  reports.answer(report(3), { id: 1 });
  const { line } = reports.answer(report(3, { message: `a\u001b[2Jb\n${'x'.repeat(1000)}` }), { id: 1 });
  assert.doesNotMatch(line, /[\u0000-\u001f]/);
  assert.ok(line.length < 500, line.length);
});
