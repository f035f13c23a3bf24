//! The one seeded random number generator every decision uses.
//!
//! ChaCha8 (`rand_chacha`): its output for a seed is specified, the same on every
//! platform and every build (the `rand` crate's `StdRng` may change algorithm between
//! versions), and it is fast. Every core, and the simulator, make theirs with [`seeded`].

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
