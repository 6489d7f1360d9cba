'use strict';
// The command line PM2 users type, run as they type it (the real
// bin/rcluster.js, real apps, real pipes): options after the script, PM2's
// command words, apps by name from any directory (`rcluster ls`), `rcluster
// logs`, a reload that says when it failed, and a reader that goes away.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFile } = require('node:child_process');
const { Cli, cli, tmpdir, freePort, get, hasReload, NEEDS_RELOAD, FIXTURES, BIN } = require('./cli-process');
const { serveControl } = require('../../lib/cli/control');

const APP = path.join(FIXTURES, 'cjs-app');

// A runtime directory of its own (0700): the apps a test starts are the only
// ones its commands see.
function runtimeEnv() {
  const runtime = tmpdir();
  fs.chmodSync(runtime, 0o700);
  return { runtime, env: { XDG_RUNTIME_DIR: runtime } };
}

test('the README\'s command line: rcluster\'s options after the script are rcluster\'s, the app gets its words and what follows --', async (t) => {
  const port = await freePort();
  const { env } = runtimeEnv();
  const app = new Cli(['app.js', 'serve', '-i', '2', '--', '--port', '80'], { cwd: APP, env: { ...env, APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  const seen = new Set();
  for (let i = 0; i < 20 && seen.size < 2; i++) {
    const body = JSON.parse((await get(port, '/')).body);
    assert.deepStrictEqual(body.argv, ['serve', '--port', '80']);
    seen.add(body.instance);
  }
  assert.deepStrictEqual([...seen].sort(), ['0', '1'], 'two workers, as -i 2 after the script says');
  const r = await cli(['status', '--json'], { env });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(JSON.parse(r.stdout).instances, 2);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);

  // An option rcluster does not know, after the script: refused, with how
  // to give it to the app; nothing is started.
  const bad = await cli(['app.js', '-i', '2', '--port', '80'], { cwd: APP, env });
  assert.strictEqual(bad.code, 2);
  assert.strictEqual(bad.stderr, 'rcluster: error: unknown option --port after the script: to pass it to the app, put it after -- (rcluster app.js -- --port 80); rcluster\'s own options may come before or after the script\n');
  assert.strictEqual(bad.stdout, '');
});

test('PM2\'s words are commands, never scripts, even where a file or directory has their name', async () => {
  const dir = tmpdir();
  fs.mkdirSync(path.join(dir, 'logs'));
  fs.writeFileSync(path.join(dir, 'list'), 'throw new Error("run as a script")\n');
  fs.writeFileSync(path.join(dir, 'start'), 'throw new Error("run as a script")\n');
  const { env } = runtimeEnv();
  let r = await cli(['logs'], { cwd: dir, env });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /^rcluster: error: no rcluster app is running for this user/);
  r = await cli(['list'], { cwd: dir, env });
  assert.deepStrictEqual([r.code, r.stdout, r.stderr], [0, 'no rcluster app is running\n', '']);
  r = await cli(['ls', '--json'], { cwd: dir, env });
  assert.deepStrictEqual([r.code, r.stdout], [0, '[]\n']);
  r = await cli(['-i', '1', 'logs'], { cwd: dir, env });
  assert.strictEqual(r.code, 2);
  assert.match(r.stderr, /'logs' is an rcluster command, not a script here/);
  r = await cli(['start'], { cwd: dir, env });
  assert.strictEqual(r.code, 2);
  assert.match(r.stderr, /no script to run/);
  for (const [word, advice] of [['save', 'systemd'], ['startup', 'systemd'], ['kill', 'rcluster stop NAME'], ['flush', 'logrotate']]) {
    r = await cli([word], { cwd: dir, env });
    assert.strictEqual(r.code, 2, word);
    assert.ok(r.stderr.startsWith(`rcluster: error: '${word}' is a PM2 command rcluster has no equivalent of: `) && r.stderr.includes(advice), r.stderr);
  }
  r = await cli(['describe', 'api'], { cwd: dir, env });
  assert.match(r.stderr, /use `rcluster status NAME`/);
  r = await cli(['help', 'monit']);
  assert.match(r.stdout, /^Usage: rcluster status/);
  r = await cli(['help', 'restart']);
  assert.match(r.stdout, /^Usage: rcluster reload[^]*graceful/);
});

test('apps by name from any directory: ls lists them, a second app of a name is refused, a killed one is skipped', async (t) => {
  const { runtime, env } = runtimeEnv();
  const dirA = tmpdir();
  fs.copyFileSync(path.join(APP, 'app.js'), path.join(dirA, 'app.js'));
  const dirB = tmpdir();
  fs.copyFileSync(path.join(APP, 'app.js'), path.join(dirB, 'server.js'));
  const [portA, portB] = [await freePort(), await freePort()];
  const a = new Cli(['-i', '1', 'app.js'], { cwd: dirA, env: { ...env, APP_PORT: String(portA) } });
  t.after(() => a.killGroup());
  const b = new Cli(['start', 'server.js', '-i', '2', '--name', 'api two'], { cwd: dirB, env: { ...env, APP_PORT: String(portB) } });
  t.after(() => b.killGroup());
  await a.waitFor(/listening on/);
  await b.waitFor(/listening on/, { count: 2 });
  const sockA = path.join(runtime, 'rcluster', 'app.sock');
  const sockB = path.join(runtime, 'rcluster', 'api%20two.sock');
  assert.deepStrictEqual(fs.readdirSync(path.join(runtime, 'rcluster')).sort(), ['api%20two.sock', 'app.sock']);

  let r = await cli(['ls'], { cwd: '/', env });
  assert.strictEqual(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^NAME +PID +WORKERS +UPTIME +DIRECTORY +CONTROL SOCKET$/);
  assert.match(lines[1], new RegExp(`^api two +${b.child.pid} +2/2 +\\d+s +${fs.realpathSync(dirB)} +${sockB}$`));
  assert.match(lines[2], new RegExp(`^app +${a.child.pid} +1/1 +\\d+s +${fs.realpathSync(dirA)} +${sockA}$`));
  r = await cli(['list', '--json'], { cwd: '/', env });
  const listed = JSON.parse(r.stdout);
  assert.deepStrictEqual(listed.map((x) => [x.name, x.pid, x.workers, x.instances, x.dir, x.control]), [
    ['api two', b.child.pid, 2, 2, fs.realpathSync(dirB), sockB],
    ['app', a.child.pid, 1, 1, fs.realpathSync(dirA), sockA],
  ]);

  // By name, from anywhere; without a name, the app of the current directory.
  r = await cli(['status', 'api two', '--json'], { cwd: '/', env });
  assert.strictEqual(JSON.parse(r.stdout).pid, b.child.pid);
  r = await cli(['status'], { cwd: dirA, env });
  assert.match(r.stdout, new RegExp(`^app \\(pid ${a.child.pid}\\): running, 1/1 workers`));
  r = await cli(['status'], { cwd: '/', env });
  assert.strictEqual(r.code, 2);
  assert.strictEqual(r.stderr, 'rcluster: error: 2 apps are running: api two, app; name one (rcluster COMMAND NAME)\n');
  r = await cli(['status', 'nope'], { cwd: '/', env });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /no app named "nope" is running \(running: api two, app\)/);
  r = await cli(['scale', 'api two', '1'], { cwd: '/', env });
  assert.deepStrictEqual([r.code, r.stdout], [0, '1 workers (0 forked, 1 retired)\n']);

  // A second app of the name: refused before a worker is forked, naming the first.
  r = await cli(['-i', '1', 'server.js', '--name', 'app'], { cwd: dirB, env: { ...env, APP_PORT: '0' } });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, new RegExp(`an app named "app" is already running \\(pid ${a.child.pid}, started in ${fs.realpathSync(dirA)}\\), with control socket ${sockA}: give this one another name \\(--name NAME\\)`));
  assert.doesNotMatch(r.stderr, /listening on/);

  // A killed primary leaves its socket: skipped.
  b.killGroup('SIGKILL');
  await b.exited();
  assert.ok(fs.existsSync(sockB));
  r = await cli(['ls', '--json'], { cwd: '/', env });
  assert.deepStrictEqual(JSON.parse(r.stdout).map((x) => x.name), ['app']);
  r = await cli(['status', '--json'], { cwd: '/', env });
  assert.strictEqual(JSON.parse(r.stdout).pid, a.child.pid, 'the only app running');
  r = await cli(['status', 'api two'], { cwd: '/', env });
  assert.strictEqual(r.code, 1);
  assert.match(r.stderr, /no rcluster running with control socket/);

  r = await cli(['delete', 'app', '--json'], { cwd: '/', env });
  assert.deepStrictEqual([r.code, r.stdout], [0, '{"stopping":true}\n']);
  assert.strictEqual((await a.exited()).code, 0);
  assert.strictEqual(fs.existsSync(sockA), false);
});

test('PM2\'s `all`: reload all and stop all act on every running app', async (t) => {
  const { env } = runtimeEnv();
  const apps = [];
  for (const name of ['one', 'two']) {
    const app = new Cli(['app.js', '-i', '1', '--name', name], { cwd: APP, env: { ...env, APP_PORT: String(await freePort()) } });
    t.after(() => app.killGroup());
    apps.push(app);
  }
  for (const app of apps) await app.waitFor(/listening on/);
  if (hasReload()) {
    const r = await cli(['reload', 'all'], { cwd: '/', env, timeout: 60000 });
    assert.deepStrictEqual([r.code, r.stdout], [0, 'one: reloaded: 1 worker replaced\ntwo: reloaded: 1 worker replaced\n'], r.stderr);
  }
  const r = await cli(['stop', 'all'], { cwd: '/', env });
  assert.deepStrictEqual([r.code, r.stdout], [0, 'one: stopped\ntwo: stopped\n'], r.stderr);
  for (const app of apps) assert.strictEqual((await app.exited()).code, 0);
  const none = await cli(['stop', 'all'], { cwd: '/', env });
  assert.strictEqual(none.code, 1);
  assert.match(none.stderr, /no rcluster app is running for this user/);
});

// A control server answering `status` as the test says, at NAME.sock in a
// runtime directory of its own.
async function fakeApp(t, name, status) {
  const { runtime, env } = runtimeEnv();
  fs.mkdirSync(path.join(runtime, 'rcluster'), { mode: 0o700 });
  const control = await serveControl(path.join(runtime, 'rcluster', `${name}.sock`), { status });
  t.after(() => control.close());
  return env;
}

const STATUS = { name: 'api', pid: process.pid, state: 'running', instances: 1, uptime: 5, workers: [], listeners: [] };

test('rcluster logs: the last lines of each log file the app reports; none: exit 1 and why', async (t) => {
  const dir = tmpdir();
  const out = path.join(dir, 'out.log');
  const err = path.join(dir, 'err.log');
  fs.writeFileSync(out, Array.from({ length: 40 }, (_, i) => `out ${i + 1}\n`).join(''));
  fs.writeFileSync(err, 'err 1\nerr 2\nerr 3\nerr 4 (no newline)');
  let logs = { out, err };
  const env = await fakeApp(t, 'api', () => ({ ...STATUS, logs }));

  let r = await cli(['logs', 'api', '--lines', '3'], { cwd: '/', env });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(r.stdout, `==> ${out} (stdout) <==\nout 38\nout 39\nout 40\n\n==> ${err} (stderr) <==\nerr 2\nerr 3\nerr 4 (no newline)`);
  r = await cli(['logs'], { cwd: '/', env });
  assert.strictEqual(r.stdout.split('\n').filter((l) => l.startsWith('out ')).length, 15, '15 lines by default, as pm2 logs');
  assert.ok(r.stdout.includes('out 26\n') && !r.stdout.includes('out 25\n'));
  r = await cli(['logs', '-n', '0'], { cwd: '/', env });
  assert.strictEqual(r.stdout, `==> ${out} (stdout) <==\n\n==> ${err} (stderr) <==\n`);
  // Merged: one file, no header.
  logs = { out, err: out };
  r = await cli(['logs', '--lines', '2'], { cwd: '/', env });
  assert.strictEqual(r.stdout, 'out 39\nout 40\n');
  r = await cli(['logs', '--lines', 'many'], { cwd: '/', env });
  assert.strictEqual(r.code, 2);
  assert.match(r.stderr, /--lines must be a whole number >= 0/);

  for (const none of [undefined, { out: null, err: null }]) {
    logs = none;
    r = await cli(['logs', 'api'], { cwd: '/', env });
    assert.strictEqual(r.code, 1);
    assert.strictEqual(r.stderr, 'rcluster: error: api writes no log files: its output goes where its terminal or service manager sends it (start it with --log FILE) (ERR_RCLUSTER_NO_LOG_FILES)\n');
    assert.strictEqual(r.stdout, '');
  }
});

test('rcluster logs --follow prints what is added, across a rotation by rename and a truncation', async (t) => {
  const dir = tmpdir();
  const out = path.join(dir, 'out.log');
  fs.writeFileSync(out, 'old 1\nold 2\n');
  const env = await fakeApp(t, 'api', () => ({ ...STATUS, logs: { out, err: out } }));
  const child = spawn(process.execPath, [BIN, 'logs', '--follow', '--lines', '1'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let text = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    text += d;
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const until = async (s) => {
    const deadline = Date.now() + 10000;
    while (!text.includes(s)) {
      if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(s)} in ${JSON.stringify(text)}; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until('old 2\n');
  fs.appendFileSync(out, 'new 1\n');
  await until('new 1\n');
  // logrotate's default: the file renamed away (a last line written to it
  // there), a new one made at the path.
  fs.renameSync(out, `${out}.1`);
  fs.appendFileSync(`${out}.1`, 'last of the old file\n');
  fs.writeFileSync(out, 'first of the new file\n');
  await until('first of the new file\n');
  // copytruncate: the same file emptied.
  fs.truncateSync(out, 0);
  await new Promise((r) => setTimeout(r, 600));
  fs.appendFileSync(out, 'after truncation\n');
  await until('after truncation\n');
  assert.strictEqual(text, 'old 2\nnew 1\nlast of the old file\nfirst of the new file\nafter truncation\n');
  child.kill('SIGINT');
  const [code, signal] = await new Promise((r) => child.on('exit', (c, s) => r([c, s])));
  assert.ok(signal === 'SIGINT' || code === 0, `${code} ${signal}`);
  assert.strictEqual(stderr, '');
});

test('a closed pipe ends a command quietly: status --watch | head -1, ls | head -1', async (t) => {
  const env = await fakeApp(t, 'api', () => STATUS);
  for (const command of ['status --watch --interval 100', 'monit --interval 100', 'status --watch --json --interval 100', 'ls']) {
    const r = await new Promise((resolve) => {
      execFile('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BIN}" ${command} | head -1`], { env: { ...process.env, ...env }, timeout: 20000 }, (err, stdout, stderr) => {
        resolve({ code: err ? err.code : 0, stdout, stderr });
      });
    });
    assert.strictEqual(r.code, 0, `${command}: ${r.stderr}`);
    assert.strictEqual(r.stderr, '', command);
    assert.strictEqual(r.stdout.split('\n').length, 2, `${command}: one line\n${r.stdout}`);
  }
});

test('a reload whose new workers fail says so and exits 1; the old workers serve on', { skip: !hasReload() && NEEDS_RELOAD }, async (t) => {
  const dir = tmpdir();
  // The deploy: the same app, whose new code throws at start-up while BROKEN exists.
  fs.writeFileSync(path.join(dir, 'app.js'), `if (require('fs').existsSync(${JSON.stringify(path.join(dir, 'BROKEN'))})) throw new Error('bad deploy');\n${fs.readFileSync(path.join(APP, 'app.js'), 'utf8')}`);
  const { env } = runtimeEnv();
  const port = await freePort();
  const app = new Cli(['app.js', '-i', '2'], { cwd: dir, env: { ...env, APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/, { count: 2 });
  fs.writeFileSync(path.join(dir, 'BROKEN'), '');
  let r = await cli(['reload'], { cwd: dir, env, timeout: 60000 });
  assert.strictEqual(r.code, 1, r.stderr);
  assert.strictEqual(r.stdout, '');
  assert.match(r.stderr, /^rcluster: error: reload failed: a new worker exited before it was ready \(worker \d+ exited with code 1\); the old workers serve on\n$/);
  assert.strictEqual((await get(port, '/')).status, 200, 'the old workers serve on');
  r = await cli(['restart', 'app', '--json'], { cwd: '/', env, timeout: 60000 });
  assert.strictEqual(r.code, 1, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.strictEqual(result.ok, false);
  assert.strictEqual(result.code, 1);
  assert.match(r.stderr, /^rcluster: error: reload failed: /);
  fs.unlinkSync(path.join(dir, 'BROKEN'));
  r = await cli(['restart', 'app'], { cwd: '/', env, timeout: 60000 });
  assert.deepStrictEqual([r.code, r.stdout], [0, 'reloaded: 2 workers replaced\n'], r.stderr);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('two projects\' server.js: the second app\'s derived name gives way (server-2), says so, and both are listed and reachable by name', async (t) => {
  const { runtime, env } = runtimeEnv();
  const dirs = [tmpdir(), tmpdir()];
  for (const dir of dirs) fs.copyFileSync(path.join(APP, 'app.js'), path.join(dir, 'server.js'));
  const apps = [];
  for (const dir of dirs) {
    const app = new Cli(['-i', '1', 'server.js'], { cwd: dir, env: { ...env, APP_PORT: String(await freePort()) } });
    t.after(() => app.killGroup());
    await app.waitFor(/listening on/);
    apps.push(app);
  }
  assert.match(apps[1].err, /an app named "server" is already running: this one is "server-2" \(give --name NAME to choose\)/);
  assert.deepStrictEqual(fs.readdirSync(path.join(runtime, 'rcluster')).sort(), ['server-2.sock', 'server.sock']);
  const listed = JSON.parse((await cli(['ls', '--json'], { cwd: '/', env })).stdout);
  assert.deepStrictEqual(listed.map((x) => [x.name, x.pid, x.dir]).sort(), [
    ['server', apps[0].child.pid, fs.realpathSync(dirs[0])],
    ['server-2', apps[1].child.pid, fs.realpathSync(dirs[1])],
  ]);
  for (const [i, name] of [[0, 'server'], [1, 'server-2']]) {
    const r = await cli(['status', name, '--json'], { cwd: '/', env });
    assert.strictEqual(JSON.parse(r.stdout).pid, apps[i].child.pid);
  }
  // From its own directory, each is found without a name.
  const r = await cli(['status', '--json'], { cwd: dirs[1], env });
  assert.strictEqual(JSON.parse(r.stdout).pid, apps[1].child.pid);
});
