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

// The native core is written for Linux (accept4, eventfd, SOCK_SEQPACKET).
// Elsewhere a failed build is no reason to fail the app's install: at run
// time rcluster gives node:cluster with a warning. On Linux it is an error.
const supported = process.platform === 'linux';

function cannotBuild(why) {
  if (supported) {
    console.error(`rcluster: ${why}`);
    process.exit(1);
  }
  console.error(`rcluster: ${why}; on ${process.platform} require('rcluster') will use node:cluster.`);
  process.exit(0);
}

let cli;
try {
  cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
} catch {
  cannotBuild('no prebuilt binary for this platform and @napi-rs/cli is not installed; ' +
              'install Rust (cargo) and run `npm install --include=dev` to build from source');
}
const bin = path.join(path.dirname(cli), require(cli).bin.napi);
const result = spawnSync(process.execPath,
  [bin, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
  { cwd: root, stdio: 'inherit' });
if (result.status !== 0) cannotBuild(`the native build failed (${result.status === null ? result.signal : `exit ${result.status}`})`);
