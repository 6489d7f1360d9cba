'use strict';
// Worker output: straight through by default; with --prefix each line tagged
// with its worker's slot, with --time timestamped; colour only on a terminal
// (this output is a pipe: none).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Cli, tmpdir, FIXTURES } = require('./cli-process');

async function run(t, flags) {
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, ...flags, 'logs-app.js'], { cwd: FIXTURES, env: { FORCE_COLOR: '1' } });
  t.after(() => app.killGroup());
  return app;
}

test('without --prefix: worker output passes through untouched', async (t) => {
  const app = await run(t, []);
  await app.waitFor(/no newline from 0/);
  await app.waitFor(/no newline from 1/);
  // stderr is a pipe of its own: its lines may come after stdout's.
  await app.waitFor(/^err line from \d$/m, { count: 2 });
  assert.match(app.out, /^out line from \d$/m);
  assert.match(app.err, /^err line from \d$/m);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});

test('--prefix --time: every line tagged [wN] with a timestamp, stdout and stderr apart, no colour on a pipe', async (t) => {
  const app = await run(t, ['--prefix', '--time']);
  await app.waitFor(/\[w0\] no newline from 0\n/);
  await app.waitFor(/\[w1\] no newline from 1\n/);
  await app.waitFor(/\[w\d\] err line from \d$/m, { count: 2 });
  const stamp = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
  for (const slot of ['0', '1']) {
    for (const line of [`out line from ${slot}`, `first of two from ${slot}`, `second of two from ${slot}`, `no newline from ${slot}`]) {
      assert.match(app.out, new RegExp(`^${stamp} \\[w${slot}\\] ${line}$`, 'm'), line);
    }
    assert.match(app.err, new RegExp(`^${stamp} \\[w${slot}\\] err line from ${slot}$`, 'm'));
  }
  assert.doesNotMatch(app.out + app.err, /\x1b\[/, 'no escape codes on a pipe');
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
