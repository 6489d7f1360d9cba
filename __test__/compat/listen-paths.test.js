'use strict';
// Unix socket paths in workers fail and succeed where node:cluster's do,
// since libuv shapes both: a path in a missing directory is EACCES (libuv's
// choice, for Windows' sake), and a path too long for sun_path is cut to fit
// rather than refused.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startCluster } = require('../helpers/run-cluster');

async function listenResult(t, args) {
  const c = startCluster(t, 'listen-report.js', { env: { LISTEN_ARGS: JSON.stringify(args) } });
  return c.waitFor('result', { timeout: 10000 });
}

test('a socket path in a missing directory: bind EACCES', { timeout: 20000 }, async (t) => {
  const missing = path.join(os.tmpdir(), `rcluster-missing-${process.pid}`, 'x.sock');
  const { error } = await listenResult(t, [missing]);
  assert.deepEqual(error, { code: 'EACCES', message: `bind EACCES ${missing}`, syscall: 'bind', address: missing, port: -1 });
});

test('a socket path longer than sun_path still listens (cut to fit)', { timeout: 20000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-long-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const long = path.join(dir, 'x'.repeat(150));
  const result = await listenResult(t, [long]);
  assert.equal(result.error, undefined, `no error, got ${JSON.stringify(result.error)}`);
  assert.equal(result.address, long, 'server.address() is the path as given');
});
