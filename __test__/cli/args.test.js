'use strict';
// The command line as lib/cli/args.js reads it (no process is run).
const test = require('node:test');
const assert = require('node:assert');
const { parseArgs } = require('../../lib/cli/args');

test('options before the script are rcluster\'s, everything after it is the app\'s', () => {
  const p = parseArgs(['-i', '-1', '--prefix', '--no-time', '--watch=src,conf', '--metrics', '9100', 'app.js', '--port', '80', '--', 'x']);
  assert.deepStrictEqual(p.positional, ['app.js']);
  assert.deepStrictEqual(p.args, ['--port', '80', '--', 'x']);
  assert.deepStrictEqual(p.options, {
    instances: -1, prefix: true, time: false, watch: ['src', 'conf'], metrics: { host: '127.0.0.1', port: 9100 },
  });
  assert.deepStrictEqual(parseArgs(['app.js', '--', '-i', '2']).args, ['-i', '2'], 'a -- right after the script is dropped');
  assert.deepStrictEqual(parseArgs(['--watch', 'app.js']).options.watch, [], '--watch alone: the app\'s directory');
  assert.deepStrictEqual(parseArgs(['-i', '0', 'a.js']).options.instances, 'max', '0 is max, as in PM2');
  assert.deepStrictEqual(parseArgs(['--health', '[::1]:8080', 'a.js']).options.health, { host: '::1', port: 8080 });
  assert.deepStrictEqual(parseArgs(['--node-args', '--a --b=1', 'a.js']).options.nodeArgs, ['--a', '--b=1']);
});

test('a config file in place of the script is followed by more options', () => {
  const p = parseArgs(['ecosystem.config.js', '--only', 'api', '-i', '2']);
  assert.deepStrictEqual(p.positional, ['ecosystem.config.js']);
  assert.strictEqual(p.only, 'api');
  assert.strictEqual(p.options.instances, 2);
  assert.deepStrictEqual(p.args, []);
});

test('control commands take their own options only', () => {
  assert.deepStrictEqual(parseArgs(['scale', '3', '--json', '--control', '/tmp/s']), {
    command: 'scale', options: {}, args: [], positional: ['3'], json: true, control: '/tmp/s',
  });
  assert.strictEqual(parseArgs(['status', '--watch']).watch, true);
  assert.throws(() => parseArgs(['stop', '-i', '2']), { code: 'ERR_RCLUSTER_USAGE', message: /unknown option for 'stop': -i/ });
  assert.throws(() => parseArgs(['--metrics', '99999', 'a.js']), { code: 'ERR_RCLUSTER_USAGE', message: /--metrics must be HOST:PORT/ });
  assert.throws(() => parseArgs(['--max-memory-restart', 'lots', 'a.js']), { message: /--max-memory-restart must be a number of bytes or a size/ });
  assert.throws(() => parseArgs(['--instance-var', '1BAD', 'a.js']), { message: /--instance-var must be an environment variable name/ });
});
