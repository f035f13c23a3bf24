//! Every input of the node core as data: what a trace records and a replay feeds back.
//!
//! A shell that drives the core through [`NodeCore::apply`] can write each [`Recorded`]
//! input as a JSON line (after a [`TraceHeader`] line); feeding the same lines to a fresh
//! core built from the header gives the same actions, in the same order, at the same
//! times: the core is deterministic, and these are all it ever reads.

use super::{
    Admission, BanTarget, DialResult, DialVerdict, Hello, NodeCore, Offender, PeerSetError, Report,
    SetChanges,
};
use crate::config::Config;
use crate::pool::{CloseReason, ConnId, PeerId, Source};
use crate::trigger::TriggerKind;
use crate::Time;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The trace schema's name, in every header.
pub const TRACE_SCHEMA: &str = "peerkeeper-trace";
/// The trace schema's version: a replay refuses another.
pub const TRACE_VERSION: u32 = 3;

/// One input of the node core: what a trace records and a replay feeds back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Input {
    /// [`NodeCore::add_points`].
    AddPoints {
        /// The points.
        points: Vec<SocketAddr>,
        /// Their source.
        source: Source,
    },
    /// [`NodeCore::set_protected`].
    SetProtected {
        /// The points.
        points: Vec<SocketAddr>,
        /// Protected, or no longer.
        on: bool,
    },
    /// [`NodeCore::set_admitted`].
    SetAdmitted {
        /// The points.
        points: Vec<SocketAddr>,
        /// Admitted, or no longer.
        on: bool,
    },
    /// [`NodeCore::expect_peer`].
    ExpectPeer {
        /// The configured point.
        point: SocketAddr,
        /// The peer id it must prove.
        peer: PeerId,
    },
    /// [`NodeCore::add_own_point`].
    AddOwnPoint {
        /// Our point.
        point: SocketAddr,
    },
    /// [`NodeCore::restore`]: a saved pool, aged to now (its anchors dialed first).
    Restore {
        /// The snapshot.
        snapshot: Box<crate::pool::Snapshot>,
    },
    /// [`NodeCore::start`].
    Start,
    /// [`NodeCore::maintain`].
    Maintain,
    /// [`NodeCore::set_trigger`].
    SetTrigger {
        /// Which.
        kind: TriggerKind,
        /// On or off.
        enabled: bool,
    },
    /// [`NodeCore::set_idle_timer`].
    SetIdleTimer {
        /// On or off.
        enabled: bool,
    },
    /// [`NodeCore::shutdown`].
    Shutdown,
    /// [`NodeCore::handle_inbound`].
    Inbound {
        /// The driver's name for the connection.
        conn: ConnId,
        /// The remote address of the connection.
        remote: SocketAddr,
        /// What the peer said.
        hello: Hello,
    },
    /// [`NodeCore::handle_dial_result`].
    DialResult {
        /// The point dialed.
        point: SocketAddr,
        /// How it ended.
        result: DialResult,
    },
    /// [`NodeCore::handle_points`].
    Points {
        /// On which connection.
        conn: ConnId,
        /// The points.
        points: Vec<SocketAddr>,
    },
    /// [`NodeCore::handle_source_points_of`].
    SourcePoints {
        /// The points.
        points: Vec<SocketAddr>,
        /// The kind the source reported (absent: external).
        #[serde(default = "external", skip_serializing_if = "is_external")]
        kind: Source,
    },
    /// [`NodeCore::handle_points_asked`].
    PointsAsked {
        /// On which connection.
        conn: ConnId,
    },
    /// [`NodeCore::handle_closed`].
    Closed {
        /// Which connection.
        conn: ConnId,
    },
    /// [`NodeCore::handle_dropped`].
    Dropped {
        /// Which connection.
        conn: ConnId,
        /// Why the shell dropped it.
        reason: CloseReason,
    },
    /// [`NodeCore::handle_violation`].
    Violation {
        /// Who.
        offender: Offender,
    },
    /// [`NodeCore::handle_swap_request`].
    SwapRequest {
        /// On which connection.
        conn: ConnId,
        /// The point proposed.
        point: SocketAddr,
    },
    /// [`NodeCore::handle_swap_ack`].
    SwapAck {
        /// On which connection.
        conn: ConnId,
        /// The point given.
        point: SocketAddr,
    },
    /// [`NodeCore::handle_timeout`].
    Timeout,
    /// [`NodeCore::handle_track`].
    Track {
        /// The set's id (epoch).
        id: u64,
        /// Its primaries and their addresses.
        primary: Vec<(PeerId, SocketAddr)>,
        /// Its secondaries and their addresses.
        secondary: Vec<(PeerId, SocketAddr)>,
    },
    /// [`NodeCore::handle_overwrite`].
    Overwrite {
        /// New addresses of tracked peers.
        addresses: Vec<(PeerId, SocketAddr)>,
    },
    /// [`NodeCore::handle_report`].
    Report {
        /// The peer reported on.
        peer: PeerId,
        /// What the application says of it.
        report: Report,
    },
    /// [`NodeCore::handle_rtt`].
    Rtt {
        /// On which connection.
        conn: ConnId,
        /// The round-trip time measured.
        #[serde(with = "humantime_serde")]
        rtt: std::time::Duration,
    },
    /// [`NodeCore::ban`]: the operator bans a point or an IP address.
    Ban {
        /// What.
        target: BanTarget,
        /// For how long (absent: `greylist_duration`).
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        duration: Option<std::time::Duration>,
    },
    /// [`NodeCore::unban`]: the operator lifts a ban.
    Unban {
        /// What.
        target: BanTarget,
    },
    /// [`NodeCore::trust`]: the operator trusts a point, maybe with the key it must prove.
    Trust {
        /// The point.
        point: SocketAddr,
        /// The peer id it must prove, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<PeerId>,
    },
}

/// What an input answered at once, when it answers (the two a handshake waits for).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Nothing: the input only queued actions.
    None,
    /// [`NodeCore::handle_inbound`]'s answer.
    Admission(Admission),
    /// [`NodeCore::handle_dial_result`]'s answer.
    Verdict(DialVerdict),
    /// [`NodeCore::maintain`]'s ticket.
    Ticket(u64),
    /// [`NodeCore::handle_track`]'s or [`NodeCore::handle_overwrite`]'s answer.
    PeerSets(Result<SetChanges, PeerSetError>),
    /// [`NodeCore::ban`]'s answer: when the ban ends.
    Banned(Time),
    /// [`NodeCore::unban`]'s or [`NodeCore::trust`]'s answer: whether it did anything.
    Done(bool),
}

/// An input with its time: one line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// When the core got it.
    pub at: Time,
    /// The input.
    #[serde(flatten)]
    pub input: Input,
}

/// The first line of a trace: what a fresh core is built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always [`TRACE_SCHEMA`].
    pub schema: String,
    /// [`TRACE_VERSION`] when written.
    pub version: u32,
    /// The node's config.
    pub config: Config,
    /// The node's peer id.
    pub peer_id: PeerId,
    /// The seed of the node's core.
    pub seed: u64,
    /// The wall-clock time the trace starts at (its time zero), in milliseconds since
    /// the Unix epoch, when the recorder knew it: what lets a user find "3:12 in the
    /// afternoon" in the trace's virtual times.
    #[serde(default)]
    pub started_unix_ms: Option<u64>,
    /// The version of the build that wrote it: a replay by another build may decide
    /// otherwise (the schema version covers the format, not the rules).
    #[serde(default)]
    pub build: String,
}

impl TraceHeader {
    /// The header of a trace of a core built with these.
    pub fn new(config: Config, peer_id: PeerId, seed: u64) -> TraceHeader {
        TraceHeader {
            schema: TRACE_SCHEMA.into(),
            version: TRACE_VERSION,
            config,
            peer_id,
            seed,
            started_unix_ms: None,
            build: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The same header, saying the trace's time zero is `unix_ms` on the wall clock.
    pub fn started_at(mut self, unix_ms: u64) -> TraceHeader {
        self.started_unix_ms = Some(unix_ms);
        self
    }

    /// A fresh core as the recorded one started.
    ///
    /// # Errors
    ///
    /// When the header is of another schema or version.
    pub fn core(&self) -> Result<NodeCore, String> {
        if self.schema != TRACE_SCHEMA || self.version != TRACE_VERSION {
            return Err(format!(
                "a trace of schema {:?} version {}; this build reads {:?} version {}",
                self.schema, self.version, TRACE_SCHEMA, TRACE_VERSION
            ));
        }
        Ok(NodeCore::new(self.config.clone(), self.peer_id, self.seed))
    }
}

impl NodeCore {
    /// Feeds one input, as data: what a recording shell and a replay both call.
    ///
    /// ```
    /// use peerkeeper::core::{Input, NodeCore, Reply};
    /// use peerkeeper::{Config, PeerId, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// assert_eq!(core.apply(Time::ZERO, Input::Start), Reply::None);
    /// assert_eq!(core.apply(Time::from_millis(5), Input::Maintain), Reply::Ticket(1));
    /// ```
    pub fn apply(&mut self, at: Time, input: Input) -> Reply {
        match input {
            Input::AddPoints { points, source } => {
                self.add_points(&points, source, at);
            }
            Input::ExpectPeer { point, peer } => {
                self.expect_peer(point, peer);
            }
            Input::AddOwnPoint { point } => self.add_own_point(point),
            Input::SetProtected { points, on } => {
                self.set_protected(&points, on);
            }
            Input::SetAdmitted { points, on } => {
                self.set_admitted(&points, on);
            }
            Input::Restore { snapshot } => {
                self.restore(&snapshot, at);
            }
            Input::Start => self.start(at),
            Input::Maintain => return Reply::Ticket(self.maintain(at)),
            Input::SetTrigger { kind, enabled } => self.set_trigger(kind, enabled),
            Input::SetIdleTimer { enabled } => self.set_idle_timer(enabled, at),
            Input::Shutdown => self.shutdown(at),
            Input::Inbound {
                conn,
                remote,
                hello,
            } => return Reply::Admission(self.handle_inbound(conn, remote, hello, at)),
            Input::DialResult { point, result } => {
                return Reply::Verdict(self.handle_dial_result(point, result, at))
            }
            Input::Points { conn, points } => self.handle_points(conn, &points, at),
            Input::SourcePoints { points, kind } => self.handle_source_points_of(kind, &points, at),
            Input::PointsAsked { conn } => self.handle_points_asked(conn, at),
            Input::Closed { conn } => self.handle_closed(conn, at),
            Input::Dropped { conn, reason } => self.handle_dropped(conn, reason, at),
            Input::Violation { offender } => self.handle_violation(offender, at),
            Input::SwapRequest { conn, point } => self.handle_swap_request(conn, point, at),
            Input::SwapAck { conn, point } => self.handle_swap_ack(conn, point, at),
            Input::Timeout => self.handle_timeout(at),
            Input::Track {
                id,
                primary,
                secondary,
            } => return Reply::PeerSets(self.handle_track(id, primary, secondary, at)),
            Input::Overwrite { addresses } => {
                return Reply::PeerSets(self.handle_overwrite(addresses, at))
            }
            Input::Report { peer, report } => self.handle_report(peer, report, at),
            Input::Rtt { conn, rtt } => self.handle_rtt(conn, rtt, at),
            Input::Ban { target, duration } => {
                return Reply::Banned(self.ban(target, duration, at))
            }
            Input::Unban { target } => return Reply::Done(self.unban(target, at)),
            Input::Trust { point, peer } => return Reply::Done(self.trust(point, peer, at)),
        }
        Reply::None
    }
}

fn external() -> Source {
    Source::External
}

fn is_external(k: &Source) -> bool {
    *k == Source::External
}
