'use strict';
// setupPrimary({ recycle: { maxMemory, maxRequests, maxAge, jitter, cron } }):
// a worker past a limit is replaced gracefully, replacement first
// (lib/operations/rollover.js), one worker at a time so the cluster never loses more
// than one worker's capacity. One periodic pass (Puma's check_workers) checks
// age and memory; the worker itself counts its requests and says when it
// reached its budget; a cron schedule (PM2's cron_restart) recycles every
// worker in turn.
const fs = require('fs');
const { debuglog } = require('util');
const { Fate } = require('../primary/worker_record');

const debug = debuglog('rcluster');
// Memory is sampled at least once a second (PM2: every 30 s).
const PASS_MS = 1000;
// A recycle whose replacement failed is tried again after this long.
const RETRY_MS = 10000;

// gunicorn's max_requests_jitter, as a fraction: each worker's limit is drawn
// from [limit, limit * (1 + jitter)], so workers forked together don't all
// recycle together.
function jittered(limit, jitter, random = Math.random) {
  return Math.round(limit * (1 + jitter * random()));
}

// The worker's resident set size in bytes, from /proc (Linux), or undefined.
async function rssOf(pid) {
  try {
    const status = await fs.promises.readFile(`/proc/${pid}/status`, 'latin1');
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
    this.cron = null;
    this.busy = false;
    this.sampling = false;
  }

  configure(options) {
    this.options = options;
    clearInterval(this.timer);
    this.timer = null;
    if (this.cron !== null) this.cron.stop();
    this.cron = null;
    if (options === false) return;
    if (options.maxAge !== undefined || options.maxMemory !== undefined) {
      this.timer = setInterval(() => this.pass(), PASS_MS);
      this.timer.unref();
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

  async pass() {
    if (this.shutdown.started || this.sampling) return;
    const { maxAge, maxMemory } = this.options;
    const now = Date.now();
    const running = [...this.records.values()].filter((r) => r.fate === Fate.Running && r.recycleDue === undefined);
    for (const record of running) {
      const limit = record.maxAge ?? maxAge;
      if (limit !== undefined && now - record.forkedAt >= limit) this.due(record, 'maxAge', { age: now - record.forkedAt });
    }
    if (maxMemory !== undefined) {
      this.sampling = true;
      try {
        await Promise.all(running.map(async (record) => {
          const rss = await rssOf(record.worker.process.pid);
          if (rss !== undefined && rss > maxMemory) this.due(record, 'maxMemory', { rss, maxMemory });
        }));
      } finally {
        this.sampling = false;
      }
    }
    this.drain();
  }

  // Marks the worker due ('recycle' is emitted once), and starts the queue.
  due(record, reason, detail) {
    if (this.shutdown.started || !record.markRecycleDue({ reason, ...detail })) return;
    debug('primary: worker %d is due for recycling (%j)', record.id, record.recycleDue);
    this.cluster.emit('recycle', record.worker, record.recycleDue);
    this.drain();
  }

  // One recycle at a time, oldest due first; a failed one waits RETRY_MS.
  async drain() {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        if (this.shutdown.started) return;
        const now = Date.now();
        const record = [...this.records.values()].find((r) => r.recyclableAt(now));
        if (record === undefined) return;
        const outcome = await this.rollover.replace(record);
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

module.exports = { Recycler, jittered };
