'use strict';
// The Node-shaped errors of lib/errors.js, compared with what Node itself
// throws where Node has the same error. No processes, no sockets.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { constants: { errno } } = require('node:os');
const { nodeError, validatePort, badPort, exceptionWithHostPort, errnoException } = require('../../lib/errors');

function thrown(fn) {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('did not throw');
}

// What a user can see of an error.
function shape(err) {
  return {
    class: Object.getPrototypeOf(err).constructor.name,
    name: err.name,
    code: err.code,
    message: err.message,
    string: String(err),
    stackHead: err.stack.split('\n')[0],
    keys: Object.keys(err),
  };
}

test('nodeError: a real instance of its class, printed as Node prints its own errors', () => {
  function caller() {
    return nodeError(RangeError, 'ERR_SOMETHING', 'went wrong', caller);
  }
  const err = caller();
  assert.ok(err instanceof RangeError);
  assert.deepEqual(shape(err), {
    class: 'RangeError',
    name: 'RangeError',
    code: 'ERR_SOMETHING',
    message: 'went wrong',
    string: 'RangeError [ERR_SOMETHING]: went wrong',
    stackHead: 'RangeError [ERR_SOMETHING]: went wrong',
    keys: ['code'],
  });
  assert.ok(!/\bat caller\b/.test(err.stack), 'the stack starts above stackStart');
});

test("nodeError looks exactly like Node's own ERR_SOCKET_BAD_PORT", () => {
  const node = thrown(() => net.createServer().listen(65536));
  const ours = badPort('options.port', 65536);
  assert.deepEqual(shape(ours), shape(node));
});

test("validatePort: accepts what Node accepts, returning the number", () => {
  for (const [port, expected] of [[0, 0], [80, 80], ['8080', 8080], [65535, 65535], [' 1 ', 1]]) {
    assert.equal(validatePort(port), expected, `${JSON.stringify(port)}`);
  }
});

test("validatePort: refuses what Node's validatePort refuses, with Node's message", () => {
  const cases = [-1, 65536, 1.5, NaN, '', '   ', 'abc', null, undefined, true, {}, [], 2 ** 32];
  for (const port of cases) {
    const ours = thrown(() => validatePort(port));
    assert.ok(ours instanceof RangeError, `${String(port)}`);
    assert.equal(ours.code, 'ERR_SOCKET_BAD_PORT');
    assert.match(ours.message, /^Port should be >= 0 and < 65536\. Received /);
  }
  // Where net.Server#listen() runs Node's own validatePort: the same text.
  for (const port of [-1, 65536, 1.5, NaN]) {
    const node = thrown(() => net.createServer().listen({ port }));
    const ours = thrown(() => validatePort(port, 'options.port'));
    assert.deepEqual(shape(ours), shape(node), `port ${port}`);
  }
  // Long values are cut as Node's determineSpecificType cuts them.
  assert.equal(thrown(() => validatePort('x'.repeat(40))).message,
    `Port should be >= 0 and < 65536. Received type string ('${'x'.repeat(24)}...).`);
  const zero = thrown(() => validatePort(0, 'Port', false));
  assert.equal(zero.message, 'Port should be > 0 and < 65536. Received type number (0).');
});

test('exceptionWithHostPort: message, errno, code, syscall, address and port as Node gives them', () => {
  const EADDRINUSE = -errno.EADDRINUSE;
  const err = exceptionWithHostPort(EADDRINUSE, 'bind', '0.0.0.0', 8000);
  assert.ok(err instanceof Error);
  assert.equal(err.message, 'bind EADDRINUSE 0.0.0.0:8000');
  assert.deepEqual({ ...err }, { errno: EADDRINUSE, code: 'EADDRINUSE', syscall: 'bind', address: '0.0.0.0', port: 8000 });

  const pipe = exceptionWithHostPort(-errno.EACCES, 'listen', '/tmp/x.sock', -1);
  assert.equal(pipe.message, 'listen EACCES /tmp/x.sock');
  assert.equal(pipe.port, -1, 'a unix socket\'s port of -1 is kept, as Node does');

  const noPort = exceptionWithHostPort(-errno.EADDRNOTAVAIL, 'bind', '10.255.255.1', 0);
  assert.equal(noPort.message, 'bind EADDRNOTAVAIL 10.255.255.1');
  assert.equal('port' in noPort, false);

  const nothing = exceptionWithHostPort(-errno.EINVAL, 'bind', undefined, undefined);
  assert.equal(nothing.message, 'bind EINVAL');
});

test('errnoException: message, errno, code and syscall', () => {
  const err = errnoException(-errno.EMFILE, 'open');
  assert.equal(err.message, 'open EMFILE');
  assert.deepEqual({ ...err }, { errno: -errno.EMFILE, code: 'EMFILE', syscall: 'open' });
});
