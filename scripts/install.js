'use strict';
// `npm install` entry point. Builds the native addon from source unless a
// working binding is already present (a prebuilt per-platform package, or a
// previous build in this checkout). Building needs Rust (cargo) and @napi-rs/cli.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.join(__dirname, '..');

function bindingLoads() {
  if (!fs.existsSync(path.join(root, 'binding.js'))) return false;
  try {
    require(path.join(root, 'binding.js'));
    return true;
  } catch {
    return false;
  }
}

if (process.env.RCLUSTER_FORCE_BUILD !== '1' && bindingLoads()) process.exit(0);

// Without Unix fd passing there is nothing to build: require('rcluster') gives
// node:cluster there (lib/native.js decides), so the install must not fail.
if (process.platform === 'win32') {
  console.error('rcluster: this platform has no Unix fd passing; require(\'rcluster\') will use node:cluster.');
  process.exit(0);
}

let cli;
try {
  cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
} catch {
  console.error('rcluster: no prebuilt binary for this platform and @napi-rs/cli is not installed; ' +
                'install Rust (cargo) and run `npm install --include=dev` to build from source.');
  process.exit(1);
}
const bin = path.join(path.dirname(cli), require(cli).bin.napi);
const result = spawnSync(process.execPath,
  [bin, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: 'inherit' });
process.exit(result.status === null ? 1 : result.status);
