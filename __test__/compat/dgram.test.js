'use strict';
// UDP (dgram) in a cluster, as Node's documentation describes it: a worker's
// bind() goes through the primary, which binds the socket once and shares it
// with every worker binding the same address (whatever the scheduling
// policy); `exclusive: true` binds in the worker itself. Datagrams reach the
// workers; bind errors reach the socket's 'error' as Node reports them; the
// port is freed once every worker has closed its socket.
const test = require('node:test');
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { startCluster } = require('../helpers/run-cluster');
const { udpSocketInodes } = require('../helpers/proc-net');
const { pollUntil } = require('../helpers/poll');

function bindSocket(options, ...args) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(options);
    socket.once('error', (err) => {
      socket.close();
      reject(err);
    });
    socket.bind(...args, () => resolve(socket));
  });
}

/** Whether this process can bind `port` on `address` right now. */
async function canBind(type, address, port) {
  try {
    const socket = await bindSocket(type, port, address);
    await new Promise((resolve) => socket.close(resolve));
    return true;
  } catch (err) {
    if (err.code === 'EADDRINUSE') return false;
    throw err;
  }
}

/** Waits (bounded) until `port` can be bound: a closed socket is released asynchronously. */
function waitUntilFree(type, address, port, timeout = 5000) {
  return pollUntil(() => canBind(type, address, port), { timeout, interval: 20 });
}

/**
 * Sends datagrams to `address:port` in bursts of `burst`, each tagged, until
 * `done(replies)` says enough or `maxBursts` were sent. Resolves with the
 * parsed replies ({pid, worker, name, got}).
 */
async function exchange(type, address, port, { burst = 20, maxBursts = 50, done = () => true } = {}) {
  const client = await bindSocket(type, 0);
  const replies = [];
  client.on('message', (buf) => replies.push(JSON.parse(String(buf))));
  try {
    for (let b = 0; b < maxBursts; b++) {
      const expected = replies.length + burst;
      for (let i = 0; i < burst; i++) client.send(`${b}-${i}`, port, address);
      const deadline = Date.now() + 3000;
      while (replies.length < expected && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (done(replies)) break;
    }
  } finally {
    client.close();
  }
  return replies;
}

let hasIPv6;
async function ipv6Available() {
  if (hasIPv6 === undefined) {
    try {
      const socket = await bindSocket('udp6', 0, '::1');
      socket.close();
      hasIPv6 = true;
    } catch {
      hasIPv6 = false;
    }
  }
  return hasIPv6;
}

const answers = (reply) => Object.entries(reply.answers).map(([worker, a]) => ({ worker: Number(worker), ...a }));

test('UDP in a cluster', { timeout: 60000 }, async (t) => {
  const c = startCluster(t, 'dgram.js', { env: { WORKERS: '2' } });
  const ready = await c.waitFor('ready', { timeout: 10000 });
  const pids = new Map(ready.workers.map((w) => [w.id, w.pid]));
  const bind = async (name, socket, ...args) =>
    answers(await c.call('bind', { name, socket, args }, { timeout: 8000 }));
  const close = (name) => c.call('close', { name }, { timeout: 8000 });

  await t.test('udp4: one socket bound once, shared by both workers, which both answer', async () => {
    const from = c.events.length;
    const bound = await bind('v4', 'udp4', 0, '127.0.0.1');
    assert.equal(bound.length, 2);
    const port = bound[0].address.port;
    assert.ok(port > 0);
    for (const b of bound) {
      assert.deepEqual(b.address, { address: '127.0.0.1', family: 'IPv4', port });
      assert.equal(b.callbacks, 1, 'the bind callback runs once');
      assert.equal(b.listeningEvents, 1, "'listening' is emitted once");
    }
    // Bound once: a single socket holds the port, shared by the workers.
    assert.equal(udpSocketInodes(port).size, 1);

    const events = await c.waitFor((e) => e.event === 'listening' && e.address.port === port, { from, count: 2 });
    assert.deepEqual(events.map((e) => e.worker).sort(), [...pids.keys()].sort());
    for (const e of events) {
      assert.equal(e.address.addressType, 'udp4');
      assert.equal(e.address.address, '127.0.0.1');
    }

    const replies = await exchange('udp4', '127.0.0.1', port, {
      done: (rs) => new Set(rs.map((r) => r.pid)).size === pids.size,
    });
    for (const r of replies) {
      assert.equal(pids.get(r.worker), r.pid, 'a reply comes from a worker');
      assert.equal(r.name, 'v4');
    }
    assert.equal(new Set(replies.map((r) => r.pid)).size, 2, 'both workers answered');
    await close('v4');
  });

  await t.test('udp6 on ::1 is shared too', async (tt) => {
    if (!(await ipv6Available())) return tt.skip('no IPv6 loopback');
    const bound = await bind('v6', 'udp6', 0, '::1');
    const port = bound[0].address.port;
    for (const b of bound) assert.deepEqual(b.address, { address: '::1', family: 'IPv6', port });
    assert.equal(udpSocketInodes(port).size, 1);
    const replies = await exchange('udp6', '::1', port, { burst: 10, maxBursts: 1 });
    assert.equal(replies.length, 10);
    for (const r of replies) assert.equal(pids.get(r.worker), r.pid);
    await close('v6');
  });

  await t.test('ipv6Only leaves the IPv4 side of the port free; dual-stack does not', async (tt) => {
    if (!(await ipv6Available())) return tt.skip('no IPv6 loopback');
    const only = await bind('v6only', { type: 'udp6', ipv6Only: true }, 0, '::');
    const port = only[0].address.port;
    assert.equal(only[1].address.port, port);
    assert.equal(await canBind('udp4', '0.0.0.0', port), true, 'IPv4 is free beside an ipv6Only socket');
    assert.equal((await exchange('udp6', '::1', port, { burst: 5, maxBursts: 1 })).length, 5);
    await close('v6only');

    const dual = await bind('dual', 'udp6', 0, '::');
    assert.equal(await canBind('udp4', '0.0.0.0', dual[0].address.port), false, 'a dual-stack socket holds IPv4 too');
    await close('dual');
  });

  await t.test('exclusive: true binds in each worker: a port of its own', async () => {
    const bound = await bind('excl', 'udp4', { port: 0, address: '127.0.0.1', exclusive: true });
    assert.equal(bound.length, 2);
    assert.notEqual(bound[0].address.port, bound[1].address.port);
    for (const b of bound) {
      assert.equal(b.callbacks, 1);
      const replies = await exchange('udp4', '127.0.0.1', b.address.port, { burst: 5, maxBursts: 1 });
      assert.equal(replies.length, 5);
      for (const r of replies) assert.equal(r.worker, b.worker, 'only that worker has the port');
    }
    await close('excl');
  });

  await t.test('reuseAddr shares a port with another SO_REUSEADDR socket', async () => {
    const other = await bindSocket({ type: 'udp4', reuseAddr: true }, 0, '127.0.0.1');
    t.after(() => other.close());
    const port = other.address().port;

    const plain = await bind('plain', 'udp4', port, '127.0.0.1');
    for (const b of plain) assert.equal(b.error && b.error.code, 'EADDRINUSE', 'without reuseAddr the port is taken');

    const reused = await bind('reuse', { type: 'udp4', reuseAddr: true }, port, '127.0.0.1');
    for (const b of reused) assert.deepEqual(b.address, { address: '127.0.0.1', family: 'IPv4', port });
    await close('reuse');
  });

  await t.test("EADDRINUSE reaches the socket's 'error' event as Node reports it", async () => {
    const blocker = await bindSocket('udp4', 0, '127.0.0.1');
    t.after(() => blocker.close());
    const port = blocker.address().port;
    const bound = await bind('busy', 'udp4', port, '127.0.0.1');
    assert.equal(bound.length, 2);
    for (const b of bound) {
      assert.deepEqual(b.error, {
        code: 'EADDRINUSE',
        errno: -98,
        syscall: 'bind',
        address: '127.0.0.1',
        port,
        message: `bind EADDRINUSE 127.0.0.1:${port}`,
      });
    }
  });

  await t.test("bind({ fd }) shares the primary's socket of that fd", async () => {
    const { fd, port } = await c.call('primarySocket');
    const from = c.events.length;
    const bound = await bind('fd', 'udp4', { fd });
    for (const b of bound) assert.deepEqual(b.address, { address: '127.0.0.1', family: 'IPv4', port });
    const events = await c.waitFor((e) => e.event === 'listening' && e.address.fd === fd, { from, count: 2 });
    for (const e of events) assert.equal(e.address.addressType, 'udp4');
    const replies = await exchange('udp4', '127.0.0.1', port, { burst: 10, maxBursts: 1 });
    assert.equal(replies.length, 10);
    for (const r of replies) assert.equal(pids.get(r.worker), r.pid);
    await close('fd');
  });

  await t.test("bind({ fd }) of an fd that is not UDP is 'open EINVAL'", async () => {
    // fd 1 of the primary is its stdout, a pipe.
    const bound = await bind('not-udp', 'udp4', { fd: 1 });
    for (const b of bound) {
      assert.deepEqual(b.error, { code: 'EINVAL', errno: -22, syscall: 'open', message: 'open EINVAL' });
    }
  });

  await t.test('the port is freed once every worker has closed its socket', async () => {
    const bound = await bind('closing', 'udp4', 0, '127.0.0.1');
    const port = bound[0].address.port;
    const [first, second] = [...pids.keys()];
    await c.call('close', { name: 'closing', only: first });
    assert.equal(await canBind('udp4', '127.0.0.1', port), false, 'still bound while a worker has it open');
    await c.call('close', { name: 'closing', only: second });
    assert.equal(await waitUntilFree('udp4', '127.0.0.1', port), true, 'the port is free again');
  });

  await t.test('datagrams keep flowing after one worker is SIGKILLed', async () => {
    const bound = await bind('survive', 'udp4', 0, '127.0.0.1');
    const port = bound[0].address.port;
    const [victim, survivor] = [...pids.keys()];
    await c.call('kill', { worker: victim });
    const replies = await exchange('udp4', '127.0.0.1', port, { burst: 20, maxBursts: 1 });
    assert.equal(replies.length, 20);
    for (const r of replies) assert.equal(r.worker, survivor);
  });

  await t.test('no deprecation warning is printed', () => {
    assert.doesNotMatch(c.stderr, /DeprecationWarning|DEP0112/);
  });
});
