'use strict';
// Seeded random and mutated inputs for the hostile-input tests of JS
// decoders (bus payloads, Redis messages, control-socket lines) and for
// byte streams sent to a real primary. The same idea as
// core/tests/mutator/mod.rs: well-formed samples, mutated; hostile JSON
// values built from the shapes decoders forget (null, wrong types, reserved
// names, huge numbers, deep nesting, prototype keys).
//
// RCLUSTER_FUZZ_INPUTS sets the count a surface tries (each test passes its
// own default, sized for CI), RCLUSTER_FUZZ_SEED the seed (fixed by default,
// so a failure reproduces; the seed is in every failure message).

const DEFAULT_SEED = 0x5eed2026;

function seed() {
  const s = Number(process.env.RCLUSTER_FUZZ_SEED);
  return Number.isSafeInteger(s) && s > 0 ? s : DEFAULT_SEED;
}

function inputs(fallback) {
  const n = Number(process.env.RCLUSTER_FUZZ_INPUTS);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** mulberry32: small, fast, the same everywhere. */
function rng(s = seed()) {
  let a = s >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const below = (n) => Math.floor(next() * n);
  const pick = (list) => list[below(list.length)];
  return { next, below, pick, chance: (oneIn) => below(oneIn) === 0 };
}

const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const HOSTILE_STRINGS = ['', 'error', 'newListener', 'removeListener', '__proto__', 'constructor', 'prototype',
  'primary', 'agent', 'deadbeef/7', '0/primary', 'ffffffff/agent', '\u0000', '\u001b[2J\u001b[31mowned', '\ud800',
  'x'.repeat(70000), '{"', '\n', 'NaN'];
const HOSTILE_NUMBERS = [0, -1, 1, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -(2 ** 53), 0xfffffffe];

/** A hostile JSON-able value, at most `depth` levels deep. */
function hostileValue(r, depth = 3) {
  switch (r.below(depth > 0 ? 8 : 5)) {
    case 0: return null;
    case 1: return r.pick([true, false]);
    case 2: return r.pick(HOSTILE_NUMBERS);
    case 3: return r.pick(HOSTILE_STRINGS);
    case 4: return undefined;
    case 5: return Array.from({ length: r.below(6) }, () => hostileValue(r, depth - 1));
    case 6: {
      const o = {};
      for (let i = r.below(5); i > 0; i--) o[r.pick(HOSTILE_STRINGS.slice(0, 12).concat(['type', 'topic', 'data', 'id', 'cmd', 'message', 'code']))] = hostileValue(r, depth - 1);
      return o;
    }
    default: return JSON.parse(`{"__proto__": ${JSON.stringify(hostileValue(r, depth - 1) ?? null)}}`);
  }
}

/** One mutation of Buffer `sample` (bit flips, byte sets, u32s, inserts, deletes, truncation), or random bytes. */
function mutate(r, sample) {
  if (sample.length === 0 || r.chance(8)) return Buffer.from(Array.from({ length: r.below(96) }, () => r.below(256)));
  let out = Buffer.from(sample);
  for (let rounds = 1 + r.below(4); rounds > 0; rounds--) {
    if (out.length === 0) { out = Buffer.from([r.below(256)]); continue; }
    const at = r.below(out.length);
    switch (r.below(7)) {
      case 0: out[at] ^= 1 << r.below(8); break;
      case 1: out[at] = r.below(256); break;
      case 2: {
        const v = Buffer.alloc(4);
        v.writeUInt32LE(r.pick(INTERESTING_U32));
        v.copy(out, at, 0, Math.min(4, out.length - at));
        break;
      }
      case 3: out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + r.below(8) }, () => r.below(256))), out.subarray(at)]); break;
      case 4: out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + r.below(8)))]); break;
      case 5: out = out.subarray(0, at); break;
      default: out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + 1 + r.below(8)), out.subarray(at)]);
    }
  }
  return out;
}

module.exports = { seed, inputs, rng, mutate, hostileValue, INTERESTING_U32, HOSTILE_STRINGS, HOSTILE_NUMBERS };
