'use strict';
// `rcluster SCRIPT`: this process is the primary of a cluster that runs the
// unmodified app in every worker, in the foreground, until a signal or
// `rcluster stop` ends it. Exit codes (EXIT below) say how it ended.
const { constants: { signals: SIGNALS } } = require('os');
const { slotEnv } = require('./settings');
const { Logs } = require('./logs');
const { askAll } = require('./ask');
const { procStat } = require('./procstat');
const { UncaughtReports } = require('./uncaught_reports');
const { RecycleLog, recycleCounts } = require('./recycles');
const rejections = require('../rejections');
const { codedError } = require('../errors');
const { CMD, Act } = require('../protocol');
const { defaultOf } = require('../primary/settings');
const { DRAIN_DELAY_DEFAULT } = require('./http_endpoints');

const EXIT = Object.freeze({
  /** Stopped on request; every worker drained in time. */
  Stopped: 0,
  /** The app could not be kept running: its workers crash in a loop, or exited and were not replaced. */
  Failed: 1,
  /** A bad command line or config value (lib/errors.js UsageError). */
  Usage: 2,
  /** Stopped on request, but some workers were SIGKILLed at the deadline. */
  Killed: 3,
  // A second SIGTERM/SIGINT: 128 + the signal's number, as a shell reports a process killed by it.
});

class Runner {
  constructor(cluster, app, log) {
    this.cluster = cluster;
    this.app = app;
    this.log = log;
    // The number of workers asked for (-i, then `rcluster scale`, SIGTTIN/SIGTTOU);
    // the library keeps it (cluster.scale()).
    this.instances = app.instances;
    // Each worker's slot (its NODE_APP_INSTANCE), given at fork to a worker
    // that has none: the lowest slot no live worker holds. A replacement
    // keeps its predecessor's (its env), so a slot whose worker died while
    // its restart is pending stays taken (`awaiting`) until it comes.
    this.slotOf = new Map(); // worker id -> slot
    this.awaiting = new Set(); // slots whose worker died and whose restart is pending
    this.startedAt = new Map(); // worker id -> fork time
    this.stopping = null; // the shutdown promise, once stopping
    // On SIGTERM or `rcluster stop`: /health answers 503 and the app keeps
    // serving this long before it drains, for a balancer to take the host
    // out first (what Kubernetes users add a `preStop: sleep` for). Given
    // (--drain-delay), always; else by default only with --health: without
    // a health check nothing would tell a balancer, and a plain
    // `rcluster app.js` stops at once as it always did.
    this.drainDelay = app.drainDelay ?? (app.health ? DRAIN_DELAY_DEFAULT : 0);
    this.drainDelayGiven = app.drainDelay !== undefined;
    this.delayUnderWay = null; // { ms, ends } (Date.now() when it ends) during the delay
    this.reloadRunning = null; // the reload under way (reload())
    this.reloadQueued = null; // the one asked for during it, which follows it
    this.signals = 0;
    this.crashLooped = false;
    this.totals = { restarts: new Map(), dispatched: new Map(), cpu: new Map(), recycles: new Map() }; // monotonic counters, per slot
    this.lastSeen = new Map(); // worker id -> { dispatched, cpuSeconds }
    // Worker output, and log files (opened now: one that cannot be stops the
    // start). rcluster's own lines get the same timestamps and the error file.
    this.logs = new Logs(app, process.stdout, process.stderr, (err) => this.log.error(err.message));
    this.log.configure?.({ stamp: this.logs.stamp, file: this.logs.ownFile });
    // Workers that have not listened (or said ready) within listenTimeout:
    // worker id -> the warning shown for it.
    this.notListening = new Map();
  }

  start() {
    const cluster = this.cluster;
    // Every fork (cluster.scale()'s, the restart policy's, a reload's)
    // carries its slot in its env: a replacement gets its predecessor's env,
    // so its slot too; a new worker (from cluster.scale()) is given one here.
    const fork = cluster.fork;
    const self = this;
    cluster.fork = function forkWithSlot(env) {
      if (env === undefined) env = slotEnv(self.app, self.freeSlot());
      const worker = fork.call(this, env);
      const slot = Number(env?.[self.app.instanceVar]);
      if (Number.isInteger(slot)) {
        self.slotOf.set(worker.id, slot);
        self.awaiting.delete(slot);
      }
      self.startedAt.set(worker.id, Date.now());
      worker.process.on('internalMessage', (message) => self.onWorkerAsks(worker, message));
      // Before the primary's own 'exit' listener, which has the dispatcher
      // forget the worker and its counts.
      worker.process.prependOnceListener('exit', () => self.sample([worker]));
      return worker;
    };
    // Every fork. One that did not go through the cluster.fork property
    // (rcluster's own code holding the original function, as a reload's):
    // its slot is read from its env.
    cluster.on('fork', (worker) => {
      if (!self.slotOf.has(worker.id) && !worker.isDead()) {
        const slot = slotFromEnviron(worker.process.pid, self.app.instanceVar);
        self.startedAt.set(worker.id, Date.now());
        if (slot !== null) self.slotOf.set(worker.id, slot);
      }
      // Every worker's output, whoever forked it (a reload's replacements
      // too): output piped and never read would block the worker.
      self.logs.attach(worker, self.slotOf.get(worker.id));
      self.expectListen(worker);
    });
    // logrotate's postrotate (and nginx's habit): the log files are opened
    // anew. Without log files there is nothing to do, and the signal does not
    // end the primary.
    this.onUsr2 = () => this.reopenLogs();
    process.on('SIGUSR2', this.onUsr2);
    cluster.on('restart', (worker, old, info) => {
      const slot = this.slotOf.get(worker.id);
      const key = `${slot}\u0000${info.reason}`;
      this.totals.restarts.set(key, (this.totals.restarts.get(key) ?? 0) + 1);
      this.log.info(`worker ${old.id} (slot ${slot}) ${describeEnd(info)}; worker ${worker.id} replaces it`);
    });
    // Recycles are logged with their reason and counted per slot and reason
    // (lib/cli/recycles.js), apart from restarts.
    this.recycles = new RecycleLog({ slotOf: (w) => this.slotOf.get(w.id), log: this.log, counts: this.totals.recycles });
    cluster.on('recycle', (worker, info) => this.recycles.recycled(worker, info));
    cluster.on('fork', (worker) => this.recycles.forked(worker));
    cluster.on('exit', (worker) => this.recycles.exited(worker));
    cluster.on('crashloop', (info) => {
      this.crashLooped = true;
      this.awaiting.clear();
      // Only crashes of workers up less than minUptime count, and only while
      // none stayed up (lib/operations/restart_policy.js): the app cannot start.
      const young = info.minUptime === undefined ? '' : ` of workers that died within ${info.minUptime / 1000} s of starting; none stayed up`;
      this.log.error(`workers keep crashing (${info.restarts} restarts in ${info.window / 1000} s${young}): no more restarts`);
    });
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    this.scaleTo(this.instances);
    // A worker that dies suddenly takes its latest counts with it (the
    // dispatcher forgets it as its channel hangs up): sampled every second,
    // a slot's totals lose at most that second's.
    this.sampler = setInterval(() => this.sample(this.liveWorkers()), 1000);
    this.sampler.unref();
  }

  /** SIGUSR2: the log files reopened at their paths. */
  reopenLogs() {
    if (this.logs.ownFile === null && this.logs.files.out === null) return;
    const errors = this.logs.reopen();
    for (const err of errors) this.log.error(`${err.message}; still writing to the file it had`);
    if (errors.length === 0) this.log.info('log files reopened (SIGUSR2)');
  }

  /**
   * One warning when `worker` has not listened (or, with waitReady, said it
   * is ready) within listenTimeout (setupPrimary's readyTimeout): an app
   * whose listen fails with its error swallowed otherwise shows only as
   * `online`. `rcluster status` shows it until the worker listens.
   */
  expectListen(worker) {
    const timeout = this.cluster.settings.readyTimeout ?? defaultOf('readyTimeout');
    // 0: no time at all is given, so none is overstepped.
    if (worker.isDead() || !(timeout > 0)) return;
    const waitReady = this.cluster.settings.waitReady === true;
    const timer = setTimeout(() => {
      if (worker.isDead() || worker.exitedAfterDisconnect || this.stopping !== null) return;
      const slot = this.slotOf.get(worker.id);
      const what = waitReady ? 'has not said it is ready' : 'has not listened';
      const warning = `worker ${worker.id} (slot ${slot ?? '?'}) ${what} after ${timeout / 1000} s (pid ${worker.process.pid})`;
      this.notListening.set(worker.id, warning);
      this.log.warn(`${warning}: ${waitReady ? 'does it call process.send(\'ready\')?' : 'is its port in use, or its listen error swallowed?'}`);
    }, timeout);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      if (this.notListening.delete(worker.id) && !worker.isDead()) {
        this.log.info(`worker ${worker.id} (slot ${this.slotOf.get(worker.id) ?? '?'}) ${waitReady ? 'is ready' : 'is listening'} now`);
      }
    };
    if (waitReady) {
      // cluster.worker.ready(), or PM2's process.send('ready').
      const onInternal = (message) => {
        if (message?.cmd === CMD && message.act === Act.Ready) ready();
      };
      const onMessage = (message) => {
        if (message === 'ready') ready();
      };
      const ready = () => {
        worker.process.off('internalMessage', onInternal);
        worker.off('message', onMessage);
        done();
      };
      worker.process.on('internalMessage', onInternal);
      worker.on('message', onMessage);
    } else {
      worker.once('listening', done);
    }
    worker.process.once('exit', () => {
      clearTimeout(timer);
      this.notListening.delete(worker.id);
    });
  }

  // The latest dispatched count and CPU time of each worker, for account().
  sample(workers) {
    let byId;
    try {
      byId = new Map(this.cluster.stats().workers.map((w) => [w.id, w]));
    } catch {
      return;
    }
    for (const w of workers) {
      const d = byId.get(w.id);
      const p = procStat(w.process.pid);
      const seen = this.lastSeen.get(w.id) ?? { dispatched: 0, cpuSeconds: 0 };
      this.lastSeen.set(w.id, {
        dispatched: Math.max(seen.dispatched, d ? d.accepted : 0),
        cpuSeconds: Math.max(seen.cpuSeconds, p ? p.cpuSeconds : 0),
      });
    }
  }

  // A worker's cluster.metrics(), or its uncaught exception (lib/cli/worker_hook.js).
  onWorkerAsks(worker, message) {
    if (message === null || typeof message !== 'object' || message.cmd !== 'NODE_RCLUSTER_CLI' || message.ask === undefined) return;
    if (message.what === 'uncaught') return this.onUncaught(worker, message);
    if (message.what !== 'metrics-text' || this.metricsText === undefined) return;
    this.metricsText().then((value) => ({ value }), (err) => ({ error: err.message })).then((reply) => {
      if (worker.process.connected) worker.process.send({ cmd: 'NODE_RCLUSTER_CLI', answer: message.ask, ...reply }, undefined, { swallowErrors: true }, () => {});
    });
  }

  // Whether the worker prints its uncaught exception in full (the first of
  // its kind) or one line, which is the answer (lib/cli/uncaught_reports.js).
  onUncaught(worker, message) {
    this.uncaughtReports ??= new UncaughtReports();
    const value = this.uncaughtReports.answer(message.report, { id: worker.id, slot: this.slotOf.get(worker.id) });
    if (worker.process.connected) worker.process.send({ cmd: 'NODE_RCLUSTER_CLI', answer: message.ask, value }, undefined, { swallowErrors: true }, () => {});
  }

  /** The lowest slot that no live worker holds and no pending restart will. */
  freeSlot() {
    if (this.cluster.pendingRestarts === 0) this.awaiting.clear();
    const taken = new Set(this.awaiting);
    for (const w of this.liveWorkers()) {
      const slot = this.slotOf.get(w.id);
      if (slot !== undefined) taken.add(slot);
    }
    let slot = 0;
    while (taken.has(slot)) slot++;
    return slot;
  }

  onExit(worker, code, signal) {
    this.account(worker);
    const slot = this.slotOf.get(worker.id);
    this.slotOf.delete(worker.id);
    this.startedAt.delete(worker.id);
    // A crash the restart policy is to replace: the replacement takes the slot.
    if (slot !== undefined && this.stopping === null && !worker.exitedAfterDisconnect && this.cluster.pendingRestarts > 0 &&
        !this.liveWorkers().some((w) => this.slotOf.get(w.id) === slot)) {
      this.awaiting.add(slot);
    }
    if (this.stopping === null && !worker.exitedAfterDisconnect && this.cluster.pendingRestarts === 0 &&
        this.liveWorkers().length === 0) {
      // Nothing is left running and nothing will be: the app has failed.
      this.log.error(`worker ${worker.id} exited (${signal ? `signal ${signal}` : `code ${code}`}) and no worker is left`);
      this.finish(EXIT.Failed);
    }
  }

  // A worker's counters go into its slot's totals, so they stay monotonic
  // across its restarts.
  account(worker) {
    const slot = this.slotOf.get(worker.id);
    const seen = this.lastSeen.get(worker.id);
    this.lastSeen.delete(worker.id);
    if (slot === undefined || seen === undefined) return;
    this.totals.dispatched.set(slot, (this.totals.dispatched.get(slot) ?? 0) + seen.dispatched);
    this.totals.cpu.set(slot, (this.totals.cpu.get(slot) ?? 0) + seen.cpuSeconds);
  }

  liveWorkers() {
    return Object.values(this.cluster.workers).filter((w) => !w.isDead());
  }

  /**
   * `n` workers (SIGTTIN / SIGTTOU, `rcluster scale N`): the highest slots
   * go first, retired as a reload retires (cluster.scale()).
   */
  scale(n) {
    if (this.stopping !== null) return { instances: this.instances, forked: 0, retired: 0 };
    const before = this.instances;
    this.scaleTo(n);
    if (before !== n) this.log.info(`scaled from ${before} to ${n} workers`);
    return { instances: n, forked: Math.max(0, n - before), retired: Math.max(0, before - n) };
  }

  // The library forks what is missing (each given the lowest free slot by
  // cluster.fork above, so the newest workers hold the highest slots) or
  // retires the surplus, newest first; nothing here waits for it.
  scaleTo(n) {
    this.instances = n;
    this.cluster.scale(n).catch((err) => {
      this.log.error(`could not start ${n} workers: ${err.message}`);
      if (this.liveWorkers().length === 0) this.finish(EXIT.Failed);
    });
  }

  /** A rolling reload (SIGHUP, `rcluster reload`, --watch). */
  async reload(why) {
    if (typeof this.cluster.reload !== 'function') {
      throw codedError(Error, 'ERR_RCLUSTER_NO_RELOAD', 'reload needs cluster.reload (zero-downtime operations), which this rcluster lacks');
    }
    if (this.stopping !== null) throw codedError(Error, 'ERR_RCLUSTER_STOPPING', 'shutting down');
    if (this.reloadRunning === null) {
      this.reloadRunning = this.runReload(why).finally(() => {
        this.reloadRunning = null;
      });
      return this.reloadRunning;
    }
    // A reload is under way, and its new workers may have loaded the code
    // from before this request (a save during the probation, a second
    // deploy): one more reload follows it, which every request until it
    // starts shares (nodemon's and PM2's --watch coalesce so too).
    if (this.reloadQueued === null) {
      this.log.info(`reload asked (${why}) during a reload: another follows it`);
      this.reloadQueued = this.reloadRunning.then(() => {
        this.reloadQueued = null;
        return this.reload(why);
      });
    }
    return this.reloadQueued;
  }

  async runReload(why) {
    this.log.info(`rolling reload (${why})`);
    const result = (await this.cluster.reload()) ?? {};
    // Whoever asked (SIGHUP, --watch, `rcluster reload`) sees it in the log.
    if (result.ok === false) this.log.error(`reload failed: ${require('./reload_result').describeReloadFailure(result)}`);
    else this.log.info('reload done');
    return result;
  }

  /**
   * Graceful shutdown; resolves to the exit code. Not ready from now on
   * (/health 503); with a drain delay the app serves on meanwhile, new
   * connections too, then cluster.shutdown() drains it.
   */
  stop(why) {
    if (this.stopping === null) {
      const delay = this.drainDelayFor(why);
      const n = this.liveWorkers().length;
      if (delay > 0) {
        const notice = this.app.health ? '/health answers 503; ' : '';
        this.log.info(`stopping (${why}): ${notice}serving on, draining ${n} workers in ${delay} ms (--drain-delay)`);
        this.delayUnderWay = { ms: delay, ends: Date.now() + delay };
      } else {
        this.log.info(`stopping (${why}): draining ${n} workers`);
      }
      const delayed = delay > 0 ? new Promise((resolve) => {
        this.drainDelayTimer = setTimeout(resolve, delay);
      }) : Promise.resolve();
      this.stopping = delayed.then(() => {
        this.delayUnderWay = null;
        // A second signal during the delay ended it all already.
        if (this.finished) return this.exitCode;
        if (delay > 0) this.log.info(`drain delay over: draining ${this.liveWorkers().length} workers`);
        for (const w of Object.values(this.cluster.workers)) this.account(w);
        return this.cluster.shutdown().then(({ killed }) => {
          const code = killed > 0 ? EXIT.Killed : this.crashLooped ? EXIT.Failed : EXIT.Stopped;
          this.finish(code);
          return code;
        });
      });
    }
    return this.stopping;
  }

  // SIGINT is a terminal's Ctrl-C (gunicorn and nginx read it as "stop
  // now", and so do people): it waits only for a delay given explicitly.
  // SIGTERM (Kubernetes, Docker, systemd) and `rcluster stop` wait the
  // delay in effect.
  drainDelayFor(why) {
    if (why === 'SIGINT' && !this.drainDelayGiven) return 0;
    return this.drainDelay;
  }

  /** 'running'; 'draining' during the drain delay; 'stopping' while the workers drain. */
  state() {
    if (this.stopping === null) return 'running';
    return this.delayUnderWay !== null ? 'draining' : 'stopping';
  }

  onSignal(signal) {
    this.signals++;
    if (signal === 'SIGHUP') {
      this.reload('SIGHUP').catch((err) => this.log.error(`reload failed: ${err.message}`));
    } else if (signal === 'SIGTTIN') {
      this.scale(this.instances + 1);
    } else if (signal === 'SIGTTOU') {
      this.scale(Math.max(1, this.instances - 1));
    } else if (this.stopping === null) {
      this.stop(signal);
    } else {
      // The second SIGTERM/SIGINT: the operator will not wait.
      this.log.error(`${signal} again: killing the workers now`);
      for (const w of this.liveWorkers()) w.process.kill('SIGKILL');
      this.finish(128 + SIGNALS[signal]);
    }
  }

  finish(code) {
    if (this.finished) return;
    this.finished = true;
    this.exitCode = code;
    clearTimeout(this.drainDelayTimer);
    clearInterval(this.sampler);
    if (this.onUsr2 !== undefined) process.off('SIGUSR2', this.onUsr2);
    this.onFinish?.(code);
  }

  /** What `rcluster status` shows, and what metrics read. */
  async status() {
    const cluster = this.cluster;
    const stats = cluster.stats();
    const byId = new Map(stats.workers.map((w) => [w.id, w]));
    const workers = this.liveWorkers();
    const answers = await askAll(workers, 'stats', 1000);
    const now = Date.now();
    const rows = workers.map((w) => {
      const d = byId.get(w.id);
      const a = workerStats(w.id, answers.get(w.id));
      const p = procStat(w.process.pid) ?? (a ? { rss: a.rss, cpuSeconds: a.cpuSeconds } : null);
      const prev = this.cpuSample?.get(w.id);
      const cpuPercent = p && prev ? (100 * (p.cpuSeconds - prev.cpuSeconds)) / Math.max(0.001, (now - prev.at) / 1000) :
        p ? (100 * p.cpuSeconds) / Math.max(0.001, (now - this.startedAt.get(w.id)) / 1000) : null;
      const row = {
        id: w.id,
        slot: this.slotOf.get(w.id) ?? null,
        pid: w.process.pid,
        state: w.state,
        uptime: (now - this.startedAt.get(w.id)) / 1000,
        restarts: w.restarts ?? 0,
        recycles: recycleCounts(this.totals.recycles, this.slotOf.get(w.id) ?? null),
        connections: { open: a ? a.connections.open : (d ? d.inFlight : null), total: a ? a.connections.total : (d ? d.accepted : null) },
        dispatched: d ? d.accepted : 0,
        requests: a ? a.requests : null,
        rss: p ? p.rss : null,
        cpuSeconds: p ? p.cpuSeconds : null,
        cpu: cpuPercent === null ? null : Math.round(cpuPercent * 10) / 10,
        eventLoopDelay: a ? a.eventLoopDelay : null,
        // Not listening (or not ready) within listenTimeout (expectListen()).
        notListening: this.notListening.has(w.id),
      };
      return row;
    });
    this.cpuSample = new Map(rows.filter((r) => r.cpuSeconds !== null).map((r) => [r.id, { cpuSeconds: r.cpuSeconds, at: now }]));
    return {
      name: this.app.name,
      pid: process.pid,
      script: this.app.script,
      instances: this.instances,
      state: this.state(),
      // During the drain delay: its length and what is left of it, in ms.
      drainDelay: this.delayUnderWay === null ? null : { ms: this.delayUnderWay.ms, remaining: Math.max(0, this.delayUnderWay.ends - Date.now()) },
      uptime: process.uptime(),
      workers: rows,
      // Recycles by reason, every slot's.
      recycles: recycleCounts(this.totals.recycles),
      listeners: stats.listeners.map((l) => ({
        id: l.id, key: l.key, workers: l.workers, accepted: l.accepted, pending: l.pending, expired: l.expired,
      })),
      // Untrusted input this primary refused, per surface (lib/rejections.js).
      rejected: stats.rejected ?? {},
      // Where the workers' output goes: absolute paths (the same one twice
      // with --log), null for the terminal.
      logs: { out: this.logs.paths.out, err: this.logs.paths.err },
      // What needs a look: workers not listening within listenTimeout.
      warnings: workers.filter((w) => this.notListening.has(w.id)).map((w) => this.notListening.get(w.id)),
    };
  }

  /**
   * Ready for traffic: not stopping, and every listener has a worker in its
   * rotation. Before the app's first listen there is nothing to send traffic
   * to: not ready.
   */
  ready(listeners = this.cluster.stats().listeners) {
    if (this.stopping !== null) return false;
    return listeners.length > 0 && listeners.every((l) => l.workers.length > 0);
  }

  /**
   * What --health answers (lib/cli/http_endpoints.js serveHealth): live
   * until the primary has finished (draining too), ready as ready(); the
   * workers in every listener's rotation of those alive; the bus's Redis
   * link with bus.redis, which is told but never makes the app unready
   * (it serves on, messages and counters stay on this machine meanwhile).
   */
  health() {
    const { listeners } = this.cluster.stats();
    const workers = this.liveWorkers();
    const inRotation = listeners.length === 0 ? 0 :
      workers.filter((w) => listeners.every((l) => l.workers.includes(w.id))).length;
    return {
      live: !this.finished,
      ready: this.ready(listeners),
      draining: this.stopping !== null,
      workers: { ready: inRotation, total: workers.length },
      redis: require('../bus/bus').redisLink(),
    };
  }
}

// The value of `name` in /proc/PID/environ (Linux), as a slot number.
const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
const isSeconds = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

// A worker's answer to 'stats' (lib/cli/worker_hook.js), or null. The worker
// runs the app's code: what it answers is checked field by field before
// `status` and /metrics use it, so one worker cannot fail them for all.
function workerStats(id, a) {
  if (a === undefined) return null;
  const ok = a !== null && typeof a === 'object' &&
    a.connections !== null && typeof a.connections === 'object' &&
    isCount(a.connections.open) && isCount(a.connections.total) && isCount(a.requests) &&
    isCount(a.rss) && isSeconds(a.cpuSeconds) &&
    a.eventLoopDelay !== null && typeof a.eventLoopDelay === 'object' &&
    isSeconds(a.eventLoopDelay.p50) && isSeconds(a.eventLoopDelay.p99) && isSeconds(a.eventLoopDelay.max);
  if (!ok) {
    rejections.reject('workerStats', `worker ${id} answered 'stats' with a malformed value`);
    return null;
  }
  const { p50, p99, max } = a.eventLoopDelay;
  return {
    connections: { open: a.connections.open, total: a.connections.total },
    requests: a.requests, rss: a.rss, cpuSeconds: a.cpuSeconds, eventLoopDelay: { p50, p99, max },
  };
}

function slotFromEnviron(pid, name) {
  try {
    const prefix = `${name}=`;
    const entry = require('fs').readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').find((e) => e.startsWith(prefix));
    const slot = entry === undefined ? NaN : Number(entry.slice(prefix.length));
    return Number.isInteger(slot) ? slot : null;
  } catch {
    return null;
  }
}

function describeEnd(info) {
  if (info.reason === 'signal') return `was killed by ${info.signal}`;
  if (info.reason === 'exit') return `exited with code ${info.code}`;
  return `ended (${info.reason})`;
}

module.exports = { Runner, EXIT };
