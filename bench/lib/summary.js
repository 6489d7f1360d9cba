'use strict';
// Turns raw per-round measurements into one summary row per config and
// workload. Only numbers that were measured appear; anything missing stays null.

const { CONFIGS, WORKLOADS, loadSettings } = require('./options');
const { percentiles } = require('./probe');

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

// Element-wise sum of per-worker arrays (rounds may, in a broken run, report
// different worker counts; missing entries count as 0).
function sumPerWorker(arrays) {
  const n = Math.max(0, ...arrays.map((a) => a.length));
  return Array.from({ length: n }, (_, i) => sum(arrays.map((a) => a[i] || 0)));
}

function summarize(measurements, opts) {
  const rows = [];
  for (const workload of opts.workloads) {
    for (const config of opts.configs) {
      rows.push(summarizeOne(measurements, config, workload, opts));
    }
  }
  addRatios(rows);
  return rows;
}

function summarizeOne(measurements, config, workload, opts) {
  const row = { config, label: CONFIGS[config].label, workload, tool: loadSettings(opts, workload).tool };
  if (!applicable(config, workload)) return { ...row, applicable: false };
  const mine = measurements.filter((m) => m.config === config && m.workload === workload);
  const ok = mine.filter((m) => m.ok);
  Object.assign(row, {
    applicable: true,
    roundsOk: ok.length,
    roundsFailed: mine.filter((m) => !m.ok).length,
    failures: mine.filter((m) => !m.ok).map((m) => ({ round: m.round, error: m.error, stderrTail: m.stderrTail })),
  });
  if (ok.length === 0) return row;

  const rps = ok.map((m) => m.client.rps);
  const latencyValid = ok.every((m) => m.client.latencyValid);
  const conns = sumPerWorker(ok.map((m) => m.server.perWorker.map((w) => w.connections)));
  const reqs = sumPerWorker(ok.map((m) => m.server.perWorker.map((w) => w.requests)));
  return Object.assign(row, {
    rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps), perRound: rps },
    serverRps: median(ok.map((m) => m.server.requests / m.client.seconds)),
    latencyValid,
    // mixed: the fast requests of all rounds pooled, as a round has too few
    // for a p99 of its own.
    latencyMs: ok.every((m) => m.client.fastSamples) ? pooled(ok.flatMap((m) => m.client.fastSamples)) : latencyValid ? {
      p50: median(ok.map((m) => m.client.latencyMs.p50)),
      p99: median(ok.map((m) => m.client.latencyMs.p99)),
      mean: median(ok.map((m) => m.client.latencyMs.mean)),
      max: median(ok.map((m) => m.client.latencyMs.max)),
    } : null,
    slowP99Ms: ok.every((m) => m.client.slowLatencyMs) ? median(ok.map((m) => m.client.slowLatencyMs.p99)) : null,
    // heavy-*: fast requests answered behind a slow one, over all rounds, and
    // their share of the fast requests.
    behindSlow: ok.every((m) => typeof m.client.behindSlow === 'number') ? {
      count: sum(ok.map((m) => m.client.behindSlow)),
      share: sum(ok.map((m) => m.client.behindSlow)) / Math.max(1, sum(ok.map((m) => m.client.fastSamples.length))),
    } : null,
    probe: summarizeProbe(ok.map((m) => m.probe).filter(Boolean)),
    failureCount: sum(ok.map((m) => m.client.failures.errors + m.client.failures.timeouts + m.client.failures.non2xx)),
    failureParts: {
      errors: sum(ok.map((m) => m.client.failures.errors)),
      timeouts: sum(ok.map((m) => m.client.failures.timeouts)),
      non2xx: sum(ok.map((m) => m.client.failures.non2xx)),
    },
    connectionsPerWorker: conns,
    requestsPerWorker: reqs,
    requestsPerConnection: sum(conns) > 0 ? sum(reqs) / sum(conns) : null,
    clientSent: ok.every((m) => typeof m.client.sent === 'number') ? sum(ok.map((m) => m.client.sent)) : null,
    clientCompleted: sum(ok.map((m) => m.client.requests)),
    primaryCpuSeconds: CONFIGS[config].single ? null : median(ok.map((m) => m.server.primaryCpu)),
    processCpuSeconds: median(ok.map((m) => m.server.primaryCpu)),
    // The primary's CPU (all its threads: dispatcher and JS) per connection
    // it handed out, probes included: what one dispatch costs.
    primaryCpuUsPerConnection: CONFIGS[config].single ? null : median(ok.map(primaryCpuUsPerConnection)),
    workerCpuSeconds: median(ok.map((m) => m.server.workerCpu)),
    clientServerMismatch: ok.filter((m) => m.mismatch).map((m) => ({ round: m.round, ...m.mismatch })),
    fewAccepted: WORKLOADS[workload].churn ? [] : ok
      .filter((m) => m.server.connections < loadSettings(opts, workload).connections)
      .map((m) => ({ round: m.round, accepted: m.server.connections, expected: loadSettings(opts, workload).connections })),
  });
}

function primaryCpuUsPerConnection(m) {
  const dealt = m.server.connections + m.server.probes;
  if (m.server.primaryCpu === null || dealt <= 0) return null;
  return (m.server.primaryCpu * 1e6) / dealt;
}

// The probe's samples of all rounds pooled: a round holds at most a couple of
// hundred, too few for a p99 of its own.
function summarizeProbe(probes) {
  if (probes.length === 0) return null;
  const errors = {};
  for (const p of probes) for (const [k, v] of Object.entries(p.errors)) errors[k] = (errors[k] || 0) + v;
  return {
    attempted: sum(probes.map((p) => p.attempted)),
    ok: sum(probes.map((p) => p.ok)),
    failed: sum(probes.map((p) => p.failed)),
    errors,
    firstByteMs: percentiles(probes.flatMap((p) => p.samplesFirstByteMs)),
    connectMs: percentiles(probes.flatMap((p) => p.samplesConnectMs)),
  };
}

function pooled(samples) {
  const p = percentiles(samples);
  if (!p) return null;
  return { p50: p.p50, p99: p.p99, mean: samples.reduce((a, b) => a + b, 0) / samples.length, max: p.max };
}

function applicable(config, workload) {
  const w = WORKLOADS[workload];
  if (w.configs && !w.configs.includes(config)) return false;
  return !(CONFIGS[config].single && w.needsPrimary);
}

function addRatios(rows) {
  for (const row of rows) {
    const base = (id) => rows.find((r) => r.config === id && r.workload === row.workload);
    row.vsNodeRr = ratio(row, base('node-rr'));
    row.vsNodeNone = ratio(row, base('node-none'));
  }
}

function ratio(row, base) {
  if (!row.rps || !base || !base.rps || !base.rps.median) return null;
  return row.rps.median / base.rps.median;
}

module.exports = { summarize, applicable, median, primaryCpuUsPerConnection };
