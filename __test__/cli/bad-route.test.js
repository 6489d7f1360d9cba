'use strict';
// The service outlives a crashing route: the real `rcluster` command runs an
// app whose `/boom` throws in its request handler. Every request to it ends
// a worker; the restart policy keeps replacing them (with backoff) because
// workers stay up between the crashes, where the old policy gave up after
// ten restarts in a minute and the whole service exited. The stack trace is
// printed in full once, each repeat as one line. An app that cannot start at
// all still ends in a crash loop, exit code 1, within seconds.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, FIXTURES } = require('./cli-process');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const count = (text, re) => [...text.matchAll(new RegExp(re.source, `${re.flags.replace('g', '')}g`))].length;

test('a route that throws: 15 crashes in about 6 s, the service stays up, the stack trace is printed once', { timeout: 120000 }, async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, 'bad-route.js'], { env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  assert.strictEqual((await get(port, '/')).status, 200);
  // Up longer than restart.minUptime (1 s): the workers are healthy.
  await sleep(1500);

  const boom = [];
  for (let i = 0; i < 15; i++) {
    // The worker dies with the request: a reset, or no answer before the deadline.
    boom.push(await get(port, '/boom', { timeout: 20000 }).then((r) => `status ${r.status}`, (err) => err.code ?? err.message));
    await get(port, '/', { timeout: 20000 }).catch(() => {});
    await sleep(400);
  }
  assert.ok(boom.every((r) => !r.startsWith('status 200')), `no /boom was answered: ${boom}`);
  assert.strictEqual(app.child.exitCode, null, `rcluster is still running\nstderr:\n${app.err}`);

  // Serving again once the backoff (at most restart.maxDelay, 15 s) is over.
  const deadline = Date.now() + 40000;
  for (;;) {
    const r = await get(port, '/', { timeout: 20000 }).catch((err) => ({ status: err.message }));
    if (r.status === 200) break;
    assert.ok(Date.now() < deadline, `/ answers again after the storm; last: ${r.status}`);
    await sleep(200);
  }
  const status = await statusUntil(control, (s) => s.workers.length === 2 && s.listeners[0]?.workers.length === 2,
    { timeout: 40000, what: 'two workers serving' });
  const restarts = status.workers.reduce((sum, w) => sum + w.restarts, 0);
  const restartLines = count(app.err, /exited with code 1; worker \d+ replaces it/);
  assert.strictEqual(restarts, restartLines, `status counts every restart\nstderr:\n${app.err}`);
  assert.ok(restarts > 10, `more crashes than the crash-loop budget (10), and no crash loop: ${restarts}\nstderr:\n${app.err}`);
  assert.doesNotMatch(app.err, /workers keep crashing/);

  // The full stack trace once, then one line per repeat, with its count.
  assert.strictEqual(count(app.err, /^TypeError: Cannot read properties of undefined \(reading 'name'\)$/m), 1, app.err);
  assert.strictEqual(count(app.err, /^\s+at .*bad-route\.js:\d+:\d+/m), 2, `the stack's frames in the app, once\n${app.err}`);
  const repeats = [...app.err.matchAll(/^rcluster: worker \d+ \(slot [01]\): the same uncaught TypeError as before \(x(\d+) since \d\d:\d\d:\d\d\): Cannot read properties of undefined \(reading 'name'\) at \S*bad-route\.js:\d+:\d+$/gm)];
  assert.strictEqual(repeats.length, restarts - 1, `one line per repeat\n${app.err}`);
  assert.deepStrictEqual(repeats.map((m) => Number(m[1])), Array.from({ length: restarts - 1 }, (_, i) => i + 2));
  const lines = app.err.split('\n').filter(Boolean).length;
  assert.ok(lines <= 2 * restarts + 15, `${lines} lines on stderr for ${restarts} crashes\n${app.err}`);
  t.diagnostic(`${restarts} crashes, ${lines} lines on stderr`);

  const stop = await cli(['stop', '--control', control]);
  assert.strictEqual(stop.code, 0, stop.stderr);
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
});

test('an app that throws as it starts still ends in a crash loop: exit code 1 within seconds, its stack trace printed once', { timeout: 60000 }, async (t) => {
  const control = path.join(tmpdir(), 'ctl.sock');
  const started = Date.now();
  const app = new Cli(['-i', '2', '--control', control, 'start-throws.js'], { cwd: FIXTURES });
  t.after(() => app.killGroup());
  const { code } = await app.exited(30000);
  const took = Date.now() - started;
  assert.strictEqual(code, 1, app.err);
  assert.match(app.err, /workers keep crashing \(10 restarts in 60 s of workers that died within 1 s of starting; none stayed up\): no more restarts/);
  assert.match(app.err, /no worker is left/);
  assert.strictEqual(count(app.err, /^Error: cannot start: DATABASE_URL is not set$/m), 1, app.err);
  assert.ok(count(app.err, /the same uncaught Error as before \(x\d+ since [\d:]+\): cannot start: DATABASE_URL is not set at \S*start-throws\.js:3:7$/m) >= 10, app.err);
  t.diagnostic(`exited after ${took} ms`);
});

test('an app with its own \'uncaughtException\' listener handles its errors itself, as under Node: nothing printed, no restart', { timeout: 60000 }, async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '1', '--control', control, 'bad-route.js'], { env: { APP_PORT: String(port), OWN_HANDLER: '1' } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as 0/);
  const before = await statusUntil(control, (s) => s.workers.length === 1);
  for (let i = 0; i < 3; i++) await get(port, '/boom', { timeout: 500 }).catch(() => {});
  await app.waitFor(/app handled: Cannot read properties of undefined/, { count: 3 });
  assert.strictEqual((await get(port, '/')).status, 200);
  const after = await statusUntil(control, (s) => s.workers.length === 1);
  assert.deepStrictEqual(after.workers.map((w) => [w.pid, w.restarts]), before.workers.map((w) => [w.pid, 0]));
  assert.doesNotMatch(app.err, /TypeError|the same uncaught|replaces it/);
  const stop = await cli(['stop', '--control', control]);
  assert.strictEqual(stop.code, 0, stop.stderr);
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
});
