'use strict';
// The command line as lib/cli/args.js reads it (no process is run).
const test = require('node:test');
const assert = require('node:assert');
const { parseArgs } = require('../../lib/cli/args');

test('options before the script are rcluster\'s; after it, rcluster\'s options are still rcluster\'s, words and what follows -- the app\'s', () => {
  const p = parseArgs(['-i', '-1', '--prefix', '--no-time', '--watch=src,conf', '--metrics', '9100', 'app.js', 'serve', '--', '--port', '80', '--', 'x']);
  assert.deepStrictEqual(p.positional, ['app.js']);
  // Formerly everything after the script went to the app (`--port 80 -- x`
  // with no --): now the app's options follow a --, and only they.
  assert.deepStrictEqual(p.args, ['serve', '--port', '80', '--', 'x']);
  assert.deepStrictEqual(p.options, {
    instances: -1, prefix: true, time: false, watch: ['src', 'conf'], metrics: { host: '127.0.0.1', port: 9100 },
  });
  assert.deepStrictEqual(parseArgs(['app.js', '--', '-i', '2']).args, ['-i', '2'], 'after --, even rcluster\'s options are the app\'s');
  assert.deepStrictEqual(parseArgs(['app.js', '--', '-i', '2']).options, {});
  assert.deepStrictEqual(parseArgs(['--watch', 'app.js']).options.watch, [], '--watch alone: the app\'s directory');
  assert.deepStrictEqual(parseArgs(['-i', '0', 'a.js']).options.instances, 'max', '0 is max, as in PM2');
  assert.deepStrictEqual(parseArgs(['--health', '[::1]:8080', 'a.js']).options.health, { host: '::1', port: 8080 });
  assert.deepStrictEqual(parseArgs(['--node-args', '--a --b=1', 'a.js']).options.nodeArgs, ['--a', '--b=1']);
});

test('the README\'s and PM2 users\' command lines: options after the script', () => {
  let p = parseArgs(['server.mjs', '-i', '4', '--', '--port', '80']);
  assert.deepStrictEqual([p.positional, p.options, p.args], [['server.mjs'], { instances: 4 }, ['--port', '80']]);
  p = parseArgs(['node_modules/.bin/next', 'start', '-i', '2']);
  assert.deepStrictEqual([p.positional, p.options, p.args], [['node_modules/.bin/next'], { instances: 2 }, ['start']]);
  p = parseArgs(['start', 'app.js', '-i', '4', '--name', 'api', 'x', '-1']);
  assert.deepStrictEqual([p.command, p.positional, p.options, p.args], ['run', ['app.js'], { instances: 4, name: 'api' }, ['x', '-1']]);
  p = parseArgs(['app.js', '-i', 'max', '--watch=src', '--no-prefix']);
  assert.deepStrictEqual(p.options, { instances: 'max', watch: ['src'], prefix: false });
  // An option rcluster does not know, after the script: said how to give it to the app.
  assert.throws(() => parseArgs(['app.js', '--port', '80']), {
    code: 'ERR_RCLUSTER_USAGE',
    message: /^unknown option --port after the script: to pass it to the app, put it after -- \(rcluster app\.js -- --port 80\)/,
  });
  assert.throws(() => parseArgs(['next', 'start', '-p', '3000']), { message: /\(rcluster next start -- -p 3000\)/ });
  assert.throws(() => parseArgs(['--port', '80', 'app.js']), { message: /^unknown option: --port \(see rcluster --help\)$/ });
});

test('PM2\'s command words: rcluster\'s commands, or an error naming what to do instead; never a script', () => {
  assert.strictEqual(parseArgs(['ls']).command, 'ls');
  assert.strictEqual(parseArgs(['list', '--json']).command, 'ls');
  assert.deepStrictEqual([parseArgs(['monit']).command, parseArgs(['monit']).watch], ['status', true]);
  assert.strictEqual(parseArgs(['delete', 'api']).command, 'stop');
  assert.deepStrictEqual(parseArgs(['delete', 'api']).positional, ['api']);
  assert.strictEqual(parseArgs(['restart', 'api']).command, 'reload');
  const logs = parseArgs(['logs', 'api', '--lines', '40', '--follow']);
  assert.deepStrictEqual([logs.command, logs.positional, logs.lines, logs.follow], ['logs', ['api'], '40', true]);
  assert.deepStrictEqual(parseArgs(['logs', '-n', '5', '-f']).lines, '5');
  assert.deepStrictEqual(parseArgs(['scale', 'api', '3']).positional, ['api', '3']);
  for (const [word, advice] of [['save', /systemd/], ['startup', /systemd/], ['resurrect', /systemd/], ['kill', /rcluster stop NAME/],
    ['flush', /logrotate/], ['describe', /rcluster status NAME/], ['show', /rcluster status NAME/], ['env', /env_NAME/],
    ['update', /npm i -g rcluster/], ['unstartup', /systemd/], ['install', /npm/], ['deploy', /rcluster reload NAME/], ['link', /--metrics/]]) {
    assert.throws(() => parseArgs([word, 'app.js']), { code: 'ERR_RCLUSTER_USAGE', message: new RegExp(`^'${word}' is a PM2 command rcluster has no equivalent of: .*${advice.source}`) });
  }
  // A command word in the script's place is not run, whatever the directory holds.
  assert.throws(() => parseArgs(['-i', '2', 'logs']), { message: /'logs' is an rcluster command, not a script here .*write \.\/logs/ });
  assert.throws(() => parseArgs(['--prefix', 'list']), { message: /'list' is an rcluster command/ });
  assert.deepStrictEqual(parseArgs(['./logs']).positional, ['./logs'], 'a path is a script');
  assert.throws(() => parseArgs(['ls', '-i', '2']), { message: /unknown option for 'ls': -i/ });
  assert.throws(() => parseArgs(['delete', '--watch']), { message: /unknown option for 'delete': --watch \(see rcluster help stop\)/ });
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
