'use strict';
// The release, end to end, against a real registry: `npm run release` builds
// the addon with cargo-zigbuild against glibc 2.17 and publishes
// rcluster-linux-x64-gnu and rcluster to a local verdaccio; a fresh app then
// `npm install rcluster` from it with no cargo or rustc on PATH, and runs a
// 2-worker cluster on the native dispatcher. Then the platform package is
// unpublished: the same install builds from source where cargo is on PATH,
// and fails saying what is missing where it is not.
//
// Run by `npm run test:release` (.ci/run runs it after `npm test`), not by
// `npm test`: it needs cargo-zigbuild and zig (`pip install ziglang
// cargo-zigbuild`) and takes minutes.
//
// The registry is verdaccio on a free loopback port with its own storage and
// no uplink: rcluster's runtime dependencies (croner) are packed from this
// checkout's node_modules and published into it, so nothing is fetched from
// any other registry and every install starts from an empty npm cache.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freshApp, serveFromBothWorkers } = require('../helpers/installed-app');
const { glibcVersions, highestGlibc, compareVersions } = require('../../scripts/glibc-versions');

const repo = path.join(__dirname, '..', '..');
const pkg = require(path.join(repo, 'package.json'));
const PLATFORM_PKG = 'rcluster-linux-x64-gnu';
const NODE_FILE = 'rcluster.linux-x64-gnu.node';
const GLIBC_BASELINE = 'GLIBC_2.17';
// The source build shares tarball.test.js's cargo cache (crates.io crates
// compiled once); its app has a fixed path so rcluster's own crates do not
// pile up there.
const cargoCache = path.join(repo, 'target', 'packaging-test', 'cargo');
const sourceApp = path.join(repo, 'target', 'packaging-test', 'release-app-source');

const skip = process.platform !== 'linux' || process.arch !== 'x64'
  ? 'the release command builds linux-x64-gnu and runs there only' : false;

const BUILD_TIMEOUT = 15 * 60 * 1000;
// Generous: the figure itself is printed; this only catches an install that
// builds or hangs instead of fetching two packages.
const PREBUILT_INSTALL_LIMIT_MS = 60 * 1000;

const work = skip ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-release-'));
const timings = {};

// The outer `npm test` or `npm run` exports npm_config_* and the like, which
// would make an inner npm treat this checkout as its project.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false', ...extra };
}

// PATH without any directory that holds cargo or rustc.
function pathWithoutRust() {
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => dir && !['cargo', 'rustc'].some((bin) => fs.existsSync(path.join(dir, bin))))
    .join(path.delimiter);
}

function sh(cmd, args, options) {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: BUILD_TIMEOUT, ...options });
  if (r.error) throw r.error;
  r.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return r;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One request to the registry on a connection of its own (a kept-alive one
// can be closed by the server just as it is reused): { status, body }.
function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: 10000, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => { text += d; }).on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, body: json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function waitForHttp(url, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if ((await request('GET', url)).status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let registry;
let verdaccio;
let verdaccioLog = '';
let publisherEnv;

// An npm environment reading only `registry` and, for the publisher, its
// token: a userconfig of its own and an npm cache of its own.
function npmEnv(name, extra = {}, { token } = {}) {
  const dir = path.join(work, 'npm', name);
  fs.mkdirSync(dir, { recursive: true });
  const host = registry.replace(/^http:/, '');
  fs.writeFileSync(path.join(dir, 'npmrc'), `registry=${registry}\n${token ? `${host}:_authToken=${token}\n` : ''}`);
  return cleanEnv({
    npm_config_userconfig: path.join(dir, 'npmrc'),
    npm_config_cache: path.join(dir, 'cache'),
    // Any request npm sent elsewhere than the local registry would go through
    // this proxy, where nothing listens, and fail the command.
    npm_config_proxy: 'http://127.0.0.1:9/',
    npm_config_https_proxy: 'http://127.0.0.1:9/',
    npm_config_noproxy: '127.0.0.1',
    ...extra,
  });
}

async function startRegistry() {
  const port = await freePort();
  registry = `http://127.0.0.1:${port}/`;
  const dir = path.join(work, 'verdaccio');
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, [
    `storage: ${JSON.stringify(path.join(dir, 'storage'))}`,
    'auth:',
    '  htpasswd:',
    `    file: ${JSON.stringify(path.join(dir, 'htpasswd'))}`,
    '    max_users: 10',
    // No uplink: a package not published here is a 404, never a proxy fetch.
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    '    unpublish: $authenticated',
    'web:',
    '  enable: false',
    'log: { type: stdout, format: pretty, level: warn }',
    '',
  ].join('\n'));
  const bin = path.join(path.dirname(require.resolve('verdaccio/package.json', { paths: [repo] })), 'bin', 'verdaccio');
  verdaccio = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`],
    { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [verdaccio.stdout, verdaccio.stderr]) s.setEncoding('utf8').on('data', (d) => { verdaccioLog += d; });
  await waitForHttp(`${registry}-/ping`, 30000);

  // A user to publish as (verdaccio's htpasswd adds it on first PUT).
  const { status, body } = await request('PUT', `${registry}-/user/org.couchdb.user:releaser`,
    { name: 'releaser', password: 'releaser-password' });
  assert.ok(status === 201 && body && body.token, `verdaccio created no user: ${status} ${JSON.stringify(body)}`);
  publisherEnv = npmEnv('publisher', {}, { token: body.token });
}

// The installed copy of `name` as seen from `from` (node's lookup order).
function installedDir(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`${name} is not installed under ${from}`);
  }
}

// rcluster's runtime dependencies and theirs, packed from node_modules and
// published to the local registry.
function publishRuntimeDependencies() {
  const seen = new Set();
  const published = [];
  const visit = (deps, from) => {
    for (const name of Object.keys(deps || {})) {
      if (seen.has(name)) continue;
      seen.add(name);
      const dir = installedDir(name, from);
      const packed = sh('npm', ['pack', dir, '--json', '--ignore-scripts', '--pack-destination', work], { cwd: work, env: publisherEnv });
      assert.equal(packed.status, 0, packed.stderr);
      const tarball = path.join(work, JSON.parse(packed.stdout)[0].filename);
      const r = sh('npm', ['publish', tarball, '--registry', registry, '--ignore-scripts'], { cwd: work, env: publisherEnv });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      published.push(`${name}@${require(path.join(dir, 'package.json')).version}`);
      visit(require(path.join(dir, 'package.json')).dependencies, dir);
    }
  };
  visit(pkg.dependencies, repo);
  return published;
}

function packument(name) {
  return request('GET', `${registry}${name}`);
}

function listInstalled(app) {
  return fs.readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.')).sort();
}

test.before(async () => {
  if (skip) return;
  await startRegistry();
});

test.after(() => {
  if (verdaccio) verdaccio.kill('SIGKILL');
  if (work) fs.rmSync(work, { recursive: true, force: true });
  const figures = Object.entries(timings).map(([k, v]) => `${k}: ${v.toFixed(1)} s`).join('; ');
  if (figures) console.log(`# release e2e timings: ${figures}`);
});

test('the runtime dependencies are published to the local registry from node_modules', { skip }, () => {
  const published = publishRuntimeDependencies();
  console.log(`# published to the local registry: ${published.join(', ')}`);
  assert.ok(published.some((p) => p.startsWith('croner@')), published.join(', '));
});

test('npm run release -- --dry-run builds and packs, and publishes nothing', { skip, timeout: BUILD_TIMEOUT }, async () => {
  const r = sh('npm', ['run', 'release', '--', '--registry', registry, '--dry-run', '--out', path.join(work, 'release')],
    { cwd: repo, env: publisherEnv });
  timings['release --dry-run (build included)'] = r.seconds;
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /highest glibc symbol version needed GLIBC_2\.17 \(baseline 2\.17\)/);
  assert.equal((await packument('rcluster')).status, 404);
  assert.equal((await packument(PLATFORM_PKG)).status, 404);
});

test('npm run release publishes the platform package and rcluster, pinned to one version', { skip, timeout: BUILD_TIMEOUT }, async () => {
  const r = sh('npm', ['run', 'release', '--', '--registry', registry, '--out', path.join(work, 'release')],
    { cwd: repo, env: publisherEnv });
  timings['release'] = r.seconds;
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${verdaccioLog}`);
  const main = await packument('rcluster');
  const platform = await packument(PLATFORM_PKG);
  assert.equal(main.status, 200);
  assert.equal(platform.status, 200);
  const version = main.body['dist-tags'].latest;
  assert.equal(version, pkg.version);
  assert.equal(platform.body['dist-tags'].latest, version);
  const manifest = main.body.versions[version];
  assert.equal(manifest.optionalDependencies[PLATFORM_PKG], version);
  assert.deepEqual(manifest.dependencies, pkg.dependencies);
  const platformManifest = platform.body.versions[version];
  assert.deepEqual([platformManifest.os, platformManifest.cpu, platformManifest.libc], [['linux'], ['x64'], ['glibc']]);
});

test('without cargo or rustc on PATH, npm install rcluster takes the prebuilt binary, and a 2-worker cluster runs on the native dispatcher', { skip, timeout: BUILD_TIMEOUT }, async (t) => {
  const app = freshApp(t, path.join(work, 'app-prebuilt'));
  const PATH = pathWithoutRust();
  assert.equal(spawnSync('cargo', ['--version'], { env: { PATH } }).error?.code, 'ENOENT', 'no cargo on the install\'s PATH');
  assert.equal(spawnSync('rustc', ['--version'], { env: { PATH } }).error?.code, 'ENOENT', 'no rustc on the install\'s PATH');
  const env = npmEnv('app-prebuilt', { PATH });
  const r = sh('npm', ['install', 'rcluster', '--registry', registry, '--foreground-scripts'], { cwd: app, env });
  timings['npm install rcluster (prebuilt, no Rust, empty cache)'] = r.seconds;
  console.log(`# npm install rcluster without Rust, from an empty npm cache: ${r.seconds.toFixed(1)} s`);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}\n${verdaccioLog}`);
  assert.ok(r.seconds * 1000 < PREBUILT_INSTALL_LIMIT_MS, `the install took ${r.seconds} s`);
  assert.doesNotMatch(r.stderr, /building the native addon|no prebuilt binary/);
  assert.deepEqual(listInstalled(app), ['croner', 'rcluster', PLATFORM_PKG]);
  assert.equal(fs.existsSync(path.join(app, 'node_modules', 'rcluster', NODE_FILE)), false, 'nothing was built');

  const binary = path.join(app, 'node_modules', PLATFORM_PKG, NODE_FILE);
  const { loaded } = await serveFromBothWorkers(t, app);
  assert.deepEqual(loaded.map((f) => fs.realpathSync(f)), [fs.realpathSync(binary)], 'the platform package\'s binary is the one loaded');

  // The oldest glibc it loads on is the highest symbol version it needs.
  const highest = highestGlibc(binary);
  console.log(`# ${PLATFORM_PKG}: highest GLIBC_ symbol version needed: ${highest}`);
  assert.ok(compareVersions(highest, GLIBC_BASELINE) <= 0, `${highest} is above ${GLIBC_BASELINE}`);
  // The same list as binutils', where it is installed.
  const objdump = spawnSync('objdump', ['-T', binary], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (objdump.status === 0) {
    const fromObjdump = [...new Set(objdump.stdout.match(/GLIBC_[0-9.]+/g))].sort(compareVersions);
    assert.deepEqual(glibcVersions(binary), fromObjdump);
  }
});

test('with the platform package not published, the install builds from source with cargo', { skip, timeout: BUILD_TIMEOUT }, async (t) => {
  const r0 = sh('npm', ['unpublish', `${PLATFORM_PKG}@${pkg.version}`, '--force', '--registry', registry], { cwd: work, env: publisherEnv });
  assert.equal(r0.status, 0, `${r0.stdout}\n${r0.stderr}`);
  assert.equal((await packument(PLATFORM_PKG)).status, 404);

  const app = freshApp(t, sourceApp);
  const env = npmEnv('app-source', { CARGO_TARGET_DIR: cargoCache });
  const r = sh('npm', ['install', 'rcluster', '--registry', registry, '--foreground-scripts'], { cwd: app, env });
  timings['npm install rcluster (from source)'] = r.seconds;
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /no prebuilt binary for linux-x64-gnu/);
  assert.match(r.stderr, /building the native addon from source with cargo/);
  assert.deepEqual(listInstalled(app), ['croner', 'rcluster']);
  const built = path.join(app, 'node_modules', 'rcluster', NODE_FILE);
  assert.ok(fs.existsSync(built));
  const { loaded } = await serveFromBothWorkers(t, app);
  assert.deepEqual(loaded.map((f) => fs.realpathSync(f)), [fs.realpathSync(built)]);
});

test('with neither the platform package nor cargo, the install fails and names what is missing', { skip, timeout: BUILD_TIMEOUT }, (t) => {
  const app = freshApp(t, path.join(work, 'app-nothing'));
  const env = npmEnv('app-nothing', { PATH: pathWithoutRust() });
  const r = sh('npm', ['install', 'rcluster', '--registry', registry, '--foreground-scripts'], { cwd: app, env });
  assert.notEqual(r.status, 0, r.stderr);
  assert.match(r.stderr, /no prebuilt binary for linux-x64-gnu/);
  assert.match(r.stderr, /rcluster-linux-x64-gnu is not installed/);
  assert.match(r.stderr, /no cargo on PATH/);
});
