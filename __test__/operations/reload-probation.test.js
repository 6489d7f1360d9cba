'use strict';
// cluster.reload() with a probation (setupPrimary({ reload: { probation } })):
// the new generation must come up and stay up, out of rotation, before it is
// admitted and the old one retired. New code that throws at start-up, or crashes 300 ms after it
// listens, is rolled back: the result says why, the old workers (the same
// processes) serve every request of a load running throughout, and after it
// the cluster is exactly the old workers, with no restarts. A good deploy
// passes once the probation is over; probation 0 keeps the one-by-one order.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('node:cluster has no reload');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function start(t, { workers = 2, settings, env = {} } = {}) {
  const e = { WORKERS: String(workers), ...env };
  if (settings) e.SETTINGS = JSON.stringify(settings);
  return startCluster(t, 'reload-probation.js', { env: e });
}

// Requests in a loop on `lanes` lanes, a new connection each, until stop();
// every failure is kept, and which worker (id, pid) answered each.
function load(port, { lanes = 4 } = {}) {
  let running = true;
  const failures = [];
  const answers = [];
  const lane = async () => {
    while (running) {
      try {
        const res = await get(port, { timeout: 5000 });
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        answers.push({ ...JSON.parse(res.body), at: Date.now() });
      } catch (err) {
        failures.push(`${err.code || ''} ${err.message}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return {
    answers,
    async stop() {
      running = false;
      await done;
      return { failures, answers };
    },
  };
}

function pidsOf(c, ids) {
  return ids.map((id) => c.all({ event: 'fork', worker: id })[0].pid);
}

// The checks common to every rolled-back reload: the old workers, the same
// processes, served everything and are all that is left, and nothing is restarted.
async function assertRolledBack(c, port, olds, traffic) {
  const oldPids = pidsOf(c, olds);
  // The load goes on a while after the reload: the old workers still serve.
  await sleep(700);
  const { failures, answers } = await traffic.stop();
  assert.deepEqual(failures, [], `failed requests (of ${answers.length + failures.length})`);
  assert.ok(answers.length > 20, `some load went through (${answers.length})`);
  for (const id of olds) assert.equal(c.all({ event: 'exit', worker: id }).length, 0, `old worker ${id} never left`);
  assert.deepEqual((await c.call('state')).workers.sort(), [...olds].sort(), 'exactly the old workers are left');
  for (let i = 0; i < 10; i++) {
    const { pid } = JSON.parse((await get(port)).body);
    assert.ok(oldPids.includes(pid), `answered by an old worker's process (${pid} of ${oldPids})`);
  }
  // Time for a restart (minDelay 10 ms), had the restart policy taken a failed replacement.
  await sleep(500);
  assert.deepEqual(c.all('restart'), [], 'no worker was restarted');
  assert.deepEqual((await c.call('state')).workers.sort(), [...olds].sort(), 'still the old workers');
}

test('new code that throws at start-up: rolled back, the old workers serve on', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { settings: { restart: { minDelay: 10 }, reload: { probation: 1000 } } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('setMode', { mode: 'throw' });
  const traffic = load(port);
  await sleep(200);
  const result = await c.call('reload', {}, { timeout: 30000 });
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(result.reason, 'exited');
  assert.equal(result.rolledBack, true);
  assert.deepEqual(result.replaced, []);
  assert.equal(result.code, 1);
  assert.ok(olds.includes(result.old));
  assert.equal(c.all('fork').length, 3, 'one replacement tried, then the reload stopped');
  assert.deepEqual(c.all('reload').map((e) => e.reason), ['exited'], "the 'reload' event carries the result");
  await assertRolledBack(c, port, olds, traffic);
});

test('new code that crashes 300 ms after listening: rolled back during probation, 0 failed requests', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { restart: { minDelay: 10 }, reload: { probation: 3000 } } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('setMode', { mode: 'crash-late' });
  const traffic = load(port);
  await sleep(200);
  const started = Date.now();
  const result = await c.call('reload', { options: { concurrency: 2 } }, { timeout: 30000 });
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(result.reason, 'probation');
  assert.equal(result.rolledBack, true);
  assert.deepEqual(result.replaced, []);
  assert.equal(result.code, 1);
  assert.equal(result.signal, null);
  assert.equal(result.probation, 3000);
  assert.ok(result.uptime >= 250 && result.uptime < 3000, `it died ${result.uptime} ms into its probation`);
  assert.ok(olds.includes(result.old));
  assert.ok(Date.now() - started < 3000, 'the rollback did not wait for the probation to end');
  const news = c.all((e) => e.event === 'fork' && e.replaces !== undefined).map((e) => e.worker);
  assert.equal(news.length, 2, 'both replacements were forked (concurrency 2)');
  assert.ok(news.includes(result.replacement));
  // Every replacement is gone: the one that crashed, and the other, retired.
  for (const id of news) await c.waitFor({ event: 'exit', worker: id }, { timeout: 10000 });
  await assertRolledBack(c, port, olds, traffic);
});

test('a good deploy: the whole new generation passes its probation, then every old worker is retired', { skip, timeout: 60000 }, async (t) => {
  const probation = 1500;
  const c = start(t, { workers: 2, settings: { drainTimeout: 5000, reload: { probation } } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const traffic = load(port);
  await sleep(200);
  const result = await c.call('reload', {}, { timeout: 30000 });
  await sleep(300);
  const { failures, answers } = await traffic.stop();
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(result.replaced.map((r) => r.old).sort(), [...olds].sort());
  for (const r of result.replaced) assert.equal(r.killed, false, 'drained, not killed');
  const news = result.replaced.map((r) => r.replacement);
  assert.deepEqual(failures, [], `failed requests (of ${answers.length + failures.length})`);
  assert.deepEqual((await c.call('state')).workers.sort(), [...news].sort(), 'every worker is new');
  const newPids = pidsOf(c, news);
  const { pid } = JSON.parse((await get(port)).body);
  assert.ok(newPids.includes(pid));
  // One generation: both replacements came up (one at a time) before any
  // old worker left, and none left before the last replacement's probation.
  const lastReady = Math.max(...news.map((id) => c.all({ event: 'listening', worker: id })[0].at));
  const firstExit = Math.min(...olds.map((id) => c.all({ event: 'exit', worker: id })[0].at));
  const forks = c.all((e) => e.event === 'fork' && news.includes(e.worker));
  assert.ok(forks[1].at >= c.all({ event: 'listening', worker: news[0] })[0].at, 'concurrency 1: the second was forked once the first was ready');
  assert.ok(firstExit - lastReady >= probation - 50, `the old workers stayed ${firstExit - lastReady} ms past the last new one's readiness`);
  for (const id of olds) {
    const exit = c.all({ event: 'exit', worker: id })[0];
    assert.equal(exit.exitedAfterDisconnect, true);
    assert.equal(exit.signal, null);
  }
  // The old workers served alone while the new ones were on probation (they
  // stood by, out of rotation: at most a connection sent between a new
  // worker's listen and its withdrawal), then the new ones served.
  const oldPids = pidsOf(c, olds);
  assert.ok(answers.some((a) => oldPids.includes(a.pid) && a.at > lastReady + 200), 'the old workers served during the probation');
  const early = answers.filter((a) => newPids.includes(a.pid) && a.at < lastReady + probation - 200);
  assert.ok(early.length <= 2, `${early.length} requests were served by a new worker on probation`);
  assert.ok(answers.some((a) => newPids.includes(a.pid)), 'the new workers served once admitted');
});

test('probation 0 (per call, over the setting): each old worker leaves once its replacement is ready', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { reload: { probation: 20000 } } });
  await c.waitFor('ready', { timeout: 10000 });
  const bad = await c.call('reload', { options: { probation: -1 } });
  assert.equal(bad.code, 'ERR_OUT_OF_RANGE');
  assert.equal(bad.name, 'RangeError');
  const badType = await c.call('reload', { options: { probation: '1s' } });
  assert.equal(badType.code, 'ERR_INVALID_ARG_TYPE');
  const started = Date.now();
  const result = await c.call('reload', { options: { probation: 0 } }, { timeout: 30000 });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.ok(Date.now() - started < 20000, 'no probation was waited');
  const news = result.replaced.map((r) => r.replacement);
  const forks = c.all('fork').filter((e) => news.includes(e.worker));
  const firstExit = c.all({ event: 'exit', worker: result.replaced[0].old })[0];
  assert.ok(forks[1].at >= firstExit.at, 'the next replacement waits for the previous old worker');
});

test('probation 0: a failed replacement stops the reload; those replaced stay replaced', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { restart: { minDelay: 10 }, reload: { probation: 0 } } });
  const { workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  await c.call('setMode', { mode: 'throw' });
  const result = await c.call('reload', {}, { timeout: 30000 });
  assert.equal(result.ok, false);
  assert.equal(result.reason, 'exited');
  assert.equal(result.rolledBack, false);
  assert.deepEqual(result.replaced, []);
  assert.deepEqual((await c.call('state')).workers.sort(), [...olds].sort());
});

// Each worker accepts from its own copy of the socket: a new worker cannot
// stand by out of rotation, so it serves at once; the reload still proves it
// through the probation and retires the old workers after.
test('SCHED_NONE: the new workers serve during the probation; a good deploy passes', { skip, timeout: 60000 }, async (t) => {
  const probation = 1000;
  const c = start(t, { workers: 2, settings: { reload: { probation } }, env: { NODE_CLUSTER_SCHED_POLICY: 'none' } });
  const { port, workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const traffic = load(port);
  const result = await c.call('reload', {}, { timeout: 30000 });
  const { failures, answers } = await traffic.stop();
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(failures, []);
  const news = result.replaced.map((r) => r.replacement);
  assert.deepEqual((await c.call('state')).workers.sort(), [...news].sort());
  const newPids = pidsOf(c, news);
  const lastReady = Math.max(...news.map((id) => c.all({ event: 'listening', worker: id })[0].at));
  const firstExit = Math.min(...olds.map((id) => c.all({ event: 'exit', worker: id })[0].at));
  assert.ok(firstExit - lastReady >= probation - 50);
  assert.ok(answers.some((a) => newPids.includes(a.pid) && a.at < firstExit - 100), 'a new worker served before the old ones left');
  const seen = new Set();
  for (let i = 0; i < 20; i++) seen.add(JSON.parse((await get(port)).body).pid);
  assert.ok([...seen].every((pid) => newPids.includes(pid)), 'only the new workers serve');
});

test('a shutdown during the probation wins: the reload resolves with reason shutdown', { skip, timeout: 60000 }, async (t) => {
  const c = start(t, { workers: 2, settings: { reload: { probation: 20000 } } });
  const { workers: olds } = await c.waitFor('ready', { timeout: 10000 });
  const reloading = c.call('reload', {}, { timeout: 30000 });
  const news = [];
  for (const old of olds) news.push((await c.waitFor((e) => e.event === 'listening' && e.replaces === old, { timeout: 10000 })).worker);
  const started = Date.now();
  process.kill(c.pid, 'SIGUSR2');
  const result = await c.waitFor('reload', { timeout: 15000 });
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(result.reason, 'shutdown');
  assert.equal(result.rolledBack, true);
  assert.deepEqual(result.replaced, []);
  assert.ok(result.at - started < 15000, 'not after the probation');
  reloading.catch(() => {});
  for (const id of [...olds, ...news]) {
    const exit = await c.waitFor({ event: 'exit', worker: id }, { timeout: 10000 });
    assert.equal(exit.signal, null, `worker ${id} drained`);
  }
});
