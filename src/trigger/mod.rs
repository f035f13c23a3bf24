//! Triggers: the conditions that tie a node together, as octez names them: *too few
//! connections*, *too many connections*, *new point*, *new peer*, *new connection*.
//!
//! The node core ([`crate::core::NodeCore`]) reacts to them itself, synchronously, after
//! every input: this module's pure part is the vocabulary ([`TriggerKind`]) and the count
//! rule ([`count_trigger`]): too few and too many fire at exactly the thresholds
//! maintenance acts on (`min_threshold`, `max_threshold`); octez fires at `min`/`max` and
//! so leaves a dead zone that only its 120 s timer covers.
//!
//! # Switches (a testing API)
//!
//! Every trigger, and the idle timer, can be switched off and on again
//! ([`crate::Node::set_trigger`], [`crate::NodeCore::set_trigger`]): a switched-off
//! trigger wakes nothing. This exists so that tests can isolate one wake reason; a
//! production node has no reason to call it.
//!
//! # Observing
//!
//! [`Triggers`] (in [`observe`]) lets code outside the node wait for fires: the tokio
//! shell fires it as the core reports them.

use crate::config::{Bounds, RangeStatus};

pub mod observe;

pub use observe::{Triggers, Waiter};

/// The five triggers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum TriggerKind {
    /// The active connection count fell below `min_threshold`.
    TooFewConnections,
    /// The active connection count rose above `max_threshold`.
    TooManyConnections,
    /// A new point entered the pool.
    NewPoint,
    /// A new peer id was seen.
    NewPeer,
    /// A connection opened.
    NewConnection,
}

impl TriggerKind {
    /// Every trigger.
    pub const ALL: [TriggerKind; 5] = [
        TriggerKind::TooFewConnections,
        TriggerKind::TooManyConnections,
        TriggerKind::NewPoint,
        TriggerKind::NewPeer,
        TriggerKind::NewConnection,
    ];
}

/// The count rule (also behind [`Triggers::connections_changed`]): a decrease that leaves the count
/// below `min_threshold` is too few; an increase that leaves it above `max_threshold` is too
/// many.
pub fn count_trigger(before: usize, after: usize, bounds: &Bounds) -> Option<TriggerKind> {
    match bounds.classify(after) {
        RangeStatus::TooFew if after < before => Some(TriggerKind::TooFewConnections),
        RangeStatus::TooMany if after > before => Some(TriggerKind::TooManyConnections),
        _ => None,
    }
}
