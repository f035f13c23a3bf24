//! What happened, for observers: the node core's events.
//!
//! Actions ([`super::Action`]) are what a driver must do; events are what an embedding node
//! may want to know (a peer connected, a dial ended and how, points learned, a ban). The
//! core queues them only when asked to ([`NodeCore::set_events`](super::NodeCore::set_events)),
//! at most [`MAX_QUEUED_EVENTS`]; past that the oldest are dropped and counted, so an
//! observer that does not read never costs the node memory.

use super::feedback::{Report, Score};
use crate::maintenance::CycleReport;
use crate::pool::{CloseReason, ConnId, Direction, PeerId};
use crate::Time;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Events queued at most between two reads.
pub const MAX_QUEUED_EVENTS: usize = 4096;

/// How a dial ended: one name per outcome of [`super::DialStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DialEnd {
    /// A connection opened and was kept.
    Succeeded,
    /// The peer refused us.
    Refused,
    /// No answer in time.
    TimedOut,
    /// The connection could not be made.
    Failed,
    /// The peer broke the protocol.
    Protocol,
    /// The peer was already connected.
    AlreadyConnected,
    /// It was ourselves.
    Myself,
    /// We dropped it after the handshake.
    Dropped,
    /// Abandoned (shutdown).
    Cancelled,
    /// The handshake proved another peer id than the one configured for the point
    /// (`KEY@HOST:PORT`).
    WrongPeer,
    /// Reached nobody while the node was offline (the core's offline rule): no penalty.
    Offline,
}

impl DialEnd {
    /// Every outcome, in the order of [`super::DialStats`]' fields.
    pub const ALL: [DialEnd; 11] = [
        DialEnd::Succeeded,
        DialEnd::Refused,
        DialEnd::TimedOut,
        DialEnd::Failed,
        DialEnd::Protocol,
        DialEnd::AlreadyConnected,
        DialEnd::Myself,
        DialEnd::Dropped,
        DialEnd::Cancelled,
        DialEnd::WrongPeer,
        DialEnd::Offline,
    ];

    /// The outcome's name, as in [`super::DialStats`] and the metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            DialEnd::Succeeded => "succeeded",
            DialEnd::Refused => "refused",
            DialEnd::TimedOut => "timed_out",
            DialEnd::Failed => "failed",
            DialEnd::Protocol => "protocol",
            DialEnd::AlreadyConnected => "already_connected",
            DialEnd::Myself => "myself",
            DialEnd::Dropped => "dropped",
            DialEnd::Cancelled => "cancelled",
            DialEnd::WrongPeer => "wrong_peer",
            DialEnd::Offline => "offline",
        }
    }
}

/// What a score change led to ([`Event::Scored`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScoreOutcome {
    /// Nothing: the score is above `feedback.disconnect_below` (or the peer is not
    /// connected).
    Kept,
    /// The peer's connection was closed: its score is at or below
    /// `feedback.disconnect_below`.
    Disconnected,
    /// The peer's point was greylisted and its connection closed: its score is at or below
    /// `feedback.ban_below`, or the report was fatal.
    Banned,
}

/// Who ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ended {
    /// We closed it, for this reason.
    ByUs(CloseReason),
    /// The peer closed it, or the network lost it.
    ByPeer,
}

/// Something that happened in the node core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A connection opened.
    Connected {
        /// When.
        at: Time,
        /// The driver's name for it.
        conn: ConnId,
        /// The peer's point.
        point: SocketAddr,
        /// The peer.
        peer: PeerId,
        /// Who dialed.
        direction: Direction,
    },
    /// A connection ended.
    Disconnected {
        /// When.
        at: Time,
        /// The driver's name for it.
        conn: ConnId,
        /// The peer's point.
        point: SocketAddr,
        /// The peer.
        peer: PeerId,
        /// Who had dialed.
        direction: Direction,
        /// Who ended it, and why.
        ended: Ended,
    },
    /// A dial ended.
    DialEnded {
        /// When.
        at: Time,
        /// The point dialed.
        point: SocketAddr,
        /// How.
        outcome: DialEnd,
    },
    /// Points arrived and went through intake.
    PointsLearned {
        /// When.
        at: Time,
        /// The peer they came from (`None`: our own sources or operator).
        from: Option<SocketAddr>,
        /// Points received.
        received: usize,
        /// Of those, new to the pool.
        new: usize,
    },
    /// A misbehaving peer was banned (greylisted) until `until`.
    Banned {
        /// When.
        at: Time,
        /// Its point, when known.
        point: Option<SocketAddr>,
        /// Its address.
        ip: IpAddr,
        /// Whether the address itself (an IPv6 one: its /64) is refused, after repeated
        /// violations from distinct sources, or only the point.
        whole_ip: bool,
        /// Until when.
        until: Time,
    },
    /// The application reported on a peer ([`super::NodeCore::handle_report`]) and its
    /// score changed.
    Scored {
        /// When.
        at: Time,
        /// The peer.
        peer: PeerId,
        /// Its point, when known (connected, or seen connected before).
        point: Option<SocketAddr>,
        /// The report.
        report: Report,
        /// The score before the report (decayed to now).
        before: Score,
        /// The new score.
        score: Score,
        /// What the core did about it.
        outcome: ScoreOutcome,
    },
    /// A maintenance cycle ended.
    CycleEnded {
        /// When.
        at: Time,
        /// What it did.
        report: Box<CycleReport>,
    },
}
