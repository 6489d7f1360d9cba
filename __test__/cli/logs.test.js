'use strict';
// Worker output: straight through by default; with --prefix each line tagged
// with its worker's slot, with --time timestamped; colour only on a terminal
// (this output is a pipe: none).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, hasReload, NEEDS_RELOAD, FIXTURES } = require('./cli-process');

async function run(t, flags) {
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, ...flags, 'logs-app.js'], { cwd: FIXTURES, env: { FORCE_COLOR: '1' } });
  t.after(() => app.killGroup());
  return app;
}

test('without --prefix: worker output passes through untouched', async (t) => {
  const app = await run(t, []);
  await app.waitFor(/no newline from 0/);
  await app.waitFor(/no newline from 1/);
  // stderr is a pipe of its own: its lines may come after stdout's.
  await app.waitFor(/^err line from \d$/m, { count: 2 });
  assert.match(app.out, /^out line from \d$/m);
  assert.match(app.err, /^err line from \d$/m);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('--prefix --time: every line tagged [wN] with a timestamp, stdout and stderr apart, no colour on a pipe', async (t) => {
  const app = await run(t, ['--prefix', '--time']);
  await app.waitFor(/\[w0\] no newline from 0\n/);
  await app.waitFor(/\[w1\] no newline from 1\n/);
  await app.waitFor(/\[w\d\] err line from \d$/m, { count: 2 });
  const stamp = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
  for (const slot of ['0', '1']) {
    for (const line of [`out line from ${slot}`, `first of two from ${slot}`, `second of two from ${slot}`, `no newline from ${slot}`]) {
      assert.match(app.out, new RegExp(`^${stamp} \\[w${slot}\\] ${line}$`, 'm'), line);
    }
    assert.match(app.err, new RegExp(`^${stamp} \\[w${slot}\\] err line from ${slot}$`, 'm'));
  }
  assert.doesNotMatch(app.out + app.err, /\x1b\[/, 'no escape codes on a pipe');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

// A reload forks its workers past the cluster.fork property: their output
// must be tagged too, and read, or a worker writing more than a pipe holds
// blocks and `rcluster stop` waits for it until the kill timeout.
test('--prefix --time across a reload: the new workers\' lines are tagged, and stop exits 0 quickly', { skip: !hasReload() && NEEDS_RELOAD }, async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--prefix', '--time', '--kill-timeout', '10000', '--control', control, 'request-log-app.js'],
    { cwd: FIXTURES, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening as \d pid/, { count: 2 });
  const before = await statusUntil(control, (s) => s.workers.length === 2);
  const reload = await cli(['reload', '--control', control]);
  assert.strictEqual(reload.code, 0, reload.stderr);
  const after = await statusUntil(control, (s) => s.workers.length === 2 && s.workers.every((w) => !before.workers.some((b) => b.pid === w.pid)));
  const stamp = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
  // Each new worker: its start-up line, then requests (a burst among them),
  // every line tagged with its slot.
  const burst = new Set();
  for (let i = 0; i < 400 && burst.size < 2; i++) {
    burst.add((await get(port, '/burst')).body);
  }
  for (let i = 0; i < 20; i++) await get(port, `/r${i}`);
  for (const w of after.workers) {
    assert.ok(burst.has(String(w.pid)), `worker ${w.pid} answered`);
    await app.waitFor(new RegExp(`^${stamp} \\[w${w.slot}\\] listening as ${w.slot} pid ${w.pid}$`, 'm'));
    await app.waitFor(new RegExp(`^${stamp} \\[w${w.slot}\\] request /r\\d+ slot ${w.slot} pid ${w.pid}$`, 'm'));
    await app.waitFor(new RegExp(`^${stamp} \\[w${w.slot}\\] burst 999 slot ${w.slot} \\.+$`, 'm'));
  }
  const started = Date.now();
  const stop = await cli(['stop', '--control', control]);
  assert.strictEqual(stop.code, 0, stop.stderr);
  assert.strictEqual((await app.exited()).code, 0, 'every worker drained: none was blocked on its output');
  assert.ok(Date.now() - started < 8000, `stopped in ${Date.now() - started} ms, under the 10 s kill timeout`);
});
