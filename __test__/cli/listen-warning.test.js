'use strict';
// A worker that never listens (its port taken, its listen error swallowed)
// gets one warning after listenTimeout, and `status` shows it, until it
// listens.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, FIXTURES } = require('./cli-process');

const settle = (ms) => new Promise((r) => setTimeout(r, ms));

test('a worker whose listen fails silently: one warning after --listen-timeout, shown in status until it listens', async (t) => {
  const port = await freePort();
  // The port, held by another process (this one) as a stale server would.
  const holder = net.createServer().listen(port, '127.0.0.1');
  await new Promise((r) => holder.once('listening', r));
  t.after(() => holder.close());
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '1', '--listen-timeout', '1000', '--control', control, 'swallow-listen.js'], { cwd: FIXTURES, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  const [m] = await app.waitFor(/rcluster: warning: worker (\d+) \(slot 0\) has not listened after 1 s \(pid (\d+)\): is its port in use, or its listen error swallowed\?/);
  const s = await statusUntil(control, (x) => x.workers.length === 1);
  assert.strictEqual(String(s.workers[0].id), m[1]);
  assert.strictEqual(String(s.workers[0].pid), m[2]);
  assert.strictEqual(s.workers[0].notListening, true);
  assert.deepStrictEqual(s.warnings, [`worker ${m[1]} (slot 0) has not listened after 1 s (pid ${m[2]})`]);
  const text = await cli(['status', '--control', control]);
  assert.strictEqual(text.code, 0, text.stderr);
  assert.match(text.stdout, /online \(not listening\)/);
  assert.match(text.stdout, /^warning: worker \d+ \(slot 0\) has not listened after 1 s/m);
  await settle(1500);
  assert.strictEqual([...app.err.matchAll(/has not listened/g)].length, 1, 'one warning, not one per interval');

  // The port is freed: the app's next try listens, and the warning is gone.
  await new Promise((r) => holder.close(r));
  await app.waitFor(/rcluster: worker \d+ \(slot 0\) is listening now/);
  assert.strictEqual((await get(port, '/')).body, 'ok');
  const after = await statusUntil(control, (x) => x.workers.length === 1 && x.workers[0].state === 'listening');
  assert.strictEqual(after.workers[0].notListening, false);
  assert.deepStrictEqual(after.warnings, []);
  assert.doesNotMatch((await cli(['status', '--control', control])).stdout, /not listening|warning/);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('a worker that listens in time gets no warning', async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--listen-timeout', '1000', '--control', control, 'swallow-listen.js'], { cwd: FIXTURES, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await statusUntil(control, (x) => x.workers.length === 2 && x.workers.every((w) => w.state === 'listening'));
  await settle(1500);
  assert.doesNotMatch(app.err, /warning/);
  const s = await statusUntil(control, (x) => x.workers.length === 2);
  assert.deepStrictEqual(s.warnings, []);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('with --wait-ready: the warning is about process.send(\'ready\'), and clears when it comes', async (t) => {
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '1', '--wait-ready', '--listen-timeout', '1000', '--control', control, 'ready-late.js'], { cwd: FIXTURES, env: { READY_AFTER_MS: '2500' } });
  t.after(() => app.killGroup());
  await app.waitFor(/rcluster: warning: worker \d+ \(slot 0\) has not said it is ready after 1 s \(pid \d+\): does it call process\.send\('ready'\)\?/);
  const s = await statusUntil(control, (x) => x.workers.length === 1);
  assert.strictEqual(s.warnings.length, 1);
  await app.waitFor(/rcluster: worker \d+ \(slot 0\) is ready now/);
  const after = await statusUntil(control, (x) => x.workers.length === 1);
  assert.deepStrictEqual(after.warnings, []);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
