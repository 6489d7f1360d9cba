'use strict';
// index.d.ts and index.d.mts against @types/node's `cluster` module: the files
// in types/ use rcluster where node:cluster is expected, through require and
// import, and must type-check with `tsc --noEmit`. Their @ts-expect-error lines
// make the check fail if rcluster's declarations were loose (any) or wrong.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');

test('rcluster type-checks wherever node:cluster is expected (tsc --noEmit)', { timeout: 120000 }, () => {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(__dirname, '..', 'types', 'tsconfig.json')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 110000,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, `tsc reported errors:\n${r.stdout}${r.stderr}`);
});

test('the type check sees errors: a wrongly typed use of rcluster fails', { timeout: 120000 }, () => {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  // The same compiler settings on a snippet that misuses rcluster's own
  // addition; tsc must reject it, or the test above proves nothing.
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(__dirname, '..', 'types', 'tsconfig.negative.json')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 110000,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.notEqual(r.status, 0, 'tsc accepted code that misuses rcluster.stats()');
  assert.match(r.stdout, /negative\.ts.*error TS2322/, r.stdout);
});
