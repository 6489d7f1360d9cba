'use strict';
// --watch: a burst of changes under a watched folder is one rolling reload,
// with no failed request; node_modules, .git and ignore_watch are not watched.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Cli, tmpdir, freePort, statusUntil, churnLoad, hasReload, NEEDS_RELOAD, FIXTURES } = require('./cli-process');

async function appDir() {
  const dir = tmpdir();
  fs.copyFileSync(path.join(FIXTURES, 'cjs-app', 'app.js'), path.join(dir, 'app.js'));
  for (const sub of ['config', 'node_modules/dep', '.git', 'logs']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config', 'settings.json'), '{}');
  return dir;
}

const settle = (ms) => new Promise((r) => setTimeout(r, ms));

test('--watch: one burst of changes, one reload; node_modules, .git and ignore_watch are ignored', async (t) => {
  const dir = await appDir();
  const port = await freePort();
  const app = new Cli(['-i', '1', '--watch', '--watch-delay', '200', '--ignore-watch', 'logs', 'app.js'], { cwd: dir, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  await settle(300);
  for (const file of ['node_modules/dep/index.js', '.git/HEAD', 'logs/out.log']) fs.writeFileSync(path.join(dir, file), 'x');
  await settle(800);
  assert.doesNotMatch(app.err, /changed:/, 'ignored paths do not reload');
  // Several writes in a burst.
  for (let i = 0; i < 5; i++) {
    fs.writeFileSync(path.join(dir, 'config', 'settings.json'), JSON.stringify({ i }));
    await settle(20);
  }
  await app.waitFor(/changed: .*settings\.json/);
  await settle(800);
  assert.strictEqual([...app.err.matchAll(/changed:/g)].length, 1, app.err);
  if (!hasReload()) assert.match(app.err, /reload failed: reload needs cluster\.reload/);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('--watch=PATH: a change under the watched folder is exactly one reload with no failed request', { skip: !hasReload() && NEEDS_RELOAD }, async (t) => {
  const dir = await appDir();
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--watch=config', '--watch-delay', '200', '--control', control, 'app.js'], { cwd: dir, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  const before = await statusUntil(control, (x) => x.workers.length === 2);
  const load = churnLoad(port);
  fs.writeFileSync(path.join(dir, 'app.js'), fs.readFileSync(path.join(dir, 'app.js')));
  await settle(500);
  assert.doesNotMatch(app.err, /changed:/, 'only config/ is watched');
  fs.writeFileSync(path.join(dir, 'config', 'settings.json'), '{"v":2}');
  await app.waitFor(/reload done/, { timeout: 30000 });
  await settle(500);
  const { answered, failures } = await load.stop();
  assert.strictEqual(failures, 0);
  assert.ok(answered > 20, `answered ${answered}`);
  assert.strictEqual([...app.err.matchAll(/rolling reload/g)].length, 1, app.err);
  const after = await statusUntil(control, (x) => x.workers.length === 2);
  const old = new Set(before.workers.map((w) => w.pid));
  assert.ok(after.workers.every((w) => !old.has(w.pid)));
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

// Editors and `sed -i` save by writing a temporary file and renaming it over
// the old one: the name then holds a new inode, whose later saves, in place
// or by rename, must still be seen.
test('--watch: a rename-style save, then an in-place write, then another rename-style save: three reloads', async (t) => {
  const dir = await appDir();
  const port = await freePort();
  const app = new Cli(['-i', '1', '--watch', '--watch-delay', '200', 'app.js'], { cwd: dir, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  await settle(300);
  const file = path.join(dir, 'config', 'settings.json');
  const renameSave = (text) => {
    const temp = path.join(dir, 'config', `.settings.json.${process.pid}.tmp`);
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  };
  const done = hasReload() ? /reload done/ : /reload failed/;
  renameSave('{"v":1}');
  await app.waitFor(done, { count: 1, timeout: 30000 });
  fs.writeFileSync(file, '{"v":2}');
  await app.waitFor(done, { count: 2, timeout: 30000 });
  renameSave('{"v":3}');
  await app.waitFor(done, { count: 3, timeout: 30000 });
  await settle(500);
  assert.strictEqual([...app.err.matchAll(/changed: .*settings\.json/g)].length, 3, app.err);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

// A save while a reload is under way (its new workers may have loaded the
// code from before it): one more reload follows, so the latest save is
// what serves.
test('--watch: a save during a reload\'s probation is followed by one more reload; the last save serves', { skip: !hasReload() && NEEDS_RELOAD }, async (t) => {
  const { get } = require('./cli-process');
  const dir = tmpdir();
  fs.copyFileSync(path.join(FIXTURES, 'version-app.js'), path.join(dir, 'app.js'));
  fs.writeFileSync(path.join(dir, 'VERSION'), '1\n');
  const port = await freePort();
  const app = new Cli(['app.js', '-i', '1', '--watch', '--watch-delay', '100'], { cwd: dir, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening with version 1/);
  fs.writeFileSync(path.join(dir, 'VERSION'), '2\n');
  await app.waitFor(/listening with version 2/, { timeout: 15000 });
  // The version-2 worker is on probation (3 s): the old one still serves.
  fs.writeFileSync(path.join(dir, 'VERSION'), '3\n');
  await app.waitFor(/reload asked \(--watch\) during a reload: another follows it/, { timeout: 15000 });
  await app.waitFor(/reload done/, { count: 2, timeout: 30000 });
  assert.strictEqual([...app.err.matchAll(/rolling reload/g)].length, 2, app.err);
  assert.strictEqual((await get(port, '/')).body, '3');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
