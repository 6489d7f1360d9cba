'use strict';
// Hostile and mutated input on the `rcluster` command's control socket: the
// primary's line handler (answerLine) directly, with thousands of inputs;
// a smaller number over the real socket of a real primary, cut into random
// writes, some without their newline; and the client's side, the reply
// parser and the status view, with mutated replies. No crash, every
// connection answered or closed within a bound, nothing unprintable in what
// the client would print, and the primary still answers a real status.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const path = require('node:path');
const { rng, mutate, hostileValue, inputs, seed } = require('../helpers/mutator');
const { Cli, cli, tmpdir, freePort, statusUntil, FIXTURES } = require('../cli/cli-process');
const { rclusterOnly } = require('../helpers/run-cluster');
const { answerLine, parseReply, LIMITS } = require('../../lib/cli/control');
const { renderStatus, safeJson } = require('../../lib/cli/status_view');

const skip = rclusterOnly('the rcluster command') || undefined;
const APP = path.join(FIXTURES, 'cjs-app');
const SAMPLES = ['{"cmd":"status"}', '{"cmd":"scale","n":2}', '{"cmd":"stop"}', '{"cmd":"reload"}', '{"cmd":"status","extra":[1,{"a":null}]}'];
// What a terminal could act on, in text the client prints.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

function hostileLine(r) {
  if (r.chance(3)) {
    const v = hostileValue(r);
    const request = v !== null && typeof v === 'object' && !Array.isArray(v) && r.chance(2) ? { ...v, cmd: r.pick(['status', 'scale', '__proto__', 'constructor', 'hasOwnProperty', 'toString', '']) } : v;
    return Buffer.from(JSON.stringify(request) ?? 'undefined');
  }
  return mutate(r, Buffer.from(r.pick(SAMPLES)));
}

test('control lines, directly: every hostile line gets a reply, handlers only see requests they can take', { skip }, async (t) => {
  const r = rng();
  const n = inputs(20000);
  const calls = { status: 0, scale: 0, stop: 0, reload: 0 };
  const handlers = {
    status: () => {
      calls.status++;
      return { ok: 1 };
    },
    scale: ({ n: count }) => {
      calls.scale++;
      if (!Number.isSafeInteger(count) || count < 1 || count > 4096) throw Object.assign(new Error('bad n'), { code: 'ERR_RCLUSTER_USAGE' });
      return { instances: count };
    },
    stop: () => {
      calls.stop++;
      return { stopping: true };
    },
    reload: async () => {
      calls.reload++;
      throw Object.assign(new Error('no reload'), { code: 'ERR_RCLUSTER_NO_RELOAD' });
    },
  };
  // A handler is only ever given an object request of its own command.
  for (const [cmd, handler] of Object.entries(handlers)) {
    handlers[cmd] = (request) => {
      assert.ok(request !== null && typeof request === 'object' && !Array.isArray(request) && request.cmd === cmd, JSON.stringify(request));
      return handler(request);
    };
  }
  let slowest = 0;
  const replies = { ok: 0, refused: 0 };
  for (let i = 0; i < n; i++) {
    let line = hostileLine(r);
    const nl = line.indexOf(0x0a);
    if (nl >= 0) line = line.subarray(0, nl);
    if (line.length > LIMITS.line) continue; // the connection refuses it before answerLine
    const started = performance.now();
    const reply = await answerLine(line, handlers);
    slowest = Math.max(slowest, performance.now() - started);
    assert.strictEqual(typeof reply.ok, 'boolean', `seed ${seed()} input ${i}: ${JSON.stringify(reply)}`);
    assert.doesNotThrow(() => JSON.stringify(reply));
    if (reply.ok) replies.ok++;
    else {
      replies.refused++;
      assert.strictEqual(typeof reply.error.message, 'string');
    }
  }
  t.diagnostic(`fuzz controlLine (answerLine): ${n} inputs, 0 crashes, ${replies.ok} answered, ${replies.refused} refused, handlers called ${JSON.stringify(calls)}, slowest ${slowest.toFixed(1)} ms`);
  assert.ok(slowest < 250, `an input took ${slowest} ms`);
});

test('replies, directly: a mutated or hostile reply is a clear error or printable text, never a crash', { skip }, async (t) => {
  const r = rng(seed() + 1);
  const n = inputs(20000);
  const status = {
    name: 'app', pid: 12, script: '/app.js', instances: 1, state: 'running', uptime: 3.5,
    workers: [{ id: 1, slot: 0, pid: 13, state: 'listening', uptime: 3, restarts: 0, connections: { open: 1, total: 2 }, requests: 2, rss: 5e7, cpu: 1.5, eventLoopDelay: { p99: 0.01 } }],
    listeners: [{ id: 1, key: '127.0.0.1:8080:4:tcp:x', workers: [1], accepted: 2, pending: 0, expired: 0 }],
    rejected: { controlLine: 2 },
  };
  const samples = [
    JSON.stringify({ ok: true, result: status }),
    JSON.stringify({ ok: false, error: { code: 'ERR_X', message: 'no' } }),
    JSON.stringify({ ok: true, result: { stopping: true } }),
  ];
  let texts = 0;
  let errors = 0;
  for (let i = 0; i < n; i++) {
    let bytes;
    if (r.chance(3)) {
      const v = hostileValue(r);
      const shaped = r.chance(2) ? { ok: true, result: { ...status, [r.pick(Object.keys(status))]: v } } : { ok: r.chance(2), result: v, error: v };
      bytes = Buffer.from(`${JSON.stringify(shaped)}\n`);
    } else {
      bytes = Buffer.concat([mutate(r, Buffer.from(r.pick(samples))), Buffer.from('\n')]);
    }
    const reply = parseReply(bytes);
    if (reply === null) continue;
    if (!reply.ok) {
      assert.doesNotMatch(reply.message, UNPRINTABLE, `seed ${seed() + 1} input ${i}`);
      assert.match(reply.code, /^[A-Z][A-Z0-9_]*$/);
      errors++;
      continue;
    }
    try {
      const text = renderStatus(reply.result);
      assert.doesNotMatch(text.replace(/\n/g, ''), UNPRINTABLE, `seed ${seed() + 1} input ${i}: ${JSON.stringify(text)}`);
      texts++;
    } catch (err) {
      assert.strictEqual(err.code, 'ERR_RCLUSTER_BAD_REPLY', `seed ${seed() + 1} input ${i}: ${err.stack}`);
      errors++;
    }
    const json = safeJson(reply.result ?? null);
    assert.doesNotMatch(json, UNPRINTABLE);
    assert.deepStrictEqual(JSON.parse(json), JSON.parse(JSON.stringify(reply.result ?? null)));
  }
  t.diagnostic(`fuzz control replies (parseReply, renderStatus): ${n} inputs, 0 crashes, ${texts} printed, ${errors} clear errors`);
});

// The first line of `bytes` would make a real primary stop, reload or fork.
function wouldAct(bytes) {
  const nl = bytes.indexOf(0x0a);
  try {
    const v = JSON.parse((nl < 0 ? bytes : bytes.subarray(0, nl)).toString('utf8'));
    return v !== null && typeof v === 'object' && ['stop', 'scale', 'reload'].includes(v.cmd);
  } catch {
    return false;
  }
}

// Sends `bytes` in random pieces; `ending`: 'newline' (a line), 'end' (the
// write side closed without one) or 'idle' (left open). Resolves to
// { answered, ms } when the primary answers or closes, or rejects past `bound`.
function send(control, r, bytes, ending, bound) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(control);
    let reply = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`not answered or closed within ${bound} ms (${ending}, ${bytes.length} bytes)`));
    }, bound);
    s.setEncoding('utf8');
    s.on('data', (d) => {
      reply += d;
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ answered: reply.endsWith('\n'), ms: Date.now() - started });
    });
    s.on('connect', () => {
      const payload = ending === 'newline' ? Buffer.concat([bytes, Buffer.from('\n')]) : bytes;
      let at = 0;
      while (at < payload.length) {
        const size = 1 + r.below(Math.max(1, Math.min(payload.length - at, 4096)));
        s.write(payload.subarray(at, at + size));
        at += size;
      }
      if (ending === 'end') s.end();
    });
  });
}

test('control lines over the real socket of a running primary: each answered or closed within a bound; status answered afterwards', { skip }, async (t) => {
  const port = await freePort();
  const control = path.join(tmpdir(), 'ctl.sock');
  const app = new Cli(['-i', '1', '--control', control, 'app.js'], { cwd: APP, env: { APP_PORT: String(port) } });
  t.after(() => app.killGroup());
  await app.waitFor(/listening on/);
  const r = rng(seed() + 2);
  // Each input here is a connection to a real primary: 3% of the count the
  // line handler above gets (600 by default).
  const n = Math.max(1, Math.round(inputs(20000) * 0.03));
  const lines = [];
  const idle = [];
  while (lines.length + idle.length < n) {
    const bytes = hostileLine(r);
    if (wouldAct(bytes)) continue;
    if (r.chance(60) && idle.length < 16) idle.push(bytes);
    else lines.push({ bytes, ending: r.chance(4) ? 'end' : 'newline' });
  }
  const bound = LIMITS.idle + 3000;
  let answered = 0;
  let slowest = 0;
  const unanswered = [];
  const tally = (results, sent) => results.forEach((x, k) => {
    if (x.answered) answered++;
    else unanswered.push(sent[k]);
    slowest = Math.max(slowest, x.ms);
  });
  // In batches under the cap of connections served at once.
  for (let i = 0; i < lines.length; i += 16) {
    const batch = lines.slice(i, i + 16);
    tally(await Promise.all(batch.map(({ bytes, ending }) => send(control, r, bytes, ending, bound))), batch);
  }
  tally(await Promise.all(idle.map((bytes) => send(control, r, bytes, 'idle', bound))), idle.map((bytes) => ({ bytes, ending: 'idle' })));
  t.diagnostic(`fuzz controlLine (real socket): ${n} inputs (${idle.length} left idle), ${answered} answered, ${unanswered.length} closed unanswered (sent nothing); slowest ${slowest} ms`);
  // Only a connection that sent nothing at all is closed without an answer.
  assert.deepStrictEqual(unanswered.filter((x) => x.bytes.length > 0 || x.ending === 'newline'), [], 'every connection that sent something got an answer');
  const s = await statusUntil(control, () => true);
  assert.strictEqual(s.state, 'running');
  assert.strictEqual(s.workers.length, 1);
  assert.ok(s.rejected.controlLine >= idle.length, JSON.stringify(s.rejected));
  const text = await cli(['status', '--control', control]);
  assert.strictEqual(text.code, 0, text.stderr);
  app.signal('SIGTERM');
  assert.strictEqual((await app.exited()).code, 0);
});
