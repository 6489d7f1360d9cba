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
const { v2Header, exchange } = require('../helpers/proxy-client');

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

// ---- setupPrimary() settings by their own names in a config file ----

// An app that answers with its client's address (/peer), and uses the bus
// and a shared counter (/broadcast, /got, /add, /total).
const BUS_APP = `
const cluster = require('node:cluster');
const http = require('node:http');
const got = [];
cluster.bus.on('ping', (data) => got.push(data));
http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/peer') return res.end(req.socket.remoteAddress + ' ' + req.socket.remotePort);
  if (url.pathname === '/broadcast') { cluster.bus.broadcast('ping', url.searchParams.get('data')); return res.end('sent'); }
  if (url.pathname === '/got') return res.end(JSON.stringify(got));
  const counter = cluster.shared.counter('hits');
  if (url.pathname === '/add') { counter.add(Number(url.searchParams.get('n'))); return res.end('added'); }
  if (url.pathname === '/total') return res.end(String(await counter.sync()));
  res.end('ok');
}).listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('listening on ' + process.env.APP_PORT));
`;

// A directory holding the app and `files` ({ name: text }), in one
// temporary directory for the file's tests.
let appDirs;
function appDir(files) {
  appDirs ??= tmpdir();
  const dir = fs.mkdtempSync(path.join(appDirs, 'app-'));
  fs.writeFileSync(path.join(dir, 'app.js'), BUS_APP);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const configJs = (value) => `module.exports = ${JSON.stringify(value, null, 2)};\n`;

const PEER_REQUEST = 'GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

async function runApp(t, dir, args = [], env = {}) {
  const port = await freePort();
  const app = new Cli(args, { cwd: dir, env: { APP_PORT: String(port), ...env } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+/);
  return { app, port };
}

test('rcluster.config.js routing.proxyProtocol.trusted: the app sees the client a PROXY v2 header names; without it the request is refused', async (t) => {
  const request = Buffer.concat([v2Header(false, '198.51.100.4', 40003), Buffer.from(PEER_REQUEST)]);
  const dir = appDir({ 'rcluster.config.js': configJs({ script: 'app.js', instances: 1, routing: { proxyProtocol: { trusted: ['127.0.0.1'] } } }) });
  const { app, port } = await runApp(t, dir);
  assert.doesNotMatch(app.err, /unknown key/);
  const answer = await exchange(port, [request]);
  assert.match(answer, /^HTTP\/1\.1 200/);
  assert.strictEqual(answer.split('\r\n\r\n')[1], '198.51.100.4 40003');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);

  // The same app and request without the key: the header reaches the app,
  // whose HTTP parser refuses it.
  fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', instances: 1 }));
  const plain = await runApp(t, dir);
  assert.match(await exchange(plain.port, [request]), /^HTTP\/1\.1 400/);
  plain.app.signal('SIGTERM');
  assert.strictEqual((await plain.app.exited()).code, 0);
});

test('an ecosystem file\'s app takes routing too', async (t) => {
  const dir = appDir({
    'ecosystem.config.js': configJs({ apps: [{ name: 'peer', script: 'app.js', instances: 1, routing: { proxyProtocol: { trusted: ['127.0.0.0/8'] } } }] }),
  });
  const { app, port } = await runApp(t, dir, ['ecosystem.config.js']);
  const answer = await exchange(port, [Buffer.concat([v2Header(false, '203.0.113.9', 5555), Buffer.from(PEER_REQUEST)])]);
  assert.strictEqual(answer.split('\r\n\r\n')[1], '203.0.113.9 5555');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

const { redisServerPath, startRedisServer } = require('../helpers/redis-server');
const REDIS = redisServerPath();

test('bus: { redis }: two rcluster runs of one config share broadcasts and counters', {
  skip: REDIS === null && 'redis-server is not installed (apt-get install redis-server; .ci/run does it)', timeout: 90000,
}, async (t) => {
  const redis = await startRedisServer(REDIS);
  t.after(() => redis.proc.kill('SIGKILL'));
  const dir = appDir({ 'rcluster.config.js': configJs({ script: 'app.js', instances: 1, bus: { redis: redis.url } }) });
  // Two hosts: two primaries, each with its own port and control socket.
  const a = await runApp(t, dir, ['--name', 'bus-a']);
  const b = await runApp(t, dir, ['--name', 'bus-b']);
  // Subscriptions are made asynchronously: broadcast until one crosses.
  let crossed = false;
  for (let i = 0; i < 50 && !crossed; i++) {
    assert.strictEqual((await get(a.port, `/broadcast?data=from-a-${i}`)).body, 'sent');
    await new Promise((r) => setTimeout(r, 200));
    crossed = JSON.parse((await get(b.port, '/got')).body).includes(`from-a-${i}`);
  }
  assert.ok(crossed, 'a broadcast from the app under one rcluster reaches the app under the other');
  assert.ok(JSON.parse((await get(a.port, '/got')).body).length > 0, 'and its own workers');

  await get(a.port, '/add?n=300');
  await get(b.port, '/add?n=4000');
  let totals;
  for (let i = 0; i < 50; i++) {
    totals = [Number((await get(a.port, '/total')).body), Number((await get(b.port, '/total')).body)];
    if (totals[0] === 4300 && totals[1] === 4300) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepStrictEqual(totals, [4300, 4300], 'the counter sums over both');
  a.app.signal('SIGTERM');
  b.app.signal('SIGTERM');
  assert.strictEqual((await a.app.exited()).code, 0);
  assert.strictEqual((await b.app.exited()).code, 0);
});

test('a bad setupPrimary() value in a config file exits 2 with the library\'s message, naming the file and key', async () => {
  const cases = [
    [{ routing: { proxyProtocol: { trusted: ['x'] } } }, 'rcluster.config.js: routing: The property \'options.routing.proxyProtocol.trusted[0]\' must be an IP address or a CIDR block. Received type string (\'x\')'],
    [{ routing: 5 }, 'rcluster.config.js: routing: The "options.routing" property must be of type object. Received type number (5)'],
    [{ bus: { redis: 7 } }, 'rcluster.config.js: bus: '],
    [{ recycle: { maxRequests: -1 } }, 'rcluster.config.js: recycle: The value of "options.recycle.maxRequests"'],
    [{ health: {} }, 'rcluster.config.js: health: The "options.health.hangTimeout" property must be of type number. Received undefined'],
    [{ queueTimeout: 'soon' }, 'rcluster.config.js: queueTimeout: The "options.queueTimeout" property must be of type number'],
    // The command's own settings are refused, with what to use instead.
    [{ execArgv: ['--inspect'] }, 'rcluster.config.js: execArgv is the command\'s own setting: give node\'s options with `node_args`'],
    [{ shutdownSignals: ['SIGTERM'] }, 'rcluster.config.js: shutdownSignals is the command\'s own setting'],
  ];
  const dir = appDir({});
  for (const [settings, message] of cases) {
    fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', instances: 1, ...settings }));
    const r = await cli([], { cwd: dir });
    assert.strictEqual(r.code, 2, `${JSON.stringify(settings)}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`rcluster: error: ${message}`), `${JSON.stringify(settings)}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /listening/);
  }
  // In an ecosystem file: the app is named.
  fs.writeFileSync(path.join(dir, 'ecosystem.config.js'), configJs({ apps: [{ script: 'app.js', routing: { proxyProtocol: true, nope: 1 } }] }));
  const r = await cli(['ecosystem.config.js'], { cwd: dir });
  assert.strictEqual(r.code, 2);
  assert.match(r.stderr, /ecosystem\.config\.js apps\[0\]: routing: The property 'options\.routing\.nope' is not a routing option/);
});

// cluster.settings as the primary of `rcluster ARGS` in `dir` has it.
function settingsOf(dir, args) {
  const program = `
    const { parseArgs } = require('./lib/cli/args');
    const { resolveRun } = require('./lib/cli/settings');
    Promise.resolve().then(() => resolveRun(parseArgs(${JSON.stringify(args)}), ${JSON.stringify(dir)}))
      .then(({ app, primary }) => {
        const cluster = require('.');
        cluster.setupPrimary(primary);
        const s = cluster.settings;
        console.log(JSON.stringify({ settings: { ...s, restart: s.restart }, health: app.health }));
      }, (err) => { console.error(err.message); process.exit(2); });`;
  const r = spawnSync(process.execPath, ['-e', program], { cwd: ROOT, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('a file\'s object settings merge field by field with the flags\'; flags beat the file; the setting\'s own name beats the PM2 key', () => {
  const dir = appDir({
    'rcluster.config.js': configJs({
      script: 'app.js',
      recycle: { maxRequests: 1000, maxMemory: '500M' },
      max_memory_restart: '100M',
      kill_timeout: 5000,
      drainTimeout: 9000,
      readyTimeout: 7000,
      restart: { maxDelay: 20000, maxRestarts: 4 },
      reload: { probation: 2500 },
      queueTimeout: 1500,
    }),
  });
  let { settings } = settingsOf(dir, []);
  assert.deepStrictEqual(settings.recycle, { maxMemory: { soft: 500 * 2 ** 20, hard: 750 * 2 ** 20 }, maxRequests: 1000, jitter: 0 });
  assert.strictEqual(settings.shutdownTimeout, 5000, 'kill_timeout');
  assert.strictEqual(settings.drainTimeout, 9000, 'drainTimeout beats kill_timeout in the same file');
  assert.strictEqual(settings.readyTimeout, 7000);
  assert.strictEqual(settings.restart.maxDelay, 20000);
  assert.strictEqual(settings.restart.maxRestarts, 4);
  assert.strictEqual(settings.restart.minDelay, 100);
  assert.deepStrictEqual(settings.reload, { probation: 2500 });
  assert.strictEqual(settings.queueTimeout, 1500);

  ({ settings } = settingsOf(dir, ['--max-memory-restart', '300M', '--max-restarts', '9', '--kill-timeout', '2000', '--reload-probation', '0', '--listen-timeout', '1000']));
  assert.deepStrictEqual(settings.recycle, { maxMemory: { soft: 300 * 2 ** 20, hard: 450 * 2 ** 20 }, maxRequests: 1000, jitter: 0 },
    'the flag\'s maxMemory, the file\'s maxRequests');
  assert.strictEqual(settings.restart.maxRestarts, 9);
  assert.strictEqual(settings.restart.maxDelay, 20000, 'the file\'s other restart fields stay');
  assert.strictEqual(settings.shutdownTimeout, 2000);
  assert.strictEqual(settings.drainTimeout, 2000);
  assert.strictEqual(settings.readyTimeout, 1000);
  assert.deepStrictEqual(settings.reload, { probation: 0 });

  // recycle: false in the file, a recycle flag: the flag's field turns it on.
  fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', recycle: false }));
  ({ settings } = settingsOf(dir, ['--cron-restart', '0 4 * * *']));
  assert.deepStrictEqual(settings.recycle, { jitter: 0, cron: '0 4 * * *' });

  // The restart policy, on by default, is off with restart: false, unless a
  // flag sets one of its fields.
  fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', restart: false, max_restarts: 5 }));
  assert.strictEqual(settingsOf(dir, []).settings.restart, false);
  ({ settings } = settingsOf(dir, ['--max-restarts', '3']));
  assert.strictEqual(settings.restart.maxRestarts, 3);
  assert.strictEqual(settings.restart.minDelay, 100);
});

test('health: HOST:PORT is the endpoint, an object the library\'s hang detection (its listen: the endpoint); --health beats the file\'s endpoint only', async (t) => {
  const dir = appDir({ 'rcluster.config.js': configJs({ script: 'app.js', health: '127.0.0.1:9001' }) });
  let r = settingsOf(dir, []);
  assert.deepStrictEqual(r.health, { host: '127.0.0.1', port: 9001 });
  assert.strictEqual(r.settings.health, undefined);

  fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', health: { hangTimeout: 4000, listen: '127.0.0.1:9002' } }));
  r = settingsOf(dir, []);
  assert.deepStrictEqual(r.health, { host: '127.0.0.1', port: 9002 });
  assert.deepStrictEqual(r.settings.health, { hangTimeout: 4000 });
  r = settingsOf(dir, ['--health', '9003']);
  assert.deepStrictEqual(r.health, { host: '127.0.0.1', port: 9003 });
  assert.deepStrictEqual(r.settings.health, { hangTimeout: 4000 });

  // Both at work in a real run: the endpoint answers, and the hang
  // detection is the primary's.
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'rcluster.config.js'), configJs({ script: 'app.js', instances: 1, health: { hangTimeout: 4000, listen: `127.0.0.1:${port}` } }));
  const { app } = await runApp(t, dir);
  await app.waitFor(/health at http:\/\/127\.0\.0\.1:\d+\/health/);
  let status;
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = (await get(port, '/health')).status;
    if (status !== 200) await new Promise((res) => setTimeout(res, 100));
  }
  assert.strictEqual(status, 200);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
