'use strict';
// lib/primary/worker_messages.js and lib/primary/worker_spawn.js on their own: what the
// primary accepts from a worker, and the environment it gives one.
const test = require('node:test');
const assert = require('node:assert/strict');
const { checkWorkerMessage } = require('../../lib/primary/worker_messages');
const { workerEnvironment, isSpawnResourceError, RESERVED } = require('../../lib/primary/worker_spawn');
const { Act, Env } = require('../../lib/protocol');

test('worker messages: unknown and prototype-named acts are no message; bad fields are refused by name', () => {
  for (const act of ['hasOwnProperty', 'valueOf', '__proto__', 'constructor', 'toString', 'nope', 1, null, undefined, {}]) {
    assert.equal(checkWorkerMessage({ act, seq: 1 }), null, String(act));
  }
  for (const message of [null, undefined, 'queryServer', 42]) assert.equal(checkWorkerMessage(message), null);
  const query = { act: Act.QueryServer, seq: 3, address: '127.0.0.1', port: 0, addressType: 4, fd: -1, index: 0, backlog: false };
  assert.deepEqual(checkWorkerMessage(query), { act: Act.QueryServer });
  assert.deepEqual(checkWorkerMessage({ act: Act.QueryServer, seq: 3, fd: 3 }), { act: Act.QueryServer }, 'listen({ fd }): the rest is absent');
  for (const [field, value] of [['seq', 'x'], ['seq', -1], ['address', {}], ['port', [80]], ['fd', '3'], ['addressType', {}], ['flags', 'a'], ['backlog', {}], ['index', '0']]) {
    assert.deepEqual(checkWorkerMessage({ ...query, [field]: value }), { act: Act.QueryServer, refuse: field }, `${field}: ${value}`);
  }
  assert.deepEqual(checkWorkerMessage({ act: Act.Online }), { act: Act.Online });
  assert.deepEqual(checkWorkerMessage({ act: Act.UncaughtException }), { act: Act.UncaughtException, refuse: 'seq' });
});

test("worker env: rcluster's names are reserved, from the primary's env and fork(env) alike", () => {
  const env = workerEnvironment(
    { PATH: '/bin', [Env.ShutdownSignals]: 'SIGKILL', NODE_UNIQUE_ID: '1' },
    { APP: 'x', [Env.WorkerId]: '99', [Env.ChannelFd]: '0', [Env.ExitOnUncaughtTimeout]: '1' },
    { [Env.WorkerId]: '5', [Env.ChannelFd]: '4' },
  );
  assert.deepEqual(env, { PATH: '/bin', APP: 'x', [Env.WorkerId]: '5', [Env.ChannelFd]: '4' });
  assert.deepEqual([...RESERVED].sort(), Object.values(Env).sort());
  assert.throws(() => workerEnvironment({}, new Proxy({}, { ownKeys() { throw new Error('no env'); } }), {}), /no env/);
  assert.equal(isSpawnResourceError(Object.assign(new Error(), { code: 'EMFILE' })), true);
  assert.equal(isSpawnResourceError(Object.assign(new Error(), { code: 'ENOENT' })), false);
  assert.equal(isSpawnResourceError(null), false);
});
