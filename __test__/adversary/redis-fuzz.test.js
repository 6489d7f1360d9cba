'use strict';
// Property test of the Redis bridge's decoders (lib/bus/redis_bridge.js): a
// bridge with a fake local bus, fed thousands of hostile JSON values and
// mutated well-formed messages on both of its channels, straight into the
// handler ioredis calls. Nothing may throw; a message is either used (and
// then only in the shapes the local bus accepts) or refused and counted
// (surface 'redisMessage'); a remote name never reaches this machine's
// counter table unless the name exists here; what peers make it hold stays
// bounded.
const test = require('node:test');
const assert = require('node:assert/strict');
const { rng, mutate, hostileValue, inputs } = require('../helpers/mutator');
const { RedisBridge, invalidBusMessage, invalidCountersMessage } = require('../../lib/bus/redis_bridge');
const rejections = require('../../lib/rejections');

const ORIGIN = /^[0-9a-f]{1,32}\/(?:primary|agent|[1-9][0-9]*)$/;
const RESERVED = new Set(['error', 'newListener', 'removeListener']);
const LOCAL_NAMES = ['hits', 'visits', '__proto__'];

function fakeBridge() {
  const calls = [];
  const remote = new Map();
  const bridge = new RedisBridge({ redis: 'redis://127.0.0.1:1', namespace: 'ns', syncInterval: 100 }, {
    bus: { reportError: (err) => calls.push({ error: err }) },
    shared: {
      localCounters: () => Object.fromEntries(LOCAL_NAMES.map((n) => [n, 1])),
      counter: (name) => {
        assert.ok(LOCAL_NAMES.includes(name), `a remote-only name reached the counter table: ${JSON.stringify(name)}`);
        return { setRemote: (sum) => remote.set(name, sum) };
      },
    },
    local: {
      // As lib/bus/bus.js inject does: its own checks throw (a payload too large).
      broadcast: (topic, data, origin) => {
        if (JSON.stringify(['m', topic, data, 0, origin]).length > 64 * 1024) {
          throw Object.assign(new RangeError('too large'), { code: 'ERR_OUT_OF_RANGE' });
        }
        calls.push({ broadcast: [topic, data, origin] });
      },
      send: (target, topic, data, origin) => calls.push({ send: [target, topic, data, origin] }),
    },
  });
  bridge.machine = '0badcafe';
  return { bridge, calls, remote };
}

function redisRejections() {
  return rejections.counts().redisMessage ?? 0;
}

// Well-formed messages of every kind, as other machines publish them.
const BUS_SAMPLES = [
  { m: '12345678', f: 3, k: 'b', t: 'ping', d: { a: [1, 2] } },
  { m: '12345678', f: 'primary', k: 'b', t: 'news', d: 'hello' },
  { m: '12345678', f: 'agent', k: 's', to: '0badcafe', tg: '2', t: 'direct', d: 7 },
  { m: '12345678', f: 1, k: 's', to: '0badcafe', tg: 'primary', t: 'ask', d: null },
  { m: 'aaaaaaaa', f: 1, k: 's', to: 'ffffffff', tg: 'agent', t: 'elsewhere', d: [] },
];
const COUNTER_SAMPLES = [
  { m: '12345678', c: [['hits', 10], ['visits', -3], ['remote-only', 99]] },
  { m: '12345678', c: [['hits', 1]], s: 'abcdef01', r: '0badcafe' },
  { m: '12345678', q: 'abcdef01' },
  { m: 'aaaaaaaa', c: [] },
];

function checkCalls(calls) {
  for (const call of calls.splice(0)) {
    if (call.broadcast) {
      const [topic, , origin] = call.broadcast;
      assert.equal(typeof topic, 'string');
      assert.ok(topic !== '' && !RESERVED.has(topic), `topic ${topic} reached the bus`);
      assert.match(origin, ORIGIN);
    } else if (call.send) {
      const [target, topic, , origin] = call.send;
      assert.ok(target === 'primary' || target === 'agent' || (Number.isInteger(target) && target >= 1 && target < 0xFFFFFFFE), `target ${target}`);
      assert.ok(typeof topic === 'string' && topic !== '' && !RESERVED.has(topic), `topic ${topic} reached the bus`);
      assert.match(origin, ORIGIN);
    } else {
      assert.fail(`the bridge reported an error: ${call.error.message}`);
    }
  }
}

/** Feeds `text` on `channel`; true if it was refused (counted). */
function feed(bridge, channel, text) {
  const before = redisRejections();
  const uncaught = [];
  // What the bridge would let out as an uncaught exception (the fake local
  // bus has no application listener that could throw).
  bridge.rethrow = (err) => uncaught.push(err);
  bridge.onMessage(channel, text);
  assert.deepEqual(uncaught, [], `the bridge let an error out for ${String(text).slice(0, 200)}`);
  const delta = redisRejections() - before;
  assert.ok(delta === 0 || delta === 1, `one message, ${delta} rejections`);
  return delta === 1;
}

for (const [channelName, samples, validator] of [['bus', BUS_SAMPLES, invalidBusMessage], ['counters', COUNTER_SAMPLES, invalidCountersMessage]]) {
  test(`the ${channelName} channel: hostile values and mutated messages never throw, refusals are counted`, { timeout: 120000 }, (t) => {
    const { bridge, calls } = fakeBridge();
    const channel = channelName === 'bus' ? bridge.channel : bridge.countersChannel;
    const r = rng();
    const n = inputs(4000);
    let refused = 0;
    let used = 0;
    for (let i = 0; i < n; i++) {
      let text;
      const sample = samples[r.below(samples.length)];
      switch (r.below(4)) {
        case 0: text = JSON.stringify(hostileValue(r)); break; // may be undefined: not a string at all
        case 1: {
          // One field of a good message replaced by a hostile value.
          const msg = { ...sample };
          const keys = [...Object.keys(msg), 'k', 't', 'tg', 'to', 'f', 'c', 'q', 's', 'r'];
          msg[r.pick(keys)] = hostileValue(r);
          text = JSON.stringify(msg);
          break;
        }
        case 2: text = mutate(r, Buffer.from(JSON.stringify(sample))).toString('utf8'); break;
        default: {
          // A counters list with hostile entries.
          const msg = { m: '12345678', c: Array.from({ length: r.below(6) }, () => r.chance(2) ? [hostileValue(r), hostileValue(r)] : hostileValue(r)) };
          text = JSON.stringify(channelName === 'bus' ? { ...sample, d: msg } : msg);
        }
      }
      const wasRefused = feed(bridge, channel, text);
      if (wasRefused) {
        refused++;
      } else {
        // Not refused: it parsed to a message its validator accepts (or a
        // sync request over the rate, which is refused too).
        used++;
        assert.equal(validator(JSON.parse(text)), null, `accepted without being valid: ${text.slice(0, 200)}`);
      }
      checkCalls(calls);
      assert.ok(bridge.parts.size <= 64);
      for (const { counters } of bridge.parts.values()) assert.ok(counters.size <= 1024);
      if (i % 100 === 0) bridge.applyRemote();
    }
    t.diagnostic(`fuzz redisMessage ${channelName}: ${n} inputs, ${refused} refused and counted, ${used} used, 0 throws`);
    assert.ok(refused > n / 4, 'most hostile inputs are refused');
    assert.ok(used > 0, 'well-formed messages still get through');
  });
}

test('the attacks of the adversary test, one by one, on a bridge alone', () => {
  const { bridge, calls, remote } = fakeBridge();
  for (const text of ['null', '1', '"x"', '[]', '{}', 'undefined', '{"__proto__":{"m":"12345678"}}']) {
    assert.equal(feed(bridge, bridge.channel, text), true, text);
    assert.equal(feed(bridge, bridge.countersChannel, text), true, text);
  }
  for (const t of RESERVED) {
    assert.equal(feed(bridge, bridge.channel, JSON.stringify({ m: '12345678', f: 1, k: 'b', t, d: 1 })), true);
    assert.equal(feed(bridge, bridge.channel, JSON.stringify({ m: '12345678', f: 1, k: 's', to: '0badcafe', tg: 'primary', t, d: 1 })), true);
  }
  assert.equal(feed(bridge, bridge.channel, JSON.stringify({ m: '12345678', f: 1, k: 'b', t: 'big', d: 'x'.repeat(70000) })), true, 'too large for the bus');
  assert.equal(feed(bridge, bridge.channel, 'x'.repeat(300 * 1024)), true, 'too long to parse');
  checkCalls(calls);
  // 1,100 names: refused whole; 1,000 names: kept, but only local names get a sum.
  const many = (n) => Array.from({ length: n }, (_, i) => [`name-${i}`, i]);
  assert.equal(feed(bridge, bridge.countersChannel, JSON.stringify({ m: '12345678', c: many(1100) })), true);
  assert.equal(feed(bridge, bridge.countersChannel, JSON.stringify({ m: '12345678', c: [...many(1000), ['hits', 5]] })), false);
  bridge.applyRemote();
  assert.deepEqual([...remote.keys()], ['hits']);
  assert.equal(remote.get('hits'), 5n);
  for (const bad of [[['hits', 1.5]], [['hits', 2 ** 60]], [['hits', '5']], [['', 1]], [['n'.repeat(33), 1]], [['é'.repeat(17), 1]], [['hits']]]) {
    assert.equal(feed(bridge, bridge.countersChannel, JSON.stringify({ m: '12345678', c: bad })), true, JSON.stringify(bad));
  }
  // 64 machines at most; a new one is refused while they all publish.
  for (let i = 0; i < 70; i++) feed(bridge, bridge.countersChannel, JSON.stringify({ m: (0x10000000 + i).toString(16), c: [['hits', 1]] }));
  assert.equal(bridge.parts.size, 64);
  // A silent machine gives its room up.
  for (const part of bridge.parts.values()) part.seen -= 60000;
  assert.equal(feed(bridge, bridge.countersChannel, JSON.stringify({ m: 'feedf00d', c: [['hits', 1]] })), false);
  assert.equal(bridge.parts.size, 64);
  assert.ok(bridge.parts.has('feedf00d'));
  // Sync requests: answered within the rate, then refused and counted.
  let refused = 0;
  for (let i = 0; i < 500; i++) refused += feed(bridge, bridge.countersChannel, JSON.stringify({ m: '12345678', q: 'abcdef01' })) ? 1 : 0;
  assert.ok(refused >= 250 && refused <= 300, `${refused} of 500 sync requests refused`);
});
