'use strict';
// Runs one bounded load against 127.0.0.1 with wrk or autocannon and returns
// the numbers in one shape, whichever tool produced them.

const path = require('node:path');
const { spawn } = require('node:child_process');

const WRK_SCRIPT = path.join(__dirname, '..', 'wrk-report.lua');
const MIXED_CLIENT = path.join(__dirname, 'mixed-client.js');
const HEAVY_CLIENT = path.join(__dirname, 'heavy-client.js');
const AUTOCANNON_BIN = require.resolve('autocannon/autocannon.js', { paths: [path.join(__dirname, '..', '..')] });
const REQUEST_TIMEOUT_S = 10; // per request, both tools
const KILL_GRACE_S = 20; // the tool gets duration + this before we kill it

// spec: { tool, port, seconds, connections, threads, churn, pipelining }
function buildCommand(spec) {
  const url = `http://127.0.0.1:${spec.port}/`;
  const pipelining = spec.pipelining || 1;
  if (spec.tool === 'mixed') {
    return {
      file: process.execPath,
      args: [MIXED_CLIENT, '--port', String(spec.port), '--seconds', String(spec.seconds), '--rate', String(spec.rate)],
    };
  }
  if (spec.tool === 'heavy') {
    const { mode, rate, concurrency, slow } = spec.heavy;
    return {
      file: process.execPath,
      args: [HEAVY_CLIENT, '--port', String(spec.port), '--seconds', String(spec.seconds), '--mode', mode,
        ...(mode === 'open' ? ['--rate', String(rate)] : ['--concurrency', String(concurrency)]), '--slow', slow ? '1' : '0'],
    };
  }
  if (spec.tool === 'wrk') {
    // wrk pipelines only through a per-request Lua hook, which would leave its
    // fast path and make it a different client; the workloads that pipeline
    // name autocannon (lib/options.js).
    if (pipelining > 1) throw new Error('wrk is not used for pipelined workloads');
    const args = [`-t${spec.threads}`, `-c${spec.connections}`, `-d${Math.max(1, Math.round(spec.seconds))}s`,
      '--timeout', `${REQUEST_TIMEOUT_S}s`, '-s', WRK_SCRIPT];
    if (spec.churn) args.push('-H', 'Connection: close');
    args.push(url);
    return { file: 'wrk', args };
  }
  const args = [AUTOCANNON_BIN, '-c', String(spec.connections), '-d', String(spec.seconds),
    '-t', String(REQUEST_TIMEOUT_S), '-j', '-n'];
  if (pipelining > 1) args.push('-p', String(pipelining));
  if (spec.churn) args.push('-H', 'Connection: close');
  args.push(url);
  return { file: process.execPath, args };
}

async function runLoad(spec) {
  const cmd = buildCommand(spec);
  const { stdout, stderr, code, signal } = await run(cmd.file, cmd.args, (spec.seconds + KILL_GRACE_S) * 1000);
  const commandLine = [cmd.file, ...cmd.args].map(shellQuote).join(' ');
  if (code !== 0) {
    throw new Error(`${spec.tool} failed (code ${code}, signal ${signal}): ${(stderr || stdout).trim().slice(-500)}`);
  }
  const result = spec.tool === 'wrk' ? parseWrk(stdout) : (spec.tool === 'mixed' || spec.tool === 'heavy') ? parseMixed(stdout) : parseAutocannon(stdout);
  // autocannon's latency is meaningless under Connection: close (see
  // bench/README.md): after each response it writes the next request onto
  // the closing socket, and that request's start time stays queued, so every
  // later sample on that connection slot includes all earlier stale waits.
  result.latencyValid = !(spec.tool === 'autocannon' && spec.churn);
  result.command = commandLine;
  return result;
}

// wrk-report.lua prints one `WRK_JSON {...}` line from wrk's done() hook.
function parseWrk(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no WRK_JSON line:\n${stdout.slice(-500)}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length));
  const seconds = r.duration_us / 1e6;
  return {
    requests: r.requests,
    sent: null, // wrk does not report requests written
    seconds,
    rps: r.requests / seconds,
    latencyMs: { p50: r.latency_us.p50 / 1000, p99: r.latency_us.p99 / 1000, mean: r.latency_us.mean / 1000, max: r.latency_us.max / 1000 },
    // wrk: connect/read/write are socket errors, status counts responses >= 400.
    failures: {
      errors: r.errors.connect + r.errors.read + r.errors.write,
      timeouts: r.errors.timeout,
      non2xx: r.errors.status,
    },
    raw: r,
  };
}

// lib/mixed-client.js and lib/heavy-client.js: the latency is the fast
// requests'; the slow ones' is kept beside it.
function parseMixed(stdout) {
  const r = JSON.parse(stdout);
  return {
    requests: r.requests,
    sent: null,
    seconds: r.seconds,
    rps: r.requests / r.seconds,
    latencyMs: { p50: r.fast.p50, p99: r.fast.p99, mean: r.fast.mean, max: r.fast.max },
    // None without slow requests (heavy-*-alone).
    slowLatencyMs: r.slow.count > 0 ? { p50: r.slow.p50, p99: r.slow.p99, mean: r.slow.mean, max: r.slow.max } : null,
    fastSamples: r.fastSamples,
    // heavy-client.js only: fast requests answered behind a slow one.
    behindSlow: typeof r.behindSlow === 'number' ? r.behindSlow : null,
    failures: { errors: r.errors, timeouts: r.timeouts, non2xx: r.non2xx },
    raw: { ...r, fastSamples: undefined },
  };
}

function parseAutocannon(stdout) {
  const r = JSON.parse(stdout);
  return {
    requests: r.requests.total,
    sent: r.requests.sent, // more than `requests` under churn: see runLoad()
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, mean: r.latency.mean, max: r.latency.max },
    // autocannon's `errors` already includes its `timeouts`; split them so
    // that errors + timeouts + non2xx does not count a timeout twice.
    failures: { errors: r.errors - r.timeouts, timeouts: r.timeouts, non2xx: r.non2xx },
    raw: {
      requests: r.requests, latency: r.latency, errors: r.errors, timeouts: r.timeouts,
      non2xx: r.non2xx, '2xx': r['2xx'], duration: r.duration, statusCodeStats: r.statusCodeStats,
      pipelining: r.pipelining, resets: r.resets,
    },
  };
}

// Spawns a command, collects its output, and kills it (by its own pid) if it
// outlives timeoutMs, so a wedged load tool cannot hang the run.
function run(file, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr = (stderr + c).slice(-8192); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ stdout, stderr, code, signal }); });
  });
}

function shellQuote(s) {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

module.exports = { runLoad, buildCommand, shellQuote };
