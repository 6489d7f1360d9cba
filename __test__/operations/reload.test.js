'use strict';
// cluster.reload(): every worker is replaced by a fresh fork, one at a time;
// the old ones are withdrawn only once their replacements are ready (and,
// by default, have stayed up through the probation: reload-probation.test.js),
// then drain.
// A replacement that dies or is never ready aborts the reload and the old
// workers serve on. Clients see no failure throughout.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no reload');

function start(t, { workers = 2, settings, env = {} } = {}) {
  const e = { WORKERS: String(workers), ...env };
  if (settings) e.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'operations.js', { env: e });
}

// Requests in a loop on `lanes` lanes, a new connection each (churn), until
// stop() is called; every failure is kept.
function load(port, { lanes = 4, path = '/' } = {}) {
  let running = true;
  const failures = [];
  const answeredBy = new Map();
  let ok = 0;
  const lane = async () => {
    while (running) {
      try {
        const res = await get(port, { path, timeout: 5000 });
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        const { id } = JSON.parse(res.body);
        answeredBy.set(id, (answeredBy.get(id) || 0) + 1);
        ok++;
      } catch (err) {
        failures.push(`${err.code || ''} ${err.message}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return {
    async stop() {
      running = false;
      await done;
      return { ok, failures, answeredBy };
    },
  };
}

test('reload under churn: every worker replaced, no request lost', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { drainTimeout: 5000 } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const traffic = load(port);
  // A request in progress on an old worker when it retires finishes.
  const slow = Promise.all([get(port, { path: '/slow?ms=1500', timeout: 8000 }), get(port, { path: '/slow?ms=1500', timeout: 8000 })]);
  await new Promise((r) => setTimeout(r, 200));
  const result = await c.call('reload', {}, { timeout: 40000 });
  const slowDone = await slow;
  await new Promise((r) => setTimeout(r, 300));
  const { ok, failures, answeredBy } = await traffic.stop();

  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(result.replaced.map((r) => r.old).sort(), [...olds].sort());
  const news = result.replaced.map((r) => r.replacement);
  assert.deepEqual(failures, [], `failed requests (of ${ok + failures.length})`);
  assert.ok(ok > 20, `some load went through (${ok})`);
  for (const res of slowDone) {
    assert.equal(res.status, 200);
    assert.ok(olds.includes(JSON.parse(res.body).id), 'the slow requests were served by the old workers');
  }
  for (const id of news) assert.ok(answeredBy.get(id) > 0, `replacement ${id} served`);
  for (const id of olds) {
    const exit = c.all({ event: 'exit', worker: id })[0];
    assert.ok(exit, `old worker ${id} exited`);
    assert.equal(exit.exitedAfterDisconnect, true);
    assert.equal(exit.signal, null, 'drained, not killed');
  }
  // One at a time, as one generation (the default probation): the second
  // replacement was forked once the first was ready, and no old worker left
  // before both were ready and had stayed up through the probation.
  const forks = c.all('fork').filter((e) => news.includes(e.worker));
  const firstReady = c.all({ event: 'listening', worker: result.replaced[0].replacement })[0];
  const lastReady = Math.max(...news.map((id) => c.all({ event: 'listening', worker: id })[0].at));
  const firstExit = Math.min(...olds.map((id) => c.all({ event: 'exit', worker: id })[0].at));
  assert.ok(forks[1].at >= firstReady.at, 'concurrency 1: the next replacement waits for the previous one to be ready');
  assert.ok(firstExit - lastReady >= 3000 - 50, `the old workers left ${firstExit - lastReady} ms after the last replacement was ready`);
  assert.deepEqual(forks.map((f) => f.replaces), result.replaced.map((r) => r.old), 'worker.replaces');
  const state = await c.call('state');
  assert.deepEqual(state.workers.sort(), [...news].sort(), 'only the replacements are left');
});

test('a replacement that crashes aborts the reload; the old workers serve on', { skip, timeout: 60000 }, async (t) => {
  // The restart policy must not replace the trial worker either.
  const c = start(t, { settings: { restart: { minDelay: 10 } } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('setMode', { mode: 'crash' });
  const traffic = load(port);
  const result = await c.call('reload', {}, { timeout: 30000 });
  const { failures } = await traffic.stop();
  assert.equal(result.ok, false);
  assert.equal(result.reason, 'exited');
  assert.equal(result.code, 3);
  assert.deepEqual(result.replaced, []);
  assert.ok(olds.includes(result.old));
  assert.deepEqual(failures, []);
  assert.deepEqual((await c.call('state')).workers.sort(), [...olds].sort(), 'the old workers stay');
  assert.equal(c.all('restart').length, 0, 'the trial worker was not restarted');
  assert.equal(c.all('fork').length, 3, 'one replacement tried, then the reload stopped');
  const res = await get(port);
  assert.ok(olds.includes(JSON.parse(res.body).id));
});

// The old worker crashes while its replacement is still in trial: the
// replacement takes its place once ready, and the restart policy starts none
// of its own (there would be a worker too many).
test('an old worker that dies while its replacement is in trial is replaced by that one alone', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 1, settings: { waitReady: true, restart: { minDelay: 10 } }, env: { READY_DELAY: '1500' } });
  const { port, workers: [old] } = await c.waitFor('ready', { timeout: 10000 });
  const oldPid = c.all({ event: 'fork', worker: old })[0].pid;
  await c.call('setMode', { mode: 'ready-api' });
  const reloading = c.call('reload', {}, { timeout: 30000 });
  const trial = await c.waitFor((e) => e.event === 'listening' && e.replaces === old, { timeout: 10000 });
  process.kill(oldPid, 'SIGKILL');
  const result = await reloading;
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(result.replaced, [{ old, replacement: trial.worker, killed: false }]);
  // Time for a restart, had one been started (minDelay 10 ms).
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.deepEqual(c.all('restart'), [], 'the restart policy forked a second replacement');
  assert.deepEqual((await c.call('state')).workers, [trial.worker]);
  assert.equal(JSON.parse((await get(port)).body).id, trial.worker);
});

// ... and if that replacement then fails, the slot is not left empty: the
// restart policy replaces the dead worker after all.
test('an old worker that dies during a trial that then fails is replaced by the restart policy', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 1, settings: { readyTimeout: 1500, restart: { minDelay: 10 } } });
  const { port, workers: [old] } = await c.waitFor('ready', { timeout: 10000 });
  const oldPid = c.all({ event: 'fork', worker: old })[0].pid;
  await c.call('setMode', { mode: 'never' });
  const reloading = c.call('reload', {}, { timeout: 30000 });
  await c.waitFor((e) => e.event === 'fork' && e.replaces === old, { timeout: 10000 });
  await c.call('setMode', { mode: '' });
  process.kill(oldPid, 'SIGKILL');
  await c.waitFor({ event: 'exit', worker: old }, { timeout: 5000 });
  // Well within the trial (readyTimeout 1500 ms), and long after minDelay.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(c.all('restart'), [], 'replaced while its replacement was still in trial');
  const result = await reloading;
  assert.equal(result.ok, false);
  assert.equal(result.reason, 'readyTimeout');
  const restart = await c.waitFor('restart', { timeout: 10000 });
  assert.equal(restart.old, old);
  assert.equal(restart.reason, 'signal');
  await c.waitFor({ event: 'listening', worker: restart.worker }, { timeout: 10000 });
  assert.deepEqual((await c.call('state')).workers, [restart.worker]);
  assert.equal(JSON.parse((await get(port)).body).id, restart.worker);
});

test('a replacement never ready within readyTimeout is killed; the reload aborts', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { readyTimeout: 1500 } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('setMode', { mode: 'never' });
  const traffic = load(port);
  const started = Date.now();
  const result = await c.call('reload', {}, { timeout: 30000 });
  const { failures } = await traffic.stop();
  assert.equal(result.ok, false);
  assert.equal(result.reason, 'readyTimeout');
  assert.ok(Date.now() - started >= 1400, 'it waited readyTimeout');
  assert.deepEqual(failures, []);
  const exit = await c.waitFor({ event: 'exit', worker: result.replacement }, { timeout: 5000 });
  assert.equal(exit.signal, 'SIGKILL');
  assert.deepEqual((await c.call('state')).workers.sort(), [...olds].sort());
});

for (const mode of ['ready-api', 'ready-send']) {
  test(`waitReady: the old worker leaves only after ${mode === 'ready-api' ? 'cluster.worker.ready()' : "process.send('ready')"}`,
    { skip, timeout: 60000 }, async (t) => {
      const c = start(t, { workers: 1, settings: { waitReady: true }, env: { READY_DELAY: '1500' } });
      const { workers: [old] } = await c.waitFor('ready', { timeout: 10000 });
      await c.call('setMode', { mode });
      const result = await c.call('reload', {}, { timeout: 30000 });
      assert.equal(result.ok, true, JSON.stringify(result));
      const [{ replacement }] = result.replaced;
      const listening = c.all({ event: 'listening', worker: replacement })[0];
      const sent = c.all({ event: 'readySent', worker: replacement })[0];
      const exit = c.all({ event: 'exit', worker: old })[0];
      assert.ok(sent, 'the replacement signalled');
      assert.ok(sent.at - listening.at >= 1000, 'it listened well before it signalled');
      assert.ok(exit.at >= sent.at, 'the old worker left after the signal, not at listening');
    });
}

test('waitReady: a replacement that listens but never signals aborts the reload', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 1, settings: { waitReady: true, readyTimeout: 1500 } });
  const { workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const result = await c.call('reload', {}, { timeout: 30000 });
  assert.equal(result.ok, false);
  assert.equal(result.reason, 'readyTimeout');
  assert.deepEqual((await c.call('state')).workers, olds);
});

test('reloadSignal: the primary reloads on SIGHUP', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { reloadSignal: 'SIGHUP' } });
  const { workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  process.kill(c.pid, 'SIGHUP');
  const result = await c.waitFor('reload', { timeout: 30000 });
  assert.equal(result.ok, true);
  assert.deepEqual(result.replaced.map((r) => r.old).sort(), [...olds].sort());
  assert.equal(c.exited, false, 'the primary lives on');
});

test('reload({ concurrency: 2 }) replaces two at a time; bad options throw', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2 });
  await c.waitFor('ready', { timeout: 10000 });
  const bad = await c.call('reload', { options: { concurrency: 0 } });
  assert.deepEqual(bad, { id: bad.id, event: 'reply', cmd: 'reload', code: 'ERR_OUT_OF_RANGE', name: 'RangeError' });
  const bad2 = await c.call('reload', { options: 'x' });
  assert.equal(bad2.code, 'ERR_INVALID_ARG_TYPE');
  const result = await c.call('reload', { options: { concurrency: 2 } }, { timeout: 30000 });
  assert.equal(result.ok, true);
  const forks = c.all('fork').slice(2);
  const firstExit = Math.min(...c.all('exit').map((e) => e.at));
  assert.equal(forks.length, 2);
  assert.ok(forks.every((f) => f.at < firstExit), 'both replacements forked before any old worker left');
});
