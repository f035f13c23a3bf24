//! Exponential backoff with jitter, as a pure function of a failure count.
//!
//! The delay after the `n`-th consecutive failure is `initial * factor^(n-1)`, capped at
//! `cap`, then spread by a random `± jitter` fraction drawn from the caller's seeded RNG so
//! that many nodes failing together do not retry together. Nothing is stored but the
//! count, so a success resets the backoff by resetting the count.

use crate::config::BackoffConfig;
use rand::Rng;
use std::time::Duration;

impl BackoffConfig {
    /// The delay before retrying after `failures` consecutive failures (`failures >= 1`),
    /// without jitter. Zero failures give zero.
    ///
    /// ```
    /// use peerkeeper::BackoffConfig;
    /// use std::time::Duration;
    /// let b = BackoffConfig { initial: Duration::from_secs(1), factor: 2.0,
    ///                         cap: Duration::from_secs(10), jitter: 0.0 };
    /// assert_eq!(b.base_delay(1), Duration::from_secs(1));
    /// assert_eq!(b.base_delay(3), Duration::from_secs(4));
    /// assert_eq!(b.base_delay(30), Duration::from_secs(10));
    /// ```
    pub fn base_delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // No clamp below i32::MAX: a small factor (octez's 1.2) needs well over 64 steps
        // to reach the cap, and a huge power is infinite, which gives the cap below.
        let exp = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exp);
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// [`base_delay`](Self::base_delay) spread by `± jitter`, never above `cap`.
    pub fn delay<R: Rng + ?Sized>(&self, failures: u32, rng: &mut R) -> Duration {
        let base = self.base_delay(failures);
        jittered(base, self.jitter, rng).min(self.cap)
    }
}

/// `d` spread uniformly by `± fraction` of itself (`fraction` in `[0, 1)`).
pub fn jittered<R: Rng + ?Sized>(d: Duration, fraction: f64, rng: &mut R) -> Duration {
    if fraction <= 0.0 || d.is_zero() {
        return d;
    }
    let spread: f64 = rng.gen_range(-fraction..fraction);
    Duration::from_secs_f64((d.as_secs_f64() * (1.0 + spread)).max(0.0))
}
