'use strict';
// setupPrimary({ recycle: { maxMemory, maxRequests, maxAge, jitter, cron } }):
// a worker past a limit is replaced gracefully, replacement first
// (lib/operations/rollover.js). Replacements are forked one at a time, so the
// cluster never lacks more than one worker's capacity; once a replacement is
// in and the old worker retired (out of rotation, draining), the next worker
// due is replaced at once, so retiring workers drain side by side rather than
// queueing behind one that lingers. One periodic pass (Puma's check_workers)
// checks age and memory; the worker itself counts its requests and says when
// it reached its budget; a cron schedule (PM2's cron_restart) recycles every
// worker in turn.
//
// maxMemory has two limits (docs/operations.md, "Memory"): past `soft` a
// worker is recycled as above; past `hard` it is SIGKILLed whatever its
// state, running, waiting for its recycle, or retired and draining (a drain
// may last drainTimeout, and a leak does not stop meanwhile). A worker over
// the soft limit, or growing fast enough to pass it before the next pass, and
// every retiring worker, is sampled every WATCH_MS; one that would pass the
// hard limit before the sample after next, at the rate it grew since the
// last one, is killed now, so a steady leak never takes a worker past it
// (a sudden burst between two samples still can).
const fs = require('fs');
const { performance } = require('perf_hooks');
const { debuglog } = require('util');
const { Fate } = require('../primary/worker_record');

const debug = debuglog('rcluster');
// Every worker's age and memory, once a second (PM2: every 30 s).
const PASS_MS = 1000;
// The workers watched for the hard memory limit, ten times a second.
const WATCH_MS = 100;
// How far ahead a watched worker's growth is projected against the hard
// limit: the next sample, one that comes a whole period late (a busy
// primary's timers), and the SIGKILL's own delay.
const HORIZON_MS = 3 * WATCH_MS;
// The shortest span a growth rate is measured over.
const RATE_WINDOW_MS = WATCH_MS / 2;
// A recycle whose replacement failed is tried again after this long.
const RETRY_MS = 10000;

// gunicorn's max_requests_jitter, as a fraction: each worker's limit is drawn
// from [limit, limit * (1 + jitter)], so workers forked together don't all
// recycle together.
function jittered(limit, jitter, random = Math.random) {
  return Math.round(limit * (1 + jitter * random()));
}

// The worker's resident set size in bytes, from /proc (Linux), or undefined.
// Read synchronously: the kernel makes this small file from counters it
// keeps, in microseconds, and a sample is never stale by the time it is
// compared.
function rssOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined; // it exited meanwhile, or there is no /proc
  }
}

class Recycler {
  /**
   * `rollover` (lib/operations/rollover.js) replaces a worker due;
   * `shutdown` (lib/operations/shutdown.js) says when nothing more is started.
   */
  constructor(cluster, records, { rollover, shutdown }) {
    this.cluster = cluster;
    this.records = records;
    this.rollover = rollover;
    this.shutdown = shutdown;
    this.options = false;
    this.timer = null;
    this.watchTimer = null;
    this.cron = null;
    this.busy = false;
    // Worker id -> its RSS at the last pass, and the ids sampled every
    // WATCH_MS besides the retiring workers (maxMemory).
    this.lastRss = new Map();
    this.watched = new Set();
    // The records SIGKILLed at the hard limit, which may show in /proc a
    // little longer.
    this.hardKilled = new WeakSet();
    // Worker id -> its latest RSS sample and when (performance.now()).
    this.lastSample = new Map();
  }

  configure(options) {
    this.options = options;
    clearInterval(this.timer);
    clearInterval(this.watchTimer);
    this.timer = null;
    this.watchTimer = null;
    this.lastRss.clear();
    this.lastSample.clear();
    this.watched.clear();
    if (this.cron !== null) this.cron.stop();
    this.cron = null;
    if (options === false) return;
    if (options.maxAge !== undefined || options.maxMemory !== undefined) {
      this.timer = setInterval(() => this.pass(), PASS_MS);
      this.timer.unref();
    }
    if (options.maxMemory !== undefined) {
      this.watchTimer = setInterval(() => this.watch(), WATCH_MS);
      this.watchTimer.unref();
    }
    if (options.cron !== undefined) {
      const { Cron } = require('croner');
      this.cron = new Cron(options.cron, { unref: true }, () => this.everyWorker('cron'));
    }
  }

  /** The worker's own limits, given at fork (its env): its request budget. */
  workerLimit() {
    const { maxRequests, jitter } = this.options || {};
    return maxRequests === undefined ? undefined : jittered(maxRequests, jitter);
  }

  /** At fork: its age limit, drawn once. */
  track(record) {
    const { maxAge, jitter } = this.options || {};
    if (maxAge !== undefined) record.limitAge(jittered(maxAge, jitter));
  }

  /** The worker served its budget of requests. */
  requestsServed(record, requests) {
    this.due(record, 'maxRequests', { requests });
  }

  everyWorker(reason) {
    for (const record of this.records.values()) {
      if (record.fate === Fate.Running) this.due(record, reason, {});
    }
  }

  pass() {
    const { maxAge, maxMemory } = this.options;
    const stopping = this.shutdown.started;
    const now = Date.now();
    if (maxAge !== undefined && !stopping) {
      for (const record of this.records.values()) {
        if (record.fate !== Fate.Running || record.recycleDue !== undefined) continue;
        const limit = record.maxAge ?? maxAge;
        if (limit !== undefined && now - record.forkedAt >= limit) this.due(record, 'maxAge', { age: now - record.forkedAt });
      }
    }
    if (maxMemory !== undefined) {
      for (const id of this.lastRss.keys()) if (!this.records.has(id)) this.lastRss.delete(id);
      for (const id of this.lastSample.keys()) if (!this.records.has(id)) this.lastSample.delete(id);
      // Every live worker, whatever its state: the hard limit applies to all.
      for (const record of [...this.records.values()]) {
        const rss = this.sample(record);
        if (rss === undefined) continue;
        // Growing fast enough to pass the soft limit before the next pass:
        // watched from now on, so that it cannot pass the hard one unseen.
        const last = this.lastRss.get(record.id) ?? rss;
        this.lastRss.set(record.id, rss);
        if (rss + (rss - last) > maxMemory.soft) this.watched.add(record.id);
        else this.watched.delete(record.id);
      }
    }
    if (!stopping) this.drain();
  }

  // The workers over the soft limit (or about to be) and every retiring one.
  watch() {
    for (const id of this.watched) if (!this.records.has(id)) this.watched.delete(id);
    for (const record of [...this.records.values()]) {
      if (record.fate === Fate.Retiring || this.watched.has(record.id)) this.sample(record);
    }
  }

  // Reads the worker's RSS and acts on the memory limits; returns the RSS.
  sample(record) {
    if (record.exited || this.hardKilled.has(record)) return undefined;
    const rss = rssOf(record.worker.process.pid);
    if (rss === undefined) return undefined;
    const { soft, hard } = this.options.maxMemory;
    const now = performance.now();
    // The RSS it will have by the time it could next be stopped, at the rate
    // it grew since a sample at least RATE_WINDOW_MS older (none known: as
    // it is). RSS grows in steps (an allocation, a heap page run), and the
    // once-a-second pass and the watch can sample one worker a millisecond
    // apart: a 2 MiB step over 5 ms reads as 400 MiB/s, and projected a
    // worker of 90 MiB past a 150 MiB hard limit.
    let previous = this.lastSample.get(record.id);
    if (previous === undefined || now - previous.at >= RATE_WINDOW_MS) {
      const rate = previous !== undefined ? Math.max(0, rss - previous.rss) / (now - previous.at) : 0;
      previous = { rss, at: now, rate };
      this.lastSample.set(record.id, previous);
    }
    const projected = Math.round(rss + previous.rate * HORIZON_MS);
    if (projected > hard) {
      this.killHard(record, rss, projected);
    } else if (rss > soft) {
      this.watched.add(record.id);
      this.due(record, 'maxMemory', { rss, maxMemory: soft, hard });
    }
    return rss;
  }

  // Past the hard limit: SIGKILLed now, whatever its state. A running worker
  // gets a replacement (forked just before, as a recycle does, so that its
  // place is taken even without the restart policy); its connections go as a
  // dead worker's do: what it had not taken, the dispatcher deals again.
  killHard(record, rss, projected) {
    this.hardKilled.add(record);
    this.watched.delete(record.id);
    const { worker } = record;
    const { soft, hard } = this.options.maxMemory;
    debug('primary: worker %d (%s) has %d bytes resident, past the hard limit of %d: killed', record.id, record.fate, rss, hard);
    if (record.replaceableByRollover && !this.shutdown.started) {
      this.rollover.replace(record).then((outcome) => {
        if (!outcome.ok) debug('primary: the replacement of worker %d failed (%s)', record.id, outcome.reason);
      });
    }
    // Killed by the primary for what it did: the restart policy may replace
    // it (unless the replacement above is on its way), as after a crash.
    record.failed('maxMemoryHard');
    try {
      this.cluster.emit('recycle', worker, { reason: 'maxMemoryHard', rss, projected, maxMemory: soft, hard });
    } finally {
      worker.process.kill('SIGKILL');
    }
  }

  // Marks the worker due ('recycle' is emitted once), and starts the queue.
  due(record, reason, detail) {
    if (this.shutdown.started || !record.markRecycleDue({ reason, ...detail })) return;
    debug('primary: worker %d is due for recycling (%j)', record.id, record.recycleDue);
    this.cluster.emit('recycle', record.worker, record.recycleDue);
    this.drain();
  }

  // One replacement at a time, oldest due first; the next one starts as soon
  // as the previous old worker is retired, not once it has exited. A failed
  // one waits RETRY_MS.
  async drain() {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        if (this.shutdown.started) return;
        const now = Date.now();
        const record = [...this.records.values()].find((r) => r.recyclableAt(now));
        if (record === undefined) return;
        const outcome = await new Promise((resolve, reject) => {
          this.rollover.replace(record, { onRetired: () => resolve({ ok: true }) }).then(resolve, reject);
        });
        if (!outcome.ok) {
          debug('primary: recycling worker %d failed (%s): it stays', record.id, outcome.reason);
          record.recycleFailed(Date.now() + RETRY_MS);
          setTimeout(() => this.drain(), RETRY_MS).unref();
        }
      }
    } finally {
      this.busy = false;
    }
  }
}

module.exports = { Recycler, jittered, WATCH_MS, PASS_MS };
