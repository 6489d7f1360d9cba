'use strict';
// Settings from a PM2 ecosystem file or rcluster.config.*: PM2's keys mapped
// onto rcluster's setupPrimary() settings, unknown keys warned about, and the
// app's env, instance and increment variables in every worker.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Cli, cli, tmpdir, freePort, get, FIXTURES, ROOT } = require('./cli-process');

const APP = path.join(FIXTURES, 'cjs-app');

test('a PM2 ecosystem file, --only NAME: the app runs with its env, instances and increment_var; unknown keys are warned about', async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['ecosystem.config.js', '--only', 'api', '--control', control], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  assert.match(app.err, /warning: ecosystem\.config\.js apps\[1\]: unknown key "watch_me_please" \(ignored\)/);
  assert.match(app.err, /warning: ecosystem\.config\.js apps\[1\]: vizion is a PM2 setting rcluster does not use \(ignored\)/);
  assert.doesNotMatch(app.err, /merge_logs/, 'merge_logs: true is what rcluster does with log files');
  assert.doesNotMatch(app.err, /exec_mode/, 'exec_mode cluster is what rcluster does');
  assert.doesNotMatch(app.err, /worker-queue/, 'the other app is not run');
  const seen = new Map();
  for (let i = 0; i < 40 && seen.size < 2; i++) {
    const body = JSON.parse((await get(port, '/')).body);
    seen.set(body.instance, body);
  }
  assert.deepStrictEqual([...seen.keys()].sort(), ['0', '1']);
  for (const [instance, w] of seen) {
    assert.strictEqual(w.env, 'from ecosystem');
    assert.strictEqual(w.port, String(4100 + Number(instance)), 'increment_var: PORT + the slot');
    assert.deepStrictEqual(w.argv, ['from-ecosystem']);
    assert.deepStrictEqual(w.execArgv, ['--max-old-space-size=150']);
  }
  app.signal('SIGINT');
  assert.strictEqual((await app.exited()).code, 0);
});

test('PM2 keys become rcluster settings (cluster.settings), --env NAME adds env_NAME', () => {
  // In a process of its own: setupPrimary() makes it a cluster primary.
  const program = `
    const { resolveRun } = require('./lib/cli/settings');
    resolveRun({ positional: [${JSON.stringify(path.join(APP, 'ecosystem.config.js'))}], options: {}, args: [], only: 'api', envName: 'production' }, ${JSON.stringify(APP)})
      .then(({ app, primary, warnings }) => {
        const cluster = require('.');
        cluster.setupPrimary(primary);
        const s = cluster.settings;
        console.log(JSON.stringify({ settings: { ...s, restart: s.restart }, env: app.env, instances: app.instances, warnings }));
      });`;
  const r = spawnSync(process.execPath, ['-e', program], { cwd: ROOT, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  const { settings, env, instances } = JSON.parse(r.stdout);
  assert.strictEqual(instances, 2);
  assert.strictEqual(settings.exec, path.join(APP, 'app.js'));
  assert.deepStrictEqual(settings.args, ['from-ecosystem']);
  // max_memory_restart '300M' as setupPrimary() normalizes it: the soft
  // limit, and the hard one 1.5 times it, in bytes.
  assert.deepStrictEqual(settings.recycle, { maxMemory: { soft: 300 * 1024 * 1024, hard: 450 * 1024 * 1024 }, jitter: 0, cron: '0 3 * * *' });
  assert.strictEqual(settings.shutdownTimeout, 4000);
  assert.strictEqual(settings.drainTimeout, 4000);
  assert.strictEqual(settings.waitReady, true);
  assert.strictEqual(settings.readyTimeout, 8000);
  assert.strictEqual(settings.restart.minDelay, 200);
  assert.strictEqual(settings.restart.maxRestarts, 7);
  // PM2's min_uptime: a worker that dies sooner failed to start.
  assert.strictEqual(settings.restart.minUptime, 5000);
  assert.strictEqual(settings.restart.resetAfter, 30000);
  assert.strictEqual(env.APP_MESSAGE, 'production');
});

test('--reload-probation MS becomes setupPrimary({ reload: { probation } }); a bad value is a usage error', () => {
  const program = (flag) => `
    const { parseArgs } = require('./lib/cli/args');
    const { resolveRun } = require('./lib/cli/settings');
    Promise.resolve().then(() => resolveRun(parseArgs(['app.js', '--reload-probation', ${JSON.stringify(flag)}]), ${JSON.stringify(APP)}))
      .then(({ primary }) => {
        const cluster = require('.');
        cluster.setupPrimary(primary);
        console.log(JSON.stringify(cluster.settings.reload));
      }, (err) => { console.error(err.message); process.exit(2); });`;
  let r = spawnSync(process.execPath, ['-e', program('1500')], { cwd: ROOT, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(JSON.parse(r.stdout), { probation: 1500 });
  r = spawnSync(process.execPath, ['-e', program('soon')], { cwd: ROOT, encoding: 'utf8' });
  assert.strictEqual(r.status, 2, r.stdout);
  assert.match(r.stderr, /reload-probation/);
});

test('rcluster.config.json in the current directory, and its bad values', async (t) => {
  const dir = tmpdir();
  fs.copyFileSync(path.join(APP, 'app.js'), path.join(dir, 'app.js'));
  fs.writeFileSync(path.join(dir, 'rcluster.config.json'), JSON.stringify({ script: 'app.js', instances: 1, env: { APP_MESSAGE: 'json' }, colour: 'blue' }));
  const port = await freePort();
  const runtime = tmpdir();
  fs.chmodSync(runtime, 0o700);
  const app = new Cli([], { cwd: dir, env: { APP_PORT: String(port), XDG_RUNTIME_DIR: runtime } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as 0/);
  assert.match(app.err, /rcluster\.config\.json: unknown key "colour" \(ignored\)/);
  assert.strictEqual(JSON.parse((await get(port, '/')).body).env, 'json');
  // The default control socket is named after the app's directory, in a
  // directory only its owner can use; owner-only itself.
  const sock = /control socket (\S+)\n/.exec(app.err)[1];
  assert.strictEqual(path.dirname(sock), path.join(runtime, 'rcluster'));
  assert.strictEqual(fs.statSync(sock).mode & 0o777, 0o600);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
  assert.strictEqual(fs.existsSync(sock), false, 'the socket is removed on exit');

  fs.writeFileSync(path.join(dir, 'rcluster.config.json'), JSON.stringify({ script: 'app.js', kill_timeout: -5 }));
  const r = await cli([], { cwd: dir });
  assert.strictEqual(r.code, 2);
  assert.match(r.stderr, /rcluster\.config\.json: kill_timeout must be a whole number of milliseconds/);
});
