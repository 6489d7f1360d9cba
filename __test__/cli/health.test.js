'use strict';
// --health as a balancer reads it, and --drain-delay: on SIGTERM or
// `rcluster stop` /health answers 503 at once while the app keeps serving,
// new connections too, for the delay; then it drains and exits 0. /health/live
// stays 200 meanwhile; /health/ready is /health. A second signal during the
// delay stops at once. The JSON answer tells the bus's Redis link, which
// never makes the host unready.
const test = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, FIXTURES } = require('./cli-process');
const { pollUntil } = require('../helpers/poll');
const { redisServerPath, startRedisServer } = require('../helpers/redis-server');

const APP = path.join(FIXTURES, 'cjs-app');
const DIR = tmpdir();
let apps = 0;

async function start(t, args, env = {}) {
  const port = await freePort();
  const health = await freePort();
  const control = path.join(DIR, `ctl-${++apps}.sock`);
  const app = new Cli(['--control', control, '--health', `127.0.0.1:${health}`, ...args], { cwd: APP, env: { APP_PORT: String(port), ...env } });
  t.after(() => app.killGroup());
  return { app, port, health, control };
}

/** One request to the health endpoint: `{ status, headers, body }`. */
function ask(port, urlPath, { method = 'GET', headers = {}, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, headers, agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function untilStatus(port, urlPath, status, what) {
  let last;
  const ok = await pollUntil(async () => {
    last = await ask(port, urlPath).catch((err) => ({ status: err.message }));
    return last.status === status;
  }, { timeout: 15000, interval: 50 });
  assert.ok(ok, `${what}: ${urlPath} never answered ${status} (last: ${JSON.stringify(last)})`);
  return last;
}

// While the drain delay runs: the app answers new connections, /health is
// 503 `draining`, /health/live 200. Checked against the log: every request
// here was answered before the delay was over.
async function servesWhileDraining(app, port, health) {
  const during = await ask(health, '/health');
  assert.strictEqual(during.status, 503, 'unready as soon as it stops');
  assert.match(during.body, /^draining\n/);
  assert.strictEqual((await ask(health, '/health/ready')).status, 503);
  const live = await ask(health, '/health/live');
  assert.strictEqual(live.status, 200, 'a draining host is alive');
  assert.match(live.body, /^ok\n/);
  for (let i = 0; i < 10; i++) {
    const r = await get(port, '/', { timeout: 3000 });
    assert.strictEqual(r.status, 200, `a new connection during the delay (${i + 1} of 10)`);
  }
  assert.doesNotMatch(app.err, /drain delay over/, 'the requests above were all made during the delay');
}

test('SIGTERM with --drain-delay: /health 503 at once, /health/live 200, new connections served during the delay, then exit 0', async (t) => {
  const { app, port, health, control } = await start(t, ['-i', '2', '--drain-delay', '1500', 'app.js']);
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  await untilStatus(health, '/health', 200, 'ready');
  const t0 = Date.now();
  app.signal('SIGTERM');
  await untilStatus(health, '/health', 503, 'draining');
  await servesWhileDraining(app, port, health);
  const s = await statusUntil(control, () => true);
  assert.strictEqual(s.state, 'draining');
  assert.strictEqual(s.drainDelay.ms, 1500);
  assert.ok(s.drainDelay.remaining <= 1500, JSON.stringify(s.drainDelay));
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  assert.ok(Date.now() - t0 >= 1500, `exited ${Date.now() - t0} ms after SIGTERM, before its 1500 ms delay`);
  assert.match(app.err, /stopping \(SIGTERM\): \/health answers 503; serving on, draining 2 workers in 1500 ms/);
  assert.match(app.err, /drain delay over: draining 2 workers/);
});

test('rcluster stop waits out the drain delay and the drain; the app serves meanwhile', async (t) => {
  const { app, port, health, control } = await start(t, ['-i', '1', '--drain-delay', '1500', 'app.js']);
  await app.waitFor(/listening on/);
  await untilStatus(health, '/health', 200, 'ready');
  const t0 = Date.now();
  const stop = cli(['stop', '--control', control]);
  await untilStatus(health, '/health', 503, 'draining');
  await servesWhileDraining(app, port, health);
  const r = await stop;
  assert.deepStrictEqual([r.code, r.stdout], [0, 'stopped\n'], r.stderr);
  assert.ok(Date.now() - t0 >= 1500, `rcluster stop returned ${Date.now() - t0} ms after it was run`);
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  assert.match(app.err, /stopping \(rcluster stop\): \/health answers 503; serving on, draining 1 workers in 1500 ms/);
});

test('a long request started before SIGTERM finishes across the delay and the drain', async (t) => {
  const { app, port, health } = await start(t, ['-i', '1', '--drain-delay', '1000', 'app.js'], { SLOW_MS: '2500' });
  await app.waitFor(/listening on/);
  await untilStatus(health, '/health', 200, 'ready');
  const slow = get(port, '/slow', { timeout: 15000 });
  await new Promise((r) => setTimeout(r, 300));
  app.signal('SIGTERM');
  await app.waitFor(/drain delay over/);
  assert.deepStrictEqual(await slow, { status: 200, body: 'slow' });
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
});

test('with --health the default delay applies (said in the log); a second SIGTERM during it stops at once', async (t) => {
  const { app, port, control } = await start(t, ['-i', '1', 'app.js']);
  await app.waitFor(/listening on/);
  const t0 = Date.now();
  app.signal('SIGTERM');
  await app.waitFor(/stopping \(SIGTERM\)/);
  assert.match(app.err, /stopping \(SIGTERM\): \/health answers 503; serving on, draining 1 workers in 5000 ms \(--drain-delay\)/);
  assert.strictEqual((await get(port, '/')).status, 200, 'serving during the default delay');
  const status = await cli(['status', '--control', control]);
  assert.match(status.stdout, /^app \(pid \d+\): draining, 1\/1 workers/, status.stderr);
  app.signal('SIGTERM');
  assert.deepStrictEqual(await app.exited(), { code: 143, signal: null });
  assert.ok(Date.now() - t0 < 5000, `a second SIGTERM waited ${Date.now() - t0} ms`);
  assert.doesNotMatch(app.err, /drain delay over/);
});

test('--drain-delay 0 with --health, and Ctrl-C (SIGINT) without a delay given: drained at once', async (t) => {
  for (const [args, signal] of [[['--drain-delay', '0'], 'SIGTERM'], [[], 'SIGINT']]) {
    const { app, health } = await start(t, ['-i', '1', ...args, 'app.js']);
    await app.waitFor(/listening on/);
    await untilStatus(health, '/health', 200, 'ready');
    const t0 = Date.now();
    app.signal(signal);
    assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
    assert.match(app.err, new RegExp(`stopping \\(${signal}\\): draining 1 workers\\n`));
    assert.doesNotMatch(app.err, /--drain-delay|drain delay over/);
    assert.ok(Date.now() - t0 < 5000, `${signal} with ${args.join(' ') || 'no delay given'} took ${Date.now() - t0} ms`);
  }
});

test('SIGINT with --drain-delay given waits it too', async (t) => {
  const { app, health } = await start(t, ['-i', '1', '--drain-delay', '800', 'app.js']);
  await app.waitFor(/listening on/);
  await untilStatus(health, '/health', 200, 'ready');
  app.signal('SIGINT');
  await app.waitFor(/stopping \(SIGINT\): \/health answers 503; serving on, draining 1 workers in 800 ms/);
  assert.strictEqual((await ask(health, '/health')).status, 503);
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  assert.match(app.err, /drain delay over/);
});

test('starting: /health/ready and /health 503 unavailable, /health/live 200; then ready; HEAD, OPTIONS, JSON, 404', async (t) => {
  const { app, health } = await start(t, ['-i', '2', '--drain-delay', '0', 'app.js'], { LISTEN_DELAY_MS: '1500' });
  await app.waitFor(/health at http:\/\/127\.0\.0\.1:\d+\/health/);
  const ready = await ask(health, '/health/ready');
  assert.strictEqual(ready.status, 503, 'not ready before the app listens');
  assert.strictEqual(ready.body, 'unavailable\nworkers: 0 of 2 ready\n');
  assert.strictEqual((await ask(health, '/health')).status, 503);
  const live = await ask(health, '/health/live');
  assert.strictEqual(live.status, 200, 'alive while starting');
  const head = await ask(health, '/health', { method: 'HEAD' });
  assert.deepStrictEqual([head.status, head.body], [503, ''], 'HEAD answers as GET, with no body');

  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  const ok = await untilStatus(health, '/health', 200, 'ready');
  assert.strictEqual(ok.body, 'ok\nworkers: 2 of 2 ready\n');
  assert.strictEqual(ok.headers['cache-control'], 'no-store');
  assert.strictEqual(ok.headers['content-length'], String(Buffer.byteLength(ok.body)));
  assert.strictEqual((await ask(health, '/health/ready')).status, 200);
  assert.strictEqual((await ask(health, '/')).status, 200, '/ stays the readiness answer');
  const headOk = await ask(health, '/health/ready', { method: 'HEAD' });
  assert.deepStrictEqual([headOk.status, headOk.body], [200, '']);
  // HAProxy's `option httpchk` with no method sends OPTIONS /.
  assert.strictEqual((await ask(health, '/', { method: 'OPTIONS' })).status, 200);

  const json = await ask(health, '/health?json');
  assert.strictEqual(json.headers['content-type'], 'application/json');
  assert.deepStrictEqual(JSON.parse(json.body), { status: 'ok', live: true, ready: true, draining: false, workers: { ready: 2, total: 2 } },
    'no redis field without bus.redis');
  const accepted = await ask(health, '/health/live', { headers: { accept: 'application/json' } });
  assert.strictEqual(JSON.parse(accepted.body).status, 'ok');
  assert.strictEqual((await ask(health, '/health/live', { headers: { accept: '*/*' } })).body.split('\n')[0], 'ok', 'a probe\'s */* gets text');

  const missing = await ask(health, '/healthz');
  assert.strictEqual(missing.status, 404);
  assert.strictEqual((await ask(health, '/health/live/x')).status, 404);
  app.signal('SIGTERM');
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
});

const REDIS = redisServerPath();
test('bus.redis: the JSON answer says redis up, then down when Redis goes, and the host stays ready',
  { skip: REDIS === null && 'redis-server is not installed (apt-get install redis-server; .ci/run does it)', timeout: 60000 }, async (t) => {
    const redis = await startRedisServer(REDIS);
    t.after(() => redis.proc.kill('SIGKILL'));
    const preload = path.join(FIXTURES, 'bus-redis-preload.js');
    const { app, health } = await start(t, ['-i', '1', '--drain-delay', '0', 'app.js'], {
      REDIS_URL: redis.url, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`,
    });
    await app.waitFor(/listening on/);
    let body;
    const up = await pollUntil(async () => {
      body = JSON.parse((await ask(health, '/health?json')).body);
      return body.redis === 'up' && body.ready;
    }, { timeout: 15000, interval: 100 });
    assert.ok(up, `redis never up: ${JSON.stringify(body)}`);
    assert.match((await ask(health, '/health')).body, /^ok\n.*\nredis: up\n$/s);

    redis.proc.kill('SIGKILL');
    const down = await pollUntil(async () => {
      body = JSON.parse((await ask(health, '/health?json')).body);
      return body.redis === 'down';
    }, { timeout: 15000, interval: 100 });
    assert.ok(down, `redis never down: ${JSON.stringify(body)}`);
    const text = await ask(health, '/health');
    assert.strictEqual(text.status, 200, 'Redis down does not make the host unready');
    assert.match(text.body, /^ok\n.*\nredis: down\n$/s);
    app.signal('SIGTERM');
    assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  });

test('drainDelay from a config file; a bad --drain-delay is a usage error; --help lists it', async (t) => {
  const dir = tmpdir();
  const config = path.join(dir, 'rcluster.config.json');
  require('node:fs').writeFileSync(config, JSON.stringify({ script: path.join(APP, 'app.js'), instances: 1, drainDelay: '1s' }));
  const { app } = await start(t, ['--config', config]);
  await app.waitFor(/listening on/);
  app.signal('SIGTERM');
  await app.waitFor(/stopping \(SIGTERM\): \/health answers 503; serving on, draining 1 workers in 1000 ms/);
  assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });

  for (const value of ['-1', 'soon', '1.5']) {
    const r = await cli(['--drain-delay', value, 'app.js'], { cwd: APP });
    assert.strictEqual(r.code, 2, `--drain-delay ${value}\n${r.stderr}`);
    assert.match(r.stderr, /--drain-delay must be a whole number of milliseconds/);
    assert.strictEqual(r.stderr.trim().split('\n').length, 1);
  }
  const help = await cli(['--help']);
  assert.match(help.stdout, /--drain-delay MS +on SIGTERM or rcluster stop, answer \/health 503 .*default 5000 with --health, else 0/);
});
