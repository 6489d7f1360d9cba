'use strict';
// rcluster status / scale / reload / stop over the control socket (mode
// 0600: another user is refused), as text and as --json.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, hasReload, NEEDS_RELOAD, FIXTURES } = require('./cli-process');

const APP = path.join(FIXTURES, 'cjs-app');

test('status, scale and stop over the control socket; --json for scripts', async (t) => {
  const port = await freePort();
  const dir = tmpdir();
  fs.chmodSync(dir, 0o755);
  const control = path.join(dir, 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  for (let i = 0; i < 6; i++) await get(port, '/');

  assert.strictEqual(fs.statSync(control).mode & 0o777, 0o600);
  const text = await cli(['status', '--control', control]);
  assert.strictEqual(text.code, 0, text.stderr);
  assert.match(text.stdout, /^app \(pid \d+\): running, 2\/2 workers/);
  assert.match(text.stdout, /WORKER +SLOT +PID +STATE +UPTIME +RESTARTS +RECYCLES +CONNS +TOTAL +REQS +RSS +CPU +LOOP p99/);
  assert.match(text.stdout, /LISTENER +WORKERS +ACCEPTED +PENDING +EXPIRED\n127\.0\.0\.1:\d+ +2 +\d+ +0 +0/);

  const s = await statusUntil(control, (x) => x.workers.every((w) => w.requests !== null));
  assert.strictEqual(s.state, 'running');
  assert.strictEqual(s.workers.length, 2);
  assert.strictEqual(s.workers.reduce((n, w) => n + w.requests, 0), 6, 'every request counted once');
  assert.strictEqual(s.workers.reduce((n, w) => n + w.connections.total, 0), 6);
  assert.strictEqual(s.listeners[0].accepted, 6);
  for (const w of s.workers) {
    assert.strictEqual(w.state, 'listening');
    assert.ok(w.pid > 0 && w.rss > 1e6 && w.uptime > 0 && w.restarts === 0 && Object.keys(w.recycles).length === 0, JSON.stringify(w));
    assert.ok(w.eventLoopDelay.p99 >= 0 && typeof w.cpu === 'number', JSON.stringify(w));
  }

  let r = await cli(['scale', '3', '--json', '--control', control]);
  assert.strictEqual(r.code, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), { instances: 3, forked: 1, retired: 0 });
  await statusUntil(control, (x) => x.workers.length === 3 && x.workers.every((w) => w.state === 'listening'));
  r = await cli(['scale', '1', '--control', control]);
  assert.strictEqual(r.stdout, '1 workers (0 forked, 2 retired)\n');
  const one = await statusUntil(control, (x) => x.workers.length === 1);
  assert.strictEqual(one.workers[0].slot, 0, 'the highest slots are retired');

  r = await cli(['reload', '--control', control], { timeout: 60000 });
  if (hasReload()) {
    assert.strictEqual(r.code, 0, r.stderr);
  } else {
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /reload needs cluster\.reload/);
  }

  r = await cli(['stop', '--json', '--control', control]);
  assert.strictEqual(r.code, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), { stopping: true });
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  assert.strictEqual(fs.existsSync(control), false);

  r = await cli(['status', '--control', control]);
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /no rcluster running with control socket/);
});

test('another user cannot use the control socket', { skip: process.getuid() !== 0 && 'needs root to run a client as another user' }, async (t) => {
  const dir = tmpdir();
  fs.chmodSync(dir, 0o755);
  const control = path.join(dir, 'ctl.sock');
  const port = await freePort();
  const app = new Cli(['-i', '1', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  for (const command of [['status'], ['scale', '3'], ['stop']]) {
    const r = await cli([...command, '--control', control], { uid: 65534, cwd: dir });
    assert.strictEqual(r.code, 1, `${command}: ${r.stderr}`);
    assert.match(r.stderr, /EACCES/);
  }
  const s = await statusUntil(control, () => true);
  assert.strictEqual(s.instances, 1);
  assert.strictEqual(s.state, 'running');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('a default place where the socket cannot be made: the app runs without it; a --control PATH that cannot be made stops the start', { skip: process.getuid() !== 0 && 'needs root to run as another user' }, async (t) => {
  const dir = tmpdir();
  fs.chmodSync(dir, 0o755);
  fs.copyFileSync(path.join(APP, 'app.js'), path.join(dir, 'app.js'));
  fs.chmodSync(path.join(dir, 'app.js'), 0o644);
  // As nobody, whose default directory (TMPDIR/rcluster-65534) someone
  // else made first.
  const tmp = tmpdir();
  fs.chmodSync(tmp, 0o1777);
  fs.mkdirSync(path.join(tmp, 'rcluster-65534'), { mode: 0o777 });
  const port = await freePort();
  const app = new Cli(['-i', '1', 'app.js'], { cwd: dir, uid: 65534, env: { APP_PORT: String(port), TMPDIR: tmp, XDG_RUNTIME_DIR: '' } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  assert.match(app.err, /warning: no control socket \(ERR_RCLUSTER_CONTROL_UNSAFE\): control socket path .*\/rcluster-65534 is not safe to use: the directory is owned by uid 0, not by this user \(uid 65534\) \(left as it is\); give --control PATH/);
  assert.strictEqual(fs.readdirSync(path.join(tmp, 'rcluster-65534')).length, 0);
  assert.strictEqual((await get(port, '/')).status, 200);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
  // In a directory nobody cannot write (a read-only app directory).
  const r = await cli(['-i', '1', '--control', path.join(dir, 'ctl.sock'), 'app.js'], { cwd: dir, uid: 65534, env: { APP_PORT: String(port) } });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /EACCES/);
});

test('by default the socket is NAME.sock in a directory only its owner can use; without NAME a command finds the app of its directory, else the only one', async (t) => {
  // Formerly the socket was named after the app's directory and found only
  // from there: now it is named after the app, and found from anywhere.
  const dir = tmpdir();
  fs.copyFileSync(path.join(APP, 'app.js'), path.join(dir, 'app.js'));
  const runtime = tmpdir();
  fs.chmodSync(runtime, 0o700);
  const env = { XDG_RUNTIME_DIR: runtime };
  const port = await freePort();
  const app = new Cli(['-i', '1', 'app.js'], { cwd: dir, env: { ...env, APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  const [m] = await app.waitFor(/control socket (\S+)\n/);
  const sock = m[1];
  assert.strictEqual(sock, path.join(runtime, 'rcluster', 'app.sock'));
  assert.strictEqual(fs.statSync(path.dirname(sock)).mode & 0o777, 0o700);
  assert.strictEqual(fs.statSync(sock).mode & 0o777, 0o600);
  assert.deepStrictEqual(fs.readdirSync(dir).sort(), ['app.js'], 'nothing in the app directory');
  await app.waitFor(/listening on/);
  let r = await cli(['status', '--json'], { cwd: dir, env });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(JSON.parse(r.stdout).pid, app.child.pid);
  // From another directory: the only app running.
  r = await cli(['status', '--json'], { cwd: runtime, env });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(JSON.parse(r.stdout).pid, app.child.pid);
  // Without XDG_RUNTIME_DIR (or with one that is not private), TMPDIR/rcluster-UID.
  const open = tmpdir();
  fs.chmodSync(open, 0o755);
  r = await cli(['status'], { cwd: dir, env: { XDG_RUNTIME_DIR: open, TMPDIR: open } });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, new RegExp(`no rcluster app is running for this user \\(sockets in ${open}/rcluster-${process.getuid()}\\)`));
  r = await cli(['status', 'app'], { cwd: dir, env: { XDG_RUNTIME_DIR: open, TMPDIR: open } });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /no app named "app" is running/);
  r = await cli(['stop'], { cwd: dir, env });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual((await app.exited()).code, 0);
  assert.strictEqual(fs.existsSync(sock), false, 'the socket is removed on exit');
});

test('a second primary on the same control socket is refused; a stale socket is replaced', async (t) => {
  const dir = tmpdir();
  const control = path.join(dir, 'ctl.sock');
  const port = await freePort();
  const app = new Cli(['-i', '1', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  const second = await cli(['-i', '1', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: '0' } });
  assert.strictEqual(second.code, 1);
  assert.match(second.stderr, /another rcluster is running with control socket/);
  app.killGroup('SIGKILL');
  await app.exited();
  assert.ok(fs.existsSync(control), 'a killed primary leaves its socket');
  const third = new Cli(['-i', '1', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => third.killGroup());
  await third.waitFor(/listening on/);
  third.signal('SIGTERM');
  assert.strictEqual((await third.exited()).code, 0);
});
