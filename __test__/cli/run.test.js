'use strict';
// `rcluster app.js -i N`: an unmodified app (CommonJS, ES module by .mjs or by
// "type": "module") runs in N workers with rcluster as the primary, each with
// NODE_APP_INSTANCE; -i max follows the cgroup CPU quota; bad input is one
// line and exit code 2.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, FIXTURES } = require('./cli-process');

// GETs until `n` different workers have answered (round-robin spreads them).
async function workersSeen(port, n, tries = 40) {
  const seen = new Map();
  for (let i = 0; i < tries && seen.size < n; i++) {
    const body = JSON.parse((await get(port, '/')).body);
    seen.set(body.pid, body);
  }
  return [...seen.values()];
}

async function runApp(t, dir, script, extra = [], env = {}) {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, ...extra, script, '--', 'one', '--two'], { cwd: path.join(FIXTURES, dir), env: { APP_PORT: String(port), ...env } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });
  return { app, port, control };
}

for (const [dir, script] of [['cjs-app', 'app.js'], ['esm-app', 'app.mjs'], ['esm-type', 'app.js']]) {
  test(`an unmodified ${dir} app under -i 2: two workers, slots 0 and 1, its arguments, rcluster's cluster`, async (t) => {
    const { app, port } = await runApp(t, dir, script, ['--node-args', '--max-old-space-size=200 --no-deprecation']);
    const workers = await workersSeen(port, 2);
    assert.strictEqual(workers.length, 2, 'two workers answer');
    assert.deepStrictEqual(workers.map((w) => w.instance).sort(), ['0', '1']);
    for (const w of workers) {
      assert.strictEqual(w.isWorker, true);
      assert.deepStrictEqual(w.argv, ['one', '--two']);
      if (w.execArgv) assert.deepStrictEqual(w.execArgv, ['--max-old-space-size=200', '--no-deprecation']);
    }
    // The workers' listen went through rcluster's dispatcher: its status shows it.
    const status = JSON.parse((await cli(['status', '--json', '--control', app.child.spawnargs[app.child.spawnargs.indexOf('--control') + 1]])).stdout);
    assert.strictEqual(status.workers.length, 2);
    assert.strictEqual(status.listeners.length, 1);
    assert.ok(status.listeners[0].accepted >= 2, JSON.stringify(status.listeners));
    app.signal('SIGTERM');
    assert.deepStrictEqual(await app.exited(), { code: 0, signal: null });
  });
}

test('-i max follows the cgroup CPU quota (v2 cpu.max and v1 cfs quota), -i -1 is one fewer', async (t) => {
  const self = fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const os = require('node:os');
  const cores = os.availableParallelism();
  const { cgroupCpuLimit } = require('../../lib/cli/cpus');
  // A fake cgroup tree for this process's own cgroups (RCLUSTER_CGROUP_ROOT,
  // read by the child too).
  const v2 = tmpdir();
  const v2path = (self.find((l) => l.startsWith('0::')) ?? '0::/').slice(3);
  fs.mkdirSync(path.join(v2, v2path), { recursive: true });
  fs.writeFileSync(path.join(v2, v2path, 'cpu.max'), '100000 100000\n');
  assert.strictEqual(cgroupCpuLimit({ root: v2 }), 1);
  fs.writeFileSync(path.join(v2, v2path, 'cpu.max'), '250000 100000\n');
  assert.strictEqual(cgroupCpuLimit({ root: v2 }), 3, '2.5 CPUs run 3 workers');
  fs.writeFileSync(path.join(v2, v2path, 'cpu.max'), 'max 100000\n');
  assert.strictEqual(cgroupCpuLimit({ root: v2 }), Infinity);
  // cgroup v1, from a /proc/self/cgroup naming the cpu controller.
  const v1 = tmpdir();
  const table = path.join(v1, 'cgroup');
  fs.writeFileSync(table, '4:memory:/x\n2:cpu,cpuacct:/app/web\n');
  fs.mkdirSync(path.join(v1, 'cpu,cpuacct', 'app', 'web'), { recursive: true });
  fs.writeFileSync(path.join(v1, 'cpu,cpuacct', 'app', 'cpu.cfs_quota_us'), '200000\n');
  fs.writeFileSync(path.join(v1, 'cpu,cpuacct', 'app', 'cpu.cfs_period_us'), '100000\n');
  fs.writeFileSync(path.join(v1, 'cpu,cpuacct', 'app', 'web', 'cpu.cfs_quota_us'), '-1\n');
  fs.writeFileSync(path.join(v1, 'cpu,cpuacct', 'app', 'web', 'cpu.cfs_period_us'), '100000\n');
  assert.strictEqual(cgroupCpuLimit({ root: v1, procSelf: table }), 2, 'the parent cgroup\'s quota applies');

  // The real command, with a quota of one CPU on a machine of `cores`.
  fs.writeFileSync(path.join(v2, v2path, 'cpu.max'), '100000 100000\n');
  if (!self.some((l) => l.startsWith('0::'))) {
    // This machine is on cgroup v1: lay out its cpu controller's files too.
    const line = self.find((l) => l.split(':')[1].split(',').includes('cpu'));
    const [, controllers, p] = line.split(':');
    fs.mkdirSync(path.join(v2, controllers, p), { recursive: true });
    fs.writeFileSync(path.join(v2, controllers, p, 'cpu.cfs_quota_us'), '100000\n');
    fs.writeFileSync(path.join(v2, controllers, p, 'cpu.cfs_period_us'), '100000\n');
  }
  for (const [instances, quota, expected] of [['max', true, 1], ['max', false, cores], ['-1', false, Math.max(1, cores - 1)]]) {
    const port = await freePort();
    const control = path.join(tmpdir(), 'ctl.sock');
    const env = { APP_PORT: String(port), ...(quota && { RCLUSTER_CGROUP_ROOT: v2 }) };
    const app = new Cli(['-i', instances, '--control', control, 'app.js'], { cwd: path.join(FIXTURES, 'cjs-app'), env });
    t.after(() => app.killGroup());
    await app.waitFor(/listening on \d+ as \d/, { count: expected });
    const status = JSON.parse((await cli(['status', '--json', '--control', control])).stdout);
    assert.strictEqual(status.instances, expected, `-i ${instances}${quota ? ' under a 1-CPU quota' : ''} on ${cores} cores`);
    assert.strictEqual(status.workers.length, expected);
    app.signal('SIGTERM');
    assert.strictEqual((await app.exited()).code, 0);
  }
});

test('bad flags and config values: one line, exit code 2', async () => {
  const cases = [
    [['-i', 'lots', 'app.js'], /--instances must be a whole number/],
    [['--bogus', 'app.js'], /unknown option: --bogus/],
    [['--kill-timeout', 'soon', 'app.js'], /--kill-timeout must be a whole number of milliseconds/],
    [['--metrics', 'nowhere', 'app.js'], /--metrics must be HOST:PORT/],
    [['--instances'], /--instances needs a value/],
    [['missing.js'], /script not found: .*missing\.js/],
    [[], /no script to run/],
    [['scale', 'many'], /scale needs a whole number >= 1/],
    [['status', '--frobnicate'], /unknown option for 'status'/],
    [['help', 'nothing'], /no help for "nothing"/],
    [['--config', 'bad.config.json'], /bad\.config\.json: instances must be a whole number/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args, { cwd: path.join(FIXTURES, 'cjs-app') });
    assert.strictEqual(r.code, 2, `${args.join(' ')}: exit code\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.strictEqual(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line\n${r.stderr}`);
    assert.strictEqual(r.stdout, '');
  }
});

test('rcluster --help and rcluster help COMMAND', async () => {
  const main = await cli(['--help']);
  assert.strictEqual(main.code, 0);
  assert.match(main.stdout, /^Usage: rcluster \[options\] SCRIPT/);
  for (const flag of ['--instances', '--node-args', '--metrics', '--health', '--watch', '--prefix', '--time', '--control', '--only', 'SIGTTIN', 'Exit codes']) {
    assert.ok(main.stdout.includes(flag), flag);
  }
  for (const command of ['status', 'reload', 'scale', 'stop']) {
    const r = await cli(['help', command]);
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: rcluster ${command}`));
    assert.deepStrictEqual(r.stdout, (await cli([command, '--help'])).stdout);
  }
});
