'use strict';
// `rcluster status` as a table for people (`--json` gives the data itself).
function fmtBytes(n) {
  if (n === null || n === undefined) return '-';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)}G`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)}M`;
  return `${Math.round(n / 1024)}K`;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return '-';
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function fmtMs(seconds) {
  return seconds === null || seconds === undefined ? '-' : `${(seconds * 1000).toFixed(1)}ms`;
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function renderStatus(s) {
  const head = `${s.name} (pid ${s.pid}): ${s.state}, ${s.workers.length}/${s.instances} workers, up ${fmtDuration(s.uptime)}`;
  const workers = table(
    ['WORKER', 'SLOT', 'PID', 'STATE', 'UPTIME', 'RESTARTS', 'CONNS', 'TOTAL', 'REQS', 'RSS', 'CPU', 'LOOP p99'],
    s.workers.map((w) => [
      `w${w.slot ?? '?'} #${w.id}`, w.slot ?? '-', w.pid, w.state, fmtDuration(w.uptime), w.restarts,
      w.connections.open ?? '-', w.connections.total ?? '-', w.requests ?? '-', fmtBytes(w.rss),
      w.cpu === null ? '-' : `${w.cpu.toFixed(1)}%`, fmtMs(w.eventLoopDelay?.p99),
    ]),
  );
  const listeners = s.listeners.length === 0 ? 'no listeners yet' : table(
    ['LISTENER', 'WORKERS', 'ACCEPTED', 'PENDING', 'EXPIRED'],
    s.listeners.map((l) => [l.key.split(':').slice(0, -3).join(':') || l.key, l.workers.length, l.accepted, l.pending, l.expired]),
  );
  return `${head}\n\n${workers}\n\n${listeners}\n`;
}

module.exports = { renderStatus };
