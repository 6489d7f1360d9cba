'use strict';
// In a real terminal (tmux): `rcluster status --watch` refreshes in place, and
// worker tags are coloured, unless NO_COLOR is set.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Cli, cli, tmpdir, freePort, BIN, FIXTURES } = require('./cli-process');

const haveTmux = spawnSync('tmux', ['-V']).status === 0;
const SOCKET = `rcluster-test-${process.pid}`;

function tmux(...args) {
  const r = spawnSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const quote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

async function screenUntil(session, ok, { escapes = false, timeout = 15000 } = {}) {
  const deadline = Date.now() + timeout;
  let screen = '';
  while (Date.now() < deadline) {
    screen = tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', session);
    if (ok(screen)) return screen;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`the terminal never showed what was expected:\n${screen}`);
}

test('status --watch in a terminal refreshes in place; worker tags are coloured unless NO_COLOR', { skip: !haveTmux && 'tmux not installed' }, async (t) => {
  t.after(() => spawnSync('tmux', ['-L', SOCKET, 'kill-server']));
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '2', '--control', control, 'app.js'], { cwd: path.join(FIXTURES, 'cjs-app'), env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on \d+ as \d/, { count: 2 });

  // A session that outlives the others: the tmux server exits with its last one.
  tmux('new-session', '-d', '-s', 'keep', 'sleep 600');
  tmux('new-session', '-d', '-s', 'status', '-x', '150', '-y', '40',
    `${quote(process.execPath)} ${quote(BIN)} status --watch --interval 200 --control ${quote(control)}`);
  let screen = await screenUntil('status', (s) => /running, 2\/2 workers/.test(s) && /LISTENER/.test(s));
  assert.match(screen, /w0 #\d+ +0 +\d+ +listening/);
  assert.match(screen, /refreshing every 0\.2 s/);
  assert.strictEqual((await cli(['scale', '3', '--control', control])).code, 0);
  screen = await screenUntil('status', (s) => /running, 3\/3 workers/.test(s) && /w2 #\d+ +2 +\d+ +listening/.test(s));
  assert.strictEqual([...screen.matchAll(/WORKER +SLOT/g)].length, 1, `redrawn in place, not appended:\n${screen}`);
  assert.doesNotMatch(screen, /2\/2 workers/);
  tmux('send-keys', '-t', 'status', 'C-c');

  // The command's own output on a terminal: tags in colour; NO_COLOR: none.
  for (const [name, env, coloured] of [['colour', '', true], ['nocolour', 'NO_COLOR=1 ', false]]) {
    const ctl = path.join(tmpdir(), 'ctl.sock');
    tmux('new-session', '-d', '-s', name, '-x', '150', '-y', '40',
      `cd ${quote(FIXTURES)} && ${env}${quote(process.execPath)} ${quote(BIN)} -i 1 --prefix --control ${quote(ctl)} logs-app.js; sleep 5`);
    screen = await screenUntil(name, (s) => /\[w0\]\S* no newline from 0/.test(s), { escapes: true });
    if (coloured) assert.match(screen, /\x1b\[[0-9;]*m\[w0\]/, screen);
    else assert.doesNotMatch(screen, /\x1b\[/, screen);
    tmux('send-keys', '-t', name, 'C-c');
    await screenUntil(name, (s) => /stopping \(SIGINT\)/.test(s));
  }
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
