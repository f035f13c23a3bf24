//! The one seeded random number generator every decision uses, and the one hashing helper
//! every derived seed, id and hash of the crate is made with.
//!
//! ChaCha8 (`rand_chacha`): its output for a seed is specified, the same on every
//! platform and every build (the `rand` crate's `StdRng` may change algorithm between
//! versions), and it is fast. Every core, and the simulator, make theirs with [`seeded`].
//!
//! The hashing helpers, SplitMix64's steps, are the crate's only mixers: [`mix`] and
//! [`derive()`] spread a seed over a family of values (node ids, per-node seeds), [`Fold`]
//! hashes a sequence of words (the simulator's event log and link seeds, a point's
//! candidate rank). Integer operations only: the same value on every platform.
//!
//! # Determinism across machines
//!
//! Decisions are made with integers, or with the IEEE basic operations (`+ - * /`,
//! conversions), which give the same bits everywhere; never with `ln`, `exp`, `powi` or
//! `powf`, whose results depend on the platform's math library (and `powi` even on the
//! optimisation level). The backoff ([`crate::pool::jittered`],
//! [`BackoffConfig::base_delay`](crate::BackoffConfig::base_delay)) and the simulator's
//! latencies are integer arithmetic; `tests/determinism.rs` pins a simulated run's hash.

/// The seeded generator of the crate.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// A generator for `seed`.
///
/// ```
/// use rand::Rng;
/// let mut a = peerkeeper::rng::seeded(7);
/// let mut b = peerkeeper::rng::seeded(7);
/// assert_eq!(a.gen::<u64>(), b.gen::<u64>());
/// ```
pub fn seeded(seed: u64) -> SeededRng {
    rand::SeedableRng::seed_from_u64(seed)
}

/// SplitMix64's increment (2^64 / golden ratio).
pub const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a bijection of 64-bit words in which every input bit changes
/// about half the output bits. Not keyed, not a defence against chosen inputs (the point
/// table hashes addresses with a secret key for that).
///
/// ```
/// use peerkeeper::rng::mix;
/// assert_eq!(mix(0), 0);
/// assert_ne!(mix(1), mix(2));
/// ```
pub const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th of a family of well-spread values made from `seed`: distinct for distinct
/// `i` (a bijection of `i` for a given seed).
///
/// ```
/// use peerkeeper::rng::derive;
/// assert_ne!(derive(1, 0), derive(1, 1));
/// assert_ne!(derive(1, 0), derive(2, 0));
/// ```
pub const fn derive(seed: u64, i: u64) -> u64 {
    mix(seed ^ i.wrapping_mul(GOLDEN))
}

/// A hash of a sequence of words, from a seed (a salt, or 0): fold the words in order
/// with [`add`](Self::add), read it with [`finish`](Self::finish). SplitMix64's
/// multiply-xorshift steps, one per word. Order-sensitive; zeros count.
///
/// ```
/// use peerkeeper::rng::Fold;
/// let h = |words: &[u64]| words.iter().fold(Fold::new(0), |h, w| h.add(*w)).finish();
/// assert_ne!(h(&[1, 2]), h(&[2, 1]));
/// assert_ne!(h(&[0]), h(&[0, 0]));
/// assert_eq!(h(&[1, 2]), Fold::new(0).add(1).add(2).finish());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold(u64);

impl Fold {
    /// An empty sequence, seeded.
    pub const fn new(seed: u64) -> Fold {
        Fold(seed ^ GOLDEN)
    }

    /// The sequence followed by `v`.
    #[must_use]
    pub const fn add(self, v: u64) -> Fold {
        let h = (self.0 ^ v).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Fold(h ^ (h >> 31))
    }

    /// The hash.
    pub const fn finish(self) -> u64 {
        let h = (self.0 ^ (self.0 >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}
