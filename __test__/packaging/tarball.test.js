'use strict';
// What a user gets from the published package: `npm pack` of this checkout,
// installed with `npm install <tarball>` into a fresh app, then a real
// 2-worker cluster from it. Once with no prebuilt binary (the install builds
// the addon from the tarball's own Rust sources), once with a platform
// package installed (nothing is built).
//
// Everything lives under target/packaging-test/ (the app is laid anew for
// each test and removed after it). To keep a run within a couple of minutes,
// the install's cargo build uses CARGO_TARGET_DIR=target/packaging-test/cargo,
// a cache kept between runs: crates.io crates compiled once are reused, only
// rcluster's own two crates are rebuilt. The app's path is the same on every
// run, so those two do not pile up there either. The first run compiles
// everything and takes longer.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { freshApp, serveFromBothWorkers } = require('../helpers/installed-app');
const { rclusterOnly } = require('../helpers/run-cluster');

const repo = path.join(__dirname, '..', '..');
const work = path.join(repo, 'target', 'packaging-test');
const cargoCache = path.join(work, 'cargo');
const pkg = require(path.join(repo, 'package.json'));
const NODE_FILE = 'rcluster.linux-x64-gnu.node';
const skip = rclusterOnly('installs and runs rcluster itself') ||
  (process.platform !== 'linux' || process.arch !== 'x64' ? 'the linux-x64-gnu package is the one tested' : false);

// Builds can be slow on a loaded machine; a hung npm still ends the test.
const NPM_TIMEOUT = 10 * 60 * 1000;

// The outer `npm test` exports npm_config_local_prefix and the like, which
// would make the inner npm treat this checkout as the project.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function npm(args, cwd, env = cleanEnv()) {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: NPM_TIMEOUT, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return r;
}

// A cargo that only leaves a trace: an install that runs it is caught, and
// fails, since the build it stands for never happens.
function cargoTrap(t) {
  const dir = path.join(work, 'cargo-trap');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'ran');
  fs.writeFileSync(path.join(dir, 'cargo'), `#!/bin/sh\necho "$@" >> '${marker}'\nexit 1\n`, { mode: 0o755 });
  return { bin: dir, marker };
}

let tarball;
let files;
test.before(() => {
  if (skip) return;
  fs.mkdirSync(work, { recursive: true });
  for (const f of fs.readdirSync(work)) if (f.endsWith('.tgz')) fs.rmSync(path.join(work, f));
  // prepack runs `npm run build`, which leaves a built .node in the checkout.
  const r = npm(['pack', '--json', '--pack-destination', work], repo);
  assert.equal(r.status, 0, r.stderr);
  const [info] = JSON.parse(r.stdout);
  tarball = path.join(work, info.filename);
  files = info.files.map((f) => f.path);
});
test.after(() => {
  if (tarball) fs.rmSync(tarball, { force: true });
});

test('the tarball holds the Rust sources and the generated loader, and no build output', { skip }, () => {
  for (const f of ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src/lib.rs', 'core/Cargo.toml', 'core/src/lib.rs',
    'binding.js', 'binding.d.ts', 'scripts/install.js', 'index.js', 'lib/native.js']) {
    assert.ok(files.includes(f), `${f} is packed`);
  }
  const unwanted = files.filter((f) => /^(target|core\/tests|core\/benches|__test__|bench|node_modules)\/|\.node$/.test(f));
  assert.deepEqual(unwanted, []);
});

test('the platform packages are its optionalDependencies, at its own version', { skip }, () => {
  const dirs = fs.readdirSync(path.join(repo, 'npm')).sort();
  const names = dirs.map((d) => require(path.join(repo, 'npm', d, 'package.json')));
  assert.deepEqual(Object.keys(pkg.optionalDependencies).sort(), names.map((p) => p.name).sort());
  for (const p of names) {
    assert.equal(pkg.optionalDependencies[p.name], pkg.version, p.name);
    assert.equal(p.version, pkg.version, p.name);
  }
  // The names the generated loader tries are these packages.
  const loader = fs.readFileSync(path.join(repo, 'binding.js'), 'utf8');
  for (const p of names) assert.match(loader, new RegExp(`require\\('${p.name}'\\)`), p.name);
});

test('npm install <tarball> builds the addon from the packed sources, and a 2-worker cluster serves from it', { skip, timeout: 2 * NPM_TIMEOUT }, async (t) => {
  const app = freshApp(t, path.join(work, 'app-build'));
  // The platform packages are not on the registry: being optional, their
  // absence must not fail the install.
  const r = npm(['install', '--foreground-scripts', '--no-audit', '--no-fund', tarball], app,
    cleanEnv({ CARGO_TARGET_DIR: cargoCache }));
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /building the native addon from source with cargo/);
  assert.match(r.stderr, /Compiling rcluster v/);
  const installed = path.join(app, 'node_modules', 'rcluster');
  assert.ok(fs.existsSync(path.join(installed, NODE_FILE)), 'the built addon is where binding.js looks first');
  // croner parses recycle.cron (loaded only then); it has no dependencies.
  assert.deepEqual(fs.readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.')).sort(), ['croner', 'rcluster'],
    'an app installing rcluster gets rcluster and croner, nothing else');
  await serveFromBothWorkers(t, app);
});

test('with a platform package installed, npm install <tarball> builds nothing and the cluster uses its binary', { skip, timeout: NPM_TIMEOUT }, async (t) => {
  // A platform package as `napi prepublish` would publish it: the npm/ dir
  // with the built binary copied in (a copy, so npm/ stays clean).
  const built = path.join(repo, NODE_FILE);
  assert.ok(fs.existsSync(built), 'the pack step built the addon');
  const platformDir = path.join(work, 'platform-linux-x64-gnu');
  fs.rmSync(platformDir, { recursive: true, force: true });
  t.after(() => fs.rmSync(platformDir, { recursive: true, force: true }));
  fs.cpSync(path.join(repo, 'npm', 'linux-x64-gnu'), platformDir, { recursive: true });
  fs.copyFileSync(built, path.join(platformDir, NODE_FILE));
  const packed = npm(['pack', '--json', '--pack-destination', work], platformDir);
  assert.equal(packed.status, 0, packed.stderr);
  const platformTarball = path.join(work, JSON.parse(packed.stdout)[0].filename);
  t.after(() => fs.rmSync(platformTarball, { force: true }));

  const app = freshApp(t, path.join(work, 'app-prebuilt'));
  const trap = cargoTrap(t);
  const r = npm(['install', '--foreground-scripts', '--no-audit', '--no-fund', platformTarball, tarball], app,
    cleanEnv({ PATH: `${trap.bin}${path.delimiter}${process.env.PATH}` }));
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(fs.existsSync(trap.marker), false, 'cargo did not run');
  assert.doesNotMatch(r.stderr, /building the native addon/);
  assert.equal(fs.existsSync(path.join(app, 'node_modules', 'rcluster', NODE_FILE)), false);
  assert.ok(fs.existsSync(path.join(app, 'node_modules', 'rcluster-linux-x64-gnu', NODE_FILE)));
  await serveFromBothWorkers(t, app);
});
