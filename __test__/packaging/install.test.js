'use strict';
// scripts/install.js, the `npm install` step, where it cannot build the
// addon: on Linux that fails the install and says what to install; elsewhere
// it warns and succeeds, and rcluster falls back to node:cluster at run time.
// Run on a copy of the script in an empty directory: laid out as a packed
// package (a binding.js that loads nothing) or as a clone (no binding.js),
// with a PATH that has no cargo, or a stub cargo, and optionally a platform
// package in node_modules. The successful builds are in
// packaging/tarball.test.js and packaging/release.e2e.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const repo = path.join(__dirname, '..', '..');

// `platformPackage`: the source of an index.js for a rcluster-linux-x64-gnu
// installed beside the package, as npm installs an optionalDependency.
function runInstall(t, platform, { packed = true, loads = false, cargo = null, arch = process.arch, platformPackage = null } = {}) {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-install-'));
  t.after(() => fs.rmSync(top, { recursive: true, force: true }));
  const dir = path.join(top, 'node_modules', 'rcluster');
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(repo, 'scripts', 'install.js'), path.join(dir, 'scripts', 'install.js'));
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(dir, 'package.json'));
  if (platformPackage !== null) {
    const p = path.join(top, 'node_modules', 'rcluster-linux-x64-gnu');
    fs.mkdirSync(p);
    fs.writeFileSync(path.join(p, 'package.json'), JSON.stringify({ name: 'rcluster-linux-x64-gnu', version: '0.1.0' }));
    fs.writeFileSync(path.join(p, 'index.js'), platformPackage);
  }
  if (packed) {
    // With a platform package, the loader napi generates reduced to its last
    // resort: that package.
    fs.writeFileSync(path.join(dir, 'binding.js'), platformPackage !== null
      ? 'module.exports = require("rcluster-linux-x64-gnu");\n'
      : loads ? 'module.exports = {};\n' : 'throw new Error("no native binding here");\n');
  }
  // Only what is put here is on the script's PATH (node is run by its path).
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  if (cargo !== null) fs.writeFileSync(path.join(bin, 'cargo'), `#!/bin/sh\n${cargo}\n`, { mode: 0o755 });
  const pretend = `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });` +
    `Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });`;
  return spawnSync(process.execPath, ['-e', `${pretend} require(${JSON.stringify(path.join(dir, 'scripts', 'install.js'))})`],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, NODE_PATH: '', PATH: bin } });
}

test('on Linux without Rust, the install fails and says how to install it and retry', (t) => {
  const r = runInstall(t, 'linux');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /and no cargo on PATH to build it from source: install Rust, or use a platform with a prebuilt binary/);
  assert.match(r.stderr, /curl --proto '=https' --tlsv1\.2 -sSf https:\/\/sh\.rustup\.rs \| sh/);
  assert.match(r.stderr, /apt-get install gcc/);
  assert.match(r.stderr, /npm rebuild rcluster/);
});

test('a binding that already loads (a prebuilt binary) is kept, and cargo never runs', (t) => {
  const r = runInstall(t, 'linux', { loads: true, cargo: 'exit 1' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('on Linux with a cargo older than the build needs, it says so', (t) => {
  const r = runInstall(t, 'linux', { cargo: 'echo "cargo 1.63.0"' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cargo 1\.63 is too old/);
  assert.match(r.stderr, /sh\.rustup\.rs/);
});

test('on Linux, a failed cargo build fails the install', (t) => {
  const r = runInstall(t, 'linux', { cargo: 'case "$1" in --version) echo "cargo 1.95.0";; *) echo "error: no" >&2; exit 101;; esac' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cargo build --release\) failed \(exit 101\)/);
});

test('in a clone without @napi-rs/cli, it says to install the devDependencies', (t) => {
  const r = runInstall(t, 'linux', { packed: false, cargo: 'echo "cargo 1.95.0"' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /@napi-rs\/cli is not installed/);
});

test('elsewhere it warns that node:cluster will be used, and succeeds', (t) => {
  for (const platform of ['darwin', 'freebsd', 'win32']) {
    const r = runInstall(t, platform);
    assert.equal(r.status, 0, `${platform}: ${r.stderr}`);
    assert.match(r.stderr, /will use node:cluster/, platform);
  }
});

// What is missing, named: the platform, and why its prebuilt package is not used.
const glibc = Boolean(process.report.getReport().header.glibcVersionRuntime);
const skipUnlessGlibcX64 = process.platform === 'linux' && process.arch === 'x64' && glibc ? false : 'names linux-x64-gnu';

test('where no prebuilt package is published for the platform, it says so and lists the prebuilt ones', (t) => {
  const r = runInstall(t, 'linux', { arch: 'riscv64' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /no prebuilt binary for linux-riscv64-(gnu|musl) \(rcluster's platform packages: [^)]*linux-x64-gnu[^)]*\), and no cargo on PATH/);
});

test('where the platform package was not installed, it names it', { skip: skipUnlessGlibcX64 }, (t) => {
  const r = runInstall(t, 'linux');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /no prebuilt binary for linux-x64-gnu: rcluster-linux-x64-gnu is not installed \(an install with --omit=optional/);
});

test('where the platform package is installed but does not load, it says why', { skip: skipUnlessGlibcX64 }, (t) => {
  const r = runInstall(t, 'linux', { platformPackage: 'throw new Error("GLIBC_2.99 not found (pretend)");' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /rcluster-linux-x64-gnu is installed but did not load \(GLIBC_2\.99 not found \(pretend\)\)/);
});

test('where the platform package loads, nothing is built and nothing is said', { skip: skipUnlessGlibcX64 }, (t) => {
  const r = runInstall(t, 'linux', { platformPackage: 'module.exports = {};', cargo: 'echo cargo ran >&2; exit 1' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});
