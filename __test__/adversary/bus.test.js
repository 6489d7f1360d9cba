'use strict';
// [rcluster-only] A hostile or buggy worker attacking the bus (docs/SECURITY.md):
// it writes bus records of its own making to its channel, asks the bus to
// forge who sent a message, broadcasts topics that crash an EventEmitter
// without a listener, floods peers that do not exist while never reading.
// Each time: the primary stays up, the other workers keep serving every
// request, no worker dies of another's message, no forged sender is ever
// seen, memory stays bounded, and the refusal is counted.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');
const { get, settle, pool } = require('../helpers/http-client');

const skip = rclusterOnly('the bus is rcluster\'s own');
const PRIMARY = 0;
const AGENT = 0xFFFFFFFE;
const BROADCAST = 0xFFFFFFFF;

async function start(t) {
  const c = startCluster(t, 'adversary/bus-attack.js', { env: { WORKERS: '3' } });
  const ready = await c.waitFor('ready', { timeout: 15000 });
  return { c, port: ready.port, ids: ready.workers.map((w) => w.id) };
}

function worker(c, id, op, args = {}, timeout = 20000) {
  return c.call('worker', { worker: id, op, ...args, timeout }, { timeout: timeout + 5000 });
}

/** Every request of a bounded batch is answered 200 (a generous deadline catches a hang). */
async function everyRequestAnswered(port, n = 30) {
  const results = await pool(n, 3, (i) => settle(get(port, { path: `/${i}`, timeout: 10000 })));
  const failures = results.flatMap((r, i) => (r.ok && r.value.status === 200 ? [] :
    [`#${i}: ${r.ok ? `status ${r.value.status}` : `${r.error.code} ${r.error.message}`}`]));
  assert.deepEqual(failures, [], 'every request answered');
  return new Set(results.map((r) => Number(r.value.body)));
}

function noExits(c) {
  assert.deepEqual(c.all('exit'), [], `no worker exited${c.diag()}`);
  assert.equal(c.exited, false, `the primary is alive${c.diag()}`);
}

// Well-formed frames whose payloads are not what a bus message is.
const MALFORMED = [
  'null', '', '{', '[]', '{}', '42', '"m"', '[null,null,null,null]', '["m"]',
  '["m","error",{"boom":1},0]', '["m","newListener",1,0]', '["m","removeListener",1,0]',
  '["z","probe",1,0]', '["m",7,1,0]', '["m","",1,0]', '["m","probe",1,-1]', '["m","probe",1,0.5]',
  '["m","probe",1,0,"primary"]', '["m","probe",1,0,"deadbeef/7"]', '["m","probe",1,0,null,9]',
  '["x","probe",1,0]', '["x","probe",1,0,"not a peer"]', '["x","probe",1,0,"deadbeef/1"]', '["q","error",1,1]', '["e","probe",null,1.5]',
  '["r","probe",1,"1"]', '\u00ff\u00fe',
];

test('malformed bus messages to the primary (payload null, topic error, ...) are refused and counted',
  { skip, timeout: 90000 }, async (t) => {
    const { c, port, ids } = await start(t);
    const before = await c.call('stats');
    const { sent } = await worker(c, ids[0], 'raw', { target: PRIMARY, payloads: MALFORMED, times: 3 });
    assert.equal(sent, MALFORMED.length * 3);
    // A well-formed one after them: once it is seen, the others were handled.
    await worker(c, ids[0], 'send', { target: 'primary', topic: 'probe', data: 'after' });
    let stats;
    for (let i = 0; i < 100; i++) {
      stats = await c.call('stats');
      if (stats.seen.some((s) => s.data === 'after')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(stats.seen, [{ data: 'after', from: ids[0] }], 'only the well-formed message was emitted, from its real sender');
    const refused = (stats.rejected.busRecord ?? 0) - (before.rejected.busRecord ?? 0);
    assert.equal(refused, MALFORMED.length * 3, `each malformed message counted: ${JSON.stringify(stats.rejected)}`);
    await everyRequestAnswered(port);
    noExits(c);
  });

test("malformed bus frames are dropped and counted; the sender's channel goes on",
  { skip, timeout: 90000 }, async (t) => {
    const { c, port, ids } = await start(t);
    const before = await c.call('stats');
    const frames = [
      '0114000000000000', // a bus message without target and sender
      '011400000000000001000000', // ... without its sender
      '01140000010000000000000000000000' + Buffer.from('["m","probe","id field",0]').toString('hex'), // a non-zero header field
      '0115000001000000', // a notice, which only the primary sends
      '0116000001000000',
      '0115000001000000ff',
    ];
    await worker(c, ids[0], 'frames', { hex: frames });
    await worker(c, ids[0], 'send', { target: 'primary', topic: 'probe', data: 'after' });
    let stats;
    for (let i = 0; i < 100; i++) {
      stats = await c.call('stats');
      if (stats.seen.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(stats.seen, [{ data: 'after', from: ids[0] }], "the sender's channel still carries its messages");
    const refused = (stats.rejected.channelFrame ?? 0) - (before.rejected.channelFrame ?? 0);
    assert.equal(refused, frames.length, `each malformed frame counted: ${JSON.stringify(stats.rejected)}`);
    const servedBy = await everyRequestAnswered(port);
    assert.ok(servedBy.has(ids[0]), 'the sender still serves too');
    noExits(c);
  });

test('a worker cannot forge who sent a message: not with inject, not with a raw record',
  { skip, timeout: 90000 }, async (t) => {
    const { c, port, ids } = await start(t);
    const [attacker, victim] = ids;
    for (const origin of ['primary', 'agent', 'deadbeef/7']) {
      const { threw } = await worker(c, attacker, 'inject', { args: [victim, 'probe', 'forged', origin] });
      assert.ok(threw !== null, `inject is no tool of a worker (origin ${origin})`);
    }
    await worker(c, attacker, 'raw', {
      target: victim,
      // The `from` field of the frame claims the primary too: the dispatcher overwrites it.
      from: PRIMARY,
      payloads: ['["m","probe","forged",0,"primary"]', '["m","probe","forged",0,"agent"]',
                 '["m","probe","forged",0,"deadbeef/7"]'],
    });
    await worker(c, attacker, 'send', { target: victim, topic: 'probe', data: 'real' });
    let seen;
    for (let i = 0; i < 100; i++) {
      seen = await worker(c, victim, 'seen');
      if (seen.seen.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(seen.seen, [{ data: 'real', from: attacker }], 'the victim saw only the real message, from its real sender');
    assert.equal(seen.rejected.busRecord, 3, 'each forged origin counted where it arrived');
    await everyRequestAnswered(port);
    noExits(c);
  });

test("a worker's broadcast of reserved topics crashes no other worker, repeated past the restart budget",
  { skip, timeout: 90000 }, async (t) => {
    const { c, port, ids } = await start(t);
    const [attacker] = ids;
    const { threw } = await worker(c, attacker, 'inject', { args: [BROADCAST, 'error', { message: 'boom' }, 'primary'] });
    assert.ok(threw !== null, 'inject is no tool of a worker');
    const reserved = ['["m","error",{"message":"boom"},0]', '["m","newListener","x",0]', '["m","removeListener","x",0]',
                      '["q","error",1,1]', 'null'];
    await worker(c, attacker, 'raw', { target: BROADCAST, payloads: reserved, times: 10 });
    await worker(c, attacker, 'raw', { target: AGENT, payloads: reserved });
    // Broadcasts reach the sender too: once its own answers in, every worker has had them.
    await worker(c, attacker, 'send', { target: attacker, topic: 'probe', data: 'marker' });
    for (const id of ids) {
      let seen;
      for (let i = 0; i < 100; i++) {
        seen = await worker(c, id, 'seen');
        if (seen.rejected.busRecord >= reserved.length * 10) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(seen.rejected.busRecord, reserved.length * 10, `worker ${id} refused and counted each broadcast`);
    }
    const servedBy = await everyRequestAnswered(port);
    assert.ok(servedBy.size >= 2, 'served by several workers');
    noExits(c);
  });

test('a worker sending to peers that do not exist, never reading, costs the primary bounded memory',
  { skip, timeout: 120000 }, async (t) => {
    const { c, port, ids } = await start(t);
    const [attacker] = ids;
    const before = await c.call('stats');
    const { sent, error } = await worker(c, attacker, 'floodUnknown', { count: 2_000_000, ms: 15000 }, 60000);
    assert.equal(error, undefined);
    assert.ok(sent >= 300_000, `sent ${sent}`);
    const after = await c.call('stats');
    const grown = (after.rss - before.rss) / (1 << 20);
    t.diagnostic(`sent ${sent}; primary RSS ${(before.rss / (1 << 20)).toFixed(1)} -> ${(after.rss / (1 << 20)).toFixed(1)} MiB`);
    assert.ok(grown < 16, `the primary's RSS grew ${grown.toFixed(1)} MiB after ${sent} sends to unknown ids`);
    await everyRequestAnswered(port);
    noExits(c);
  });
