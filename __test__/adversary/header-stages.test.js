'use strict';
// Attacks on the dispatcher's header stages (setupPrimary({ routing:
// { proxyProtocol } }) and sticky routing by cookie), as a client would
// make them: 1,200 connections to one listener that send nothing or half a
// header and hold on. The other listener of the same cluster must keep
// answering every request; the attacked one must keep at most its budget
// waiting (partial headers included), let its timeout expire them, count
// them, and serve well-formed clients again afterwards; the primary's
// descriptors stay under its limit. And a worker flooding the sticky claim
// table must not move another worker's live session.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { pollUntil } = require('../helpers/poll');
const { proxyLine, holdConnections, request, batch, fdUse } = require('../fixtures/adversary/stage-attack');

const SKIP = rclusterOnly('header-stage budgets');
const SILENT = 800;
const PARTIAL = 400;
// Generous: a hang, not a slowdown, is what this detects (2 shared cores).
const PER_REQUEST_MS = 2000;
const STAGE_TIMEOUT_MS = 2000;

async function start(t, env) {
  const c = startCluster(t, 'adversary/stage-cluster.js', { env });
  const { ports } = await c.waitFor('ready', { timeout: 20000 });
  return { c, attacked: ports[0], other: ports[1] };
}

// The attacked listener is each worker's first server (key index 0).
async function listenerStats(c) {
  const { listeners, rejected } = await c.call('stats');
  return { ...listeners.find((l) => l.key.endsWith(':0')), rejected };
}

// The attack on `attacked`, the batch on `other`, the checks common to both stages.
async function attackAndMeasure(t, c, { attacked, other }, { partial, wellFormed }) {
  const silent = await holdConnections(attacked, SILENT);
  const halves = await holdConnections(attacked, PARTIAL, () => partial);
  t.after(() => { silent.close(); halves.close(); });
  const full = await pollUntil(async () => {
    const s = await listenerStats(c);
    return s.stageWaiting >= s.stageBudget;
  }, { timeout: 5000 });
  const during = await listenerStats(c);
  assert.ok(full, `the attacked stage filled up: ${during.stageWaiting} of ${during.stageBudget}`);
  assert.ok(during.stageWaiting <= during.stageBudget, `${during.stageWaiting} waiting, over the budget of ${during.stageBudget}`);
  const fds = fdUse(c.pid);
  assert.ok(fds.open < fds.limit - 64, `the primary holds ${fds.open} descriptors of ${fds.limit}`);

  const results = await batch(200, 8, (i) => request(other, { ...wellFormed(i), timeout: PER_REQUEST_MS }));
  const failed = results.filter((r) => r instanceof Error);
  assert.equal(failed.length, 0, `the other listener failed ${failed.length} of 200: ${failed[0]?.message}`);
  const slowest = Math.max(...results.map((r) => r.ms));
  assert.ok(slowest < PER_REQUEST_MS, `slowest answer ${slowest} ms`);
  const stillBounded = await listenerStats(c);
  assert.ok(stillBounded.stageWaiting <= stillBounded.stageBudget);

  // Their time runs out (counted), and the attacked listener serves again.
  const expired = await pollUntil(async () => (await listenerStats(c)).stageExpired > 0,
    { timeout: STAGE_TIMEOUT_MS * 4 });
  assert.ok(expired, 'the attackers\' connections expire');
  silent.close();
  halves.close();
  let answered;
  await pollUntil(async () => {
    answered = await request(attacked, { ...wellFormed(7), timeout: PER_REQUEST_MS }).catch(() => null);
    return answered !== null;
  }, { timeout: STAGE_TIMEOUT_MS * 5 });
  assert.ok(answered, 'the attacked listener serves well-formed clients after the attack');
  return listenerStats(c);
}

test('PROXY stage: 1,200 silent or half-header clients of one listener do not slow the other',
  { skip: SKIP, timeout: 120000 }, async (t) => {
    const cluster = await start(t, { ROUTING: JSON.stringify({ proxyProtocol: { timeout: STAGE_TIMEOUT_MS } }) });
    const after = await attackAndMeasure(t, cluster.c, cluster, {
      partial: 'PROXY TCP4 203.0.113.9 127.0',
      wellFormed: (i) => ({ prefix: proxyLine(i) }),
    });
    assert.ok(after.proxyRejected > 0, 'late headers are counted as rejected');
    assert.ok((after.rejected.proxyHeader ?? 0) > 0, `rejected: ${JSON.stringify(after.rejected)}`);
  });

test('sticky stage: 1,200 silent or half-head clients of one listener do not slow the other',
  { skip: SKIP, timeout: 120000 }, async (t) => {
    const cluster = await start(t, {
      POLICY: 'sticky',
      ROUTING: JSON.stringify({ sticky: { cookie: 'io', timeout: STAGE_TIMEOUT_MS } }),
    });
    await attackAndMeasure(t, cluster.c, cluster, {
      partial: 'GET / HTTP/1.1\r\nHost: x\r\nCookie: io=',
      wellFormed: (i) => ({ headers: `Cookie: io=s${i}\r\n` }),
    });
  });

test('sticky claims: a worker claiming 2^20 + 4096 values does not move another worker\'s live session',
  { skip: SKIP, timeout: 180000 }, async (t) => {
    const { c, attacked: port } = await start(t, {
      POLICY: 'sticky',
      ROUTING: JSON.stringify({ sticky: { cookie: 'io' } }),
    });
    const workerOf = async (sid) => Number((await request(port, { headers: `Cookie: io=${sid}\r\n` })).body);
    // A session whose value hashes to worker 1: worker 2 claims it, so
    // forgetting the claim would move it back to worker 1.
    let sid;
    for (let i = 0; i < 64 && sid === undefined; i++) {
      if (await workerOf(`live-${i}`) === 1) sid = `live-${i}`;
    }
    assert.ok(sid, 'some session value hashes to worker 1');
    await c.call('stick', { worker: 2, values: [sid] });
    assert.equal(await workerOf(sid), 2, 'claimed by worker 2');
    // Worker 1 floods the claim table while the session stays in use.
    const flood = c.call('flood', { worker: 1, count: 2 ** 20 + 4096, prefix: 'flood-' }, { timeout: 170000 });
    let done = false;
    flood.finally(() => { done = true; });
    const seen = [];
    while (!done) {
      seen.push(await workerOf(sid));
      await new Promise((r) => setTimeout(r, 50));
    }
    await flood;
    for (let i = 0; i < 6; i++) seen.push(await workerOf(sid));
    assert.deepEqual([...new Set(seen)], [2], `the session was answered by ${JSON.stringify(seen.slice(-12))}`);
  });
