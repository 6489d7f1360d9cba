'use strict';
// [rcluster-only] A worker whose JS thread hangs (for(;;){}) must not take the
// service down: the other worker keeps serving.
//
// What is asserted, precisely:
//  1. Probe phase: fresh connections with a short (1 s) deadline, until 10 in
//     a row succeed (at most 40 probes). A connection handed to the hung
//     worker before the implementation notices the hang stalls; at most 10
//     such stalled/failed probes are tolerated.
//  2. Steady phase: 100 sequential fresh-connection requests, each with a 3 s
//     deadline: every one must succeed (status 200) and be served by the
//     healthy worker; none may time out or fail.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, pool } = require('../helpers/http-client');

const MAX_STALLED = 10;

test('a hung worker does not stop the cluster from serving',
  { skip: rclusterOnly('skipping a worker that stopped taking connections'), timeout: 90000 },
  async (t) => {
    const c = startCluster(t, 'hung-worker.js', { env: { WORKERS: '2' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
    const [hung, healthy] = workers.map((w) => w.id);

    // Both workers serve before the hang.
    const before = new Set();
    for (let i = 0; i < 4; i++) before.add(Number((await get(port, { timeout: 3000 })).body));
    assert.deepEqual([...before].sort(), [hung, healthy].sort(), 'both workers served before the hang');

    await c.call('hang', { worker: hung });

    let stalled = 0;
    let streak = 0;
    let probes = 0;
    while (streak < 10 && probes < 40 && stalled <= MAX_STALLED) {
      probes++;
      const r = await settle(get(port, { timeout: 1000 }));
      if (r.ok && r.value.status === 200) {
        assert.equal(Number(r.value.body), healthy, 'only the healthy worker can answer');
        streak++;
      } else {
        stalled++;
        streak = 0;
      }
    }
    assert.ok(stalled <= MAX_STALLED,
      `at most ${MAX_STALLED} connections stranded on the hung worker (saw ${stalled} in ${probes} probes)`);
    t.diagnostic(`probe phase: ${stalled} stalled of ${probes}`);

    const failures = [];
    for (let i = 0; i < 100; i++) {
      const r = await settle(get(port, { path: `/${i}`, timeout: 3000 }));
      if (!r.ok) failures.push(`#${i}: ${r.error.code || ''} ${r.error.message}`);
      else if (r.value.status !== 200 || Number(r.value.body) !== healthy) {
        failures.push(`#${i}: status ${r.value.status} body ${r.value.body}`);
      }
      if (failures.length > MAX_STALLED) break; // fails anyway; do not wait out 100 deadlines
    }
    assert.deepEqual(failures, [], 'all 100 requests served by the healthy worker, none timed out');
  });

// [rcluster-only] Connections handed to a worker that hangs are not lost when
// it is killed: the primary still holds each one the worker never
// acknowledged, and gives it to another worker. node:cluster loses them.
test('connections stranded on a hung worker are served after it is SIGKILLed',
  { skip: rclusterOnly('re-dispatching what a dead worker never acknowledged'), timeout: 90000 },
  async (t) => {
    const c = startCluster(t, 'hung-worker.js', { env: { WORKERS: '2' } });
    const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
    const [hung, healthy] = workers.map((w) => w.id);
    await c.call('hang', { worker: hung });

    // Clients keep connecting while the worker hangs; some are handed to it
    // before the primary passes over it. Then it is killed mid-stream.
    // (Every lane may be waiting on a stranded connection, so the kill comes
    // after 50 requests or 1 s, whichever is first.)
    const TOTAL = 200;
    let issued = 0;
    let killed = null;
    const kill = () => { killed ??= c.call('kill', { worker: hung }); };
    const timer = setTimeout(kill, 1000);
    const results = await pool(TOTAL, 4, async (i) => {
      if (++issued === 50) kill();
      return settle(get(port, { path: `/${i}`, timeout: 20000 }));
    });
    clearTimeout(timer);
    assert.equal((await killed).signal, 'SIGKILL');

    const failures = results.flatMap((r, i) => (r.ok ? [] : [`#${i}: ${r.error.code} ${r.error.message}`]));
    assert.deepEqual(failures, [], 'every request answered: no reset, no timeout');
    assert.ok(results.every((r) => r.value.status === 200 && Number(r.value.body) === healthy),
      'all by the healthy worker');
  });

// A worker stopped by SIGSTOP (a debugger, a frozen container, swap) looks
// like a hung one. With SIGCONT it serves what it was holding; if it is
// killed instead, that goes to another worker ([rcluster-only]).
for (const then of ['SIGCONT', 'SIGKILL']) {
  test(`a SIGSTOPped worker, then ${then}: every request is answered`,
    { skip: then === 'SIGKILL' && rclusterOnly('re-dispatching what a dead worker never acknowledged'), timeout: 90000 },
    async (t) => {
      const c = startCluster(t, 'hung-worker.js', { env: { WORKERS: '2' } });
      const { port, workers } = await c.waitFor('ready', { timeout: 10000 });
      const [stopped, healthy] = workers.map((w) => w.id);
      await c.call('signal', { worker: stopped, signal: 'SIGSTOP' });

      let issued = 0;
      let resumed = null;
      const resume = () => {
        resumed ??= then === 'SIGKILL' ? c.call('kill', { worker: stopped }) :
          c.call('signal', { worker: stopped, signal: 'SIGCONT' });
      };
      const timer = setTimeout(resume, 1000);
      const results = await pool(100, 4, async (i) => {
        if (++issued === 50) resume();
        return settle(get(port, { path: `/${i}`, timeout: 20000 }));
      });
      clearTimeout(timer);
      await resumed;

      const failures = results.flatMap((r, i) => (r.ok ? [] : [`#${i}: ${r.error.code} ${r.error.message}`]));
      assert.deepEqual(failures, [], 'no reset, no timeout');
      const byWorker = results.map((r) => Number(r.value.body));
      assert.ok(byWorker.filter((id) => id === healthy).length >= 50, 'the running worker served while the other was stopped');
    });
}
