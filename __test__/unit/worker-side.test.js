'use strict';
// Worker-side pieces that need no process: the rendezvous of a SCHED_NONE
// socket with its listen reply, and where protocol names and libuv numbers
// come from.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { SharedSocketRendezvous } = require('../../lib/shared_socket_rendezvous');
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

test('uv_constants: libuv flags in one place, errnos from os.constants', () => {
  assert.equal(uv.UV_UDP_REUSEADDR, os.constants.UV_UDP_REUSEADDR);
  assert.equal(uv.UV_TCP_IPV6ONLY, 1);
  assert.equal(uv.UV_UDP_IPV6ONLY, 1);
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
