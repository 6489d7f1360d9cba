'use strict';
// `npm install` step. In order:
// 1. A binding that loads is used as it is: the prebuilt platform package
//    (rcluster-linux-x64-gnu, ... installed as optionalDependencies, npm
//    picking the one whose os/cpu/libc match) or a .node file already next to
//    binding.js. Nothing is built.
// 2. Otherwise, in a package installed from the registry, a tarball or a git
//    URL, binding.js (the loader `napi build` generated at pack time) is
//    shipped: `cargo build --release` and a copy of the cdylib to the file
//    name that loader tries first. No build tool beyond cargo is needed, so
//    an app's install does not pull in @napi-rs/cli and its many dependencies.
// 3. In a clone, binding.js does not exist yet: @napi-rs/cli (a
//    devDependency) builds the addon and generates the loader.
// This script downloads nothing itself (cargo fetches the crates Cargo.lock
// pins when it builds). Where no prebuilt binary loads, it says why (none is
// made for this platform, the package was not installed, or it did not
// load) before building. Without Rust, on Linux the install fails and says
// what to install; on other platforms it warns and succeeds, and
// require('rcluster') gives node:cluster (lib/native.js decides).
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.join(__dirname, '..');
const loader = path.join(root, 'binding.js');
const supported = process.platform === 'linux';

function log(message) {
  console.error(`rcluster: ${message}`);
}

// In a child process, so that the check after a build is not answered from
// this process's module cache.
function bindingLoads() {
  if (!fs.existsSync(loader)) return false;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(loader)})`],
    { cwd: root, stdio: 'ignore', timeout: 30000 });
  return r.status === 0;
}

function cannotBuild(why) {
  if (supported) {
    log(why);
    process.exit(1);
  }
  log(`${why}\nrcluster: on ${process.platform}, require('rcluster') will use node:cluster.`);
  process.exit(0);
}

// napi 3's minimum; Debian 12/13's and Ubuntu 24.04's packaged Rust is older.
const MIN_RUST = [1, 88];
const retry = 'then run `npm rebuild rcluster` in your app (or `npm install` again)';
const installRust =
  'Install Rust 1.88 or newer with rustup (distributions\' packages are older):\n' +
  '    curl --proto \'=https\' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y\n' +
  '    . "$HOME/.cargo/env"\n' +
  'and a C linker (Debian/Ubuntu: `apt-get install gcc`; macOS: `xcode-select --install`),\n' +
  `${retry}.`;

if (process.env.RCLUSTER_FORCE_BUILD !== '1' && bindingLoads()) process.exit(0);

// <platform>-<arch>[-<abi>] as napi names its packages and binaries:
// linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc...
function platformName() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = process.report && process.report.getReport();
    const glibc = report && report.header && report.header.glibcVersionRuntime;
    const abi = glibc ? 'gnu' : 'musl';
    return arch === 'arm' ? `linux-arm-${abi}eabihf` : `linux-${arch}-${abi}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const platform = platformName();
const platformPackage = `${pkg.name}-${platform}`;
const packaged = Object.keys(pkg.optionalDependencies || {})
  .filter((name) => name.startsWith(`${pkg.name}-`)).map((name) => name.slice(pkg.name.length + 1));

// Why no prebuilt binary is used here, in one sentence naming what is missing.
function noPrebuilt() {
  if (!packaged.includes(platform)) {
    return `no prebuilt binary for ${platform} (rcluster's platform packages: ${packaged.join(', ') || 'none'})`;
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${platformPackage}/package.json`, { paths: [root] }));
  } catch {
    return `no prebuilt binary for ${platform}: ${platformPackage} is not installed (an install with ` +
           '--omit=optional or --no-optional skips it, and so does a registry or mirror that does not have it)';
  }
  // What dlopen said (a glibc too old, a wrong architecture...), first line.
  const r = spawnSync(process.execPath, ['-e',
    `try { require(${JSON.stringify(dir)}) } catch (e) { process.stderr.write(String(e && e.message).split('\\n')[0]); process.exit(1) }`],
  { cwd: root, encoding: 'utf8', timeout: 30000 });
  const said = r.status === 1 && r.stderr ? r.stderr.trim() : failed(r);
  return `no prebuilt binary for ${platform} that loads: ${platformPackage} is installed but did not load (${said})`;
}

// Without Unix fd passing there is nothing to build.
if (process.platform === 'win32') {
  log('this platform has no Unix fd passing; require(\'rcluster\') will use node:cluster.');
  process.exit(0);
}

// [major, minor] of the cargo on PATH, or null when there is none.
function cargoVersion() {
  const r = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  const m = /^cargo (\d+)\.(\d+)/.exec(r.stdout);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

// In a clone nothing prebuilt is expected: the build is the point.
const why = fs.existsSync(loader) ? noPrebuilt() : 'binding.js is not generated yet (a clone)';
const cargo = cargoVersion();
if (cargo === null) {
  cannotBuild(`${why}, and no cargo on PATH to build it from source: install Rust, or use a platform ` +
              `with a prebuilt binary.\n${installRust}`);
}
if (cargo[0] < MIN_RUST[0] || (cargo[0] === MIN_RUST[0] && cargo[1] < MIN_RUST[1])) {
  cannotBuild(`${why}, and cargo ${cargo.join('.')} is too old to build it from source ` +
              '(`rustup update` if it came from rustup).\n' + installRust);
}

function failed(result) {
  if (result.error) return result.error.message;
  return result.status === null ? `signal ${result.signal}` : `exit ${result.status}`;
}

if (!fs.existsSync(loader)) {
  // A clone: the loader is generated by the napi CLI along with the build.
  let cli;
  try {
    cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
  } catch {
    cannotBuild('binding.js is missing and @napi-rs/cli is not installed to generate it. In a clone, ' +
                'run `npm install` without --omit=dev; a package from `npm pack` ships binding.js.');
  }
  const bin = path.join(path.dirname(cli), require(cli).bin.napi);
  const result = spawnSync(process.execPath,
    [bin, 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'],
    { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) cannotBuild(`the native build failed (${failed(result)}); ${retry}.`);
  process.exit(0);
}

// The name binding.js tries first for this platform, as `napi build
// --platform` names it: <binaryName>.<platform>-<arch>[-<abi>].node.
function nodeFileName() {
  return `${pkg.napi.binaryName}.${platform}.node`;
}

const ownTarget = path.join(root, 'target');
const hadTarget = fs.existsSync(ownTarget);
log(`${why}; building the native addon from source with cargo (a few minutes)`);
// --message-format=json names the built cdylib wherever it went
// (CARGO_TARGET_DIR, a cargo config); diagnostics still go to stderr.
const build = spawnSync('cargo', ['build', '--release', '--locked', '--lib', '--message-format=json-render-diagnostics'],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (build.status !== 0) {
  cannotBuild(`the native build (cargo build --release) failed (${failed(build)}); the reason is above. ` +
              `It needs Rust ${MIN_RUST.join('.')} or newer, a C linker and crates.io; ${retry}.`);
}

let cdylib;
for (const line of build.stdout.split('\n')) {
  if (!line.startsWith('{')) continue;
  const msg = JSON.parse(line);
  if (msg.reason === 'compiler-artifact' && msg.target.kind.includes('cdylib')) {
    cdylib = msg.filenames.find((f) => /\.(so|dylib)$/.test(f));
  }
}
if (cdylib === undefined) cannotBuild('cargo build reported no cdylib to install');

const dest = path.join(root, nodeFileName());
fs.copyFileSync(cdylib, dest);
if (!bindingLoads()) {
  fs.rmSync(dest, { force: true });
  cannotBuild(`the addon built, but binding.js does not load it as ${path.basename(dest)}`);
}

// The build tree this install made in the package's directory is 100+ MB
// the app does not need. One that was there before (a clone's), or one the
// user placed elsewhere (CARGO_TARGET_DIR), is left alone.
if (!hadTarget && path.dirname(path.dirname(cdylib)) === ownTarget) {
  fs.rmSync(ownTarget, { recursive: true, force: true });
}
log(`built ${path.basename(dest)}`);
