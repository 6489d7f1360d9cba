'use strict';
// The primary's signals: SIGTTIN/SIGTTOU one worker more/fewer, SIGTERM/SIGINT
// a graceful shutdown (health 503 meanwhile, requests in progress finish), a
// second one at once; SIGHUP a rolling reload with no failed request. Exit
// codes say how it ended.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Cli, tmpdir, freePort, get, statusUntil, churnLoad, hasReload, NEEDS_RELOAD, FIXTURES } = require('./cli-process');

const APP = path.join(FIXTURES, 'cjs-app');

async function start(t, args, env = {}) {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['--control', control, ...args], { cwd: APP, env: { APP_PORT: String(port), ...env } });
  t.after(() => app.killGroup());
  return { app, port, control };
}

test('SIGTTIN / SIGTTOU: one worker more, one fewer; the new one takes the next slot', async (t) => {
  const { app, port, control } = await start(t, ['-i', '1', 'app.js']);
  await app.waitFor(/listening on \d+ as 0/);
  app.signal('SIGTTIN');
  let s = await statusUntil(control, (x) => x.workers.length === 2 && x.listeners[0]?.workers.length === 2, { what: 'two workers' });
  assert.deepStrictEqual(s.workers.map((w) => w.slot).sort(), [0, 1]);
  assert.strictEqual(s.instances, 2);
  const seen = new Set();
  for (let i = 0; i < 20 && seen.size < 2; i++) seen.add(JSON.parse((await get(port)).body).instance);
  assert.deepStrictEqual([...seen].sort(), ['0', '1']);
  app.signal('SIGTTOU');
  s = await statusUntil(control, (x) => x.workers.length === 1, { what: 'one worker' });
  assert.deepStrictEqual(s.workers.map((w) => w.slot), [0]);
  assert.strictEqual(s.instances, 1);
  // Not below one.
  app.signal('SIGTTOU');
  await new Promise((r) => setTimeout(r, 500));
  s = await statusUntil(control, () => true);
  assert.strictEqual(s.instances, 1);
  assert.strictEqual(s.workers.length, 1);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('SIGTERM: /health turns 503 at once, the request in progress finishes, exit code 0', async (t) => {
  const health = await freePort();
  const { app, port } = await start(t, ['-i', '2', '--health', `127.0.0.1:${health}`, 'app.js'], { SLOW_MS: '1500' });
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  assert.strictEqual((await get(health, '/health')).status, 200);
  const slow = get(port, '/slow');
  await new Promise((r) => setTimeout(r, 300));
  app.signal('SIGTERM');
  await app.waitFor(/stopping \(SIGTERM\)/);
  const during = await get(health, '/health');
  assert.strictEqual(during.status, 503, 'unavailable while shutting down');
  const r = await slow;
  assert.deepStrictEqual(r, { status: 200, body: 'slow' });
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
});

test('/health: 503 until the app listens, 200 while a worker is ready, 503 when none is', async (t) => {
  const health = await freePort();
  const { app, port, control } = await start(t, ['-i', '1', '--health', `127.0.0.1:${health}`, '--exp-backoff-restart-delay', '3000', 'app.js'], { LISTEN_DELAY_MS: '1500' });
  await app.waitFor(/health at http/);
  assert.strictEqual((await get(health, '/health')).status, 503, 'starting');
  await app.waitFor(/listening on/);
  assert.strictEqual((await get(health, '/health')).status, 200);
  assert.strictEqual((await get(health, '/nothing')).status, 404);
  const s = await statusUntil(control, (x) => x.workers.length === 1);
  // The only worker dies; its replacement waits out the restart delay.
  process.kill(s.workers[0].pid, 'SIGKILL');
  await app.waitFor(/worker \d+ \(slot 0\) was killed by SIGKILL/);
  assert.strictEqual((await get(health, '/health')).status, 503, 'no worker ready');
  await app.waitFor(/listening on/, { count: 2, timeout: 20000 });
  assert.strictEqual((await get(health, '/health')).status, 200, 'the replacement is ready');
  assert.strictEqual(JSON.parse((await get(port, '/')).body).instance, '0', 'NODE_APP_INSTANCE stays with the slot');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('a worker still busy at --kill-timeout is killed: exit code 3; a second SIGINT: at once, 130', async (t) => {
  {
    const { app, port } = await start(t, ['-i', '1', '--kill-timeout', '300', 'app.js'], { SLOW_MS: '5000' });
    await app.waitFor(/listening on/);
    get(port, '/slow').catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    app.signal('SIGTERM');
    assert.deepStrictEqual(await app.exited(), { code: 3, signal: null });
  }
  {
    const { app, port } = await start(t, ['-i', '1', '--kill-timeout', '20000', 'app.js'], { SLOW_MS: '20000' });
    await app.waitFor(/listening on/);
    get(port, '/slow').catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    app.signal('SIGINT');
    await app.waitFor(/stopping \(SIGINT\)/);
    app.signal('SIGINT');
    assert.deepStrictEqual(await app.exited(), { code: 130, signal: null });
    assert.ok(Date.now() - t0 < 10000, 'did not wait for the deadline');
  }
});

test('an app that cannot start: the restart policy gives up, exit code 1', async (t) => {
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--max-restarts', '3', '--exp-backoff-restart-delay', '10', '--control', control, 'crash.js'], { cwd: FIXTURES });
  t.after(() => app.killGroup());
  const { code } = await app.exited();
  assert.strictEqual(code, 1);
  assert.match(app.err, /workers keep crashing/);
});

test('SIGHUP under load: a rolling reload, every request answered', { skip: !hasReload() && NEEDS_RELOAD }, async (t) => {
  const { app, port, control } = await start(t, ['-i', '2', 'app.js']);
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  const before = await statusUntil(control, (x) => x.workers.length === 2);
  const load = churnLoad(port);
  await new Promise((r) => setTimeout(r, 300));
  app.signal('SIGHUP');
  await app.waitFor(/reload done/, { timeout: 30000 });
  await new Promise((r) => setTimeout(r, 300));
  const { answered, failures } = await load.stop();
  assert.strictEqual(failures, 0);
  assert.ok(answered > 20, `answered ${answered}`);
  const after = await statusUntil(control, (x) => x.workers.length === 2);
  const oldPids = new Set(before.workers.map((w) => w.pid));
  assert.ok(after.workers.every((w) => !oldPids.has(w.pid)), 'every worker was replaced');
  assert.deepStrictEqual(after.workers.map((w) => w.slot).sort(), [0, 1], 'replacements keep their slots');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
