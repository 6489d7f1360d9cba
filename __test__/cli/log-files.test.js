'use strict';
// Log files: --log (both streams and rcluster's own lines in one file),
// --out-file / --error-file, the ecosystem's out_file, error_file,
// log_date_format and merge_logs; whole lines, appended, 0640; reopened on
// SIGUSR2 with nothing lost or written twice; `status --json` says where.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Cli, cli, tmpdir, statusUntil, FIXTURES } = require('./cli-process');

const ISO = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
const settle = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `file` exists and matches `re` (`count` times), or throws. */
async function fileMatches(file, re, { count = 1, timeout = 15000 } = {}) {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  const deadline = Date.now() + timeout;
  let text = '';
  for (;;) {
    text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if ([...text.matchAll(g)].length >= count) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} x${count} in ${file}:\n${text.slice(-2000)}`);
    await settle(100);
  }
}

test('--log FILE --time: both streams of every worker and rcluster\'s own lines in one file, tagged and stamped; nothing on the terminal', async (t) => {
  const dir = tmpdir();
  const control = path.join(dir, 'ctl.sock');
  const app = new Cli(['-i', '2', '--time', '--log', path.join(dir, 'logs', 'app.log'), '--control', control, 'logs-app.js'], { cwd: FIXTURES });
  t.after(() => app.killGroup());
  const file = path.join(dir, 'logs', 'app.log');
  await fileMatches(file, /no newline from \d\n/, { count: 2 });
  await fileMatches(file, /err line from \d\n/, { count: 2 });
  const text = fs.readFileSync(file, 'utf8');
  for (const slot of ['0', '1']) {
    for (const line of [`out line from ${slot}`, `err line from ${slot}`, `first of two from ${slot}`, `second of two from ${slot}`, `no newline from ${slot}`]) {
      assert.match(text, new RegExp(`^${ISO} \\[w${slot}\\] ${line}$`, 'm'), line);
    }
  }
  assert.match(text, new RegExp(`^${ISO} rcluster: logs-app: 2 workers`, 'm'), 'rcluster\'s own lines, stamped');
  assert.strictEqual(fs.statSync(file).mode & 0o777 & ~0o640, 0, 'no more than 0640');
  assert.doesNotMatch(app.out + app.err, /line from|of two from/, 'the workers\' output goes to the file only');
  assert.match(app.err, new RegExp(`^${ISO} rcluster: logs-app: 2 workers`, 'm'), 'rcluster\'s own lines on stderr too, stamped');
  const s = await statusUntil(control, (x) => x.workers.length === 2);
  assert.deepStrictEqual(s.logs, { out: file, err: file });
  const stop = await cli(['stop', '--control', control]);
  assert.strictEqual(stop.code, 0, stop.stderr);
  assert.strictEqual((await app.exited()).code, 0);
  await fileMatches(file, /rcluster: stopping \(rcluster stop\)/);
});

test('--out-file and --error-file (relative to the current directory): one stream each; an existing file is appended to', async (t) => {
  const dir = tmpdir();
  const control = path.join(dir, 'ctl.sock');
  fs.writeFileSync(path.join(dir, 'out.log'), 'kept\n');
  const app = new Cli(['-i', '2', '--out-file', 'out.log', '--error-file', 'err.log', '--control', control, path.join(FIXTURES, 'logs-app.js')], { cwd: dir });
  t.after(() => app.killGroup());
  const out = path.join(dir, 'out.log');
  const err = path.join(dir, 'err.log');
  await fileMatches(out, /no newline from \d\n/, { count: 2 });
  await fileMatches(err, /err line from \d\n/, { count: 2 });
  const outText = fs.readFileSync(out, 'utf8');
  assert.ok(outText.startsWith('kept\n'), 'appended');
  assert.match(outText, /^\[w0\] out line from 0$/m, 'tagged with the worker, no stamp without --time');
  assert.doesNotMatch(outText, /err line|rcluster:/);
  const errText = fs.readFileSync(err, 'utf8');
  assert.match(errText, /^\[w1\] err line from 1$/m);
  assert.match(errText, /^rcluster: logs-app: 2 workers/m, 'rcluster\'s own lines go to the error file');
  assert.doesNotMatch(errText, /out line/);
  const s = await statusUntil(control, (x) => x.workers.length === 2);
  assert.deepStrictEqual(s.logs, { out, err });
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('without log files, status says so: logs { out: null, err: null }', async (t) => {
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '1', '--control', control, 'logs-app.js'], { cwd: FIXTURES });
  t.after(() => app.killGroup());
  const s = await statusUntil(control, (x) => x.workers.length === 1);
  assert.deepStrictEqual(s.logs, { out: null, err: null });
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('ecosystem out_file, error_file (from the app\'s cwd), log_date_format and merge_logs', async (t) => {
  const dir = tmpdir();
  fs.copyFileSync(path.join(FIXTURES, 'logs-app.js'), path.join(dir, 'logs-app.js'));
  fs.writeFileSync(path.join(dir, 'ecosystem.config.js'), `module.exports = { apps: [{
    name: 'eco', script: './logs-app.js', instances: 2,
    out_file: './logs/eco-out.log', error_file: './logs/eco-err.log',
    log_date_format: 'YYYY-MM-DD HH:mm:ss.SSS Z', merge_logs: true,
  }] };\n`);
  const control = path.join(dir, 'ctl.sock');
  const app = new Cli(['ecosystem.config.js', '--control', control], { cwd: dir });
  t.after(() => app.killGroup());
  const out = path.join(dir, 'logs', 'eco-out.log');
  const err = path.join(dir, 'logs', 'eco-err.log');
  const stamp = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} [+-]\\d\\d:\\d\\d';
  await fileMatches(out, /no newline from \d\n/, { count: 2 });
  await fileMatches(err, /err line from \d\n/, { count: 2 });
  assert.match(fs.readFileSync(out, 'utf8'), new RegExp(`^${stamp} \\[w1\\] second of two from 1$`, 'm'));
  assert.match(fs.readFileSync(err, 'utf8'), new RegExp(`^${stamp} rcluster: eco: 2 workers`, 'm'));
  assert.doesNotMatch(app.err, /merge_logs|out_file|error_file|log_date_format/, 'no key is warned about');
  assert.match(app.err, new RegExp(`^${stamp} rcluster: eco: 2 workers`, 'm'));
  const s = await statusUntil(control, (x) => x.workers.length === 2);
  assert.deepStrictEqual(s.logs, { out, err });
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('a log file that cannot be opened stops the start, before any worker', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'file'), '');
  const r = await cli(['-i', '1', '--log', path.join(dir, 'file', 'app.log'), '--control', path.join(dir, 'ctl.sock'), 'logs-app.js']);
  assert.strictEqual(r.code, 2, r.stderr);
  assert.match(r.stderr, /cannot open log file .*app\.log: (ENOTDIR|EEXIST)/);
  assert.doesNotMatch(r.stderr + r.stdout, /line from/);
});

// logrotate's postrotate: `mv out.log out.log.1; kill -USR2 PID`. Long lines
// from two workers every 5 ms, each carried by the pipe in pieces: each is
// in one file or the other, whole, exactly once, in order.
test('SIGUSR2 reopens the files: after a rename, new lines go to a new file; nothing lost, written twice or torn', async (t) => {
  const dir = tmpdir();
  const control = path.join(dir, 'ctl.sock');
  const out = path.join(dir, 'out.log');
  const err = path.join(dir, 'err.log');
  const app = new Cli(['-i', '2', '--out-file', out, '--error-file', err, '--control', control, 'ticker-app.js'], { cwd: FIXTURES, env: { TICK_PAD: '6000' } });
  t.after(() => app.killGroup());
  await fileMatches(out, /tick 0 50 /);
  await fileMatches(out, /tick 1 50 /);
  fs.renameSync(out, `${out}.1`);
  fs.renameSync(err, `${err}.1`);
  app.signal('SIGUSR2');
  await fileMatches(err, /rcluster: log files reopened \(SIGUSR2\)/);
  await fileMatches(out, /tick 0 \d+ /, { count: 50 });
  await fileMatches(out, /tick 1 \d+ /, { count: 50 });
  const stop = await cli(['stop', '--control', control]);
  assert.strictEqual(stop.code, 0, stop.stderr);
  assert.strictEqual((await app.exited()).code, 0);

  const pad = 'x'.repeat(6000);
  for (const [stream, re] of [['out', /^\[w(\d)\] tick (\d) (\d+) (x*)$/], ['err', /^\[w(\d)\] tock (\d) (\d+)()$/]]) {
    const before = fs.readFileSync(`${stream === 'out' ? out : err}.1`, 'utf8').split('\n').filter(Boolean);
    const after = fs.readFileSync(stream === 'out' ? out : err, 'utf8').split('\n').filter(Boolean);
    const next = new Map([['0', stream === 'out' ? 1 : 10], ['1', stream === 'out' ? 1 : 10]]);
    const counts = [0, 0];
    for (const [i, lines] of [before, after].entries()) {
      for (const line of lines) {
        if (line.includes('rcluster:')) continue;
        const m = line.match(re);
        assert.ok(m, `a whole line in ${stream}: ${line.slice(0, 80)}… (${line.length} characters)`);
        assert.strictEqual(m[1], m[2], 'tagged with its own worker');
        if (stream === 'out') assert.strictEqual(m[4], pad);
        assert.strictEqual(Number(m[3]), next.get(m[2]), `${stream}: worker ${m[2]}'s lines in order, none missing or twice`);
        next.set(m[2], Number(m[3]) + (stream === 'out' ? 1 : 10));
        counts[i]++;
      }
    }
    assert.ok(counts[0] > 0 && counts[1] > 0, `${stream}: lines before and after the switch (${counts})`);
  }
  assert.match(fs.readFileSync(err, 'utf8'), /^rcluster: log files reopened \(SIGUSR2\)$/m, 'the first line of the new file');
});

test('log_date_format: moment.js\'s tokens in local time, [text] literal', () => {
  const { formatDate } = require('../../lib/cli/log_files');
  const d = new Date(2024, 0, 5, 7, 8, 9, 45);
  const offset = -d.getTimezoneOffset();
  const hhmm = `${offset < 0 ? '-' : '+'}${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}:${String(Math.abs(offset) % 60).padStart(2, '0')}`;
  assert.strictEqual(formatDate(d, 'YYYY-MM-DD HH:mm:ss.SSS Z'), `2024-01-05 07:08:09.045 ${hhmm}`);
  assert.strictEqual(formatDate(d, 'YY/MM/DD ZZ'), `24/01/05 ${hhmm.replace(':', '')}`);
  assert.strictEqual(formatDate(d, '[at] HH[h]mm [YYYY]'), 'at 07h08 YYYY');
});

test('rcluster logs NAME from another directory: the last lines of the app\'s --log file, then --follow prints what is added', async (t) => {
  const { freePort, get } = require('./cli-process');
  const dir = tmpdir();
  const runtime = tmpdir();
  fs.chmodSync(runtime, 0o700);
  const env = { XDG_RUNTIME_DIR: runtime };
  const file = path.join(dir, 'access.log');
  const port = await freePort();
  const app = new Cli(['request-log-app.js', '-i', '1', '--name', 'access', '--log', file], { cwd: FIXTURES, env: { ...env, APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await fileMatches(file, /listening as 0/);
  for (let i = 0; i < 20; i++) assert.strictEqual((await get(port, `/r${i}`)).status, 200);
  await fileMatches(file, /request \/r19 /);
  const last = await cli(['logs', 'access', '--lines', '3'], { cwd: '/', env });
  assert.strictEqual(last.code, 0, last.stderr);
  assert.deepStrictEqual(last.stdout.trimEnd().split('\n').map((l) => l.replace(/ pid \d+$/, '')),
    ['[w0] request /r17 slot 0', '[w0] request /r18 slot 0', '[w0] request /r19 slot 0']);

  // --follow: what the app writes from now on, as it comes.
  const { spawn } = require('node:child_process');
  const { BIN } = require('./cli-process');
  const follow = spawn(process.execPath, [BIN, 'logs', 'access', '-n', '0', '--follow'], { cwd: '/', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => follow.kill('SIGKILL'));
  let seen = '';
  follow.stdout.setEncoding('utf8').on('data', (d) => { seen += d; });
  await settle(500);
  assert.strictEqual((await get(port, '/followed')).status, 200);
  const deadline = Date.now() + 10000;
  while (!/request \/followed slot 0/.test(seen) && Date.now() < deadline) await settle(100);
  assert.match(seen, /^\[w0\] request \/followed slot 0 pid \d+$/m);
  assert.doesNotMatch(seen, /\/r19/, '-n 0: nothing from before');
  follow.kill('SIGINT');
  const code = await new Promise((resolve) => follow.once('exit', (c, s) => resolve(c ?? s)));
  assert.ok(code === 0 || code === 'SIGINT', `exit ${code}`);
});
