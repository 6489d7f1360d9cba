'use strict';
// --metrics: Prometheus text that promtool accepts, with the dispatcher's
// counters, the workers' resources, restarts by reason, counters that stay
// monotonic across a worker's restart, and the app's prom-client metrics
// summed over its workers; the same text from cluster.metrics() in a worker.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Cli, tmpdir, freePort, get, statusUntil, FIXTURES } = require('./cli-process');

const promtool = spawnSync('promtool', ['--version']).status === 0;

function check(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}\n${text}`);
}

// `name{labels} value` lines -> [{ labels, value }].
function samples(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/);
    if (m && m[1] === name) {
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      out.push({ labels, value: Number(m[3]) });
    }
  }
  return out;
}

const sum = (xs) => xs.reduce((n, x) => n + x.value, 0);

// The prom-client app on 2 workers, with /metrics and a control socket,
// once both listen.
async function startPromApp(t) {
  const port = await freePort();
  const mport = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--metrics', `127.0.0.1:${mport}`, '--control', control, 'app.js'],
    { cwd: path.join(FIXTURES, 'prom-app'), env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  return { port, mport, control, app };
}

test('/metrics passes promtool, sums the app\'s prom-client counters, and stays monotonic across a restart', { skip: !promtool && 'promtool not installed (Debian: apt-get install prometheus)' }, async (t) => {
  const { port, mport, control, app } = await startPromApp(t);
  for (let i = 0; i < 10; i++) await get(port, '/a');
  for (let i = 0; i < 4; i++) await get(port, '/b');

  const first = await get(mport, '/metrics');
  assert.strictEqual(first.status, 200);
  check(first.body);
  const reqs = samples(first.body, 'app_requests_total');
  assert.deepStrictEqual(reqs.map((x) => [x.labels.route, x.value]).sort(), [['/a', 10], ['/b', 4]], 'summed over both workers');
  assert.strictEqual(sum(samples(first.body, 'app_request_seconds_count')), 14);
  assert.strictEqual(sum(samples(first.body, 'rcluster_connections_accepted_total')), 14);
  const dispatched = samples(first.body, 'rcluster_connections_dispatched_total');
  assert.deepStrictEqual(dispatched.map((x) => x.labels.slot).sort(), ['0', '1']);
  assert.strictEqual(sum(dispatched), 14);
  assert.strictEqual(samples(first.body, 'rcluster_worker_resident_memory_bytes').length, 2);
  assert.ok(samples(first.body, 'rcluster_worker_resident_memory_bytes').every((x) => x.value > 1e6));
  assert.strictEqual(samples(first.body, 'rcluster_worker_event_loop_delay_p99_seconds').length, 2);
  // Each worker's event loop as the dispatcher reads its loop stamp.
  const loops = samples(first.body, 'rcluster_worker_loop_busy_seconds');
  assert.deepStrictEqual(loops.map((x) => x.labels.slot).sort(), ['0', '1']);
  assert.ok(loops.every((x) => x.value >= 0 && x.value < 1), JSON.stringify(loops));
  assert.deepStrictEqual(samples(first.body, 'rcluster_up'), [{ labels: {}, value: 1 }]);
  // The dispatcher's accept-to-acknowledgement histogram: one time per connection.
  assert.deepStrictEqual(samples(first.body, 'rcluster_dispatch_ack_seconds_count'), [{ labels: {}, value: 14 }]);
  const buckets = samples(first.body, 'rcluster_dispatch_ack_seconds_bucket');
  assert.strictEqual(buckets.at(-1).labels.le, '+Inf');
  assert.strictEqual(buckets.at(-1).value, 14);
  assert.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1].value), 'cumulative');
  assert.ok(buckets.find((b) => b.labels.le === '1').value === 14, 'loopback connections are acknowledged within a second');
  assert.ok(samples(first.body, 'rcluster_dispatch_ack_seconds_sum')[0].value > 0);
  assert.deepStrictEqual(samples(first.body, 'rcluster_connections_refused_total'), [{ labels: {}, value: 0 }]);

  // Slot 0's worker is killed; its replacement keeps the slot, and the
  // slot's counters go on from where they were.
  const before = await statusUntil(control, (x) => x.workers.length === 2);
  const victim = before.workers.find((w) => w.slot === 0);
  const beforeSlot0 = dispatched.find((x) => x.labels.slot === '0').value;
  await new Promise((r) => setTimeout(r, 1200)); // a sample of the victim's counts
  process.kill(victim.pid, 'SIGKILL');
  await statusUntil(control, (x) => x.workers.length === 2 && x.workers.every((w) => w.pid !== victim.pid && w.state === 'listening') && x.listeners[0].workers.length === 2);
  for (let i = 0; i < 6; i++) await get(port, '/a');
  const second = await get(mport, '/metrics');
  check(second.body);
  const restarts = samples(second.body, 'rcluster_worker_restarts_total');
  assert.deepStrictEqual(restarts, [{ labels: { slot: '0', reason: 'signal' }, value: 1 }]);
  const d2 = samples(second.body, 'rcluster_connections_dispatched_total');
  assert.ok(d2.find((x) => x.labels.slot === '0').value >= beforeSlot0, 'slot 0 never goes down');
  assert.strictEqual(sum(d2), 20, 'every connection counted once, before and after the restart');
  assert.strictEqual(sum(samples(second.body, 'rcluster_connections_accepted_total')), 20);

  // The app's own /metrics, from cluster.metrics() in a worker.
  const own = await get(port, '/metrics');
  assert.strictEqual(own.status, 200);
  check(own.body);
  assert.ok(samples(own.body, 'rcluster_workers')[0].value === 2, own.body);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('a worker too busy to answer is left out of the scrape, which still succeeds', { skip: !promtool && 'promtool not installed' }, async (t) => {
  const { mport, control, app } = await startPromApp(t);
  const s = await statusUntil(control, (x) => x.workers.length === 2);
  // SIGSTOP: the worker cannot answer at all.
  process.kill(s.workers[0].pid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(s.workers[0].pid, 'SIGCONT');
    } catch {}
  });
  const t0 = Date.now();
  const r = await get(mport, '/metrics', { timeout: 10000 });
  assert.strictEqual(r.status, 200);
  assert.ok(Date.now() - t0 < 5000, `the scrape took ${Date.now() - t0} ms`);
  check(r.body);
  assert.strictEqual(samples(r.body, 'rcluster_worker_resident_memory_bytes').length, 2, 'its RSS comes from /proc');
  assert.strictEqual(samples(r.body, 'rcluster_worker_event_loop_delay_p99_seconds').length, 1, 'only the answering worker');
  process.kill(s.workers[0].pid, 'SIGCONT');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
