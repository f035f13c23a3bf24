//! The node core's counters: what a user reads in the status line, `demo --json` and the
//! simulator's report, with the same keys everywhere.

use super::intake::PointsDropped;
use serde::Serialize;

/// How every dial ended. Each attempt ends in exactly one outcome, so
/// `attempted == succeeded + refused + timed_out + failed + protocol + already_connected
/// + myself + dropped + cancelled + wrong_peer + offline + in_flight` at every moment ([`DialStats::adds_up`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DialStats {
    /// Dials started.
    pub attempted: u64,
    /// A connection opened and was kept.
    pub succeeded: u64,
    /// The peer refused us (full, greylisted us, private, another network or version).
    pub refused: u64,
    /// No answer within `dial_timeout`.
    pub timed_out: u64,
    /// The connection could not be made (refused by the OS, unreachable, reset).
    pub failed: u64,
    /// The peer broke the protocol during the handshake.
    pub protocol: u64,
    /// The peer was already connected to us another way (no penalty).
    pub already_connected: u64,
    /// The point was ourselves (forgotten, no penalty).
    pub myself: u64,
    /// The handshake succeeded but we dropped the connection (full meanwhile, or the
    /// point was greylisted meanwhile).
    pub dropped: u64,
    /// Abandoned without a verdict (shutdown).
    pub cancelled: u64,
    /// The handshake proved another peer id than the one configured for the point
    /// (`KEY@HOST:PORT`): dropped, and the point backs off.
    pub wrong_peer: u64,
    /// Reached nobody (an I/O error or a timeout) while the node was offline: no
    /// connection, and the last few dials reached nobody either (the core's offline
    /// rule). Not held against the point.
    pub offline: u64,
    /// Not ended yet.
    pub in_flight: u64,
    /// Of the dials started, exploration dials of a node in range
    /// ([`crate::Config::exploration_interval`]); their outcomes are counted with the
    /// others'.
    pub explorations: u64,
    /// Of the explorations, swaps: made at or above the trim target, at most one per
    /// [`crate::Config::exploration_swap_interval`]; one that connects replaces one of our
    /// outbound connections (counted in [`CloseStats::swapped`]).
    pub exploration_swaps: u64,
    /// Of the attempts, tests of a tried point before its eviction (the address book's
    /// test-before-evict, [`crate::pool::book`]).
    pub tests: u64,
}

impl DialStats {
    /// How many dials ended as `outcome` (the metrics' `peerkeeper_dials_total{outcome}`).
    pub fn count(&self, outcome: super::DialEnd) -> u64 {
        use super::DialEnd;
        match outcome {
            DialEnd::Succeeded => self.succeeded,
            DialEnd::Refused => self.refused,
            DialEnd::TimedOut => self.timed_out,
            DialEnd::Failed => self.failed,
            DialEnd::Protocol => self.protocol,
            DialEnd::AlreadyConnected => self.already_connected,
            DialEnd::Myself => self.myself,
            DialEnd::Dropped => self.dropped,
            DialEnd::Cancelled => self.cancelled,
            DialEnd::WrongPeer => self.wrong_peer,
            DialEnd::Offline => self.offline,
        }
    }

    /// Whether the outcomes add up to the attempts.
    pub fn adds_up(&self) -> bool {
        self.attempted
            == self.succeeded
                + self.refused
                + self.timed_out
                + self.failed
                + self.protocol
                + self.already_connected
                + self.myself
                + self.dropped
                + self.cancelled
                + self.wrong_peer
                + self.offline
                + self.in_flight
    }

    /// Adds another node's counts (for network-wide reports).
    pub fn add(&mut self, o: &DialStats) {
        self.attempted += o.attempted;
        self.succeeded += o.succeeded;
        self.refused += o.refused;
        self.timed_out += o.timed_out;
        self.failed += o.failed;
        self.protocol += o.protocol;
        self.already_connected += o.already_connected;
        self.myself += o.myself;
        self.dropped += o.dropped;
        self.cancelled += o.cancelled;
        self.wrong_peer += o.wrong_peer;
        self.offline += o.offline;
        self.in_flight += o.in_flight;
        self.tests += o.tests;
        self.explorations += o.explorations;
        self.exploration_swaps += o.exploration_swaps;
    }

    /// A one-line summary for status lines and tables.
    pub fn summary(&self) -> String {
        format!(
            "{} attempted: {} ok, {} refused, {} timed out, {} failed, {} protocol, {} already connected, {} myself, {} dropped, {} cancelled, {} wrong peer, {} offline, {} in flight",
            self.attempted,
            self.succeeded,
            self.refused,
            self.timed_out,
            self.failed,
            self.protocol,
            self.already_connected,
            self.myself,
            self.dropped,
            self.cancelled,
            self.wrong_peer,
            self.offline,
            self.in_flight
        )
    }
}

/// What became of inbound connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AdmissionStats {
    /// Admitted.
    pub accepted: u64,
    /// Refused: at `max_connections` (with points).
    pub refused_full: u64,
    /// Refused: greylisted address.
    pub refused_greylisted: u64,
    /// Refused: the peer was already connected (and the older connection wins).
    pub refused_duplicate: u64,
    /// Refused: it was ourselves.
    pub refused_myself: u64,
    /// Refused: private mode and not trusted.
    pub refused_private: u64,
    /// Refused: peer sets only, and not a tracked peer (or not from its tracked IP).
    pub refused_untracked: u64,
    /// Refused: the handshake proved another key than the one configured for the point it
    /// claims (`KEY@HOST:PORT`).
    pub refused_wrong_peer: u64,
    /// Refused: [`MAX_INBOUND_PER_ADDRESS`](crate::core::MAX_INBOUND_PER_ADDRESS) inbound
    /// connections already come from its IPv4 address (IPv6 /64).
    pub refused_per_address: u64,
    /// Refused: [`Config::inbound_per_group`](crate::Config::inbound_per_group) inbound
    /// connections already come from its network group (/16, /32, or AS).
    pub refused_per_group: u64,
    /// Admitted at `max_connections` by closing another inbound connection.
    pub made_room: u64,
    /// At `max_connections`, no room made because every inbound connection is protected
    /// from eviction (by group, round-trip time, usefulness, age) or younger than
    /// `newcomer_grace` (the newcomer is refused as full, and counted in `refused_full`
    /// too).
    pub no_room_protected: u64,
}

/// Peer feedback ([`crate::core::feedback`]): reports by kind, and what scores led to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FeedbackStats {
    /// Reports received, by kind ([`Report::ALL`](crate::core::Report::ALL) order:
    /// useful, slow, misbehaved low, medium, high, fatal), with feedback on or off.
    pub reports: [u64; 6],
    /// Connections closed because their peer's score fell to `feedback.disconnect_below`.
    pub disconnects: u64,
    /// Peers banned (their point greylisted) because their score fell to
    /// `feedback.ban_below`, or for a fatal report.
    pub bans: u64,
}

/// Points received from the network and the node's sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PointStats {
    /// Points received (answers, advertisements, refusals, sources).
    pub received: u64,
    /// Of those, new to the pool.
    pub new: u64,
    /// Dropped, by reason.
    pub dropped: PointsDropped,
    /// Unsolicited advertisements ignored (over the rate).
    pub unsolicited_ignored: u64,
}

/// Peer-sharing requests and answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharingStats {
    /// Requests for points sent.
    pub requests: u64,
    /// Requests answered.
    pub answers: u64,
    /// Requests ignored (over the rate, or private mode).
    pub asks_ignored: u64,
    /// Answers sent late: a request found no point to share, and the first points that
    /// could be shared went to the asker as they came (counted in `answers` too).
    pub deferred_answers: u64,
    /// Discovery rounds.
    pub rounds: u64,
}

/// Connections closed, by who and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CloseStats {
    /// Trimmed by maintenance, or closed to make room.
    pub trimmed: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Protocol violations.
    pub violation: u64,
    /// Replaced in a swap: the octez policy's, or an exploration swap's
    /// ([`crate::Config::exploration_swap_interval`]).
    pub swapped: u64,
    /// Ended by the peer or the network.
    pub lost: u64,
    /// Dropped by the shell: no keepalive in time, or a peer that stopped reading.
    pub dropped: u64,
    /// The peer left every kept peer set.
    pub untracked: u64,
    /// The peer's tracked address changed (the connection was on the old one).
    pub address_changed: u64,
}

/// The address book ([`crate::pool::book`]): how full each side is, and what its rules
/// did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BookStats {
    /// Points on the new side now (heard of).
    pub new: u64,
    /// Points on the tried side now (worked when dialed).
    pub tried: u64,
    /// Points heard of and dropped: their position was held by a point worth keeping.
    pub collided: u64,
    /// Worthless points that gave their position to a newcomer.
    pub replaced: u64,
    /// Tried points evicted after failing their test (or not answering in time).
    pub tried_evicted: u64,
    /// Tried points kept: they answered their test, or had worked recently.
    pub tried_kept: u64,
}

/// Every counter of a node core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CoreStats {
    /// Dial outcomes.
    pub dials: DialStats,
    /// Inbound admissions.
    pub admission: AdmissionStats,
    /// Points received.
    pub points: PointStats,
    /// Peer sharing.
    pub sharing: SharingStats,
    /// Closes.
    pub closed: CloseStats,
    /// Maintenance cycles started (with the octez policy: every pass of its maintenance
    /// loop, the re-entries after each request for points included).
    pub cycles: u64,
    /// Protocol violations reported by the shell.
    pub violations: u64,
    /// Points or addresses banned (greylisted) for them.
    pub bans: u64,
    /// Swap requests sent and accepted (octez policy).
    pub swaps: u64,
    /// The most connections ever open at once.
    pub max_connections_seen: u64,
    /// The address book.
    pub book: BookStats,
    /// Peer feedback.
    pub feedback: FeedbackStats,
}
