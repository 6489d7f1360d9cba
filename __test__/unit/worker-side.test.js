'use strict';
// Worker-side pieces that need no process: the rendezvous of a SCHED_NONE
// socket with its listen reply, the native channel's client (refusals,
// rotation membership, ref counting) over a fake channel, and where protocol
// names and libuv numbers come from.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { SharedSocketRendezvous } = require('../../lib/worker/shared_socket_rendezvous');
const { ChannelClient, ChannelMessageKind } = require('../../lib/worker/channel_client');
const { CMD, Act, Env } = require('../../lib/protocol');
const uv = require('../../lib/uv_constants');

test('rendezvous: the socket first, then the reply', () => {
  const r = new SharedSocketRendezvous();
  r.socketArrived(1, 42);
  const got = [];
  r.whenSocket(1, (fd) => got.push(fd));
  assert.deepEqual(got, [42]);
  r.whenSocket(1, (fd) => got.push(fd));
  assert.deepEqual(got, [42], 'a socket meets one reply only');
});

test('rendezvous: the reply first, then the socket', () => {
  const r = new SharedSocketRendezvous();
  const got = [];
  r.whenSocket(3, (fd) => got.push(['3', fd]));
  r.whenSocket(4, (fd) => got.push(['4', fd]));
  assert.deepEqual(got, []);
  r.socketArrived(4, 10);
  r.socketArrived(3, 11);
  assert.deepEqual(got, [['4', 10], ['3', 11]]);
  r.socketArrived(3, 12);
  assert.deepEqual(got.length, 2, 'a second socket waits for a second reply');
});

test('rendezvous: a socket that could not be received (undefined) is an answer, in either order', () => {
  const r = new SharedSocketRendezvous();
  const got = [];
  r.socketArrived(5, undefined);
  r.whenSocket(5, (fd) => got.push(fd));
  r.whenSocket(6, (fd) => got.push(fd));
  r.socketArrived(6, undefined);
  assert.deepEqual(got, [undefined, undefined]);
});

test('uv_constants: errnos from os.constants', () => {
  assert.equal(uv.uvErrno('EMFILE'), -os.constants.errno.EMFILE);
  assert.equal(uv.uvErrno('EINVAL'), -os.constants.errno.EINVAL);
  assert.throws(() => uv.uvErrno('ENOTANERRNO'), RangeError);
});

// Every name of the conversation between primary and workers is in
// lib/protocol.js: no other file of lib/ spells one out.
test('protocol: no file of lib/ spells out a cmd, act or env variable name', () => {
  const lib = path.join(__dirname, '..', '..', 'lib');
  const names = [CMD, ...Object.values(Env)];
  const offences = [];
  for (const file of fs.readdirSync(lib).filter((f) => f.endsWith('.js') && f !== 'protocol.js')) {
    const text = fs.readFileSync(path.join(lib, file), 'utf8');
    for (const name of names) {
      if (text.includes(`'${name}'`) || text.includes(`"${name}"`) || text.includes(`\`${name}\``)) offences.push(`${file}: ${name}`);
    }
    for (const m of text.matchAll(/\bact\s*(?::|===|==|=)\s*['"`](\w+)/g)) offences.push(`${file}: act ${m[1]}`);
  }
  assert.deepEqual(offences, []);
  assert.deepEqual(new Set(Object.values(Act)).size, Object.keys(Act).length, 'acts are distinct');
  assert.ok(Object.isFrozen(Act) && Object.isFrozen(Env));
});

// The native Channel as ChannelClient uses it, recording what it is told.
class FakeChannel {
  constructor(fd, onMessage) {
    this.fd = fd;
    this.deliver = onMessage;
    this.calls = [];
  }

  reply(statuses) { this.calls.push(['reply', [...statuses]]); }
  leave(listenerId) { this.calls.push(['leave', listenerId]); }
  ref() { this.calls.push(['ref']); }
  unref() { this.calls.push(['unref']); }
  confirmRead(mark) { this.calls.push(['confirmRead', mark]); }
}

function client() {
  const shared = [];
  const c = new ChannelClient(9, {
    workerId: 1,
    onSharedSocket: (listenerId, fd) => shared.push([listenerId, fd]),
    Channel: FakeChannel,
  });
  return { c, channel: c.channel, shared };
}

// Taking a connection needs a real fd (compat/server-api.test.js: maxConnections).
const server = () => ({ maxConnections: undefined, _connections: 0 });
const handle = () => ({ onconnection() { throw new Error('no connection should be taken'); } });

test('channel client: ChannelMessageKind is the one object the native channel speaks', () => {
  assert.deepEqual(ChannelMessageKind, { Closed: 0, Dispatch: 1, Shared: 2, Left: 3, DispatchFrom: 4, Bus: 10, PeerGone: 11, BusDropped: 12, ConfirmRead: 15 });
});

test('channel client: taken connections are confirmed as read up to their mark after the next event-loop turn, not before', async () => {
  const { channel } = client();
  channel.deliver(ChannelMessageKind.ConfirmRead, 3, []);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(channel.calls, [], 'not in the turn that received the batch');
  channel.deliver(ChannelMessageKind.ConfirmRead, 5, []);
  // Each wait below ends in the check phase of the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(channel.calls, [['confirmRead', 3]]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(channel.calls, [['confirmRead', 3], ['confirmRead', 5]], 'a later batch waits for its own turn');
});

test('channel client: connections for no server of this worker are refused, each one', () => {
  const { channel } = client();
  channel.deliver(ChannelMessageKind.Dispatch, 7, [100, 101, 102]);
  assert.deepEqual(channel.calls, [['reply', [0, 0, 0]]]);
});

test('channel client: a closing server refuses; leave() sends LEAVE at once; LEFT forgets the membership', () => {
  const { c, channel } = client();
  // A closing server is not even asked: its connections are not its own any more.
  const closing = { get maxConnections() { throw new Error('the closing server was asked'); } };
  c.join(7, closing, handle(), 'tcp');
  assert.equal(c.leave(7), 0);
  channel.deliver(ChannelMessageKind.Dispatch, 7, [100, 101]);
  assert.deepEqual(channel.calls, [['leave', 7], ['reply', [0, 0]]]);
  assert.equal(c.memberships.has(7), true, 'until the primary confirms');
  channel.deliver(ChannelMessageKind.Left, 7, []);
  assert.equal(c.memberships.has(7), false);
});

test('channel client: leaveAll() leaves every rotation not already being left, once', () => {
  const { c, channel } = client();
  c.join(1, server(), handle(), 'tcp');
  c.join(2, server(), handle(), 'pipe');
  c.join(3, server(), handle(), 'tcp');
  c.leave(2);
  c.leaveAll();
  c.leaveAll();
  assert.deepEqual(channel.calls, [['leave', 2], ['leave', 1], ['leave', 3]]);
});

test('channel client: the channel is ref()ed while any round-robin server is, and unref()ed after the last', () => {
  const { c, channel } = client();
  c.ref();
  c.ref();
  c.unref();
  c.ref();
  c.unref();
  c.unref();
  assert.deepEqual(channel.calls, [['ref'], ['unref']]);
  assert.throws(() => c.unref(), { code: 'ERR_ASSERTION' });
});

test('channel client: a SCHED_NONE socket goes to the rendezvous, with undefined when none came', () => {
  const { channel, shared } = client();
  channel.deliver(ChannelMessageKind.Shared, 4, [55]);
  channel.deliver(ChannelMessageKind.Shared, 5, []);
  channel.deliver(ChannelMessageKind.Closed, 0, []);
  assert.deepEqual(shared, [[4, 55], [5, undefined]]);
  assert.deepEqual(channel.calls, []);
});
