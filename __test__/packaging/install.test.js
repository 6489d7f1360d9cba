'use strict';
// scripts/install.js, the `npm install` step, where it cannot build the
// addon: on Linux that fails the install and says what to install; elsewhere
// it warns and succeeds, and rcluster falls back to node:cluster at run time.
// Run on a copy of the script in an empty directory: laid out as a packed
// package (a binding.js that loads nothing) or as a clone (no binding.js),
// with a PATH that has no cargo, or a stub cargo. The successful builds are
// in packaging/tarball.test.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function runInstall(t, platform, { packed = true, loads = false, cargo = null } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.copyFileSync(path.join(__dirname, '..', '..', 'scripts', 'install.js'), path.join(dir, 'scripts', 'install.js'));
  if (packed) {
    fs.writeFileSync(path.join(dir, 'binding.js'),
      loads ? 'module.exports = {};\n' : 'throw new Error("no native binding here");\n');
  }
  // Only what is put here is on the script's PATH (node is run by its path).
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  if (cargo !== null) fs.writeFileSync(path.join(bin, 'cargo'), `#!/bin/sh\n${cargo}\n`, { mode: 0o755 });
  const pretend = `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });`;
  return spawnSync(process.execPath, ['-e', `${pretend} require(${JSON.stringify(path.join(dir, 'scripts', 'install.js'))})`],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, NODE_PATH: '', PATH: bin } });
}

test('on Linux without Rust, the install fails and says how to install it and retry', (t) => {
  const r = runInstall(t, 'linux');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /Rust \(cargo\) is not installed/);
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
