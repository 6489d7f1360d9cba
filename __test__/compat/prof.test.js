'use strict';
// --prof in a worker's execArgv gets a per-process --logfile, as node:cluster
// adds one: each process writes its own V8 log instead of all sharing one.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

test('setupPrimary({ execArgv: [\'--prof\'] }): the worker logs to its own v8-<pid> file', { timeout: 30000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-prof-'));
  try {
    const run = spawnSync(process.execPath, [path.join(__dirname, '..', 'fixtures', 'prof.js')], {
      cwd: dir, encoding: 'utf8', timeout: 20000,
    });
    assert.equal(run.status, 0, run.stderr);
    const { settingsExecArgv, execArgv, pid } = JSON.parse(run.stdout);
    assert.deepEqual(settingsExecArgv, ['--prof', '--logfile=v8-%p.log']);
    assert.deepEqual(execArgv, settingsExecArgv, "the worker's process.execArgv");
    const logs = fs.readdirSync(dir).filter((f) => f.endsWith('.log'));
    assert.deepEqual(logs.filter((f) => f.endsWith(`-v8-${pid}.log`)).length, 1, `the worker's own log in ${logs}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
