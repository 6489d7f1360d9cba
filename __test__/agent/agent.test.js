'use strict';
// [rcluster-only] The agent: setupPrimary({ agent }).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

const skip = rclusterOnly('the agent is rcluster\'s');

test('the agent starts before the workers, which wait for it to be ready', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '700' } });
  const ready = await c.waitFor('ready', { timeout: 20000 });
  const agentReady = c.all('agent-ready')[0];
  assert.ok(agentReady, 'agentReady was emitted');
  const starts = c.all('worker-start');
  assert.equal(starts.length, 2);
  for (const s of starts) {
    assert.equal(typeof s.agentReadyAt, 'number', 'the agent was ready when the worker\'s code began');
    assert.ok(s.started >= s.agentReadyAt, `worker ${s.worker} began at ${s.started}, the agent was ready at ${s.agentReadyAt}`);
  }
  assert.equal(ready.agentInWorkers, false, 'cluster.agent is not in cluster.workers');
  const ping = await c.call('ping-agent');
  assert.deepEqual({ ...ping, port: undefined, id: undefined, cmd: undefined, event: undefined },
    { pid: ready.agentPid, isAgent: true, isPrimary: false, isWorker: false, port: undefined, id: undefined, cmd: undefined, event: undefined });
});

test('process.send(\'ready\') in the agent lets the workers start too', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { READY_VIA: 'send', AGENT_DELAY: '200' } });
  await c.waitFor('ready', { timeout: 20000 });
  for (const s of c.all('worker-start')) assert.ok(s.started >= s.agentReadyAt);
});

test('an uncaught exception in the agent is reported, and the agent survives it', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '0' } });
  const { agentPid } = await c.waitFor('ready', { timeout: 20000 });
  await c.call('throw');
  const err = await c.waitFor('agent-error', { timeout: 10000 });
  assert.equal(err.message, 'agent boom');
  const ping = await c.call('ping-agent');
  assert.equal(ping.pid, agentPid, 'the same agent process answers');
  assert.equal(c.all('agent-exit').length, 0);
});

// The agent `oldPid` died of SIGKILL and another took its place: restarted,
// ready, and the one answering on the bus. Returns the 'agent-restart' event.
async function assertKilledAndRestarted(c, oldPid) {
  const exit = await c.waitFor('agent-exit', { timeout: 10000 });
  assert.equal(exit.signal, 'SIGKILL');
  const restart = await c.waitFor('agent-restart', { timeout: 10000 });
  assert.notEqual(restart.pid, oldPid);
  await c.waitFor('agent-ready', { count: 2, timeout: 10000 });
  const ping = await c.call('ping-agent');
  assert.equal(ping.pid, restart.pid);
  return restart;
}

test('a SIGKILLed agent is restarted with backoff', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '0' } });
  const { agentPid } = await c.waitFor('ready', { timeout: 20000 });
  await c.call('kill-agent');
  const restart = await assertKilledAndRestarted(c, agentPid);
  assert.equal(restart.delay, 50, 'the restart policy\'s first delay');
  const { starts } = await c.call('stats');
  assert.equal(starts, 2);
});

test('an agent whose channel breaks is reported, killed and restarted, and answers on the bus again', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '0' } });
  const { agentPid } = await c.waitFor('ready', { timeout: 20000 });
  await c.call('junk-agent');
  const err = await c.waitFor('agent-error', { timeout: 10000 });
  assert.equal(err.code, 'ERR_RCLUSTER_AGENT_CHANNEL_FAILED');
  await assertKilledAndRestarted(c, agentPid);
});

test('the agent is given no connections; a broadcast reaches it; shutdown stops it last', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '0' } });
  const { port, workers } = await c.waitFor('ready', { timeout: 20000 });
  const served = new Set();
  for (let i = 0; i < 20; i++) served.add((await get(port, { timeout: 3000 })).body);
  assert.deepEqual([...served].sort(), workers.map((w) => String(w.id)).sort(), 'only workers answer on the cluster\'s port');
  const { stats } = await c.call('stats');
  assert.deepEqual(stats.workers.map((w) => w.id).sort(), workers.map((w) => w.id).sort(), 'the agent is in no rotation');
  for (const l of stats.listeners) assert.deepEqual([...l.workers].sort(), workers.map((w) => w.id).sort());
  const agentPort = (await c.call('ping-agent')).port;
  assert.notEqual(agentPort, port);
  assert.equal((await get(agentPort, { timeout: 3000 })).body, 'agent', 'its own server is its own');

  const from = c.events.length;
  await c.call('broadcast', { data: 'all' });
  const got = await c.waitFor({ event: 'got' }, { from, count: workers.length + 1, timeout: 10000 });
  assert.deepEqual(got.map((g) => String(g.worker)).sort(), [...workers.map((w) => String(w.id)), 'agent'].sort());
  assert.ok(got.every((g) => g.sender === 'primary'));

  await c.call('shutdown', {}, { timeout: 15000 });
  const exits = c.all('exit');
  const agentExit = c.all('agent-exit');
  assert.equal(exits.length, workers.length);
  assert.equal(agentExit.length, 1);
  assert.ok(exits.every((e) => e.at <= agentExit[0].at), 'the agent stops after every worker');
  assert.equal(c.all('agent-restart').length, 0, 'a stopped agent is not restarted');
});

test('an agent not ready within agentReadyTimeout is killed and restarted; workers keep waiting', { skip, timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'agent.js', { env: { AGENT_DELAY: '100000', READY_TIMEOUT: '300' } });
  const err = await c.waitFor('agent-error', { timeout: 10000 });
  assert.equal(err.code, 'ERR_RCLUSTER_AGENT_READY_TIMEOUT');
  assert.match(err.message, /within 300 ms/);
  assert.equal((await c.waitFor('agent-exit', { timeout: 10000 })).signal, 'SIGKILL');
  await c.waitFor('agent-restart', { timeout: 10000 });
  assert.equal(c.all('worker-start').length, 0, 'no worker code ran without a ready agent');
  assert.equal(c.all('ready').length, 0);
});
