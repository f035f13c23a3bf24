//! Explicit time for the pure core.
//!
//! Every decision in peerkeeper (plan, pick, trim, backoff) is a function of state and an
//! explicit `now`. [`Time`] is that `now`: milliseconds since an origin the driver picks
//! (the tokio worker uses its start instant, the simulator uses virtual time zero). It is
//! eight bytes, totally ordered, and never reads a clock itself, which keeps the core
//! deterministic and lets a simulator drive thousands of nodes in virtual time.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in milliseconds since an origin chosen by whoever drives the core.
///
/// ```
/// use peerkeeper::Time;
/// use std::time::Duration;
/// let t = Time::from_millis(1_500) + Duration::from_secs(2);
/// assert_eq!(t.as_millis(), 3_500);
/// assert_eq!(t.saturating_since(Time::ZERO), Duration::from_millis(3_500));
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Time(u64);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(0);
    /// The latest representable time; used as "never".
    pub const MAX: Time = Time(u64::MAX);

    /// A time `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }

    /// A time `d` after the origin (saturating).
    pub fn from_duration(d: Duration) -> Time {
        Time(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The duration since the origin.
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}
