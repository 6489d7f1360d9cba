'use strict';
// Connect-to-first-response probe, run by bench/run.js next to the load tool.
//
// Load tools time requests, not connections. wrk starts a request's clock
// when it writes it, once the handshake is done; autocannon when it hands it
// to its socket, which for the first requests of a connection is when it
// starts connecting. Under keep-alive each connection is opened once, at the
// start, and a request still unanswered when the run ends counts nowhere
// (short of the 10 s timeout). So how long a new connection waits to be
// accepted and served under load hardly shows in their latencies, and a
// server that leaves connections waiting can even look faster: the fewer
// connections it serves, the less they queue.
// The probe measures what a new visitor waits for: it opens a fresh connection
// at a steady pace, writes one request at once (queued until the handshake
// completes), and records the time from connect() to the first response byte.
//
// Probe requests ask for PROBE_PATH; bench/server.js counts them apart, so
// run.js can take them out of the workers' connection and request counters.

const net = require('node:net');

const PROBE_PATH = '/bench-probe';
// Probes start this long after the load tool is spawned: autocannon needs
// about 0.5-0.7 s to start node and connect, and the probe is meant to see
// the server under the running load, not before it.
const START_DELAY_MS = 1000;
// The load tools' request timeout (lib/load.js), so a probe gives up no
// earlier than their requests do.
const TIMEOUT_MS = 10000;

/**
 * Opens up to `max` probe connections to 127.0.0.1:port, one every
 * intervalMs, between START_DELAY_MS and `seconds` after the call, and
 * resolves once every probe has finished or timed out (at most TIMEOUT_MS
 * after the last one started). Never rejects; failures are counted.
 */
async function runProbes({ port, seconds, intervalMs, max }) {
  const count = Math.min(max, Math.max(0, Math.floor((seconds * 1000 - START_DELAY_MS) / intervalMs) + 1));
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < count; i++) {
    // Paced against the start time, not the previous probe, so a slow
    // event-loop turn does not stretch the schedule.
    const due = started + START_DELAY_MS + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(probeOnce(port));
  }
  return summarizeProbes(await Promise.all(pending), intervalMs);
}

// One probe: { ok, connectMs, firstByteMs } or { ok: false, error }.
function probeOnce(port) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connectMs = null;
    let settled = false;
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout', connectMs }), TIMEOUT_MS);
    socket.setNoDelay(true);
    socket.write(`GET ${PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    socket.once('connect', () => { connectMs = performance.now() - t0; });
    socket.once('data', (chunk) => {
      const firstByteMs = performance.now() - t0;
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString('latin1', 0, 16));
      if (status && status[1][0] === '2') finish({ ok: true, connectMs, firstByteMs });
      else finish({ ok: false, error: status ? `status ${status[1]}` : 'not an HTTP response', connectMs });
    });
    socket.on('error', (err) => finish({ ok: false, error: err.code || err.message, connectMs }));
    socket.on('close', () => finish({ ok: false, error: 'closed before responding', connectMs }));
  });
}

function summarizeProbes(results, intervalMs) {
  const ok = results.filter((r) => r.ok);
  const errors = {};
  for (const r of results) if (!r.ok) errors[r.error] = (errors[r.error] || 0) + 1;
  const firstByte = ok.map((r) => r.firstByteMs);
  const connect = results.map((r) => r.connectMs).filter((v) => v !== null);
  return {
    intervalMs,
    attempted: results.length,
    ok: ok.length,
    failed: results.length - ok.length,
    errors,
    firstByteMs: percentiles(firstByte),
    // Until the handshake completed: the kernel completes it for a listening
    // socket whose accept queue has room, before the server accepts.
    connectMs: percentiles(connect),
    samplesFirstByteMs: firstByte.map((v) => Number(v.toFixed(3))),
    samplesConnectMs: connect.map((v) => Number(v.toFixed(3))),
  };
}

// Nearest-rank percentiles; null when there are no samples.
function percentiles(values) {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const at = (p) => v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
  return { n: v.length, p50: at(50), p99: at(99), mean: v.reduce((a, b) => a + b, 0) / v.length, max: v[v.length - 1] };
}

module.exports = { runProbes, probeOnce, PROBE_PATH, percentiles };
