'use strict';
// The uncaught exceptions the workers of the `rcluster` command reported, so
// that each kind is printed in full once: a route that throws crashes a
// worker at every request to it, and the same stack trace printed at every
// crash would bury everything else on stderr. A worker about to die of an
// uncaught exception (lib/cli/worker_hook.js) sends the error's fingerprint
// and asks whether it is new: if so, it prints the error in full, as Node
// would; if not, one line this module writes, with the count.
//
// The worker runs the app's code: what it sends is checked and cut to size
// before it is kept or printed. Memory is bounded: the most recently seen
// LIMIT fingerprints are kept, the least recently seen forgotten first.

const LIMIT = 100;
const FINGERPRINT = /^[0-9a-f]{16,64}$/;
const TEXT_MAX = 300;

class UncaughtReports {
  constructor(limit = LIMIT) {
    this.limit = limit;
    this.seen = new Map(); // fingerprint -> { count, since }, least recently seen first
  }

  /**
   * One more occurrence of `fingerprint` at `now` (ms since the epoch).
   * Returns null for the first one (as far as memory goes), else
   * `{ count, since }`: occurrences so far, this one included, and when the
   * first of them was.
   */
  note(fingerprint, now = Date.now()) {
    const entry = this.seen.get(fingerprint);
    if (entry !== undefined) {
      this.seen.delete(fingerprint);
      entry.count += 1;
      this.seen.set(fingerprint, entry);
      return { count: entry.count, since: entry.since };
    }
    this.seen.set(fingerprint, { count: 1, since: now });
    if (this.seen.size > this.limit) this.seen.delete(this.seen.keys().next().value);
    return null;
  }

  /**
   * A worker's report (`{ fingerprint, name, message, at }`), as the
   * primary answers it: `{ repeat: false }` (print it in full) or
   * `{ repeat: true, line }`. `worker`: `{ id, slot }`. Null when the report
   * is malformed (the worker then prints in full).
   */
  answer(report, worker, now = Date.now()) {
    const checked = checkReport(report);
    if (checked === null) return null;
    const seen = this.note(checked.fingerprint, now);
    if (seen === null) return { repeat: false };
    return { repeat: true, line: repeatLine(worker, checked, seen) };
  }
}

const text = (value) => (typeof value === 'string' ? value.slice(0, TEXT_MAX).replace(/[\u0000-\u001f\u007f]/g, ' ') : undefined);

function checkReport(report) {
  if (report === null || typeof report !== 'object') return null;
  if (typeof report.fingerprint !== 'string' || !FINGERPRINT.test(report.fingerprint)) return null;
  const name = text(report.name);
  const message = text(report.message);
  if (name === undefined || message === undefined) return null;
  return { fingerprint: report.fingerprint, name, message, at: text(report.at) };
}

const clock = (ms) => new Date(ms).toTimeString().slice(0, 8);

// rcluster: worker 7 (slot 1): the same uncaught TypeError as before (x6 since 12:00:01): Cannot read properties of undefined (reading 'x') at /app/server.js:12:7
function repeatLine({ id, slot }, { name, message, at }, { count, since }) {
  const who = slot === undefined ? `worker ${id}` : `worker ${id} (slot ${slot})`;
  return `rcluster: ${who}: the same uncaught ${name} as before (x${count} since ${clock(since)}): ${message}${at ? ` at ${at}` : ''}`;
}

module.exports = { UncaughtReports, LIMIT };
