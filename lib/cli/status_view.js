'use strict';
// `rcluster status` as a table for people (`--json` gives the data itself).
// What is printed comes from another process: even from a primary of this
// user (lib/cli/control.js checks that), every string is printed escaped,
// so no control character or escape sequence reaches the terminal, and a
// reply of the wrong shape is an ERR_RCLUSTER_BAD_REPLY error, not a crash.

// Characters a terminal may act on or that change how text reads: C0 and C1
// controls (ESC, CSI...), DEL, format characters (bidi overrides,
// zero-width), line and paragraph separators, lone surrogates.
const { codedError } = require('../errors');

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;

function escapeChar(c) {
  const cp = c.codePointAt(0);
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
  const v = cp - 0x10000;
  return `\\u${(0xd800 + (v >> 10)).toString(16)}\\u${(0xdc00 + (v & 0x3ff)).toString(16)}`;
}

/** `text` with every unprintable character escaped (\\u001b), cut to `max` characters. */
function printable(text, max = 200) {
  let s = String(text);
  if (s.length > max) s = `${s.slice(0, max)}…`;
  return s.replace(UNPRINTABLE, escapeChar);
}

/** JSON.stringify(value), with the characters it leaves as they are (DEL, C1, format characters) escaped too. */
function safeJson(value) {
  return JSON.stringify(value).replace(UNPRINTABLE, escapeChar);
}

function badReply(what) {
  return codedError(Error, 'ERR_RCLUSTER_BAD_REPLY', `not a status reply: ${what}`, undefined, badReply);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const num = (v) => typeof v === 'number' && Number.isFinite(v);

// One table cell: a number, a short escaped string, or '-'.
function cell(v, max = 64) {
  if (num(v)) return String(v);
  if (typeof v === 'string') return printable(v, max);
  return '-';
}
function fmtBytes(n) {
  if (!num(n)) return '-';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)}G`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)}M`;
  return `${Math.round(n / 1024)}K`;
}

function fmtDuration(s) {
  if (!num(s)) return '-';
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function fmtMs(seconds) {
  return num(seconds) ? `${(seconds * 1000).toFixed(1)}ms` : '-';
}

// A slot's recycles ({ reason: n }): those that replaced a worker gracefully,
// and the hard memory limit's kills beside them: '3', '3 (1 killed)'.
function fmtRecycles(recycles) {
  if (!isObject(recycles)) return '-';
  let graceful = 0;
  let killed = 0;
  for (const [reason, n] of Object.entries(recycles)) {
    if (!num(n)) continue;
    if (reason === 'maxMemoryHard') killed += n;
    else graceful += n;
  }
  return killed > 0 ? `${graceful} (${killed} killed)` : String(graceful);
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function renderStatus(s) {
  if (!isObject(s)) throw badReply('not an object');
  if (!Array.isArray(s.workers) || !s.workers.every(isObject)) throw badReply('workers is not a list of objects');
  if (!Array.isArray(s.listeners) || !s.listeners.every(isObject)) throw badReply('listeners is not a list of objects');
  const head = `${cell(s.name)} (pid ${cell(s.pid)}): ${cell(s.state)}, ${s.workers.length}/${cell(s.instances)} workers, up ${fmtDuration(s.uptime)}`;
  const workers = table(
    ['WORKER', 'SLOT', 'PID', 'STATE', 'UPTIME', 'RESTARTS', 'RECYCLES', 'CONNS', 'TOTAL', 'REQS', 'RSS', 'CPU', 'LOOP p99'],
    s.workers.map((w) => {
      const conns = isObject(w.connections) ? w.connections : {};
      const loop = isObject(w.eventLoopDelay) ? w.eventLoopDelay : {};
      return [
        `w${num(w.slot) ? w.slot : '?'} #${cell(w.id)}`, cell(w.slot), cell(w.pid), w.notListening === true ? `${cell(w.state)} (not listening)` : cell(w.state), fmtDuration(w.uptime), cell(w.restarts), fmtRecycles(w.recycles),
        cell(conns.open), cell(conns.total), cell(w.requests), fmtBytes(w.rss),
        num(w.cpu) ? `${w.cpu.toFixed(1)}%` : '-', fmtMs(loop.p99),
      ];
    }),
  );
  const listeners = s.listeners.length === 0 ? 'no listeners yet' : table(
    ['LISTENER', 'WORKERS', 'ACCEPTED', 'PENDING', 'EXPIRED'],
    s.listeners.map((l) => {
      const key = typeof l.key === 'string' ? l.key : '?';
      return [printable(key.split(':').slice(0, -3).join(':') || key, 120), Array.isArray(l.workers) ? l.workers.length : '-', cell(l.accepted), cell(l.pending), cell(l.expired)];
    }),
  );
  // Untrusted input the primary refused, per surface (lib/rejections.js).
  const refused = isObject(s.rejected) ? Object.entries(s.rejected).filter(([, n]) => num(n) && n > 0) : [];
  const tail = refused.length === 0 ? '' : `\nrefused input: ${refused.slice(0, 20).map(([k, n]) => `${printable(k, 40)} ${n}`).join(', ')}\n`;
  // Every slot's recycles, by reason (maxMemoryHard: killed at the hard limit).
  const recycled = isObject(s.recycles) ? Object.entries(s.recycles).filter(([, n]) => num(n) && n > 0) : [];
  const recycles = recycled.length === 0 ? '' : `\nrecycles: ${recycled.slice(0, 20).map(([k, n]) => `${printable(k, 40)} ${n}`).join(', ')}\n`;
  // Workers not listening within listenTimeout (lib/cli/run.js expectListen()).
  const warnings = Array.isArray(s.warnings) ? s.warnings.filter((w) => typeof w === 'string').slice(0, 20) : [];
  const warned = warnings.map((w) => `warning: ${printable(w)}\n`).join('');
  return `${head}\n\n${workers}\n\n${listeners}\n${tail}${recycles}${warned === '' ? '' : `\n${warned}`}`;
}

module.exports = { renderStatus, printable, safeJson, cell, fmtDuration };
