//! A small deterministic generator (xorshift64) for the tests that want random input
//! without a dependency: the same seed gives the same sequence, so a failure repeats.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) struct Rng(u64);

impl Rng {
    /// The sequence of `seed`, which must not be 0 (xorshift never leaves 0).
    pub(crate) fn new(seed: u64) -> Self {
        assert_ne!(seed, 0, "xorshift never leaves a zero state");
        Self(seed)
    }

    /// A sequence that differs from run to run, seeded by the clock.
    pub(crate) fn from_clock() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index into something of `len` items.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}
