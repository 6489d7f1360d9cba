'use strict';
// The native binding's errors, driven directly: an OS error has Node's
// system-error shape (code = errno name, errno negative, syscall, message
// "<syscall> <CODE>"); anything else is thrown as itself with a code of its
// own, never as an errno.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { rclusterOnly } = require('../helpers/run-cluster');

const skip = rclusterOnly("the native binding's error shapes");
const NATIVE = path.join(__dirname, '../../lib/native');
const { errno } = os.constants;

function listening(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function tcpQuery(key, port, extra = {}) {
  return { key, address: '127.0.0.1', port, addressType: 4, fd: -1, flags: 0, shared: false, ...extra };
}

test('native errors', { skip }, async (t) => {
  const { Dispatcher, Channel, ChannelMessageKind } = require(NATIVE);
  const dispatcher = new Dispatcher();
  // The dispatcher holds the worker's end until releaseChildEnd: worker 1
  // stays connected for the whole test.
  dispatcher.openChannel(1);

  await t.test('the channel message kinds are exported once, from the addon', () => {
    assert.deepStrictEqual({ ...ChannelMessageKind }, { Closed: 0, Dispatch: 1, Shared: 2, Left: 3, DispatchFrom: 4, Bus: 10, PeerGone: 11, BusDropped: 12, ConfirmRead: 15 });
  });

  await t.test("a bind failure is the worker's negative errno, as node:cluster answers", async () => {
    const taken = net.createServer();
    const port = await listening(taken);
    try {
      const result = dispatcher.listen(1, tcpQuery('taken', port));
      assert.strictEqual(result.errno, -errno.EADDRINUSE);
      assert.strictEqual(require('node:util').getSystemErrorName(result.errno), 'EADDRINUSE');
      assert.strictEqual(result.shared, false);
    } finally {
      taken.close();
    }
  });

  await t.test('an address libuv cannot bind is EINVAL, as libuv answers Node', () => {
    const result = dispatcher.listen(1, tcpQuery('bad-address', 0, { address: 'not-an-ip' }));
    assert.strictEqual(result.errno, -errno.EINVAL);
  });

  await t.test('a UDP query is shared whatever the policy, and fd 0 binds the address as dgram does', () => {
    const result = dispatcher.listen(1, { key: 'udp', address: '127.0.0.1', port: 0, addressType: 'udp4', fd: 0, flags: 0, shared: false });
    assert.strictEqual(result.errno, 0);
    assert.strictEqual(result.shared, true);
    assert.strictEqual(result.address, '127.0.0.1');
    assert.ok(result.port > 0);
  });

  await t.test('a second channel for the same worker is ERR_INVALID_ARG_VALUE, not an errno', () => {
    assert.throws(() => dispatcher.openChannel(1), (err) => {
      assert.ok(err instanceof TypeError);
      assert.strictEqual(err.code, 'ERR_INVALID_ARG_VALUE');
      assert.match(err.message, /worker 1 already has a channel/);
      assert.strictEqual(err.errno, undefined);
      assert.strictEqual(err.syscall, undefined);
      return true;
    });
  });

  await t.test('a listen for a worker without a channel throws as itself, not EINVAL', () => {
    assert.throws(() => dispatcher.listen(99, tcpQuery('nobody', 0)), (err) => {
      assert.strictEqual(err.code, 'ERR_INVALID_ARG_VALUE');
      assert.match(err.message, /worker 99 has no open channel/);
      assert.strictEqual(err.errno, undefined);
      return true;
    });
  });

  await t.test('a query no Node version sends is ERR_INVALID_ARG_VALUE; a missing key ERR_INVALID_ARG_TYPE', () => {
    assert.throws(() => dispatcher.listen(1, tcpQuery('k', 0, { addressType: 'tcp' })),
                  { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /addressType must be/ });
    assert.throws(() => dispatcher.listen(1, tcpQuery(undefined, 0)),
                  { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"key"/ });
  });

  await t.test('a negative channel fd is ERR_OUT_OF_RANGE', () => {
    assert.throws(() => new Channel(-1, () => {}), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });
});

test('a socketpair that finds no free descriptor is "socketpair EMFILE"', { skip }, () => {
  // In a child with a small fd limit, every descriptor taken first.
  const script = `
    const fs = require('fs');
    const { Dispatcher } = require(${JSON.stringify(NATIVE)});
    const d = new Dispatcher();
    const held = [];
    try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
    let shape = null;
    try { d.openChannel(1); } catch (err) {
      shape = { name: err.name, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message };
    }
    for (const fd of held) fs.closeSync(fd);
    process.stdout.write(JSON.stringify(shape));
  `;
  const child = spawnSync('/bin/sh', ['-c', 'ulimit -n 128 && exec "$0" -e "$1"', process.execPath, script],
                          { encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(child.status, 0, child.stderr);
  assert.deepStrictEqual(JSON.parse(child.stdout), {
    name: 'Error', code: 'EMFILE', errno: -errno.EMFILE, syscall: 'socketpair', message: 'socketpair EMFILE',
  });
});
