//! Peer feedback: what the application says of its peers, and the decaying score the node
//! core keeps from it.
//!
//! The application knows what the maintainer cannot: whether a peer delivered something
//! new, answered late, or sent garbage. It tells the core with
//! [`NodeCore::handle_report`](super::NodeCore::handle_report) (an [`Input`](super::Input),
//! so traces record it and `replay` explains what it led to). Each report moves the peer's
//! score, in `[-100, 100]`, by a fixed weight ([`Report::weight`]); the score decays toward
//! 0 with `feedback.half_life` (Lighthouse: 100 to -100, halving every 600 s; Amaru and
//! gossipsub decay their penalties too). At `feedback.disconnect_below` the core closes the
//! peer's connection; at `feedback.ban_below`, or on a [`Severity::Fatal`] report, it
//! greylists the peer's point as for a protocol violation.
//!
//! A score also steers choices that had no opinion before: a connection whose peer was
//! reported useful recently is protected from inbound eviction and trims
//! ([`crate::maintenance::evict`]), and a point whose peer has a positive score is dialed
//! before otherwise-equal candidates (one with a negative score after them).
//!
//! Why integers: decay is `score * 2^(-elapsed / half_life)`, computed lazily from `now`
//! (no timer, no clock read) in thousandths of a point with a table of sixteenth powers
//! of two and a linear step between them, so that every platform decides the same
//! ([`decay`]; the determinism tests forbid `exp` and `powf` in decisions).
//!
//! Memory is bounded: a score is kept for every connected peer and for at most
//! `max(3 * max_connections, MIN_SCORED_PEERS)` peers in all ([`super::MIN_SCORED_PEERS`]);
//! past it the peer whose score is closest to 0 and
//! that is not connected is forgotten (it had the least to say).

use crate::pool::PeerId;
use crate::Time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How bad a misbehaviour is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A nuisance (a duplicate, a message slightly out of place): -10.
    Low,
    /// Wrong but maybe honest (an invalid message a buggy peer could send): -25.
    Medium,
    /// Clearly hostile or broken (an invalid signature): -50.
    High,
    /// Unforgivable: banned at once, whatever the score.
    Fatal,
}

/// What the application says of a peer ([`NodeCore::handle_report`](super::NodeCore::handle_report)).
///
/// ```
/// use peerkeeper::core::{Report, Severity};
/// assert_eq!(Report::Useful.weight(), 5.0);
/// assert_eq!(Report::Misbehaved(Severity::High).weight(), -50.0);
/// let json = serde_json::to_string(&Report::Misbehaved(Severity::Low)).unwrap();
/// assert_eq!(json, r#"{"misbehaved":"low"}"#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// It delivered something new or first: +5 (the score is capped at 100).
    Useful,
    /// It answered late, or not at all: -2.
    Slow,
    /// It broke the application's rules.
    Misbehaved(Severity),
}

impl Report {
    /// The report's weight, in points (a [`Severity::Fatal`] report bans whatever the
    /// score: its weight is -100).
    pub fn weight(self) -> f64 {
        f64::from(self.weight_milli()) / 1000.0
    }

    fn weight_milli(self) -> i32 {
        match self {
            Report::Useful => 5_000,
            Report::Slow => -2_000,
            Report::Misbehaved(Severity::Low) => -10_000,
            Report::Misbehaved(Severity::Medium) => -25_000,
            Report::Misbehaved(Severity::High) => -50_000,
            Report::Misbehaved(Severity::Fatal) => -SCORE_MAX,
        }
    }

    /// The report's name, as in metrics labels: `useful`, `slow`, `misbehaved_low`,
    /// `misbehaved_medium`, `misbehaved_high`, `misbehaved_fatal`.
    pub fn name(self) -> &'static str {
        match self {
            Report::Useful => "useful",
            Report::Slow => "slow",
            Report::Misbehaved(Severity::Low) => "misbehaved_low",
            Report::Misbehaved(Severity::Medium) => "misbehaved_medium",
            Report::Misbehaved(Severity::High) => "misbehaved_high",
            Report::Misbehaved(Severity::Fatal) => "misbehaved_fatal",
        }
    }

    /// Every kind of report, in the order of [`Report::name`]'s list.
    pub const ALL: [Report; 6] = [
        Report::Useful,
        Report::Slow,
        Report::Misbehaved(Severity::Low),
        Report::Misbehaved(Severity::Medium),
        Report::Misbehaved(Severity::High),
        Report::Misbehaved(Severity::Fatal),
    ];

    /// Its index in [`Report::ALL`].
    pub fn index(self) -> usize {
        match self {
            Report::Useful => 0,
            Report::Slow => 1,
            Report::Misbehaved(Severity::Low) => 2,
            Report::Misbehaved(Severity::Medium) => 3,
            Report::Misbehaved(Severity::High) => 4,
            Report::Misbehaved(Severity::Fatal) => 5,
        }
    }
}

/// The largest score, in thousandths of a point.
const SCORE_MAX: i32 = 100_000;

/// A score, in `[-100, 100]`, kept in thousandths of a point (exact, so that decisions
/// are the same on every platform). Serialised as a number of points.
///
/// ```
/// use peerkeeper::core::Score;
/// let s = Score::from_points(-12.5);
/// assert_eq!(s.points(), -12.5);
/// assert_eq!(s.to_string(), "-12.5");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(i32);

impl Score {
    /// A score of `points`, clamped to `[-100, 100]` (NaN is 0).
    pub fn from_points(points: f64) -> Score {
        if points.is_nan() {
            return Score(0);
        }
        Score((points * 1000.0).round().clamp(-100_000.0, 100_000.0) as i32)
    }

    /// The score in points.
    pub fn points(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// The score in thousandths of a point.
    pub fn milli(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (f64::from(self.0) / 100.0).round() / 10.0)
    }
}

impl Serialize for Score {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.points())
    }
}

/// `2^(-i/16)` in 1/65536ths, for `i` in `0..=16`.
const POW2_SIXTEENTHS: [u64; 17] = [
    65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341, 44376, 42495, 40693, 38968,
    37316, 35734, 34219, 32768,
];

/// `milli * 2^(-elapsed / half_life)`, toward 0, in integers: whole half-lives halve, the
/// rest of one steps through sixteenths of a half-life with a linear step between them.
/// Exact and the same on every platform. A zero half-life decays at once.
///
/// ```
/// use peerkeeper::core::feedback::decay;
/// use std::time::Duration;
/// let h = Duration::from_secs(600);
/// assert_eq!(decay(-80_000, Duration::ZERO, h), -80_000);
/// assert_eq!(decay(-80_000, h, h), -40_000);
/// assert_eq!(decay(-80_000, h * 2, h), -20_000);
/// assert_eq!(decay(-80_000, h / 2, h), -56_569); // 80 / sqrt(2)
/// assert_eq!(decay(7, h * 100, h), 0);
/// ```
pub fn decay(milli: i32, elapsed: Duration, half_life: Duration) -> i32 {
    let h = half_life.as_millis();
    if h == 0 {
        return 0;
    }
    let e = elapsed.as_millis();
    let halvings = e / h;
    if halvings >= 31 || milli == 0 {
        return 0;
    }
    let mag = u64::from(milli.unsigned_abs()) >> halvings;
    // The rest, in 1/(16 * 1024) of a half-life.
    let rest = ((e % h) * 16 * 1024 / h) as u64;
    let (i, frac) = ((rest / 1024) as usize, rest % 1024);
    let (a, b) = (POW2_SIXTEENTHS[i], POW2_SIXTEENTHS[i + 1]);
    let factor = a - (a - b) * frac / 1024;
    let mag = ((mag * factor + 32768) >> 16) as i32;
    if milli < 0 {
        -mag
    } else {
        mag
    }
}

/// One peer's score and what it is tied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The score when last changed, in thousandths.
    milli: i32,
    /// When it last changed (it decays from there).
    at: Time,
    /// The peer's point when last seen connected.
    point: Option<SocketAddr>,
}

/// What a report did to a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scored {
    /// The score before the report (decayed to now).
    pub before: Score,
    /// The score after it.
    pub after: Score,
    /// The peer's point, if known.
    pub point: Option<SocketAddr>,
}

/// The scores of peers: a bounded table, decayed lazily. Plain data (the node core owns
/// one); see the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct Scores {
    entries: BTreeMap<PeerId, Entry>,
    capacity: usize,
    half_life: Duration,
}

impl Scores {
    /// A table of at most `capacity` scores decaying with `half_life`.
    pub fn new(capacity: usize, half_life: Duration) -> Scores {
        Scores {
            entries: BTreeMap::new(),
            capacity: capacity.max(1),
            half_life,
        }
    }

    /// Most scores kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Scores kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `peer`'s score at `now`, if it has one.
    pub fn get(&self, peer: &PeerId, now: Time) -> Option<Score> {
        self.entries.get(peer).map(|e| Score(self.decayed(e, now)))
    }

    fn decayed(&self, e: &Entry, now: Time) -> i32 {
        decay(e.milli, now.saturating_since(e.at), self.half_life)
    }

    /// Applies `report` to `peer` at `now` (seen at `point`, if known). `connected` says
    /// which peers may not be forgotten to make room.
    pub fn apply(
        &mut self,
        peer: PeerId,
        point: Option<SocketAddr>,
        report: Report,
        now: Time,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Scored {
        if !self.entries.contains_key(&peer) && self.entries.len() >= self.capacity {
            self.evict(now, &connected);
        }
        let half_life = self.half_life;
        let e = self.entries.entry(peer).or_insert(Entry {
            milli: 0,
            at: now,
            point: None,
        });
        let before = decay(e.milli, now.saturating_since(e.at), half_life);
        let after = match report {
            Report::Misbehaved(Severity::Fatal) => -SCORE_MAX,
            r => (before + r.weight_milli()).clamp(-SCORE_MAX, SCORE_MAX),
        };
        e.milli = after;
        e.at = now;
        if point.is_some() {
            e.point = point;
        }
        Scored {
            before: Score(before),
            after: Score(after),
            point: e.point,
        }
    }

    /// Forgets the peer not connected whose score is closest to 0 (ties: the smallest
    /// id), if any.
    fn evict(&mut self, now: Time, connected: &impl Fn(&PeerId) -> bool) {
        let victim = self
            .entries
            .iter()
            .filter(|(p, _)| !connected(p))
            .min_by_key(|(p, e)| (self.decayed(e, now).unsigned_abs(), **p))
            .map(|(p, _)| *p);
        if let Some(p) = victim {
            self.entries.remove(&p);
        }
    }
}
