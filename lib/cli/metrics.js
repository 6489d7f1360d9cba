'use strict';
// Prometheus text (exposition format 0.0.4): the dispatcher's counters, each
// worker's resources, restarts and recycles and their reasons, and the app's own
// prom-client metrics from every worker, aggregated as prom-client's
// AggregatorRegistry does (counters summed, ...), using the app's own copy of
// prom-client: rcluster does not depend on it. A worker that does not answer
// within the deadline is left out of that scrape; the scrape still succeeds.
//
// Counters stay monotonic across worker restarts: they are kept per slot
// (NODE_APP_INSTANCE), and the primary adds a worker's last counts to its
// slot's total when it exits.
const { createRequire } = require('module');
const path = require('path');
const { askAll } = require('./ask');
const rejections = require('../rejections');

const WORKER_TIMEOUT_MS = 1000;

function esc(v) {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(obj) {
  const parts = Object.entries(obj).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

class Text {
  constructor() {
    this.lines = [];
  }

  metric(name, type, help, samples) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  }

  histogram(name, help, { bounds, buckets, count, sum }) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    bounds.forEach((le, i) => this.lines.push(`${name}_bucket{le="${le}"} ${buckets[i]}`));
    this.lines.push(`${name}_bucket{le="+Inf"} ${count}`, `${name}_sum ${sum}`, `${name}_count ${count}`);
  }

  toString() {
    return `${this.lines.join('\n')}\n`;
  }
}

// The listener's address from its key ("address:port:addressType:fd:index").
function listenerLabel(key) {
  const parts = key.split(':');
  return parts.length >= 5 ? parts.slice(0, -3).join(':') : key;
}

function promClientOf(app) {
  try {
    return createRequire(path.join(app.dir, 'noop.js'))('prom-client');
  } catch {
    return null;
  }
}

// A counter never goes down, even if the counts a dead worker took with it
// made the sum smaller than what was reported before.
function monotonic(runner, key, value) {
  runner.reported ??= new Map();
  const v = Math.max(runner.reported.get(key) ?? 0, value);
  runner.reported.set(key, v);
  return v;
}

/** The text of /metrics (and of cluster.metrics()). */
async function metricsText(runner) {
  // The app's metrics first: a worker's answer refused there is counted in
  // this scrape's rcluster_rejected_inputs_total.
  const app = await appMetrics(runner);
  const status = await runner.status();
  const t = new Text();
  const L = status.listeners;
  t.metric('rcluster_connections_accepted_total', 'counter', 'Connections the dispatcher accepted, per listener.',
    L.map((l) => [{ listener: listenerLabel(l.key) }, l.accepted]));
  t.metric('rcluster_connections_pending', 'gauge', 'Connections accepted and waiting for a worker, per listener.',
    L.map((l) => [{ listener: listenerLabel(l.key) }, l.pending]));
  t.metric('rcluster_connections_expired_total', 'counter', 'Connections closed after waiting queueTimeout for a worker, per listener.',
    L.map((l) => [{ listener: listenerLabel(l.key) }, l.expired]));
  const acks = runner.cluster.stats();
  if (acks.ackLatency !== undefined) {
    t.metric('rcluster_connections_refused_total', 'counter', 'Offers of a connection that a worker refused (maxConnections, closing).', [[{}, acks.refused]]);
    t.metric('rcluster_connections_taken_back_total', 'counter', 'Connections taken back from a worker whose event loop stayed busy before it read them, and dealt to another.', [[{}, acks.takenBack]]);
    t.histogram('rcluster_dispatch_ack_seconds', 'Time from the primary\'s accept of a connection to the acknowledgement of the worker that took it.', acks.ackLatency);
  }
  t.metric('rcluster_rejected_inputs_total', 'counter', 'Untrusted input refused, per surface (docs/SECURITY.md).',
    Object.entries(acks.rejected ?? {}).map(([surface, n]) => [{ surface }, n]));
  t.metric('rcluster_listener_workers', 'gauge', 'Workers in each listener\'s rotation.',
    L.map((l) => [{ listener: listenerLabel(l.key) }, l.workers.length]));

  const bySlot = new Map(status.workers.filter((w) => w.slot !== null).map((w) => [w.slot, w]));
  const slots = [...new Set([...bySlot.keys(), ...runner.totals.dispatched.keys()])].sort((a, b) => a - b);
  t.metric('rcluster_connections_dispatched_total', 'counter', 'Connections the dispatcher passed to the workers of each slot.',
    slots.map((s) => [{ slot: s }, monotonic(runner, `d${s}`, (runner.totals.dispatched.get(s) ?? 0) + (bySlot.get(s)?.dispatched ?? 0))]));
  t.metric('rcluster_worker_cpu_seconds_total', 'counter', 'CPU time (user + system) of the workers of each slot.',
    slots.map((s) => [{ slot: s }, monotonic(runner, `c${s}`, (runner.totals.cpu.get(s) ?? 0) + (bySlot.get(s)?.cpuSeconds ?? 0))]));
  const restarts = [...runner.totals.restarts].map(([key, n]) => {
    const [slot, reason] = key.split('\u0000');
    return [{ slot, reason }, n];
  });
  t.metric('rcluster_worker_restarts_total', 'counter', 'Workers replaced, per slot and reason.', restarts);
  const recycles = [...runner.totals.recycles].map(([key, n]) => {
    const [slot, reason] = key.split('\u0000');
    return [{ slot, reason }, n];
  });
  t.metric('rcluster_worker_recycles_total', 'counter',
    'Workers recycled (recycle: maxMemory, maxRequests, maxAge, cron) or killed at the hard memory limit (maxMemoryHard), per slot and reason.', recycles);
  t.metric('rcluster_workers', 'gauge', 'Worker processes alive.', [[{}, status.workers.length]]);
  t.metric('rcluster_workers_wanted', 'gauge', 'Workers the primary keeps running (instances).', [[{}, status.instances]]);
  t.metric('rcluster_up', 'gauge', '1 while ready for traffic, 0 while starting or stopping.', [[{}, runner.ready() ? 1 : 0]]);
  const w = status.workers;
  const wl = (x) => ({ slot: x.slot ?? '', worker: x.id });
  t.metric('rcluster_worker_resident_memory_bytes', 'gauge', 'Resident memory of each worker.',
    w.filter((x) => x.rss !== null).map((x) => [wl(x), x.rss]));
  t.metric('rcluster_worker_cpu_percent', 'gauge', 'CPU use of each worker since the last sample, in percent of one CPU.',
    w.filter((x) => x.cpu !== null).map((x) => [wl(x), x.cpu]));
  t.metric('rcluster_worker_event_loop_delay_p99_seconds', 'gauge', 'Event-loop delay of each worker, 99th percentile since the last sample.',
    w.filter((x) => x.eventLoopDelay !== null).map((x) => [wl(x), x.eventLoopDelay.p99]));
  t.metric('rcluster_worker_open_connections', 'gauge', 'Connections open in each worker.',
    w.filter((x) => x.connections.open !== null).map((x) => [wl(x), x.connections.open]));
  t.metric('rcluster_worker_uptime_seconds', 'gauge', 'Time since each worker was forked.',
    w.map((x) => [wl(x), x.uptime]));
  t.metric('rcluster_worker_restarts', 'gauge', 'Restarts of each worker\'s slot so far.',
    w.map((x) => [wl(x), x.restarts]));
  // Each worker's event loop as the dispatcher sees it (its loop stamp).
  const loopOf = new Map((acks.workers ?? []).map((d) => [d.id, d]));
  const stamped = w.filter((x) => typeof loopOf.get(x.id)?.loopBusyMs === 'number');
  t.metric('rcluster_worker_loop_busy_seconds', 'gauge', 'How long each worker\'s event loop has been busy, 0 while it waits for I/O (its loop stamp, as the dispatcher reads it).',
    stamped.map((x) => [wl(x), loopOf.get(x.id).loopBusyMs / 1000]));

  let text = t.toString();
  if (app) text += app.endsWith('\n') ? app : `${app}\n`;
  return text;
}

// prom-client's getMetricsAsJSON(): an array of { name, help, type, values }.
// A worker runs the app's code, so its answer is checked before prom-client
// sees it: aggregate() throws on some malformed shapes, which would fail
// every scrape because of one worker.
function isMetricsJson(answer) {
  return Array.isArray(answer) && answer.every((m) => m !== null && typeof m === 'object' &&
    typeof m.name === 'string' && typeof m.type === 'string' && Array.isArray(m.values) &&
    m.values.every((v) => v !== null && typeof v === 'object'));
}

// The app's prom-client metrics from every worker that answers in time, as one registry.
async function appMetrics(runner) {
  const workers = runner.liveWorkers();
  const answers = await askAll(workers, 'metrics', WORKER_TIMEOUT_MS);
  const arrays = [];
  for (const [id, answer] of answers) {
    if (isMetricsJson(answer)) arrays.push(answer);
    else if (answer !== null) rejections.reject('workerMetrics', `worker ${id} answered /metrics with something other than prom-client's metrics JSON`);
  }
  if (arrays.length === 0) return '';
  const prom = promClientOf(runner.app);
  if (prom === null || prom.AggregatorRegistry === undefined) return '';
  try {
    return await prom.AggregatorRegistry.aggregate(arrays).metrics();
  } catch (err) {
    rejections.reject('workerMetrics', `prom-client could not aggregate the workers' metrics: ${err.message}`);
    return '';
  }
}

module.exports = { metricsText };
