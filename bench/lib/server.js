'use strict';
// Starting, inspecting and stopping one instance of bench/server.js.
//
// The server runs in its own process group (detached), so stopping it means
// signalling that group: the primary and every worker it forked, even if the
// primary is wedged or already dead, and nothing that this runner did not start.

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { cpuSeconds, processGroupMembers } = require('./proc');

const SERVER_JS = path.join(__dirname, '..', 'server.js');
const READY_TIMEOUT_MS = 15000;
// Each worker adds to the start on a small machine (64 on 2 cores take ~10 s).
const READY_MS_PER_WORKER = 400;
const STDERR_KEEP = 16 * 1024;

// A port that was free a moment ago. The tiny race with other programs is
// acceptable on a benchmark machine; using a fixed port per start avoids
// depending on how an implementation shares listen(0) between workers.
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// Starts the server and resolves once it printed READY. Rejects (after
// killing whatever was started) if it exits or stays silent too long; the
// error carries the stderr tail so the report can show why. `script` is
// another server speaking the same protocol (bench/chaos-server.js).
async function startServer(env, script = SERVER_JS) {
  const port = await freePort();
  const statsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-bench-'));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, ...env, BENCH_PORT: String(port), BENCH_STATS_DIR: statsDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: see stopServer()
  });
  const readyMs = READY_TIMEOUT_MS + READY_MS_PER_WORKER * (Number(env.BENCH_WORKERS) || 0);
  const server = { child, pid: child.pid, port, statsDir, stderr: '', exited: null, readyMs };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { server.stderr = (server.stderr + chunk).slice(-STDERR_KEEP); });
  child.on('exit', (code, signal) => { server.exited = { code, signal }; });

  try {
    await waitForReady(server);
  } catch (err) {
    await stopServer(server);
    err.stderrTail = tail(server.stderr);
    throw err;
  }
  return server;
}

function waitForReady(server) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => finish(new Error(`no READY within ${server.readyMs} ms`)), server.readyMs);
    const onData = (chunk) => {
      stdout += chunk;
      const match = /^READY (\d+)$/m.exec(stdout);
      if (!match) return;
      if (Number(match[1]) !== server.port) finish(new Error(`READY on port ${match[1]}, asked for ${server.port}`));
      else finish(null);
    };
    const onExit = (code, signal) => finish(new Error(`server exited before READY (code ${code}, signal ${signal})`));
    function finish(err) {
      clearTimeout(timer);
      server.child.stdout.off('data', onData);
      server.child.off('exit', onExit);
      server.child.stdout.resume(); // keep draining so the pipe never fills
      if (err) reject(err); else resolve();
    }
    server.child.stdout.setEncoding('utf8');
    server.child.stdout.on('data', onData);
    server.child.once('exit', onExit);
  });
}

// Per-worker counters as last written by the workers, sorted by worker id.
function readWorkerStats(server) {
  const stats = [];
  for (const name of fs.readdirSync(server.statsDir)) {
    if (!/^worker-.*\.json$/.test(name)) continue;
    try {
      stats.push(JSON.parse(fs.readFileSync(path.join(server.statsDir, name), 'utf8')));
    } catch { /* renamed into place atomically, so this is a vanished worker */ }
  }
  return stats.sort((a, b) => a.id - b.id);
}

// One sample of everything measured on the server side.
function sampleServer(server) {
  const workers = readWorkerStats(server);
  return {
    at: process.hrtime.bigint(),
    primaryCpu: cpuSeconds(server.pid),
    workers: workers.map((w) => ({ ...w, cpu: cpuSeconds(w.pid) })),
  };
}

// SIGTERM to the whole group, SIGKILL to whatever is left after a grace
// period, then wait until no process of the group is alive. Resolves with the
// pids that survived even SIGKILL (normally none).
async function stopServer(server) {
  const pgid = server.pid;
  signalGroup(pgid, 'SIGTERM');
  if (!(await waitUntil(() => processGroupMembers(pgid).length === 0, 2000))) {
    signalGroup(pgid, 'SIGKILL');
    await waitUntil(() => processGroupMembers(pgid).length === 0, 3000);
  }
  // Reap the primary so it does not linger as a zombie.
  await waitUntil(() => server.exited !== null, 1000);
  fs.rmSync(server.statsDir, { recursive: true, force: true });
  return processGroupMembers(pgid);
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err; // ESRCH: the group is already gone
  }
}

async function waitUntil(predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tail(text, lines = 20) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

module.exports = { startServer, sampleServer, stopServer, sleep, tail, freePort };
