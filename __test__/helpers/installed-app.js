'use strict';
// A user's app of its own that depends on rcluster as installed from a
// package (npm pack's tarball, or the local registry of the release test),
// and running it: a 2-worker cluster, served from both workers, checked to be
// rcluster's own (the native dispatcher accepted every connection), not
// node:cluster's fallback.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { get } = require('./http-client');

/**
 * Lays out `dir` anew (removed after the test): package.json and server.js.
 * The primary prints `{ port, pids, native }` once both workers listen, and
 * on each line of stdin what its native dispatcher saw and which .node files
 * this process loaded, `{ stats, loaded }`; it exits when stdin ends.
 */
function freshApp(t, dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: path.basename(dir), version: '1.0.0', private: true }));
  fs.writeFileSync(path.join(dir, 'server.js'), `'use strict';
const cluster = require('rcluster');
const http = require('node:http');
if (cluster.isPrimary) {
  const pids = [];
  for (let i = 0; i < 2; i++) pids.push(cluster.fork().process.pid);
  let listening = 0;
  cluster.on('listening', (worker, address) => {
    if (++listening === 2) {
      console.log(JSON.stringify({ port: address.port, pids, native: typeof cluster.stats === 'function' }));
    }
  });
  process.stdin.setEncoding('utf8').on('data', () => {
    const loaded = process.report.getReport().sharedObjects.filter((f) => f.endsWith('.node'));
    const stats = typeof cluster.stats === 'function' ? cluster.stats() : null;
    console.log(JSON.stringify({ stats, loaded }));
  });
  process.stdin.on('end', () => process.exit(0));
} else {
  http.createServer((req, res) => res.end(String(process.pid))).listen(0, '127.0.0.1');
}
`);
  return dir;
}

/**
 * Runs the app's server.js, sends requests until both workers answered, and
 * checks it is rcluster's own cluster whose native dispatcher accepted them.
 * Returns `{ port, pids, stats, loaded, requests }`.
 */
async function serveFromBothWorkers(t, app) {
  const child = spawn(process.execPath, ['server.js'], { cwd: app, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  t.after(() => {
    try { process.kill(-child.pid, 'SIGKILL'); } catch {}
  });
  const lines = [];
  let waiting = null;
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    for (let nl = out.indexOf('\n'); nl !== -1; nl = out.indexOf('\n')) {
      lines.push(JSON.parse(out.slice(0, nl)));
      out = out.slice(nl + 1);
      if (waiting) waiting();
    }
  });
  const nextLine = (what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} within 20 s; stderr:\n${stderr}`)), 20000);
    const check = () => {
      if (lines.length > 0) {
        clearTimeout(timer);
        waiting = null;
        resolve(lines.shift());
      }
    };
    waiting = check;
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}); stderr:\n${stderr}`)); });
    check();
  });
  const ready = await nextLine('no workers listening');
  const answered = new Set();
  let requests = 0;
  for (; requests < 20 && answered.size < 2; requests++) {
    const res = await get(ready.port);
    assert.equal(res.status, 200);
    answered.add(Number(res.body));
  }
  assert.deepEqual([...answered].sort(), [...ready.pids].sort(), 'both workers answer');
  assert.equal(ready.native, true, `rcluster's own cluster, not node:cluster; stderr:\n${stderr}`);
  assert.doesNotMatch(stderr, /RCLUSTER_FALLBACK/, 'not node:cluster');
  child.stdin.write('stats\n');
  const report = await nextLine('no stats');
  assert.ok(report.stats, `cluster.stats() exists only on rcluster's own cluster; stderr:\n${stderr}`);
  const accepted = report.stats.listeners.reduce((sum, l) => sum + l.accepted, 0);
  assert.ok(accepted >= requests, `the native dispatcher accepted the ${requests} connections: ${JSON.stringify(report.stats.listeners)}`);
  return { port: ready.port, pids: ready.pids, ...report, requests };
}

module.exports = { freshApp, serveFromBothWorkers };
