'use strict';
// The `rcluster` command's --health and --metrics endpoints are HTTP
// servers in the primary: 1,100 idle connections to one of them, with the
// primary held to 1,024 descriptors, must not take the descriptors the
// dispatcher needs to accept the app's connections. The endpoint keeps at
// most 64 connections (the rest are closed at once), closes idle ones within
// seconds, and the app answers every request meanwhile.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const { Cli, freePort, get } = require('../cli/cli-process');
const { fdUse } = require('../fixtures/adversary/stage-attack');
const { pollUntil } = require('../helpers/poll');

const LIMIT = 1024;
const IDLE = 1100;
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

function holdIdle(port, count) {
  const sockets = [];
  return new Promise((resolve) => {
    let settled = 0;
    const one = () => {
      if (++settled === count) resolve(sockets);
    };
    for (let i = 0; i < count; i++) {
      const s = net.connect(port, '127.0.0.1');
      sockets.push(s);
      s.on('error', () => {});
      s.once('connect', one);
      s.once('close', () => { if (!s.readyState || s.connecting) one(); });
    }
    setTimeout(() => resolve(sockets), 5000);
  });
}

for (const endpoint of ['health', 'metrics']) {
  test(`--${endpoint}: 1,100 idle connections leave the primary its descriptors; app requests are answered`,
    { skip: !hasPrlimit && 'prlimit not installed', timeout: 90000 }, async (t) => {
      const port = await freePort();
      const eport = await freePort();
      const app = new Cli(['-i', '2', `--${endpoint}`, `127.0.0.1:${eport}`, 'app.js'],
        { cwd: require('node:path').join(__dirname, '..', 'fixtures', 'cli', 'cjs-app'), env: { APP_PORT: String(port) } });
      t.after(() => app.killGroup('SIGKILL'));
      await app.waitFor(/listening on \d+ as \d/, { count: 2 });
      const pid = app.child.pid;
      assert.strictEqual(spawnSync('prlimit', ['--pid', String(pid), `--nofile=${LIMIT}:${LIMIT}`]).status, 0);
      assert.strictEqual(fdUse(pid).limit, LIMIT);

      const idle = await holdIdle(eport, IDLE);
      t.after(() => idle.forEach((s) => s.destroy()));
      await new Promise((r) => setTimeout(r, 500));
      const during = fdUse(pid);
      assert.ok(during.open < LIMIT - 256, `the primary holds ${during.open} descriptors of ${LIMIT}`);

      for (let i = 0; i < 8; i++) {
        const r = await get(port, '/', { timeout: 3000 });
        assert.strictEqual(r.status, 200, `app request ${i + 1} of 8`);
      }
      // The endpoint still answers, and idle connections are closed within seconds.
      const path = endpoint === 'health' ? '/health' : '/metrics';
      let status;
      await pollUntil(async () => {
        status = (await get(eport, path, { timeout: 3000 }).catch(() => ({ status: 0 }))).status;
        return status === 200;
      }, { timeout: 15000 });
      assert.strictEqual(status, 200, `--${endpoint} answers during the attack`);
      const closed = await pollUntil(() => idle.every((s) => s.destroyed || s.readableEnded), { timeout: 20000 });
      assert.ok(closed, `${idle.filter((s) => !(s.destroyed || s.readableEnded)).length} idle connections still open`);
    });
}
