//! Exponential backoff with jitter, as a pure function of a failure count.
//!
//! The delay after the `n`-th consecutive failure is `initial * factor^(n-1)`, capped at
//! `cap`, then spread by a random `± jitter` fraction drawn from the caller's seeded RNG so
//! that many nodes failing together do not retry together. Nothing is stored but the
//! count, so a success resets the backoff by resetting the count.
//!
//! Integer arithmetic only, so that a seeded run makes the same decisions on every
//! platform (`f64::powi` is not bit-identical across math libraries and optimisation
//! levels): `factor` is read from its bits into a float with a 64-bit mantissa
//! multiplied by integer operations, the power is taken by squaring (correctly rounded at
//! each step, so more precise than `powi`), and the delay is a whole number of
//! nanoseconds, rounded to nearest. The jitter is a whole number of microseconds drawn
//! with an integer `gen_range`, its spread `jitter * delay` computed with `jitter` to 32
//! binary places.

use crate::config::BackoffConfig;
use rand::Rng;
use std::time::Duration;

/// A positive number `m * 2^(e - 63)`, `m` with its top bit set: a float with a 64-bit
/// mantissa, multiplied with integer operations only (correctly rounded, to nearest).
/// Eleven bits more precise than an `f64`, and no exponent overflow at the sizes used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Soft {
    m: u64,
    e: i32,
}

/// The exponent from which a [`Soft`] counts as infinite: any `Duration` in nanoseconds
/// is below `2^128`.
const SOFT_HUGE: i32 = 128;

impl Soft {
    const ONE: Soft = Soft { m: 1 << 63, e: 0 };

    /// `x`, which must be at least one (anything below counts as one); infinity and NaN
    /// count as huge. Read from the bits of `x`: no floating-point operation at all.
    fn from_factor(x: f64) -> Soft {
        if x.is_nan() || x.is_infinite() {
            return Soft {
                m: 1 << 63,
                e: SOFT_HUGE,
            };
        }
        if x <= 1.0 {
            return Soft::ONE;
        }
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32; // normal: x >= 1
        Soft {
            m: ((bits & ((1 << 52) - 1)) | (1 << 52)) << 11,
            e: biased - 1023,
        }
    }

    /// `n > 0`, rounded to 64 significant bits.
    fn from_int(n: u128) -> Soft {
        debug_assert!(n > 0);
        let len = 128 - n.leading_zeros() as i32;
        if len <= 64 {
            return Soft {
                m: (n as u64) << (64 - len),
                e: len - 1,
            };
        }
        Soft::round(n, (len - 64) as u32, len - 1)
    }

    /// `p >> shift` rounded to nearest (ties up) as a mantissa of exponent `e`; a carry
    /// out of the mantissa bumps the exponent.
    fn round(p: u128, shift: u32, e: i32) -> Soft {
        let r = (p >> shift) + ((p >> (shift - 1)) & 1);
        if r >> 64 == 1 {
            Soft {
                m: 1 << 63,
                e: e + 1,
            }
        } else {
            Soft { m: r as u64, e }
        }
    }

    fn mul(self, o: Soft) -> Soft {
        let p = u128::from(self.m) * u128::from(o.m); // in [2^126, 2^128)
        let e = self.e.saturating_add(o.e).min(4 * SOFT_HUGE);
        if p >> 127 == 1 {
            Soft::round(p, 64, e + 1)
        } else {
            Soft::round(p, 63, e)
        }
    }

    fn is_huge(self) -> bool {
        self.e >= SOFT_HUGE
    }

    /// `self^exp` (with `self >= 1`), by squaring; `None` once it is huge.
    fn pow(mut self, mut exp: u32) -> Option<Soft> {
        let mut acc = Soft::ONE;
        loop {
            if exp & 1 == 1 {
                acc = acc.mul(self);
                if acc.is_huge() {
                    return None;
                }
            }
            exp >>= 1;
            if exp == 0 {
                return Some(acc);
            }
            // `self` will be multiplied in (a bit of `exp` is left) and `acc >= 1`.
            self = self.mul(self);
            if self.is_huge() {
                return None;
            }
        }
    }

    /// The nearest integer (ties up); `None` if huge.
    fn to_int(self) -> Option<u128> {
        if self.is_huge() {
            return None;
        }
        let m = u128::from(self.m);
        Some(match self.e {
            e if e >= 63 => m << (e - 63),
            e if e < -1 => 0,
            e => {
                let shift = (63 - e) as u32; // 1 to 64
                (m >> shift) + ((m >> (shift - 1)) & 1)
            }
        })
    }
}

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
        let (initial, cap) = (self.initial.as_nanos(), self.cap.as_nanos());
        if initial == 0 || initial >= cap {
            return self.initial.min(self.cap);
        }
        let ns = Soft::from_factor(self.factor)
            .pow(failures - 1)
            .and_then(|power| Soft::from_int(initial).mul(power).to_int());
        match ns {
            Some(ns) if ns < cap => duration_from_nanos(ns),
            _ => self.cap,
        }
    }

    /// [`base_delay`](Self::base_delay) spread by `± jitter`, never above `cap`.
    pub fn delay<R: Rng + ?Sized>(&self, failures: u32, rng: &mut R) -> Duration {
        let base = self.base_delay(failures);
        jittered(base, self.jitter, rng).min(self.cap)
    }
}

fn duration_from_nanos(ns: u128) -> Duration {
    const NANOS: u128 = 1_000_000_000;
    match u64::try_from(ns / NANOS) {
        Ok(secs) => Duration::new(secs, (ns % NANOS) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `d` spread uniformly by `± fraction` of itself (`fraction` in `[0, 1)`): `d - s` plus a
/// whole number of microseconds drawn uniformly in `[0, 2s)`, where `s` is `fraction * d`
/// in whole microseconds. Integer arithmetic: the same draw on every platform. A spread
/// under a microsecond leaves `d` as it is (and draws nothing).
///
/// ```
/// use peerkeeper::pool::jittered;
/// use std::time::Duration;
/// let mut rng = peerkeeper::rng::seeded(1);
/// let d = jittered(Duration::from_secs(10), 0.2, &mut rng);
/// assert!(d >= Duration::from_secs(8) && d < Duration::from_secs(12));
/// ```
pub fn jittered<R: Rng + ?Sized>(d: Duration, fraction: f64, rng: &mut R) -> Duration {
    if fraction <= 0.0 || d.is_zero() {
        return d;
    }
    // `fraction` to 32 binary places: a multiplication by a power of two and a
    // truncation, both exact.
    let q = (fraction.min(1.0) * 4_294_967_296.0) as u128;
    let micros = d.as_micros();
    // A delay over 2^96 µs (2.5e15 years) is not spread.
    let Some(spread) = micros.checked_mul(q).map(|p| p >> 32) else {
        return d;
    };
    let Ok(spread) = u64::try_from(spread) else {
        return d;
    };
    if spread == 0 {
        return d;
    }
    let offset = rng.gen_range(0..spread.saturating_mul(2));
    d.saturating_sub(Duration::from_micros(spread)) + Duration::from_micros(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(initial_ms: u64, factor: f64, cap_ms: u64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            factor,
            cap: Duration::from_millis(cap_ms),
            jitter: 0.0,
        }
    }

    #[test]
    fn integer_powers_match_exact_ones() {
        // Exact in binary: 2^k and 1.5^k.
        let b = backoff(1_000, 2.0, u64::MAX / 2);
        for k in 1..40u32 {
            assert_eq!(
                b.base_delay(k),
                Duration::from_millis(1_000 << (k - 1)),
                "{k}"
            );
        }
        let b = backoff(1_024, 1.5, 1 << 40);
        // 1.024 s * 1.5^4
        assert_eq!(b.base_delay(5), Duration::from_micros(5_184_000));
        // 1.2 is not exact in binary, yet its small powers come out to the nanosecond.
        let b = backoff(1_000, 1.2, 172_800_000);
        assert_eq!(b.base_delay(4), Duration::from_nanos(1_728_000_000));
        assert_eq!(b.base_delay(10), Duration::from_nanos(5_159_780_352));
    }

    #[test]
    fn a_factor_of_one_never_grows_and_huge_ones_cap_at_once() {
        let b = backoff(700, 1.0, 10_000);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_millis(700));
        let b = backoff(700, 1e300, 10_000);
        assert_eq!(b.base_delay(1), Duration::from_millis(700));
        assert_eq!(b.base_delay(2), Duration::from_secs(10));
        // A factor barely above one still grows, and reaches the cap.
        let b = backoff(1_000, 1.0 + 1e-9, 1_001);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_millis(1_001));
    }

    #[test]
    fn powers_agree_with_floating_point_ones() {
        for factor in [1.01, 1.2, 1.5, 1.999, 2.0, 3.7] {
            let b = backoff(1_234, factor, 1 << 50);
            for n in 1..60u32 {
                let exact = (1.234 * factor.powi(n as i32 - 1)).min(b.cap.as_secs_f64());
                let ours = b.base_delay(n).as_secs_f64();
                assert!((ours - exact).abs() <= exact * 1e-12 + 1e-9, "{factor}^{n}");
            }
        }
    }

    #[test]
    fn jitter_stays_within_its_spread_and_uses_it_all() {
        let mut rng = crate::rng::seeded(3);
        let d = Duration::from_millis(1_000);
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        for _ in 0..10_000 {
            let j = jittered(d, 0.2, &mut rng);
            assert!(j >= Duration::from_millis(800) && j < Duration::from_millis(1_200));
            lo = lo.min(j);
            hi = hi.max(j);
        }
        assert!(lo < Duration::from_millis(801) && hi > Duration::from_millis(1_199));
        // Sub-microsecond spreads leave the delay alone.
        assert_eq!(
            jittered(Duration::from_nanos(900), 0.5, &mut rng),
            Duration::from_nanos(900)
        );
    }
}
