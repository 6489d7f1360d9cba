'use strict';
// setupPrimary()'s agent settings, validated as Node validates its options.
const test = require('node:test');
const assert = require('node:assert/strict');
const { normalizeOptions } = require('../../lib/agent/supervisor');

test('agent: a path or { exec, args, env }', () => {
  assert.deepEqual(normalizeOptions({ agent: 'a.js' }).agent, { exec: 'a.js', args: [], env: {} });
  assert.deepEqual(normalizeOptions({ agent: { exec: 'a.js', args: ['x'], env: { A: '1' } } }).agent,
    { exec: 'a.js', args: ['x'], env: { A: '1' } });
  assert.equal(normalizeOptions({ agent: undefined }).agent, undefined);
  assert.equal('agent' in normalizeOptions({ silent: true }), false, 'untouched when not given');
});

test('agent: bad values are Node-style errors', () => {
  for (const [options, code] of [
    [{ agent: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ agent: { exec: '' } }, 'ERR_INVALID_ARG_TYPE'],
    [{ agent: { exec: 'a.js', args: 'x' } }, 'ERR_INVALID_ARG_TYPE'],
    [{ agent: { exec: 'a.js', env: null } }, 'ERR_INVALID_ARG_TYPE'],
    [{ agentReadyTimeout: '1' }, 'ERR_INVALID_ARG_TYPE'],
    [{ agentReadyTimeout: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ agentReadyTimeout: 1.5 }, 'ERR_OUT_OF_RANGE'],
  ]) {
    assert.throws(() => normalizeOptions(options), { code }, JSON.stringify(options));
  }
});
