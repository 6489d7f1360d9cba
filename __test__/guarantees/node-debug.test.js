'use strict';
// NODE_DEBUG=rcluster: the primary and the workers print on stderr what they
// decide (the scheduling policy, listen keys and listeners, dispatch, worker
// states), and not a line per connection.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, sequential, getFreePort } = require('../helpers/http-client');

const SKIP = rclusterOnly('NODE_DEBUG=rcluster is rcluster\'s own debug output');
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The debug lines process `pid` printed, without the "RCLUSTER <pid>: " prefix.
function linesOf(stderr, pid) {
  const prefix = `RCLUSTER ${pid}: `;
  return stderr.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

// stderr and stdout are separate pipes: an event on stdout may be read before
// the debug lines written earlier on stderr. Waits (bounded) for `pattern`.
async function stderrShows(c, pattern, timeout = 5000) {
  const deadline = Date.now() + timeout;
  while (!pattern.test(c.stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function hasLine(lines, pattern, what) {
  assert.ok(lines.some((l) => pattern.test(l)), `${what}: no line matches ${pattern}\n${lines.join('\n')}`);
}

async function startTwoWorkers(t, policy) {
  const port = await getFreePort();
  const c = startCluster(t, 'worker-exit.js', {
    env: { PORT: String(port), NODE_DEBUG: 'rcluster', NODE_CLUSTER_SCHED_POLICY: policy },
  });
  const workers = [await c.call('fork', {}, { timeout: 10000 }), await c.call('fork', {}, { timeout: 10000 })];
  return { c, port, workers };
}

test('NODE_DEBUG=rcluster, round-robin: policy, listeners, dispatch, worker states', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { c, port, workers } = await startTwoWorkers(t, 'rr');
  await sequential(20, async () => assert.equal((await get(port, { timeout: 4000 })).status, 200));
  await c.call('disconnect', { worker: workers[0].worker });
  await c.waitFor({ event: 'cluster-exit', worker: workers[0].worker }, { timeout: 10000 });
  await stderrShows(c, new RegExp(`worker ${workers[0].worker} is dead`));
  // A child's 'exit' and 'disconnect' reach the primary in either order.
  await stderrShows(c, new RegExp(`worker ${workers[0].worker} is disconnected`));
  await stderrShows(c, new RegExp(`worker ${workers[1].worker}: listener \\d+: first connection`));
  const primary = linesOf(c.stderr, c.pid);
  hasLine(primary, /^primary: scheduling policy round-robin \(SCHED_RR\)$/, 'primary');
  let listener;
  for (const [i, w] of workers.entries()) {
    const id = w.worker;
    hasLine(primary, new RegExp(`^primary: forked worker ${id} \\(pid ${w.pid}\\)$`), 'primary');
    hasLine(primary, new RegExp(`^primary: worker ${id} is online$`), 'primary');
    const listen = primary.find((l) => l.startsWith(`primary: worker ${id}: listen `));
    const m = new RegExp(`^primary: worker ${id}: listen (\\S+:${port}:\\S+) -> (new|existing) listener (\\d+) ` +
      `on \\S+:${port}, the dispatcher passes it connections \\(round-robin\\)$`).exec(listen);
    assert.ok(m, `primary's listen line for worker ${id}: ${listen}`);
    assert.equal(m[2], i === 0 ? 'new' : 'existing', 'the second worker joins the first one\'s listener');
    listener ??= m[3];
    assert.equal(m[3], listener, 'one listener for both workers');
    hasLine(primary, new RegExp(`^primary: worker ${id} is listening on .*"port":${port}`), 'primary');

    const own = linesOf(c.stderr, w.pid);
    hasLine(own, new RegExp(`^worker ${id}: online`), `worker ${id}`);
    hasLine(own, new RegExp(`^worker ${id}: asks the primary to listen on \\*:${port}$`), `worker ${id}`);
    hasLine(own, new RegExp(`^worker ${id}: listen ${escape(m[1])}: round-robin listener ${listener}$`), `worker ${id}`);
    hasLine(own, new RegExp(`^worker ${id}: listener ${listener}: first connection$`), `worker ${id}`);
    // 20 connections, yet no line per connection.
    const perListener = own.filter((l) => l.startsWith(`worker ${id}: listener ${listener}:`));
    assert.equal(perListener.length, 1, `worker ${id} printed ${perListener.length} dispatch lines`);
  }
  const id = workers[0].worker;
  const own = linesOf(c.stderr, workers[0].pid);
  hasLine(own, new RegExp(`^worker ${id}: disconnecting \\(the primary asked\\), closing 1 servers first$`), 'worker');
  hasLine(own, new RegExp(`^worker ${id}: closes its server on \\S+:${port}:\\S+ \\(listener ${listener}, \\d+ connections\\)$`), 'worker');
  hasLine(primary, new RegExp(`^primary: worker ${id} is disconnected$`), 'primary');
  hasLine(primary, new RegExp(`^primary: worker ${id} is dead \\(code 0, signal null, exitedAfterDisconnect true\\)$`), 'primary');
});

test('NODE_DEBUG=rcluster, SCHED_NONE: the listening socket goes to the workers', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { c, port, workers } = await startTwoWorkers(t, 'none');
  assert.equal((await get(port, { timeout: 4000 })).status, 200);
  await stderrShows(c, new RegExp(`worker ${workers[1].worker}: listen \\S+: listening on`));
  const primary = linesOf(c.stderr, c.pid);
  hasLine(primary, /^primary: scheduling policy shared sockets \(SCHED_NONE\)$/, 'primary');
  for (const w of workers) {
    hasLine(primary, new RegExp(`^primary: worker ${w.worker}: listen \\S+:${port}:\\S+ -> (new|existing) listener \\d+ ` +
      `on \\S+:${port}, its socket is passed to the worker \\(SCHED_NONE\\)$`), 'primary');
    hasLine(linesOf(c.stderr, w.pid), new RegExp(`^worker ${w.worker}: listen \\S+: listening on the primary's socket \\(listener \\d+\\)$`),
      `worker ${w.worker}`);
  }
});

test('without NODE_DEBUG, rcluster prints nothing', { skip: SKIP, timeout: 60000 }, async (t) => {
  const port = await getFreePort();
  const c = startCluster(t, 'worker-exit.js', { env: { PORT: String(port), NODE_DEBUG: '' } });
  const w = await c.call('fork', {}, { timeout: 10000 });
  assert.equal((await get(port, { timeout: 4000 })).status, 200);
  await c.call('disconnect', { worker: w.worker });
  await c.waitFor({ event: 'cluster-exit', worker: w.worker }, { timeout: 10000 });
  assert.doesNotMatch(c.stderr, /RCLUSTER/);
});
