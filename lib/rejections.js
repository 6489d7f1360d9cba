'use strict';
// Untrusted input refused (docs/SECURITY.md), the one place that counts and
// reports it for JS decoders and native ones alike. A decoder of input from
// across a process boundary (a bus message, a Redis message, a control-socket
// line, ...) returns a value or calls `reject(surface, detail)`: it never
// throws into the event loop. Each surface's count shows in
// `cluster.stats().rejected` and `/metrics`; a warning (code
// RCLUSTER_REJECTED_INPUT) says what was wrong, at most once per surface
// every 10 s with the number held back since, so a flood of hostile input
// costs a counter, not a log line per input. The native side
// (core/src/rejections.rs) counts and limits its own the same way.
const native = require('./native');

const REPORT_EVERY_MS = 10000;
const MAX_DETAIL = 200;

const surfaces = new Map(); // surface -> { total, lastReport, heldBack }
let nativeReports = false;

/** `text` with control characters and non-ASCII escaped, cut to MAX_DETAIL. */
function printable(text) {
  let s = JSON.stringify(String(text)).slice(1, -1).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (s.length > MAX_DETAIL) s = `${s.slice(0, MAX_DETAIL)}…`;
  return s;
}

function warn(surface, detail, heldBack) {
  const more = heldBack > 0 ? ` (${heldBack} more refused since the last report)` : '';
  process.emitWarning(`rcluster refused ${surface} input: ${detail}${more}`, { code: 'RCLUSTER_REJECTED_INPUT' });
}

/** Counts one refused input of `surface`; `detail` (a string, or a function giving one) says what was wrong. */
function reject(surface, detail) {
  let s = surfaces.get(surface);
  if (s === undefined) {
    s = { total: 0, lastReport: -Infinity, heldBack: 0 };
    surfaces.set(surface, s);
  }
  s.total++;
  const now = performance.now();
  if (now - s.lastReport < REPORT_EVERY_MS) {
    s.heldBack++;
    return;
  }
  s.lastReport = now;
  const heldBack = s.heldBack;
  s.heldBack = 0;
  warn(surface, printable(typeof detail === 'function' ? detail() : detail), heldBack);
}

/** `{ surface: count }` of this process, JS and native surfaces together. */
function counts() {
  const out = {};
  for (const [surface, s] of surfaces) out[surface] = s.total;
  for (const { surface, count } of native.rejectedInputs?.() ?? []) out[surface] = (out[surface] ?? 0) + count;
  return out;
}

/** Native reports become the same warnings (once per process). */
function reportNative() {
  if (nativeReports || native.onRejectedInput === undefined) return;
  nativeReports = true;
  native.onRejectedInput(({ surface, detail, heldBack }) => warn(surface, detail, heldBack));
}

module.exports = { reject, counts, reportNative, printable };
