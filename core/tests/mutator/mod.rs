//! Seeded random and mutated inputs for the decoders' property tests
//! (`core/tests/hostile_*.rs`). No fuzzing crate: a decoder of untrusted input
//! must return a value or an error for every byte string, so a fast seeded
//! generator that mutates well-formed samples finds the same class of bugs
//! (a panic, an unbounded allocation, a loop that never ends), runs in CI on
//! every push and reproduces from its seed.
//!
//! `RCLUSTER_FUZZ_INPUTS` sets how many inputs each surface tries (default
//! `DEFAULT_INPUTS`); `RCLUSTER_FUZZ_SEED` the seed (default fixed, so a
//! failure reproduces). Each surface prints one line, `fuzz <surface>: N
//! inputs, 0 panics` (seen with `-- --nocapture`; `npm run fuzz` shows them).
#![allow(dead_code)]

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub const DEFAULT_INPUTS: usize = 20_000;

/// xorshift64*: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Values decoders get wrong: zero, all ones, sign edges, as u32/u16/u8.
    pub fn interesting_u32(&mut self) -> u32 {
        const VALUES: [u32; 12] =
            [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF];
        VALUES[self.below(VALUES.len())]
    }
}

/// The seed of this run: `RCLUSTER_FUZZ_SEED`, or a fixed one.
pub fn seed() -> u64 {
    std::env::var("RCLUSTER_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_2026)
}

/// How many inputs each surface tries.
pub fn inputs() -> usize {
    std::env::var("RCLUSTER_FUZZ_INPUTS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_INPUTS)
}

/// One mutation of `sample`, or (one time in eight) random bytes: bit flips,
/// byte sets, interesting u32s written anywhere, insertions, deletions,
/// truncation, duplication of a slice, splicing in another sample.
pub fn mutate(rng: &mut Rng, sample: &[u8], others: &[&[u8]]) -> Vec<u8> {
    if sample.is_empty() || rng.chance(8) {
        let len = rng.below(96);
        return rng.bytes(len);
    }
    let mut out = sample.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if out.is_empty() {
            out.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(out.len());
        match rng.below(8) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next_u64() as u8,
            2 => {
                let v = rng.interesting_u32().to_le_bytes();
                for (i, b) in v.iter().enumerate() {
                    if at + i < out.len() {
                        out[at + i] = *b;
                    }
                }
            }
            3 => {
                let v = rng.interesting_u32().to_be_bytes();
                for (i, b) in v.iter().enumerate() {
                    if at + i < out.len() {
                        out[at + i] = *b;
                    }
                }
            }
            4 => {
                let n = 1 + rng.below(8);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            5 => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            6 => out.truncate(at),
            _ => {
                if let Some(other) = others.get(rng.below(others.len().max(1))) {
                    if !other.is_empty() {
                        let from = rng.below(other.len());
                        let end = (from + 1 + rng.below(other.len() - from)).min(other.len());
                        out.splice(at..at, other[from..end].iter().copied());
                    }
                } else {
                    let end = (at + 1 + rng.below(8)).min(out.len());
                    let copy = out[at..end].to_vec();
                    out.splice(at..at, copy);
                }
            }
        }
    }
    out
}

/// Feeds `inputs()` mutations of `samples` to `decode`, which must return
/// (any value) without panicking and within `per_input` each. Panics, with
/// the seed, the input number and the input, on the first that does not.
/// Returns how many inputs were tried, and prints the surface's line.
pub fn run<F: FnMut(&[u8])>(surface: &str, samples: &[&[u8]], per_input: Duration, mut decode: F) -> usize {
    let seed = seed();
    let mut rng = Rng::new(seed ^ fnv(surface));
    let count = inputs();
    for n in 0..count {
        let sample = if samples.is_empty() { &[][..] } else { samples[rng.below(samples.len())] };
        let input = mutate(&mut rng, sample, samples);
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| decode(&input)));
        let took = started.elapsed();
        if outcome.is_err() {
            panic!("fuzz {surface}: input {n} panicked (RCLUSTER_FUZZ_SEED={seed}): {input:02x?}");
        }
        assert!(took <= per_input,
                "fuzz {surface}: input {n} took {took:?} (RCLUSTER_FUZZ_SEED={seed}): {input:02x?}");
    }
    println!("fuzz {surface}: {count} inputs, 0 panics");
    count
}

/// FNV-1a, to give each surface its own stream from one seed.
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
