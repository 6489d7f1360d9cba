'use strict';
// scripts/install.js, the `npm install` step, where it cannot build the
// addon: on Linux that fails the install; elsewhere it warns and succeeds,
// and rcluster falls back to node:cluster at run time. Run on a copy of the
// script in an empty directory, where neither a binding nor @napi-rs/cli is.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function runInstall(t, platform) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.copyFileSync(path.join(__dirname, '..', '..', 'scripts', 'install.js'), path.join(dir, 'scripts', 'install.js'));
  const pretend = `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });`;
  return spawnSync(process.execPath, ['-e', `${pretend} require(${JSON.stringify(path.join(dir, 'scripts', 'install.js'))})`],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, NODE_PATH: '' } });
}

test('on Linux, an install that cannot build the addon fails', (t) => {
  const r = runInstall(t, 'linux');
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
