'use strict';
// A reload that fails says so: `rcluster app.js` whose new code crashes
// 300 ms after listening (the app reads a file that the test flips). The
// reload is rolled back (the old workers, the same processes, serve every
// request of a load running throughout, and no worker is restarted), the
// primary logs "reload failed: <why>" as an error, `rcluster reload --json`
// shows { ok: false, rolledBack: true }, and `rcluster reload` exits non-zero.
// SIGHUP's reload logs its failure the same way.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Cli, cli, tmpdir, freePort, get, statusUntil, churnLoad, hasReload, NEEDS_RELOAD, FIXTURES } = require('./cli-process');

const APP = path.join(FIXTURES, 'reload-app');
const FAILED = /rcluster: error: reload failed: a new worker died during its probation \(worker \d+ exited with code 1 after \d+ ms of its 3000 ms probation\); the old workers serve on/g;

test('a deploy that crashes 300 ms after listening: the reload fails, says why, and the old workers serve on',
  { skip: !hasReload() && NEEDS_RELOAD, timeout: 120000 }, async (t) => {
    const dir = tmpdir();
    const deployFile = path.join(dir, 'deploy');
    const control = path.join(dir, 'ctl.sock');
    const port = await freePort();
    const app = new Cli(['--control', control, '-i', '2', 'app.js'], { cwd: APP, env: { APP_PORT: String(port), DEPLOY_FILE: deployFile } });
    t.after(() => app.killGroup());
    await app.waitFor(/listening on \d+ as \d \(good\)/, { count: 2 });
    const before = await statusUntil(control, (s) => s.workers.length === 2 && s.listeners[0]?.workers.length === 2);
    const oldPids = before.workers.map((w) => w.pid).sort();

    fs.writeFileSync(deployFile, 'crash\n');
    const load = churnLoad(port);
    await new Promise((r) => setTimeout(r, 300));
    const json = await cli(['reload', '--json', '--control', control]);
    await new Promise((r) => setTimeout(r, 500));
    const { answered, failures } = await load.stop();

    const result = JSON.parse(json.stdout);
    assert.strictEqual(result.ok, false, json.stdout);
    assert.strictEqual(result.reason, 'probation');
    assert.strictEqual(result.rolledBack, true);
    assert.deepStrictEqual(result.replaced, []);
    assert.strictEqual(result.code, 1);
    assert.strictEqual(failures, 0, `failed requests (of ${answered + failures})`);
    assert.ok(answered > 20, `answered ${answered}`);
    await app.waitFor(FAILED);
    assert.doesNotMatch(app.err, /reload done/);

    // The same processes, serving, and not restarted.
    const after = await statusUntil(control, (s) => s.workers.length === 2);
    assert.deepStrictEqual(after.workers.map((w) => w.pid).sort(), oldPids, 'the old workers are the ones left');
    assert.deepStrictEqual(after.workers.map((w) => w.restarts), [0, 0]);
    for (let i = 0; i < 6; i++) {
      const body = JSON.parse((await get(port)).body);
      assert.ok(oldPids.includes(body.pid), `served by an old worker (${body.pid})`);
      assert.strictEqual(body.deploy, '', 'the old code');
    }
    assert.doesNotMatch(app.err, /replaces it|keep crashing/, 'no restart, no crash loop');

    // SIGHUP's reload: the same failure, logged the same way.
    app.signal('SIGHUP');
    await app.waitFor(FAILED, { count: 2, timeout: 30000 });

    await t.test('rcluster reload exits non-zero and prints why', async () => {
      const plain = await cli(['reload', '--control', control]);
      assert.strictEqual(plain.code, 1, `exit code ${plain.code}, stdout ${plain.stdout}, stderr ${plain.stderr}`);
      assert.match(plain.stderr, /^rcluster: error: reload failed: a new worker died during its probation \(worker \d+ exited with code 1 after \d+ ms of its 3000 ms probation\); the old workers serve on$/m);
    });

    // Good code again: the next reload replaces every worker.
    fs.writeFileSync(deployFile, 'good\n');
    const good = JSON.parse((await cli(['reload', '--json', '--control', control])).stdout);
    assert.strictEqual(good.ok, true, JSON.stringify(good));
    assert.strictEqual(good.replaced.length, 2);
    await app.waitFor(/reload done/);
    const last = await statusUntil(control, (s) => s.workers.length === 2);
    assert.ok(last.workers.every((w) => !oldPids.includes(w.pid)), 'every worker is new');
    app.signal('SIGTERM');
    assert.strictEqual((await app.exited()).code, 0);
  });
