'use strict';
// The `rcluster` command's account of recycling (setupPrimary({ recycle })):
// one line per recycle, with its reason and figures, and the counts per slot
// and reason that `rcluster status` (RECYCLES), `status --json` and /metrics
// (rcluster_worker_recycles_total) show.
//
//   worker 3 (slot 1) recycled: memory 112 MiB over 100 MiB; worker 9 replaces it
//   worker 3 (slot 1) killed: memory 151 MiB over the 150 MiB hard limit
//   worker 3 (slot 1) killed: memory 146 MiB, growing past the 150 MiB hard limit
//
// A recycle is announced ('recycle') before its replacement is forked, so its
// line waits for that fork to name the replacement, or for the old worker's
// exit if none came. A hard kill is told at once.

const MiB = 2 ** 20;
// A whole number of MiB as such (a limit, usually), else to a tenth, or
// finer where a tenth would show an RSS just over `limit` as the limit
// itself ("100.0 MiB over 100 MiB").
function mib(bytes, limit) {
  const n = bytes / MiB;
  if (Number.isInteger(n)) return `${n} MiB`;
  let digits = 1;
  while (digits < 4 && limit !== undefined && bytes > limit && Number(n.toFixed(digits)) <= limit / MiB) digits++;
  return `${n.toFixed(digits)} MiB`;
}

function duration(ms) {
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Why the worker was recycled, from the 'recycle' event's info. */
function describeRecycle(info) {
  switch (info.reason) {
    case 'maxMemory': return `memory ${mib(info.rss, info.maxMemory)} over ${mib(info.maxMemory)}`;
    case 'maxMemoryHard': return info.rss > info.hard ? `memory ${mib(info.rss, info.hard)} over the ${mib(info.hard)} hard limit` :
      `memory ${mib(info.rss)}, growing past the ${mib(info.hard)} hard limit`;
    case 'maxRequests': return `served ${info.requests} requests (maxRequests)`;
    case 'maxAge': return `up ${duration(info.age)} (maxAge)`;
    case 'cron': return 'cron schedule';
    default: return String(info.reason);
  }
}

class RecycleLog {
  /**
   * `slotOf(worker)`: its slot, or undefined; `log`: lib/cli/logs.js's
   * primaryLog(); `counts`: the Map `${slot}\u0000${reason}` -> count it keeps.
   */
  constructor({ slotOf, log, counts }) {
    this.slotOf = slotOf;
    this.log = log;
    this.counts = counts;
    this.pending = new Map(); // old worker id -> its line, until its replacement forks
  }

  /** cluster 'recycle' (worker, info). */
  recycled(worker, info) {
    const slot = this.slotOf(worker);
    const key = `${slot ?? ''}\u0000${info.reason}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const who = `worker ${worker.id}${slot === undefined ? '' : ` (slot ${slot})`}`;
    if (info.reason === 'maxMemoryHard') {
      this.log.warn(`${who} killed: ${describeRecycle(info)}`);
    } else {
      this.pending.set(worker.id, `${who} recycled: ${describeRecycle(info)}`);
    }
  }

  /** cluster 'fork': a replacement names the worker it replaces. */
  forked(worker) {
    const line = this.pending.get(worker.replaces);
    if (line === undefined) return;
    this.pending.delete(worker.replaces);
    this.log.info(`${line}; worker ${worker.id} replaces it`);
  }

  /** cluster 'exit': a worker recycled without a replacement (stopping, killed first). */
  exited(worker) {
    const line = this.pending.get(worker.id);
    if (line === undefined) return;
    this.pending.delete(worker.id);
    this.log.info(line);
  }
}

/** The counts as `{ reason: n }`, of one slot or (slot undefined) of all. */
function recycleCounts(counts, slot) {
  const out = {};
  for (const [key, n] of counts) {
    const [s, reason] = key.split('\u0000');
    if (slot === undefined || s === String(slot)) out[reason] = (out[reason] ?? 0) + n;
  }
  return out;
}

module.exports = { RecycleLog, recycleCounts, describeRecycle };
