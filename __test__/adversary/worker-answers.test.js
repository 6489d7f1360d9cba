'use strict';
// A worker runs the app's code, so what it answers the primary's questions
// (`rcluster status`, /metrics) is untrusted: a hostile answer leaves that
// worker's figures out and is counted, and neither command fails for the
// others. Before the checks, one worker's malformed 'stats' answer failed
// `rcluster status` outright (a TypeError in the primary), and a malformed
// 'metrics' answer failed every scrape.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Cli, cli, tmpdir, freePort, get } = require('../cli/cli-process');

const APP = path.join(__dirname, '..', 'fixtures', 'adversary', 'worker-answers-app.js');
const promtool = spawnSync('promtool', ['--version']).status === 0;

test('a worker\'s hostile answers to status and metrics are refused and counted; both commands still serve the honest worker', async (t) => {
  const port = await freePort();
  const mport = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--metrics', `127.0.0.1:${mport}`, '--control', control, APP],
    { cwd: path.dirname(APP), env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });

  const r = await cli(['status', '--json', '--control', control]);
  assert.strictEqual(r.code, 0, r.stderr);
  const status = JSON.parse(r.stdout);
  assert.strictEqual(status.workers.length, 2);
  const [hostile, honest] = [status.workers.find((w) => w.id === 1), status.workers.find((w) => w.id === 2)];
  assert.strictEqual(hostile.requests, null, 'the hostile answer is not used');
  assert.strictEqual(hostile.eventLoopDelay, null);
  assert.strictEqual(typeof honest.eventLoopDelay.p99, 'number', 'the honest worker\'s answer is');
  assert.doesNotMatch(r.stdout, /\\u001b|\u001b|owned/);

  const human = await cli(['status', '--control', control]);
  assert.strictEqual(human.code, 0, human.stderr);
  assert.doesNotMatch(human.stdout, /\u001b/, 'no escape code from a worker reaches the terminal');

  const m = await get(mport, '/metrics');
  assert.strictEqual(m.status, 200);
  if (promtool) {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: m.body, encoding: 'utf8' });
    assert.strictEqual(check.status, 0, `${check.stdout}${check.stderr}`);
  }
  assert.match(m.body, /^app_requests_total 1$/m, 'the honest worker\'s app metrics are served');
  assert.match(m.body, /^rcluster_rejected_inputs_total\{surface="workerStats"\} [1-9]\d*$/m);
  assert.match(m.body, /^rcluster_rejected_inputs_total\{surface="workerMetrics"\} [1-9]\d*$/m);
  assert.match(app.err, /RCLUSTER_REJECTED_INPUT.*workerStats/, 'the refusal is reported');
  assert.strictEqual((await get(port, '/')).status, 200);
});
