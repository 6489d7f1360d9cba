'use strict';
// [rcluster-only] The bus's receiving side fed hostile input in a real
// process (docs/SECURITY.md): batches of records as src/worker.rs hands them
// to JS, whose payloads are hostile JSON values, mutated well-formed messages
// or random bytes, and whose framing (count, lengths) lies. Whatever arrives,
// lib/bus/bus.js `onChannelMessage` never throws, never emits a reserved event
// ('error', 'newListener', 'removeListener'), never shows a sender other than
// the one the dispatcher stamped (or, on a message of the primary's own, a
// valid remote name), and refuses what it cannot use with a count.
const test = require('node:test');
const assert = require('node:assert/strict');
const { rclusterOnly } = require('../helpers/run-cluster');
const { rng, mutate, hostileValue, inputs, seed, INTERESTING_U32 } = require('../helpers/mutator');

const skip = rclusterOnly('the bus is rcluster\'s own');
const RESERVED = new Set(['error', 'newListener', 'removeListener']);
const REMOTE = /^[0-9a-f]+\/(?:[1-9][0-9]*|agent|primary)$/;

const SAMPLES = [
  ['m', 'probe', { a: 1 }, 0],
  ['m', 'probe', null, 0, 'deadbeef/7'],
  ['q', 'probe', [1, 2], 3],
  ['r', 'probe', 'ok', 1],
  ['e', 'probe', { message: 'no', code: 'E_NO', name: 'TypeError', stack: 'at x' }, 1],
  ['x', 'probe', 1, 0, 'deadbeef/agent'],
].map((m) => Buffer.from(JSON.stringify(m)));

function batch(records) {
  return Buffer.concat(records.map(({ from, target, payload }) => {
    const head = Buffer.alloc(12);
    head.writeUInt32LE(from, 0);
    head.writeUInt32LE(target, 4);
    head.writeUInt32LE(payload.length, 8);
    return Buffer.concat([head, payload]);
  }));
}

test('hostile bus records never throw, never emit a reserved event, never forge a sender', { skip, timeout: 120000 }, () => {
  const busModule = require('../../lib/bus/bus');
  const rejections = require('../../lib/rejections');
  const { ChannelMessageKind: kinds } = require('../../lib/native');
  const { bus, onChannelMessage, PRIMARY, AGENT, BROADCAST } = busModule;

  const sent = [];
  bus.attach({ sendBus: (target, payload) => sent.push(target) });
  const warnings = [];
  const emitWarning = process.emitWarning;
  process.emitWarning = (w) => warnings.push(w);
  const emitted = new Map();
  const emit = bus.emit;
  bus.emit = function (name, ...args) {
    emitted.set(name, (emitted.get(name) ?? 0) + 1);
    return emit.call(this, name, ...args);
  };
  let current; // the record being delivered
  const badSenders = [];
  bus.on('probe', (data, from) => {
    if (current.from === undefined) return; // framing mutated: the sender field is whatever it became
    const stamped = current.from === PRIMARY ? 'primary' : current.from === AGENT ? 'agent' : current.from;
    const remote = current.from === PRIMARY && typeof from === 'string' && REMOTE.test(from);
    if (from !== stamped && !remote) badSenders.push({ from, stamped: current.from });
  });
  bus.respond('probe', () => 'answer');
  const settled = [];
  // Every peer a request went to: told gone at the end, so that no request's
  // timer keeps the test process alive.
  const askedPeers = new Set();

  const r = rng();
  const n = inputs(20000);
  const counts = () => rejections.counts();
  const before = counts();
  let thrown = [];
  for (let i = 0; i < n; i++) {
    // Half the inputs as the primary, half as a worker.
    busModule.setSelf(i % 2 === 0 ? PRIMARY : 1);
    const from = r.pick([PRIMARY, 1, 2, AGENT, r.pick(INTERESTING_U32)]);
    const target = r.pick([PRIMARY, 1, AGENT, BROADCAST]);
    let payload;
    switch (r.below(5)) {
      case 0: payload = Buffer.from(JSON.stringify(Array.from({ length: 3 + r.below(4) }, () => hostileValue(r))) ?? 'null'); break;
      case 1: payload = Buffer.from(JSON.stringify(hostileValue(r)) ?? ''); break;
      case 2: {
        // A request of ours pending with the sender: answered with a hostile error.
        const asked = from === PRIMARY ? 'primary' : from === AGENT ? 'agent' : (from >= 1 && from < AGENT ? from : 1);
        askedPeers.add(asked === 'primary' ? PRIMARY : asked === 'agent' ? AGENT : asked);
        const p = bus.request(asked, 'probe', null, { timeout: 600000 });
        p.then((v) => settled.push(v), (err) => settled.push(err));
        payload = Buffer.from(JSON.stringify([r.pick(['e', 'r']), r.pick(['probe', 'error', 7]), hostileValue(r), i / 4 + 1]));
        break;
      }
      case 3: payload = mutate(r, r.pick(SAMPLES)); break;
      default: payload = r.pick(SAMPLES);
    }
    current = { from };
    let count = 1;
    let bytes = batch([{ from, target, payload }]);
    if (r.chance(10)) {
      // Framing that lies: a wrong count, or mutated lengths.
      if (r.chance(2)) count = r.pick([0, 2, 1000, 0xffffffff]);
      else {
        bytes = mutate(r, bytes);
        current = {};
      }
    }
    try {
      onChannelMessage(kinds, kinds.Bus, count, bytes);
      if (r.chance(50)) onChannelMessage(kinds, r.pick([kinds.PeerGone, kinds.BusDropped]), hostileValue(r), undefined);
      if (r.chance(50)) onChannelMessage(kinds, kinds.Bus, hostileValue(r), hostileValue(r));
    } catch (err) {
      thrown.push({ i, err: String(err && err.stack || err) });
      if (thrown.length > 5) break;
    }
  }
  busModule.setSelf(PRIMARY);
  for (const peer of askedPeers) bus.peerGone(peer);
  process.emitWarning = emitWarning;
  bus.emit = emit;
  const after = counts();
  const refused = {
    busRecord: (after.busRecord ?? 0) - (before.busRecord ?? 0),
    channelFrame: (after.channelFrame ?? 0) - (before.channelFrame ?? 0),
  };
  test.diagnostic?.(`bus records: ${n} inputs (seed ${seed()}), refused ${JSON.stringify(refused)}, ` +
                    `emitted ${emitted.get('probe') ?? 0}, answers sent ${sent.length}, warnings ${warnings.length}`);
  console.log(`fuzz busRecord (JS): ${n} inputs, ${thrown.length} throws; refused ${JSON.stringify(refused)}`);
  assert.deepEqual(thrown, [], `no input throws (RCLUSTER_FUZZ_SEED=${seed()})`);
  for (const name of RESERVED) assert.equal(emitted.get(name) ?? 0, 0, `'${name}' never emitted`);
  assert.deepEqual(badSenders, [], 'no forged sender');
  assert.ok(refused.busRecord > n / 4, `most hostile records counted: ${JSON.stringify(refused)}`);
  assert.ok(refused.channelFrame > 0, 'lying framing counted');
  assert.ok((emitted.get('probe') ?? 0) > 0, 'well-formed messages still delivered');
  for (const s of settled) if (s instanceof Error) assert.equal(typeof s.message, 'string');
});

test('each malformed message is counted once, and a malformed error answer still ends its request', { skip }, async () => {
  const busModule = require('../../lib/bus/bus');
  const rejections = require('../../lib/rejections');
  const { ChannelMessageKind: kinds } = require('../../lib/native');
  const { bus, onChannelMessage, PRIMARY } = busModule;
  busModule.setSelf(PRIMARY);
  let lastSent = null;
  bus.attach({ sendBus: (target, payload) => { lastSent = JSON.parse(payload.toString('utf8')); } });
  const deliver = (from, payload, target = PRIMARY) =>
    onChannelMessage(kinds, kinds.Bus, 1, batch([{ from, target, payload: Buffer.from(payload) }]));
  const refusedBy = (fn) => {
    const before = rejections.counts().busRecord ?? 0;
    fn();
    return (rejections.counts().busRecord ?? 0) - before;
  };
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    for (const payload of ['null', '["m","error",1,0]', '["m","newListener",1,0]', '["m","probe",1,0,"primary"]',
                           '["m","probe",1,0,"deadbeef/7"]', '{"0":"m"}', '["m","probe",1,0,"a/1",1]', '[']) {
      assert.equal(refusedBy(() => deliver(3, payload)), 1, payload);
    }
    // The primary's own message may name a remote origin; nobody else's may.
    let seenFrom;
    bus.once('probe', (data, from) => { seenFrom = from; });
    assert.equal(refusedBy(() => deliver(PRIMARY, '["m","probe",1,0,"deadbeef/7"]', 1)), 0);
    assert.equal(seenFrom, 'deadbeef/7');

    const pending = bus.request(3, 'probe', null, { timeout: 60000 });
    // The request as it went out names its id ([type, topic, data, id]).
    const id = lastSent[3];
    assert.equal(refusedBy(() => deliver(3, JSON.stringify(['e', 'probe', { message: 42 }, id]))), 1);
    await assert.rejects(pending, { code: 'ERR_RCLUSTER_BUS_BAD_MESSAGE' });
  } finally {
    process.emitWarning = emitWarning;
  }
});
