'use strict';
// settings.inspectPort and the inspector port each worker gets, as Node's
// cluster docs describe: with an inspector flag in execArgv, each worker gets
// the primary's debug port plus one more than the last worker, unless
// inspectPort is a number (used as is) or a function (called per worker).
// An invalid port makes fork() throw RangeError ERR_SOCKET_BAD_PORT.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../helpers/run-cluster');

// --inspect-port sets the port without starting the inspector: nothing binds.
const FLAG = ['--inspect-port=0'];
// The primary runs without inspector flags, so its debug port is Node's default.
const PRIMARY_DEBUG_PORT = 9229;

async function setup(t) {
  const c = startCluster(t, 'inspect-port.js');
  await c.waitFor('ready', { timeout: 10000 });
  return c;
}

test('inspector ports: default increments, a number, a function', { timeout: 30000 }, async (t) => {
  const c = await setup(t);
  const fork = (settings) => c.call('fork', { settings }, { timeout: 10000 });

  const first = await fork({ execArgv: FLAG });
  const second = await fork({ execArgv: FLAG });
  assert.equal(first.debugPort, PRIMARY_DEBUG_PORT + 1, 'first worker: primary port + 1');
  assert.equal(second.debugPort, PRIMARY_DEBUG_PORT + 2, 'next worker: one more');

  const fixed = await fork({ execArgv: FLAG, inspectPort: 40123 });
  assert.equal(fixed.debugPort, 40123, 'a number is used as is');
  const fixedAgain = await fork({ execArgv: FLAG, inspectPort: 40123 });
  assert.equal(fixedAgain.debugPort, 40123, 'for every worker');

  const a = await fork({ execArgv: FLAG, inspectPort: { fn: [40200, 40202] } });
  const b = await fork({ execArgv: FLAG });
  assert.deepEqual([a.debugPort, b.debugPort], [40200, 40202], 'a function is called for each worker');
  assert.equal((await c.call('calls')).calls, 2);

  // Without an inspector flag the worker gets no port of its own.
  const plain = await fork({ execArgv: [], inspectPort: 40300 });
  assert.equal(plain.debugPort, PRIMARY_DEBUG_PORT, 'no inspector flag: inspectPort is not used');
});

test('invalid inspector ports make fork() throw RangeError ERR_SOCKET_BAD_PORT', { timeout: 30000 }, async (t) => {
  const c = await setup(t);
  const cases = [
    ['a string', { execArgv: FLAG, inspectPort: 'port' }, "Received type string ('port')"],
    ['too big', { execArgv: FLAG, inspectPort: 1293812 }, 'Received type number (1293812)'],
    ['negative', { execArgv: FLAG, inspectPort: -9776 }, 'Received type number (-9776)'],
    ['a function returning a bad port', { execArgv: FLAG, inspectPort: { fn: [123121] } }, 'Received type number (123121)'],
    // null is refused even when no inspector flag is set.
    ['null, without inspector flags', { execArgv: [], inspectPort: null }, 'Received null'],
  ];
  for (const [what, settings, received] of cases) {
    const reply = await c.call('fork', { settings }, { timeout: 10000 });
    assert.ok(reply.thrown, `${what}: fork() throws`);
    assert.equal(reply.thrown.code, 'ERR_SOCKET_BAD_PORT', what);
    assert.equal(reply.thrown.isRangeError, true, what);
    assert.equal(reply.thrown.name, 'RangeError', what);
    assert.equal(reply.thrown.message, `Port should be >= 0 and < 65536. ${received}.`, what);
  }
});
