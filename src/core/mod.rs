//! The node core: every decision a node makes, in one sans-IO type that the tokio node
//! and the simulator both drive.
//!
//! [`NodeCore`] owns the point pool, the connection table, the maintenance machine (ours
//! or the octez model, by [`Policy`]), the discovery state, and every rule that decides:
//! admission of inbound connections, what a refusal, an answer or a farewell carries,
//! which received points are kept ([`intake`]), how a dial outcome is recorded, which of
//! two duplicate connections survives. It never does I/O, never waits, never reads a
//! clock and holds no lock: this is quinn-proto's shape.
//!
//! * Inputs are `handle_*` calls that take an explicit `now` ([`Time`]): an inbound
//!   handshake ([`handle_inbound`](NodeCore::handle_inbound), which answers at once), a
//!   dial outcome ([`handle_dial_result`](NodeCore::handle_dial_result), likewise),
//!   points received, a request for points, a connection closed, a violation, a timer,
//!   `maintain()`, trigger switches.
//! * Outputs are [`Action`]s, drained with [`poll_action`](NodeCore::poll_action) after
//!   every input, and the next time a timer is due, [`next_deadline`](NodeCore::next_deadline).
//!   The driver calls [`handle_timeout`](NodeCore::handle_timeout) when it comes (an early
//!   or extra call is harmless).
//!
//! Time must not go backwards between calls (an earlier `now` is treated as the latest
//! one seen). Every random choice comes from the core's RNG, seeded at construction: the
//! same inputs give the same actions, which the simulator and the trace tests rely on.
//!
//! # The guarantee
//!
//! For every [`Config`] that [`Config::validate`] accepts: a node that can reach one live
//! member of a network of more than `min_threshold` nodes reaches `min_threshold`
//! connections (when `min_threshold == max_connections`, only if the degrees can add up:
//! an odd number of nodes each wanting exactly an odd number leaves one short).
//!
//! One component is what the tests show over join orders, sizes and seeds
//! (`tests/sim_joins.rs`, `tests/processes.rs`), not a theorem: a node with at most two
//! connections makes an overlay of paths and cycles, which can split into islands, and
//! a partition leaves two halves each in range. Islands whose nodes are all in range
//! merge by exploration dials ([`Config::exploration_interval`], Bitcoin Core's feeler):
//! below its trim target a node adds a connection to a point it is not connected to; at
//! or above it the exploration is a swap that replaces one of its outbound connections,
//! at most one per [`Config::exploration_swap_interval`] (Bitcoin Core's extra
//! block-relay peer). `tests/sim_partition.rs` shows one component again within
//! `exploration_swap_interval + 3 * exploration_interval + dial_timeout` of a heal, for
//! random valid configs and for those where every node sits at its trim target (4/4/7,
//! 6/6/6). The simulator reports the number of components and counts a split network as
//! not converged.
//!
//! The rules that make it hold, whatever the join order:
//!
//! * a top-up stops at `min_target` ([`crate::maintenance::top_up_dials`]), leaving the
//!   rest of `max_connections` to nodes that dial in;
//! * a node at `max_connections` makes room for a newcomer: it closes one inbound
//!   connection old enough (`newcomer_grace`), sending it points first, at most once per
//!   `make_room_interval`; otherwise it refuses;
//! * a refusal carries points to try instead, recent dialers first (they are alive and
//!   looking for peers, which is exactly what a refused newcomer needs), then connected
//!   and good points, then a random sample of the rest; the dialer's own point is
//!   recorded, so the next refused dialer hears of it;
//! * a node with no connection still learns points: from refusals, its trusted and
//!   bootstrap points, and its own point sources, polled in every discovery round;
//! * loopback and LAN addresses are accepted under the relay rule, so local and LAN
//!   networks form with the default config.
//!
//! # The offline rule
//!
//! A dial that reaches nobody (an I/O error or a timeout) says something against the
//! point only if the network works. Bitcoin Core counts failures only while it has
//! outbound connections in several network groups; the core uses a rule it can decide
//! from its own inputs:
//!
//! * the node is *offline* when it has no connection open and its last [`OFFLINE_AFTER`]
//!   dials all reached nobody; the dial that makes it so takes back the failures counted
//!   by the others of that run (they failed for the same reason);
//! * while offline, such a dial ends as [`DialEnd::Offline`]: the point's failure count
//!   does not grow (so it is neither backed off nor garbage-collected first for it), and
//!   it waits one probe interval per [`OFFLINE_PROBES`] points waiting, rounded up to a
//!   multiple of the interval, so that the node keeps trying at about `OFFLINE_PROBES`
//!   dials per interval whatever the size of its pool, in batches with quiet gaps between
//!   them (in which a maintenance cycle can end: `maintain()` returns while offline too).
//!   The interval starts at [`OFFLINE_FIRST_PROBE`] and doubles as the time offline
//!   doubles, up to the longer of [`OFFLINE_RETRY`] and twice `dial_timeout`: a network
//!   that was gone for a moment is found again at once, a long outage costs few dials;
//! * anything that proves the network works ends it, or keeps the node from going
//!   offline: a dial that reaches a peer (a handshake, a refusal, even a protocol error),
//!   a connection refused at once ([`DialFailure::Refused`]: the host answered, nobody
//!   listens there, as when a node starts before its seed), or a peer's handshake
//!   reaching us. Every point that waited while offline is then dialable at once, so the
//!   node reconnects straight away rather than after the longest backoff.
//!
//! A refusal or a protocol error counts against its point as before, offline or not. The
//! configured points (trusted and bootstrap) cost nothing to retry: their backoff is
//! capped at [`crate::pool::CONFIGURED_RETRY_CAP`], so a node that starts before its seed
//! reaches it within about a second of its start. The octez model ([`Policy::Octez`]) has
//! neither rule: it backs off as octez does.

mod event;
pub mod feedback;
mod input;
pub mod intake;
mod ops;
pub mod peerset;
mod replay;
mod stats;

pub use event::{DialEnd, Ended, Event, ScoreOutcome, MAX_QUEUED_EVENTS};
pub use feedback::{Report, Score, Severity};
pub use input::{Input, Recorded, Reply, TraceHeader, TRACE_SCHEMA, TRACE_VERSION};
pub use ops::{BadBanTarget, BanTarget, ConnectionView, PointFilter, PointView, MAX_BAN};
pub use replay::{
    clock, parse_clock, point_matches, ConnInfo, Decision, DecisionKind, Replay, Step, TraceError,
    TraceReader, TraceWriter,
};

pub use peerset::{PeerSetError, PeerSets, Readdressed, SetChanges};
pub use stats::{
    AdmissionStats, BookStats, CloseStats, CoreStats, DialStats, FeedbackStats, PointStats,
    SharingStats,
};

use crate::config::{Bounds, Config, Policy};
use crate::discovery::DiscoveryState;
use crate::maintenance::evict::evict_inbound;
use crate::maintenance::octez::{octez_config, octez_trigger, OctezModel, OCTEZ_SWAP_LINGER};
use crate::maintenance::{
    self, outbound_need, trim_for, CycleReport, DialOutcome, Maintenance, WakeReason, WakeReasons,
};
use crate::pool::{
    Added, CloseReason, ConnId, Direction, PeerId, PointInfo, PointState, Pool, Refused, Restored,
    Snapshot, Source,
};
use crate::rng::{seeded, SeededRng};
use crate::trigger::{count_trigger, TriggerKind};
use crate::Time;
use intake::{canonical_ip, check_point, scope, shareable, PointDropped};
use rand::seq::IteratorRandom;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Most recent inbound dialers remembered for refusals and answers.
pub const RECENT_DIALERS: usize = 16;
/// Most of our own addresses remembered (learned from dials that reached ourselves).
pub const MAX_OWN_POINTS: usize = 16;
/// Most points a refusal carries.
pub const MAX_REFUSAL_POINTS: usize = 50;
/// A primary of a tracked peer set is not redialed at one address more often than this
/// (over the pool's backoff after failures): a dial that ends without a verdict on the
/// point (refused as already connected, dropped) cannot loop.
pub const PRIMARY_DIAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Most configured points with an expected peer id ([`NodeCore::expect_peer`]).
pub const MAX_EXPECTED_PEERS: usize = 1024;
/// The offline rule: after this many dials in a row that reached nobody (I/O errors and
/// timeouts) while the node has no connection at all, the node counts itself offline
/// and stops holding the failures against the points (see the module docs).
pub const OFFLINE_AFTER: usize = 3;
/// The offline rule: the longest probe interval is the longer of this and twice
/// `dial_timeout`; it starts at [`OFFLINE_FIRST_PROBE`] and doubles up to it. A point
/// that failed while the node was offline waits one interval per [`OFFLINE_PROBES`]
/// points waiting before it is dialed again (so that an offline node dials about
/// `OFFLINE_PROBES` points per interval, however large its pool).
pub const OFFLINE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
/// The offline rule: about how many points an offline node dials per probe interval.
pub const OFFLINE_PROBES: usize = 4;
/// The offline rule: the first probe interval, when the node has just gone offline. It
/// doubles as the node stays offline, up to [`OFFLINE_RETRY`] (or twice `dial_timeout`
/// if longer): an offline node tries again quickly at first, then slowly.
pub const OFFLINE_FIRST_PROBE: std::time::Duration = std::time::Duration::from_millis(500);

/// The saved pool (issue 18): a shell that keeps the pool on disk saves it this long
/// after it changed materially ([`NodeCore::save_due`]), so that a burst of changes (the
/// first connections, one after the other) is one save.
pub const SAVE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// The saved pool: at most one save for material changes per this long, however busy the
/// node (the shell's periodic save comes on top).
pub const SAVE_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// The saved pool: this many new points learned from the network since the last save
/// are a material change.
pub const SAVE_AFTER_NEW_POINTS: u64 = 64;

/// What a peer says of itself in the handshake, once the shell has checked the network
/// name and the protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// Its peer id.
    pub peer: PeerId,
    /// The port it listens on: its point is the connection's IP address and this port.
    pub listen_port: u16,
}

/// Unsolicited points a connection may send per minute, past its first
/// `discovery.answer_size` (`defences.limit_adverts`): Bitcoin Core's 0.1 address per second.
pub const ADVERT_POINTS_PER_MINUTE: u64 = 6;

/// Most inbound connections from one host: an IPv4 address, or an IPv6 /64 (public
/// addresses; loopback and private ones are exempt, as are trusted, protected and
/// tracked peers). One machine with many keys and claimed ports takes no more.
pub const MAX_INBOUND_PER_ADDRESS: usize = 4;

/// Why a handshake is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The node is at `max_connections` and makes no room now (the refusal carries
    /// points to try instead).
    Full,
    /// The dialer reached itself.
    Myself,
    /// The peer is already connected, and the existing connection wins.
    AlreadyConnected,
    /// The dialer's address is greylisted.
    Greylisted,
    /// Private mode: only trusted points (and tracked peers) are admitted; or peer sets
    /// only: only tracked peers (and trusted points), from their tracked IP address.
    PrivateMode,
    /// Another network name.
    WrongNetwork,
    /// Another protocol version.
    WrongVersion,
    /// The dialer's handshake signature did not verify (it does not hold the key of the
    /// id it claims). The shell refuses it before the core hears of it.
    BadAuth,
    /// The node we dialed says we did not dial one of its addresses (a relay between us,
    /// or a port mapping it was not told of). The shell refuses it before the core hears
    /// of it.
    WrongAddress,
}

/// The answer to an inbound handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted: the connection is registered under the `ConnId` the driver gave. The
    /// driver sends its handshake and reports the connection's end with
    /// [`NodeCore::handle_closed`].
    Accept,
    /// Refused: the driver tells the dialer why, with these points, and closes.
    Refuse {
        /// Why.
        reason: RefuseReason,
        /// Points to try instead (only with [`RefuseReason::Full`]).
        points: Vec<SocketAddr>,
    },
}

/// Why a dial failed on our side of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum DialFailure {
    /// No answer within `dial_timeout`.
    Timeout,
    /// The connection could not be made (the point is unreachable) or broke during the
    /// handshake.
    Io,
    /// The connection was refused at once (`ECONNREFUSED`): the point's host answered,
    /// nobody listens there. Proof that the network works (the offline rule), and a
    /// failure of the point.
    Refused,
    /// The peer broke the protocol during the handshake (its point is greylisted).
    Protocol,
    /// The dial was abandoned (shutdown): no verdict on the point.
    Cancelled,
}

/// How a dial ended, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum DialResult {
    /// The handshake completed: the peer said who it is. The core decides whether to keep
    /// the connection ([`DialVerdict`]); if kept, it is registered under `conn`.
    Connected {
        /// The driver's name for the connection.
        conn: ConnId,
        /// The peer's id.
        peer: PeerId,
    },
    /// The peer refused us, maybe with points to try instead.
    Refused {
        /// Why.
        reason: RefuseReason,
        /// Points it sent.
        points: Vec<SocketAddr>,
    },
    /// It failed.
    Failed(DialFailure),
}

/// What the driver does with a connection whose handshake completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialVerdict {
    /// Keep it: it is registered.
    Keep,
    /// Close it, telling the peer this reason.
    Drop(CloseReason),
}

/// Who broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Offender {
    /// An open connection (its peer proved its key): it is closed, its point greylisted.
    Conn(ConnId),
    /// A point with evidence against it: one we dialed that broke the protocol, or a peer
    /// banned by its feedback score. Greylisted, and its connection, if any, closed.
    /// Never a point that someone else merely *names*: a claim before authentication
    /// punishes only the connection that made it ([`Offender::Remote`]).
    Point(SocketAddr),
    /// An address with no known source (the embedding node's own judgement): one strike
    /// against it ([`crate::pool::Pool::strike`]).
    Ip(IpAddr),
    /// An unauthenticated inbound connection (garbage instead of a handshake, a signature
    /// that does not verify), by its own remote address and port: nobody else is
    /// punished. One strike against its address; [`crate::pool::IP_STRIKES`] from distinct
    /// sources within [`crate::pool::STRIKE_WINDOW`] greylist the address (an IPv6 one:
    /// its /64), never loopback.
    Remote(SocketAddr),
}

/// What the driver must do, in order. Drained with [`NodeCore::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Action {
    /// Dial this point and report with [`NodeCore::handle_dial_result`].
    Dial(SocketAddr),
    /// Close this connection, telling the peer why. The core has already forgotten it.
    Close {
        /// Which.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Send these points on this connection (an answer, or before a close: a farewell).
    SendPoints {
        /// On which connection.
        conn: ConnId,
        /// The points.
        points: Vec<SocketAddr>,
    },
    /// Ask this peer for points.
    AskForPoints {
        /// Whom.
        conn: ConnId,
    },
    /// Poll the node's point sources (a discovery round); feed what they return to
    /// [`NodeCore::handle_source_points`].
    PollSources,
    /// Propose a swap to this peer: it may connect to `point` and send us one of its own
    /// (the octez policy).
    SwapRequest {
        /// To whom.
        conn: ConnId,
        /// One of our peers' points.
        point: SocketAddr,
    },
    /// Accept a swap: tell the peer this point of ours (the octez policy).
    SwapAck {
        /// To whom.
        conn: ConnId,
        /// One of our peers' points.
        point: SocketAddr,
    },
    /// A trigger fired (for observers; the core has already reacted).
    Trigger(TriggerKind),
    /// A maintenance cycle began.
    CycleStarted {
        /// Its number, from 1.
        cycle: u64,
        /// Why it runs.
        reasons: WakeReasons,
    },
    /// A maintenance cycle ended: every [`NodeCore::maintain`] ticket up to `covers` is
    /// answered by this report.
    CycleEnded {
        /// What it did.
        report: Box<CycleReport>,
        /// The highest `maintain()` ticket issued before the cycle began.
        covers: u64,
    },
}

impl Action {
    /// The connection this action is about, if any.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Action::Close { conn, .. }
            | Action::SendPoints { conn, .. }
            | Action::AskForPoints { conn }
            | Action::SwapRequest { conn, .. }
            | Action::SwapAck { conn, .. } => Some(*conn),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Brain {
    Peerkeeper { m: Maintenance, d: DiscoveryState },
    Octez(OctezModel),
}

#[derive(Clone, Copy, Debug)]
struct ConnMeta {
    point: SocketAddr,
    /// The proven peer id (kept here, not in the pool's compact point records).
    peer: PeerId,
    direction: Direction,
    awaiting_answer: bool,
    last_answer: Option<Time>,
    last_unsolicited: Option<Time>,
    /// Unsolicited points this connection may still send, in thousandths
    /// (`defences.limit_adverts`; see [`ADVERT_POINTS_PER_MINUTE`]).
    advert_tokens: u64,
    swap_sent: Option<SocketAddr>,
    /// The peer asked for points when we had none to share: the first points that can be
    /// shared go to it as the answer it is owed (see
    /// [`handle_points_asked`](NodeCore::handle_points_asked)).
    owed_answer: bool,
}

impl ConnMeta {
    fn new(point: SocketAddr, peer: PeerId, direction: Direction) -> ConnMeta {
        ConnMeta {
            point,
            peer,
            direction,
            awaiting_answer: false,
            last_answer: None,
            last_unsolicited: None,
            advert_tokens: 0,
            swap_sent: None,
            owed_answer: false,
        }
    }
}

/// An action as a driver recorded it: when, and the point of the peer on the connection
/// it concerns (connection ids are the driver's own, so traces of two drivers compare by
/// peer). What [`Node`](crate::Node)'s action tap and the simulator's recording give.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TracedAction {
    /// When the core produced it.
    pub at: Time,
    /// The action.
    pub action: Action,
    /// The peer's point, for actions on a connection.
    pub peer: Option<SocketAddr>,
}

/// Whether a new connection to `peer` replaces the one we have (whose direction is
/// `old`). Of two connections between the same two nodes, both keep the one dialed by the
/// node with the smaller peer id, so they agree without a message.
///
/// ```
/// use peerkeeper::core::new_connection_wins;
/// use peerkeeper::pool::{Direction, PeerId};
/// let (a, b) = (PeerId::from_u64(1), PeerId::from_u64(2));
/// // A dialed B while B dialed A: A keeps its outbound one, B its inbound one: the same.
/// assert!(new_connection_wins(a, b, Some(Direction::Inbound), Direction::Outbound));
/// assert!(new_connection_wins(b, a, Some(Direction::Outbound), Direction::Inbound));
/// assert!(!new_connection_wins(a, b, Some(Direction::Outbound), Direction::Inbound));
/// ```
pub fn new_connection_wins(
    me: PeerId,
    peer: PeerId,
    old: Option<Direction>,
    new: Direction,
) -> bool {
    let winner = if me < peer {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    new == winner && old != Some(winner)
}

/// The sans-IO node. See the [module docs](self).
///
/// ```
/// use peerkeeper::core::{Action, Admission, DialResult, DialVerdict, Hello, NodeCore};
/// use peerkeeper::pool::{ConnId, PeerId, Source};
/// use peerkeeper::{Config, Time};
///
/// let config = Config { min_connections: 2, expected_connections: 4, max_connections: 6,
///                       ..Config::default() };
/// let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
/// let seed = "127.0.0.1:9000".parse().unwrap();
/// core.add_points(&[seed], Source::Bootstrap, Time::ZERO);
/// core.start(Time::ZERO);
/// let mut dials = Vec::new();
/// while let Some(a) = core.poll_action() {
///     if let Action::Dial(p) = a { dials.push(p); }
/// }
/// assert_eq!(dials, vec![seed]);
/// // The handshake completed: the driver names the connection, the core keeps it.
/// let v = core.handle_dial_result(seed, DialResult::Connected { conn: ConnId(1), peer: PeerId::from_u64(2) },
///                                 Time::from_millis(20));
/// assert_eq!(v, DialVerdict::Keep);
/// assert_eq!(core.connection_count(), 1);
/// // Someone dials in.
/// let hello = Hello { peer: PeerId::from_u64(3), listen_port: 9001 };
/// let a = core.handle_inbound(ConnId(2), "127.0.0.1:50000".parse().unwrap(), hello, Time::from_millis(30));
/// assert_eq!(a, Admission::Accept);
/// assert_eq!(core.connection_count(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct NodeCore {
    config: Arc<Config>,
    bounds: Bounds,
    me: PeerId,
    own_points: Vec<SocketAddr>,
    pool: Pool,
    brain: Brain,
    rng: SeededRng,
    conns: BTreeMap<ConnId, ConnMeta>,
    /// How many connections are owed an answer ([`ConnMeta::owed_answer`]).
    owed_answers: usize,
    recent_dialers: VecDeque<SocketAddr>,
    swaps: BTreeMap<SocketAddr, SocketAddr>,
    last_swap: Option<Time>,
    switches: [bool; 5],
    actions: VecDeque<Action>,
    tickets: u64,
    cycle_covers: u64,
    last_room_made: Option<Time>,
    stats: CoreStats,
    clock: Time,
    stopped: bool,
    events: Option<VecDeque<Event>>,
    events_dropped: u64,
    sets: PeerSets,
    /// When each primary was last dialed (bounded by the tracked peers).
    primary_dials: BTreeMap<PeerId, Time>,

    /// The peer id each configured point must prove (`KEY@HOST:PORT`): configured points
    /// only, at most [`MAX_EXPECTED_PEERS`].
    expected: BTreeMap<SocketAddr, PeerId>,
    /// The offline rule: the points whose failures were counted since the last dial or
    /// inbound handshake that reached anyone (at most `OFFLINE_AFTER - 1`, newest last).
    unreached: VecDeque<SocketAddr>,
    /// The offline rule: since when the node counts itself offline.
    offline_since: Option<Time>,
    /// The offline rule: the points that failed, unpenalised, while offline; released
    /// (dialable at once) when the network is back. At most the pool's `max_points`.
    parked: BTreeSet<SocketAddr>,
    /// The saved pool: since when the pool holds a material change not saved yet.
    unsaved_since: Option<Time>,
    /// The saved pool: when the shell last saved it ([`NodeCore::saved`]).
    saved_at: Option<Time>,
    /// The saved pool: `stats.points.new` at the last save.
    new_points_at_save: u64,
    /// Peer feedback: the scores ([`feedback`]).
    scores: feedback::Scores,
    /// The outbound floor lacked connections while a candidate existed, at the last
    /// settle (what wakes maintenance when it starts to).
    outbound_short: bool,
    /// [`start`](Self::start) was called: maintenance may run.
    started: bool,
    /// When the next exploration dial is due ([`Config::exploration_interval`]).
    next_exploration: Option<Time>,
    /// An exploration dial made at the trim target: once connected, it replaces one of
    /// our outbound connections (a swap) instead of adding one.
    exploring_swap: Option<SocketAddr>,
    /// When the last swap exploration started (or the node started): the next one waits
    /// [`Config::exploration_swap_interval`] from it.
    last_swap_exploration: Option<Time>,
}

/// Most peers with a score: three times `max_connections` (the connected ones and twice
/// as many recently scored), at least this many.
pub const MIN_SCORED_PEERS: usize = 64;

impl NodeCore {
    /// A node with identity `me` whose every random choice comes from `seed`. Its pool
    /// holds the config's trusted points. Nothing happens until [`start`](Self::start).
    /// The config is taken as it is: validate it first ([`Config::validate`]).
    pub fn new(config: Config, me: PeerId, seed: u64) -> NodeCore {
        let config = Arc::new(match config.policy {
            Policy::Peerkeeper => config,
            Policy::Octez => octez_config(&config),
        });
        NodeCore::with_shared_config(config, me, seed)
    }

    /// As [`new`](Self::new), sharing one config among many cores (the simulator). The
    /// config is used as it is (with the octez policy, pass
    /// [`octez_config`]'s).
    pub fn with_shared_config(config: Arc<Config>, me: PeerId, seed: u64) -> NodeCore {
        let mut pool = Pool::new(&config);
        // Ours scrambles the candidate order per node (no herding); octez breaks ties in
        // its point hash table's order, the same on every node.
        pool.set_salt(match config.policy {
            Policy::Peerkeeper => seed,
            Policy::Octez => 0,
        });
        pool.take_changes();
        // Peer sets only: maintenance and discovery work as in private mode (trusted points
        // only, no sharing); the primaries are dialed by the core itself.
        let brain_config = if config.peer_sets.only && !config.private_mode {
            Arc::new(Config {
                private_mode: true,
                ..(*config).clone()
            })
        } else {
            config.clone()
        };
        let brain = match config.policy {
            Policy::Peerkeeper => Brain::Peerkeeper {
                m: Maintenance::new(brain_config.clone()),
                d: DiscoveryState::new(&brain_config),
            },
            Policy::Octez => Brain::Octez(OctezModel::new(brain_config)),
        };
        let sets = PeerSets::new(&config.peer_sets);
        let scores = feedback::Scores::new(
            config
                .max_connections
                .saturating_mul(3)
                .max(MIN_SCORED_PEERS),
            config.feedback.half_life,
        );
        NodeCore {
            bounds: config.bounds(),
            config,
            me,
            own_points: Vec::new(),
            pool,
            brain,
            rng: seeded(seed),
            conns: BTreeMap::new(),
            owed_answers: 0,
            recent_dialers: VecDeque::new(),
            swaps: BTreeMap::new(),
            last_swap: None,
            switches: [true; 5],
            actions: VecDeque::new(),
            tickets: 0,
            cycle_covers: 0,
            last_room_made: None,
            stats: CoreStats::default(),
            clock: Time::ZERO,
            stopped: false,
            events: None,
            events_dropped: 0,
            sets,
            primary_dials: BTreeMap::new(),

            expected: BTreeMap::new(),
            unreached: VecDeque::new(),
            offline_since: None,
            parked: BTreeSet::new(),
            unsaved_since: None,
            saved_at: None,
            new_points_at_save: 0,
            scores,
            outbound_short: false,
            started: false,
            next_exploration: None,
            exploring_swap: None,
            last_swap_exploration: None,
        }
    }

    // ----- reading -------------------------------------------------------------------

    /// The settings in force (with the octez policy, octez's timers).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The derived bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// The pool (points, peers, connections).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The tracked peer sets ([`peerset`]).
    pub fn peer_sets(&self) -> &PeerSets {
        &self.sets
    }

    /// Counters.
    pub fn stats(&self) -> CoreStats {
        let mut s = self.stats;
        let (new, tried) = self.pool.book_counts();
        let p = self.pool.stats();
        s.book = stats::BookStats {
            new: new as u64,
            tried: tried as u64,
            collided: p.points_collided,
            replaced: p.points_replaced,
            tried_evicted: p.tried_evicted,
            tried_kept: p.tried_kept,
        };
        match &self.brain {
            Brain::Peerkeeper { m, d } => {
                s.sharing.rounds = d.stats().rounds;
                s.cycles = m.cycles();
            }
            // Every entry into octez's do_maintain, re-entries after each request for
            // points included (what octez does per wake-up).
            Brain::Octez(o) => s.cycles = o.cycles(),
        }
        s
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.pool.active_count()
    }

    /// Dials in flight.
    pub fn dials_in_flight(&self) -> usize {
        self.pool.dialing_count()
    }

    /// The connection registered at `point`, if any.
    pub fn conn_at(&self, point: &SocketAddr) -> Option<ConnId> {
        self.pool.connection(point).map(|c| c.id)
    }

    /// The point of a connection, if it is open.
    pub fn point_of(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns.get(&conn).map(|m| m.point)
    }

    /// Whether a maintenance cycle is running.
    pub fn is_maintaining(&self) -> bool {
        match &self.brain {
            Brain::Peerkeeper { m, .. } => m.is_running(),
            Brain::Octez(_) => false,
        }
    }

    /// Whether discovery wants points now.
    pub fn wants_points(&self) -> bool {
        match &self.brain {
            Brain::Peerkeeper { d, .. } => d.is_wanted(),
            Brain::Octez(_) => false,
        }
    }

    /// Whether a trigger is switched on.
    pub fn trigger_enabled(&self, kind: TriggerKind) -> bool {
        self.switches[kind as usize]
    }

    /// Our own points learned so far.
    pub fn own_points(&self) -> &[SocketAddr] {
        &self.own_points
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    // ----- outputs -------------------------------------------------------------------

    /// Starts (or stops) queueing [`Event`]s for [`poll_event`](Self::poll_event). Off by
    /// default: a simulator with a core per node reads none.
    pub fn set_events(&mut self, enabled: bool) {
        self.events = enabled.then(VecDeque::new);
    }

    /// The next event, if events are on. At most [`MAX_QUEUED_EVENTS`] wait; older ones
    /// are dropped and counted ([`events_dropped`](Self::events_dropped)).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.as_mut()?.pop_front()
    }

    /// Events dropped because nobody read them in time.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn emit(&mut self, event: impl FnOnce() -> Event) {
        if let Some(q) = &mut self.events {
            if q.len() >= MAX_QUEUED_EVENTS {
                q.pop_front();
                self.events_dropped += 1;
            }
            q.push_back(event());
        }
    }

    fn dial_ended(&mut self, point: SocketAddr, outcome: DialEnd, at: Time) {
        self.emit(|| Event::DialEnded { at, point, outcome });
    }

    /// Counts a dial's outcome (exactly once per dial) and tells observers.
    fn count_dial(&mut self, point: SocketAddr, outcome: DialEnd, at: Time) {
        let d = &mut self.stats.dials;
        let counter = match outcome {
            DialEnd::Succeeded => &mut d.succeeded,
            DialEnd::Refused => &mut d.refused,
            DialEnd::TimedOut => &mut d.timed_out,
            DialEnd::Failed => &mut d.failed,
            DialEnd::Protocol => &mut d.protocol,
            DialEnd::AlreadyConnected => &mut d.already_connected,
            DialEnd::Myself => &mut d.myself,
            DialEnd::Dropped => &mut d.dropped,
            DialEnd::Cancelled => &mut d.cancelled,
            DialEnd::WrongPeer => &mut d.wrong_peer,
            DialEnd::Offline => &mut d.offline,
        };
        *counter += 1;
        self.dial_ended(point, outcome, at);
    }

    /// Tells observers a connection ended.
    fn disconnected(&mut self, conn: ConnId, meta: ConnMeta, ended: Ended, at: Time) {
        if meta.owed_answer {
            self.owed_answers -= 1;
        }
        if self.events.is_some() {
            let point = meta.point;
            let peer = meta.peer;
            self.emit(|| Event::Disconnected {
                at,
                conn,
                point,
                peer,
                direction: meta.direction,
                ended,
            });
        }
    }

    /// The next action to carry out. Drain after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever.
    pub fn next_deadline(&self) -> Option<Time> {
        if self.stopped {
            return None;
        }
        let (m, d) = match &self.brain {
            Brain::Peerkeeper { m, d } => (m.next_deadline(&self.pool), d.next_deadline()),
            Brain::Octez(o) => (o.next_deadline(&self.pool), None),
        };
        [m, d, self.primary_deadline(), self.next_exploration]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- inputs from the embedding node ---------------------------------------------

    /// The point `point` (a configured one: bootstrap or trusted) must prove the peer id
    /// `peer` in its handshake. A dial there that reaches another key is dropped and
    /// counted as [`DialEnd::WrongPeer`], and the point backs off as after any failed
    /// dial (no greylisting: the key may have changed honestly). Returns `false`, and
    /// expects nothing, when [`MAX_EXPECTED_PEERS`] points already have an expectation.
    pub fn expect_peer(&mut self, point: SocketAddr, peer: PeerId) -> bool {
        let point = canonical(point);
        if self.expected.len() >= MAX_EXPECTED_PEERS && !self.expected.contains_key(&point) {
            return false;
        }
        self.expected.insert(point, peer);
        true
    }

    /// The peer id `point` must prove, if configured.
    pub fn expected_peer(&self, point: &SocketAddr) -> Option<PeerId> {
        self.expected.get(&canonical(*point)).copied()
    }

    /// Learns points from this node's operator or own sources. Trusted and bootstrap
    /// points are the operator's: only an undialable address (port 0, not unicast) is
    /// dropped. Points of other kinds pass the [`intake`] rule as coming from this node.
    /// Returns how many were new.
    pub fn add_points(&mut self, points: &[SocketAddr], source: Source, now: Time) -> usize {
        self.tick(now);
        let new = match source {
            Source::Trusted | Source::Bootstrap => {
                let mut new = 0;
                for p in points {
                    let p = canonical(*p);
                    if p.port() == 0 || scope(p.ip()).is_none() || self.own_points.contains(&p) {
                        continue;
                    }
                    if self.pool.add_point(p, source, now) == Added::New {
                        new += 1;
                    }
                }
                new
            }
            _ => self.intake(points, source, None, now),
        };
        self.settle(now);
        new
    }

    /// Records one of our own addresses (say, the one we listen on): never dialed, never
    /// accepted from peers.
    pub fn add_own_point(&mut self, point: SocketAddr) {
        let point = canonical(point);
        self.pool.forget(point);
        if !self.own_points.contains(&point) {
            if self.own_points.len() >= MAX_OWN_POINTS {
                self.own_points.remove(0);
            }
            self.own_points.push(point);
        }
    }

    /// The pool as a [`Snapshot`] at `now` (what a restarted node should know; see
    /// [`crate::pool::snapshot`]): points, bans, and the outbound peers as anchors. Pure:
    /// the shell writes it ([`crate::store::PoolStore`]).
    pub fn snapshot(&self, now: Time) -> Snapshot {
        let mut snap = self.pool.snapshot(now.max(self.clock));
        snap.points.retain(|p| !self.own_points.contains(&p.addr));
        snap
    }

    /// Restores a saved pool at `now` (call it before [`start`](Self::start), with the
    /// snapshot aged to now: [`Snapshot::aged`]), then dials its anchors at once, before
    /// any other candidate, within `max_concurrent_dials` and `max_connections`. The
    /// config's trusted points stay trusted whatever the snapshot says; undialable
    /// addresses and our own points are skipped. Returns what was restored and how many
    /// anchors are dialed.
    pub fn restore(&mut self, snapshot: &Snapshot, now: Time) -> (Restored, usize) {
        self.tick(now);
        let mut snap = snapshot.clone();
        snap.points.retain(|p| {
            canonical(p.addr) == p.addr
                && scope(p.addr.ip()).is_some()
                && !self.own_points.contains(&p.addr)
        });
        snap.anchors.retain(|a| {
            a.peer != self.me && canonical(a.addr) == a.addr && !self.own_points.contains(&a.addr)
        });
        let restored = self.pool.restore(&snap, now);
        let mut dialed = 0;
        if !self.config.defences.anchors {
            snap.anchors.clear();
        }
        for a in snap.anchors.iter().take(crate::pool::snapshot::MAX_ANCHORS) {
            if self.stopped
                || self.pool.dialing_count() >= self.config.max_concurrent_dials
                || self.pool.active_count() + self.pool.dialing_count()
                    >= self.config.max_connections
            {
                break;
            }
            if self.pool.connected_point_of(a.peer).is_none() && self.try_dial(a.addr, now) {
                dialed += 1;
            }
        }
        self.settle(now);
        (restored, dialed)
    }

    /// Groups peers by autonomous system ([`crate::pool::AsMap`], see
    /// [`crate::pool::Pool::set_asmap`]); `None`: by /16 (/32). Call it before
    /// [`restore`](Self::restore) and [`start`](Self::start).
    pub fn set_asmap(&mut self, map: Option<Arc<crate::pool::AsMap>>) {
        self.pool.set_asmap(map);
    }

    /// Activation: the first maintenance cycle runs now.
    pub fn start(&mut self, now: Time) {
        self.tick(now);
        self.started = true;
        self.schedule_exploration(now);
        // As Bitcoin Core's extra block-relay peer: the first swap one interval after the
        // start, not while the overlay forms.
        self.last_swap_exploration = Some(now);
        self.run_brain(now, |b, pool, rng, out| match b {
            Brain::Peerkeeper { m, .. } => m.wake(WakeReason::Activation, now, pool, rng, out),
            Brain::Octez(o) => o.wake(WakeReason::Activation, now, pool, rng, out),
        });
        self.settle(now);
    }

    /// Asks for a maintenance cycle. Returns a ticket: the first
    /// [`Action::CycleEnded`] whose `covers` is at least the ticket reports a cycle that
    /// began at or after this call. Hints coalesce: many calls during one cycle make one
    /// more cycle.
    pub fn maintain(&mut self, now: Time) -> u64 {
        self.tick(now);
        self.tickets += 1;
        let ticket = self.tickets;
        self.run_brain(now, |b, pool, rng, out| match b {
            Brain::Peerkeeper { m, .. } => m.wake(WakeReason::Maintain, now, pool, rng, out),
            Brain::Octez(o) => o.wake(WakeReason::Maintain, now, pool, rng, out),
        });
        self.settle(now);
        ticket
    }

    /// Testing API: switches a trigger off (the core no longer reacts to it) or on.
    pub fn set_trigger(&mut self, kind: TriggerKind, enabled: bool) {
        self.switches[kind as usize] = enabled;
    }

    /// Testing API: switches the maintenance idle timer off or on.
    pub fn set_idle_timer(&mut self, enabled: bool, now: Time) {
        self.tick(now);
        match &mut self.brain {
            Brain::Peerkeeper { m, .. } => m.set_idle_timer(enabled, now),
            Brain::Octez(o) => o.set_idle_timer(enabled, now),
        }
    }

    /// The node stops: every dial in flight is cancelled (its point untouched), every
    /// connection closed ([`Action::Close`] with [`CloseReason::Shutdown`]); later inputs
    /// are ignored.
    pub fn shutdown(&mut self, now: Time) {
        self.tick(now);
        let dialing: Vec<SocketAddr> = self.pool.dialing().collect();
        for p in dialing {
            if self.pool.end_dial(p, false, now, &mut self.rng) {
                self.stats.dials.cancelled += 1;
                self.stats.dials.in_flight -= 1;
                self.dial_ended(p, DialEnd::Cancelled, now);
            }
        }
        self.swaps.clear();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.close(c, CloseReason::Shutdown, now);
        }
        self.pool.take_changes();
        self.stopped = true;
    }

    // ----- inputs from the network ----------------------------------------------------

    /// An inbound connection completed its handshake: admit it (registered as `conn`) or
    /// refuse it (with points when full). The one admission rule; see the module docs.
    pub fn handle_inbound(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        hello: Hello,
        now: Time,
    ) -> Admission {
        let refuse = |reason| Admission::Refuse {
            reason,
            points: Vec::new(),
        };
        if self.stopped {
            return refuse(RefuseReason::Full);
        }
        self.tick(now);
        let ip = canonical_ip(remote.ip());
        if hello.peer == self.me {
            self.stats.admission.refused_myself += 1;
            if hello.listen_port != 0 {
                self.add_own_point(SocketAddr::new(ip, hello.listen_port));
            }
            return refuse(RefuseReason::Myself);
        }
        // A handshake reached us: the network works.
        self.network_reached(now);
        if hello.listen_port == 0 {
            // An undialable point: not a node of this protocol.
            self.handle_violation(Offender::Remote(remote), now);
            return refuse(RefuseReason::Greylisted);
        }
        let point = SocketAddr::new(ip, hello.listen_port);
        let greylisted = self.pool.is_ip_greylisted(ip, now)
            || self
                .pool
                .get(&point)
                .is_some_and(|p| p.state == PointState::Greylisted && p.next_dial > now);
        if greylisted {
            self.stats.admission.refused_greylisted += 1;
            return refuse(RefuseReason::Greylisted);
        }
        // A configured point that must prove a key (`KEY@HOST:PORT`): another key claiming
        // it is an impersonator, whatever else it could be admitted as.
        if self.expected.get(&point).is_some_and(|k| *k != hello.peer) {
            self.stats.admission.refused_wrong_peer += 1;
            return refuse(RefuseReason::BadAuth);
        }
        let tracked = self
            .sets
            .acceptable(hello.peer, ip, self.config.peer_sets.check_ip);
        if self.config.peer_sets.only && !tracked && !self.pool.is_admitted(&point) {
            self.stats.admission.refused_untracked += 1;
            return refuse(RefuseReason::PrivateMode);
        }
        if self.config.private_mode && !tracked && !self.pool.is_admitted(&point) {
            self.stats.admission.refused_private += 1;
            return refuse(RefuseReason::PrivateMode);
        }
        // One host (an IPv4 address, an IPv6 /64: what one customer is given) holds at most
        // a few inbound slots, whatever keys and ports it claims. Loopback and private
        // addresses are exempt (every process of a machine, every node of a LAN shares
        // them), and so are trusted, protected and tracked peers.
        if self.config.policy == Policy::Peerkeeper
            && scope(ip) == Some(intake::Scope::Public)
            && !tracked
            && !self.pool.is_protected(&point)
            && self.inbound_from(ip) >= MAX_INBOUND_PER_ADDRESS
        {
            self.stats.admission.refused_per_address += 1;
            let points = self.sample_for(point, self.refusal_size());
            return Admission::Refuse {
                reason: RefuseReason::Full,
                points,
            };
        }
        // One network group (/16, /32, or AS) holds at most `inbound_per_group` inbound
        // slots, with the same exemptions.
        if self.config.policy == Policy::Peerkeeper
            && scope(ip) == Some(intake::Scope::Public)
            && !tracked
            && !self.pool.is_protected(&point)
            && self.inbound_from_group(&point) >= self.config.inbound_per_group()
        {
            self.stats.admission.refused_per_group += 1;
            let points = self.sample_for(point, self.refusal_size());
            return Admission::Refuse {
                reason: RefuseReason::Full,
                points,
            };
        }
        // A dialer is alive and looking for peers: remember it, and tell the next one.
        self.note_dialer(point, now);
        if let Some(old_point) = self.pool.connected_point_of(hello.peer) {
            let old = *self
                .pool
                .connection(&old_point)
                .expect("a connected peer has a connection");
            if !new_connection_wins(self.me, hello.peer, Some(old.direction), Direction::Inbound) {
                self.stats.admission.refused_duplicate += 1;
                return refuse(RefuseReason::AlreadyConnected);
            }
            self.close(old.id, CloseReason::Duplicate, now);
        }
        if self.pool.connection(&point).is_some() {
            // Another peer already holds this point (it claims a port it may not own).
            self.stats.admission.refused_duplicate += 1;
            return refuse(RefuseReason::AlreadyConnected);
        }
        let active = self.pool.active_count();
        let full = match self.config.policy {
            // octez's older rule: one random extra slot; the too-many trigger trims back.
            Policy::Octez => active >= self.config.max_connections + self.rng.gen_range(0..2),
            // The inbound budget keeps the outbound room free: a stranger past it gets a
            // place only by taking another inbound one's (protected peers are let in
            // beyond it).
            Policy::Peerkeeper => {
                let over_inbound = !self.pool.is_protected(&point)
                    && self.pool.inbound_count() >= self.config.inbound_budget();
                (active >= self.config.max_connections || over_inbound) && !self.make_room(now)
            }
        };
        // A primary of a tracked set gets in by closing an unprotected connection.
        let full = full && !(self.sets.is_primary(hello.peer) && self.evict_for_primary(now));
        if full {
            self.stats.admission.refused_full += 1;
            let points = self.sample_for(point, self.refusal_size());
            self.settle(now);
            return Admission::Refuse {
                reason: RefuseReason::Full,
                points,
            };
        }
        match self
            .pool
            .connection_opened(conn, point, hello.peer, Direction::Inbound, now)
        {
            Ok(_) => {
                self.conns
                    .insert(conn, ConnMeta::new(point, hello.peer, Direction::Inbound));
                self.note_connection(Direction::Inbound, now);
                self.stats.admission.accepted += 1;
                let peer = hello.peer;
                self.emit(|| Event::Connected {
                    at: now,
                    conn,
                    point,
                    peer,
                    direction: Direction::Inbound,
                });
                self.settle(now);
                Admission::Accept
            }
            Err(Refused::Greylisted) => {
                self.stats.admission.refused_greylisted += 1;
                refuse(RefuseReason::Greylisted)
            }
            Err(Refused::Full) => {
                self.stats.admission.refused_full += 1;
                let points = self.sample_for(point, self.refusal_size());
                Admission::Refuse {
                    reason: RefuseReason::Full,
                    points,
                }
            }
            Err(_) => {
                self.stats.admission.refused_duplicate += 1;
                refuse(RefuseReason::AlreadyConnected)
            }
        }
    }

    /// Inbound connections from `point`'s network group ([`Pool::group`]).
    fn inbound_from_group(&self, point: &SocketAddr) -> usize {
        let g = self.pool.group(point);
        self.pool
            .connections()
            .filter(|(a, c)| c.direction == Direction::Inbound && self.pool.group(a) == g)
            .count()
    }

    /// Inbound connections from `ip`'s host (its IPv4 address, or its IPv6 /64).
    fn inbound_from(&self, ip: IpAddr) -> usize {
        let key = crate::pool::greylist_key(ip);
        self.pool
            .connections()
            .filter(|(a, c)| {
                c.direction == Direction::Inbound && crate::pool::greylist_key(a.ip()) == key
            })
            .count()
    }

    /// A dial started by [`Action::Dial`] ended. Every attempt ends in exactly one named
    /// outcome ([`DialStats`]); a failure that is the point's fault backs it off, one
    /// that is not (ourselves, already connected, cancelled) leaves it untouched. For a
    /// completed handshake, says whether to keep the connection.
    pub fn handle_dial_result(
        &mut self,
        point: SocketAddr,
        result: DialResult,
        now: Time,
    ) -> DialVerdict {
        self.tick(now);
        let point = canonical(point);
        if self.stopped || !self.pool.get(&point).is_some_and(|p| p.dialing) {
            // No such dial (cancelled at shutdown, or a driver's mistake).
            return DialVerdict::Drop(CloseReason::Shutdown);
        }
        let replaces = self.swaps.remove(&point);
        let mut exploration_swap = self.exploring_swap == Some(point);
        if exploration_swap {
            self.exploring_swap = None;
        }
        if matches!(
            result,
            DialResult::Connected { .. }
                | DialResult::Refused { .. }
                | DialResult::Failed(DialFailure::Refused)
        ) {
            self.network_reached(now);
        }
        let offline = matches!(
            result,
            DialResult::Failed(DialFailure::Io | DialFailure::Timeout)
        ) && self.dial_unreached(point, now);
        let (outcome, verdict) = match result {
            DialResult::Connected { peer, .. }
                if self.expected.get(&point).is_some_and(|e| *e != peer) =>
            {
                // Not the key configured for this point: an honest address whose key
                // changed, or somebody else there. A failed dial, nothing more.
                self.pool.end_dial(point, true, now, &mut self.rng);
                self.count_dial(point, DialEnd::WrongPeer, now);
                (DialOutcome::Failed, DialVerdict::Drop(CloseReason::Lost))
            }
            DialResult::Connected { conn, peer } => {
                self.pool.end_dial(point, false, now, &mut self.rng);
                self.dial_connected(point, conn, peer, &mut exploration_swap, now)
            }
            DialResult::Refused { reason, points } => {
                if !points.is_empty() && !self.closed_network() {
                    let n = points.len().min(MAX_REFUSAL_POINTS);
                    self.intake(&points[..n], Source::PeerSharing, Some(point), now);
                }
                let failed = !matches!(
                    reason,
                    RefuseReason::Myself | RefuseReason::AlreadyConnected
                );
                self.pool.end_dial(point, failed, now, &mut self.rng);
                let outcome = match reason {
                    RefuseReason::Myself => {
                        self.count_dial(point, DialEnd::Myself, now);
                        self.add_own_point(point);
                        DialOutcome::Cancelled
                    }
                    RefuseReason::AlreadyConnected => {
                        self.count_dial(point, DialEnd::AlreadyConnected, now);
                        DialOutcome::Cancelled
                    }
                    _ => {
                        self.count_dial(point, DialEnd::Refused, now);
                        DialOutcome::Failed
                    }
                };
                (outcome, DialVerdict::Drop(CloseReason::Lost))
            }
            DialResult::Failed(_) if offline => {
                // Offline: nobody is reachable, so it says nothing against the point.
                let until = self.offline_until(now);
                self.pool.end_dial_offline(point, until);
                if self.parked.len() < self.pool.limits().max_points {
                    self.parked.insert(point);
                }
                self.count_dial(point, DialEnd::Offline, now);
                (DialOutcome::Failed, DialVerdict::Drop(CloseReason::Lost))
            }
            DialResult::Failed(f) => {
                let failed = f != DialFailure::Cancelled;
                if f == DialFailure::Protocol {
                    self.network_reached(now);
                }
                self.pool.end_dial(point, failed, now, &mut self.rng);
                let outcome = match f {
                    DialFailure::Timeout => {
                        self.count_dial(point, DialEnd::TimedOut, now);
                        DialOutcome::Failed
                    }
                    DialFailure::Io | DialFailure::Refused => {
                        self.count_dial(point, DialEnd::Failed, now);
                        DialOutcome::Failed
                    }
                    DialFailure::Protocol => {
                        self.count_dial(point, DialEnd::Protocol, now);
                        self.handle_violation(Offender::Point(point), now);
                        DialOutcome::Failed
                    }
                    DialFailure::Cancelled => {
                        self.count_dial(point, DialEnd::Cancelled, now);
                        DialOutcome::Cancelled
                    }
                };
                (outcome, DialVerdict::Drop(CloseReason::Lost))
            }
        };
        self.stats.dials.in_flight -= 1;
        if let (Some(old), DialVerdict::Keep) = (replaces, verdict) {
            // A swap: the new connection replaces the one we gave away.
            if let Some(c) = self.conn_at(&old) {
                self.stats.closed.swapped += 1;
                self.close(c, CloseReason::Swapped, now);
            }
        }
        // Before maintenance looks at the count: a swap does not grow it. Only for a
        // connection kept, and only above the trim target (the count may have fallen
        // while the dial lasted: then the exploration simply adds one).
        if exploration_swap
            && verdict == DialVerdict::Keep
            && self.pool.active_count() > self.bounds.max_target
        {
            self.swap_out_for(point, now);
        }
        self.run_brain(now, |b, pool, rng, out| match b {
            Brain::Peerkeeper { m, .. } => m.dial_finished(outcome, now, pool, rng, out),
            Brain::Octez(o) => o.dial_finished(outcome, now, pool, rng, out),
        });
        self.settle(now);
        verdict
    }

    /// An exploration dial at the trim target connected to `new`: one of our other
    /// outbound connections is closed (sent points first), so the exploration replaces a
    /// connection rather than adding one. Among those a trim may cut (never a protected
    /// or trusted one, never below the outbound floor `min_outbound` nor a kind's floor),
    /// the one least recently reported useful by the application, as Bitcoin Core evicts
    /// the extra peer that gave it the least; without reports, the trim's first choice
    /// (the most represented group first). Whether one was closed.
    fn swap_out_for(&mut self, new: SocketAddr, now: Time) -> bool {
        let grace = self.config.newcomer_grace;
        let cuttable = trim_for(
            &self.pool,
            &self.config,
            self.pool.outbound_count(),
            now - grace,
            |a, c| *a != new && c.direction == Direction::Outbound,
            &mut self.rng,
        );
        // The first of the least recently useful (never useful first).
        let Some(victim) = cuttable
            .iter()
            .min_by_key(|a| self.pool.connection(a).and_then(|c| c.last_useful))
            .copied()
        else {
            return false;
        };
        let Some(conn) = self.conn_at(&victim) else {
            return false;
        };
        self.stats.closed.swapped += 1;
        self.farewell_and_close(conn, victim, now);
        true
    }

    /// The offline rule, on a dial that reached nobody (an I/O error or a timeout): whether
    /// the node is offline, so that the failure does not count against the point. The
    /// node goes offline on the [`OFFLINE_AFTER`]-th such dial in a row with no connection
    /// open; the failures counted in that run are then taken back.
    fn dial_unreached(&mut self, point: SocketAddr, now: Time) -> bool {
        if self.config.policy == Policy::Octez {
            return false; // the octez model backs off as octez does
        }
        if self.pool.active_count() > 0 {
            self.remember_unreached(point);
            return false;
        }
        if self.offline_since.is_none() {
            if self.unreached.len() + 1 < OFFLINE_AFTER {
                self.remember_unreached(point);
                return false;
            }
            self.offline_since = Some(now);
            let until = self.offline_until(now);
            for p in std::mem::take(&mut self.unreached) {
                if self.pool.forgive_failure(p, until)
                    && self.parked.len() < self.pool.limits().max_points
                {
                    self.parked.insert(p);
                }
            }
        }
        true
    }

    fn remember_unreached(&mut self, point: SocketAddr) {
        if self.unreached.len() + 1 >= OFFLINE_AFTER {
            self.unreached.pop_front();
        }
        self.unreached.push_back(point);
    }

    /// The offline rule's retry: when a point that failed at `now` while offline may be
    /// dialed again. It waits one probe interval ([`probe_interval`](Self::probe_interval))
    /// per [`OFFLINE_PROBES`] points waiting, so the rate of dials while offline stays
    /// bounded, rounded up to a multiple of the interval: the probes come in batches with
    /// quiet gaps between them, in which a maintenance cycle can end (a steady trickle of
    /// redials would keep one running).
    fn offline_until(&self, now: Time) -> Time {
        let every_ms = self.probe_interval(now);
        let waves =
            u64::try_from(self.parked.len().div_ceil(OFFLINE_PROBES).max(1)).unwrap_or(u64::MAX);
        let earliest = now
            .as_millis()
            .saturating_add(every_ms.saturating_mul(waves));
        Time::from_millis(earliest.div_ceil(every_ms).saturating_mul(every_ms))
    }

    /// The offline rule's probe interval at `now`, in milliseconds: [`OFFLINE_FIRST_PROBE`]
    /// when the node has just gone offline, doubled for every doubling of the time it has
    /// been offline, up to the longer of [`OFFLINE_RETRY`] and twice `dial_timeout`. A
    /// node whose network is down for a moment (a laptop waking, a container whose
    /// network comes up after the process) finds it again within about as long as it was
    /// gone; one offline for long probes at the slow rate.
    fn probe_interval(&self, now: Time) -> u64 {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let last = ms(OFFLINE_RETRY.max(self.config.dial_timeout.saturating_mul(2))).max(1);
        let offline_for = self
            .offline_since
            .map_or(0, |since| now.as_millis().saturating_sub(since.as_millis()));
        let mut every = ms(OFFLINE_FIRST_PROBE).clamp(1, last);
        while every < last && every.saturating_mul(2) <= offline_for {
            every = every.saturating_mul(2);
        }
        every.min(last)
    }

    /// The offline rule: something answered (a dial reached a peer, or a peer's handshake
    /// reached us). The node is online; the points that failed while it was offline are
    /// dialable at once.
    fn network_reached(&mut self, now: Time) {
        self.unreached.clear();
        self.offline_since = None;
        for p in std::mem::take(&mut self.parked) {
            self.pool.release(p, now);
        }
    }

    /// Whether the node counts itself offline (the offline rule: no connection, and the
    /// last [`OFFLINE_AFTER`] dials reached nobody), and since when.
    pub fn offline_since(&self) -> Option<Time> {
        self.offline_since
    }

    // ----- the saved pool --------------------------------------------------------------

    /// When a shell that keeps the pool on disk should save it next, because the pool
    /// changed materially since the last save ([`saved`](Self::saved)): the first
    /// connections (up to `min_threshold`), a new anchor (an outbound connection among
    /// the first [`MAX_ANCHORS`](crate::pool::snapshot::MAX_ANCHORS)), or
    /// [`SAVE_AFTER_NEW_POINTS`] new points. Debounced: [`SAVE_DELAY`] after the first
    /// unsaved change, and never sooner than [`SAVE_MIN_INTERVAL`] after the last save.
    /// `None`: nothing worth a save now (a shell's periodic save catches the rest). Not
    /// a decision of the node's: traces and replays ignore it.
    pub fn save_due(&self) -> Option<Time> {
        let since = self.unsaved_since?;
        let debounced = since + SAVE_DELAY;
        Some(match self.saved_at {
            Some(last) => debounced.max(last + SAVE_MIN_INTERVAL),
            None => debounced,
        })
    }

    /// The shell took a snapshot to save at `now` ([`snapshot`](Self::snapshot)): the
    /// changes so far are saved.
    pub fn saved(&mut self, now: Time) {
        self.unsaved_since = None;
        self.saved_at = Some(now.max(self.clock));
        self.new_points_at_save = self.stats.points.new;
    }

    /// The pool changed materially at `now` (see [`save_due`](Self::save_due)).
    fn unsaved(&mut self, now: Time) {
        self.unsaved_since.get_or_insert(now);
    }

    /// A connection opened: the first ones, and new anchors, are worth a save soon.
    fn note_connection(&mut self, direction: Direction, now: Time) {
        let first = self.pool.active_count() <= self.bounds.min_threshold;
        let anchor = direction == Direction::Outbound
            && self
                .conns
                .values()
                .filter(|c| c.direction == Direction::Outbound)
                .count()
                <= crate::pool::snapshot::MAX_ANCHORS;
        if first || anchor {
            self.unsaved(now);
        }
    }

    /// A dial completed its handshake: whether to keep the connection. `swap`: an
    /// exploration swap ([`Self::explore`]); if the node is full, its outbound connection
    /// to give up is closed here, first, and `swap` is cleared (the swap is done).
    fn dial_connected(
        &mut self,
        point: SocketAddr,
        conn: ConnId,
        peer: PeerId,
        swap: &mut bool,
        now: Time,
    ) -> (DialOutcome, DialVerdict) {
        if peer == self.me {
            self.count_dial(point, DialEnd::Myself, now);
            self.add_own_point(point);
            return (
                DialOutcome::Cancelled,
                DialVerdict::Drop(CloseReason::Duplicate),
            );
        }
        let greylisted = self.pool.is_ip_greylisted(point.ip(), now)
            || self
                .pool
                .get(&point)
                .is_some_and(|p| p.state == PointState::Greylisted && p.next_dial > now);
        if greylisted {
            self.count_dial(point, DialEnd::Dropped, now);
            return (
                DialOutcome::Cancelled,
                DialVerdict::Drop(CloseReason::ProtocolViolation),
            );
        }
        if let Some(old_point) = self.pool.connected_point_of(peer) {
            let old = *self
                .pool
                .connection(&old_point)
                .expect("a connected peer has a connection");
            if !new_connection_wins(self.me, peer, Some(old.direction), Direction::Outbound) {
                self.count_dial(point, DialEnd::AlreadyConnected, now);
                return (
                    DialOutcome::Cancelled,
                    DialVerdict::Drop(CloseReason::Duplicate),
                );
            }
            self.close(old.id, CloseReason::Duplicate, now);
        }
        if self.pool.connection(&point).is_some() {
            self.count_dial(point, DialEnd::AlreadyConnected, now);
            return (
                DialOutcome::Cancelled,
                DialVerdict::Drop(CloseReason::Duplicate),
            );
        }
        if self.config.peer_sets.only
            && !self.sets.is_tracked(peer)
            && !self.pool.is_trusted(&point)
        {
            // Peer sets only: a dial that left before its peer was untracked.
            self.count_dial(point, DialEnd::Dropped, now);
            return (
                DialOutcome::Cancelled,
                DialVerdict::Drop(CloseReason::Untracked),
            );
        }
        if self
            .sets
            .address_of(peer)
            .is_some_and(|tracked| tracked != point)
        {
            // A stale dial: the peer's tracked address changed meanwhile (an overwrite).
            self.count_dial(point, DialEnd::Dropped, now);
            if !self.pool.is_trusted(&point) {
                self.pool.forget(point);
            }
            return (
                DialOutcome::Cancelled,
                DialVerdict::Drop(CloseReason::AddressChanged),
            );
        }
        if self.pool.active_count() >= self.config.max_connections
            && !(self.sets.is_primary(peer) && self.evict_for_primary(now))
        {
            if *swap && self.swap_out_for(point, now) {
                // A full node's exploration swap: the connection given up made the room.
                *swap = false;
            } else {
                // Inbound connections filled us while we dialed.
                self.count_dial(point, DialEnd::Dropped, now);
                return (
                    DialOutcome::Cancelled,
                    DialVerdict::Drop(CloseReason::TooManyConnections),
                );
            }
        }
        match self
            .pool
            .connection_opened(conn, point, peer, Direction::Outbound, now)
        {
            Ok(_) => {
                self.conns
                    .insert(conn, ConnMeta::new(point, peer, Direction::Outbound));
                self.note_connection(Direction::Outbound, now);
                self.count_dial(point, DialEnd::Succeeded, now);
                self.emit(|| Event::Connected {
                    at: now,
                    conn,
                    point,
                    peer,
                    direction: Direction::Outbound,
                });
                (DialOutcome::Succeeded, DialVerdict::Keep)
            }
            Err(_) => {
                self.count_dial(point, DialEnd::Dropped, now);
                (
                    DialOutcome::Cancelled,
                    DialVerdict::Drop(CloseReason::ProtocolViolation),
                )
            }
        }
    }

    /// Points arrived on a connection (an answer to our request, or an advertisement).
    /// One answer per request of ours is welcome (an empty one leaves the request open for
    /// the answer owed later), and at most one unsolicited
    /// advertisement per `peer_ask_interval / 4`; the rest are ignored and counted. With
    /// `defences.limit_adverts` (the default) an advertisement's points are also taken
    /// from a per-connection budget (a token bucket, as Bitcoin Core's address rate
    /// limit): `discovery.answer_size` at first, refilled at [`ADVERT_POINTS_PER_MINUTE`]
    /// up to `answer_size`; the points past it are ignored (counted in
    /// `unsolicited_ignored` once per advertisement cut). A message over
    /// [`MAX_POINTS_PER_MESSAGE`](crate::MAX_POINTS_PER_MESSAGE) is a violation. Each
    /// point passes the [`intake`] rule, with the connection's address as the sender.
    pub fn handle_points(&mut self, conn: ConnId, points: &[SocketAddr], now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        if points.len() > crate::MAX_POINTS_PER_MESSAGE {
            self.handle_violation(Offender::Conn(conn), now);
            return;
        }
        let gap = self.config.discovery.peer_ask_interval / 4;
        let Some(meta) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut points = points;
        if meta.awaiting_answer {
            // An empty answer leaves the request open: a peer with nothing to share yet
            // sends the first points it can as the answer it owes us.
            meta.awaiting_answer = points.is_empty();
        } else {
            if meta.last_unsolicited.is_some_and(|t| now < t + gap) {
                self.stats.points.unsolicited_ignored += 1;
                return;
            }
            if self.config.defences.limit_adverts {
                let cap = 1000 * self.config.discovery.answer_size as u64;
                let refill = meta.last_unsolicited.map_or(cap, |t| {
                    now.saturating_since(t).as_millis() as u64 * ADVERT_POINTS_PER_MINUTE / 60
                });
                // A first advertisement finds the bucket full.
                meta.advert_tokens = meta.advert_tokens.saturating_add(refill).min(cap);
                let take = points.len().min((meta.advert_tokens / 1000) as usize);
                meta.advert_tokens -= 1000 * take as u64;
                if take < points.len() {
                    self.stats.points.unsolicited_ignored += 1;
                }
                points = &points[..take];
            }
            meta.last_unsolicited = Some(now);
        }
        if self.config.private_mode {
            // A private node learns nothing from the network.
            return;
        }
        let sender = meta.point;
        self.intake(points, Source::PeerSharing, Some(sender), now);
        self.settle(now);
    }

    /// Points from one of the node's own sources ([`Action::PollSources`]), of kind
    /// [`Source::External`].
    pub fn handle_source_points(&mut self, points: &[SocketAddr], now: Time) {
        self.handle_source_points_of(Source::External, points, now);
    }

    /// Points from one of the node's own sources, of the kind the source reports
    /// ([`PointSource::kind`](crate::node::PointSource::kind)): external for a ledger or
    /// DNS seeds, trusted for a local-roots file, bootstrap for a seed list. Trusted and
    /// bootstrap points are the operator's (see [`add_points`](Self::add_points)); a source
    /// cannot claim [`Source::Incoming`] (taken as external).
    pub fn handle_source_points_of(&mut self, kind: Source, points: &[SocketAddr], now: Time) {
        if self.stopped {
            return;
        }
        let kind = match kind {
            Source::Incoming => Source::External,
            k => k,
        };
        self.add_points(points, kind, now);
    }

    // ----- hooks for peer sets -----------------------------------------------------------

    /// Protects (or stops protecting) these points: a protected connection is never
    /// trimmed, never closed to make room, and a protected peer is admitted inbound beyond
    /// `max_inbound` ([`Pool::protect`]). The hook a peer-set module feeds with its
    /// primaries. Returns how many points could not be protected (the set is bounded).
    pub fn set_protected(&mut self, points: &[SocketAddr], on: bool) -> usize {
        points
            .iter()
            .filter(|p| !self.pool.protect(canonical(**p), on))
            .count()
    }

    /// Admits (or stops admitting) these points in private mode besides the trusted ones
    /// ([`Pool::admit`]): the hook a peer-set module feeds with its tracked peers. Returns
    /// how many could not be admitted (the set is bounded).
    pub fn set_admitted(&mut self, points: &[SocketAddr], on: bool) -> usize {
        points
            .iter()
            .filter(|p| !self.pool.admit(canonical(**p), on))
            .count()
    }

    /// A peer asks for points: answered with a sample (see the module docs) filtered by
    /// the relay rule for the peer's address, at most once per `peer_ask_interval / 4`,
    /// never in private mode. When there is nothing to share (a seed that has just
    /// started), the empty answer is followed by the first points that can be shared, as
    /// soon as they come (new points or connections), once: otherwise the asker, short of
    /// peers, would wait `peer_ask_interval` before asking again.
    pub fn handle_points_asked(&mut self, conn: ConnId, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        let gap = self.config.discovery.peer_ask_interval / 4;
        let private = self.closed_network();
        let Some(meta) = self.conns.get_mut(&conn) else {
            return;
        };
        if private || meta.last_answer.is_some_and(|t| now < t + gap) {
            self.stats.sharing.asks_ignored += 1;
            return;
        }
        meta.last_answer = Some(now);
        let point = meta.point;
        let size = self.answer_size();
        let points = self.sample_for(point, size);
        // Nothing to share yet (a seed that has just started): the asker would wait
        // `peer_ask_interval` before asking again, short of peers. It is owed the first
        // points we can share instead. An answer with points pays an earlier debt.
        let owed = points.is_empty() && self.config.policy == Policy::Peerkeeper;
        if let Some(meta) = self.conns.get_mut(&conn) {
            match (std::mem::replace(&mut meta.owed_answer, owed), owed) {
                (false, true) => self.owed_answers += 1,
                (true, false) => self.owed_answers -= 1,
                _ => {}
            }
        }
        self.stats.sharing.answers += 1;
        self.actions.push_back(Action::SendPoints { conn, points });
    }

    /// Sends the answers owed ([`ConnMeta::owed_answer`]) that can now carry points, in
    /// connection order.
    fn pay_owed_answers(&mut self) {
        if self.owed_answers == 0 {
            return;
        }
        let owed: Vec<(ConnId, SocketAddr)> = self
            .conns
            .iter()
            .filter(|(_, m)| m.owed_answer)
            .map(|(c, m)| (*c, m.point))
            .collect();
        let size = self.answer_size();
        for (conn, point) in owed {
            let points = self.sample_for(point, size);
            if points.is_empty() {
                continue;
            }
            if let Some(meta) = self.conns.get_mut(&conn) {
                meta.owed_answer = false;
            }
            self.owed_answers -= 1;
            self.stats.sharing.answers += 1;
            self.stats.sharing.deferred_answers += 1;
            self.actions.push_back(Action::SendPoints { conn, points });
        }
    }

    // ----- peer feedback -------------------------------------------------------------

    /// The application reports on a peer ([`feedback`]): its score, in `[-100, 100]`,
    /// moves by the report's weight ([`Report::weight`]) after decaying toward 0 with
    /// `feedback.half_life` since its last change. At or below
    /// `feedback.disconnect_below` its connection is closed
    /// ([`CloseReason::ProtocolViolation`]); at or below `feedback.ban_below`, or on a
    /// fatal report, its point is greylisted as for a protocol violation
    /// ([`handle_violation`](Self::handle_violation)). A useful report also protects the
    /// connection from inbound eviction, and a positive score puts the peer's point
    /// first among otherwise-equal candidates. Every change is an [`Event::Scored`].
    /// With `feedback.enabled = false` the report is counted and otherwise ignored.
    ///
    /// ```
    /// use peerkeeper::core::{Action, Admission, Hello, NodeCore, Report, Severity};
    /// use peerkeeper::pool::{CloseReason, ConnId, PeerId};
    /// use peerkeeper::{Config, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// core.start(Time::ZERO);
    /// let peer = PeerId::from_u64(2);
    /// let hello = Hello { peer, listen_port: 9000 };
    /// let a = core.handle_inbound(ConnId(1), "10.0.0.2:40000".parse().unwrap(), hello, Time::ZERO);
    /// assert_eq!(a, Admission::Accept);
    /// while core.poll_action().is_some() {}
    /// core.handle_report(peer, Report::Useful, Time::ZERO);
    /// assert_eq!(core.score(&peer), Some(5.0));
    /// core.handle_report(peer, Report::Misbehaved(Severity::High), Time::ZERO);
    /// core.handle_report(peer, Report::Misbehaved(Severity::Low), Time::ZERO);
    /// // -55: at or below disconnect_below (-50), the connection is closed.
    /// assert_eq!(core.score(&peer), Some(-55.0));
    /// assert!(std::iter::from_fn(|| core.poll_action()).any(|a| matches!(a,
    ///     Action::Close { conn: ConnId(1), reason: CloseReason::ProtocolViolation })));
    /// // Ten minutes later (the default half-life), half of it is left.
    /// assert_eq!(core.score_at(&peer, Time::from_millis(600_000)), Some(-27.5));
    /// ```
    pub fn handle_report(&mut self, peer: PeerId, report: Report, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        self.stats.feedback.reports[report.index()] += 1;
        if !self.config.feedback.enabled || peer == self.me {
            return;
        }
        let point = self.pool.connected_point_of(peer);
        let pool = &self.pool;
        let scored = self.scores.apply(peer, point, report, now, |p| {
            pool.connected_point_of(*p).is_some()
        });
        if let (Report::Useful, Some(p)) = (report, point) {
            self.pool.mark_useful(&p, now);
        }
        if let Some(p) = scored.point {
            let standing = match scored.after.milli() {
                0 => None,
                m => Some(m > 0),
            };
            self.pool.set_standing(p, standing);
        }
        let f = &self.config.feedback;
        let outcome = if scored.point.is_some()
            && (report == Report::Misbehaved(Severity::Fatal)
                || scored.after <= Score::from_points(f.ban_below))
        {
            ScoreOutcome::Banned
        } else if point.is_some() && scored.after <= Score::from_points(f.disconnect_below) {
            ScoreOutcome::Disconnected
        } else {
            ScoreOutcome::Kept
        };
        self.emit(|| Event::Scored {
            at: now,
            peer,
            point: scored.point,
            report,
            before: scored.before,
            score: scored.after,
            outcome,
        });
        match (outcome, scored.point) {
            (ScoreOutcome::Banned, Some(p)) => {
                self.stats.feedback.bans += 1;
                self.handle_violation(Offender::Point(p), now);
            }
            (ScoreOutcome::Disconnected, _) => {
                if let Some(conn) = point.and_then(|p| self.conn_at(&p)) {
                    self.stats.feedback.disconnects += 1;
                    self.stats.closed.violation += 1;
                    self.close(conn, CloseReason::ProtocolViolation, now);
                    self.settle(now);
                }
            }
            _ => {}
        }
    }

    /// The shell measured a round-trip time on a connection (a keep-alive and its answer):
    /// the core keeps a smoothed value per connection (`srtt = 7/8 srtt + 1/8 rtt`, as
    /// TCP's), and inbound eviction protects the lowest ([`crate::maintenance::evict`]).
    /// Unknown connections are ignored.
    ///
    /// ```
    /// use peerkeeper::core::{Admission, Hello, NodeCore};
    /// use peerkeeper::pool::{ConnId, PeerId};
    /// use peerkeeper::{Config, Time};
    /// use std::time::Duration;
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// let hello = Hello { peer: PeerId::from_u64(2), listen_port: 9000 };
    /// core.handle_inbound(ConnId(1), "10.0.0.2:40000".parse().unwrap(), hello, Time::ZERO);
    /// core.handle_rtt(ConnId(1), Duration::from_millis(80), Time::ZERO);
    /// core.handle_rtt(ConnId(1), Duration::from_millis(160), Time::ZERO);
    /// assert_eq!(core.rtt(ConnId(1)), Some(Duration::from_millis(90)));
    /// ```
    pub fn handle_rtt(&mut self, conn: ConnId, rtt: std::time::Duration, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        let Some(point) = self.conns.get(&conn).map(|m| m.point) else {
            return;
        };
        let sample = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX);
        let smoothed = match self.pool.connection(&point).and_then(|c| c.rtt_ms) {
            None => sample,
            Some(old) => ((u64::from(old) * 7 + u64::from(sample)) / 8) as u32,
        };
        self.pool.set_rtt(&point, smoothed);
    }

    /// A peer's feedback score now (at the latest time the core has seen), in
    /// `[-100, 100]`, if it has one: for an operator's peer listing.
    pub fn score(&self, peer: &PeerId) -> Option<f64> {
        self.score_at(peer, self.clock)
    }

    /// A peer's feedback score at `now` (decayed from its last change).
    pub fn score_at(&self, peer: &PeerId, now: Time) -> Option<f64> {
        self.scores
            .get(peer, now.max(self.clock))
            .map(Score::points)
    }

    /// The smoothed round-trip time of a connection, once the shell measured one
    /// ([`handle_rtt`](Self::handle_rtt)).
    pub fn rtt(&self, conn: ConnId) -> Option<std::time::Duration> {
        let point = self.conns.get(&conn)?.point;
        let ms = self.pool.connection(&point)?.rtt_ms?;
        Some(std::time::Duration::from_millis(u64::from(ms)))
    }

    /// A connection ended (the peer closed it, the network broke it, it timed out).
    /// Unknown or already closed connections are ignored.
    pub fn handle_closed(&mut self, conn: ConnId, now: Time) {
        self.connection_ended(conn, Ended::ByPeer, now);
    }

    /// The shell dropped a connection on its own (no keepalive within
    /// `keepalive_timeout`, or a peer that stopped reading): like
    /// [`handle_closed`](Self::handle_closed), but the close is ours, with `reason`.
    pub fn handle_dropped(&mut self, conn: ConnId, reason: CloseReason, now: Time) {
        self.connection_ended(conn, Ended::ByUs(reason), now);
    }

    /// A connection ended outside a decision of ours: closed by the peer or the network
    /// (`ByPeer`), or dropped by the shell (`ByUs`).
    fn connection_ended(&mut self, conn: ConnId, ended: Ended, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        let Some(meta) = self.conns.remove(&conn) else {
            return;
        };
        if self
            .pool
            .connection(&meta.point)
            .is_some_and(|c| c.id == conn)
        {
            self.pool.connection_closed(meta.point, now);
        }
        match ended {
            Ended::ByPeer => self.stats.closed.lost += 1,
            Ended::ByUs(_) => self.stats.closed.dropped += 1,
        }
        self.disconnected(conn, meta, ended, now);
        self.settle(now);
    }

    /// Someone broke the protocol. Evidence scopes the ban: a connection or a point is
    /// greylisted for `greylist_duration` (and its connection, if any, closed); each
    /// violation is also one strike against its address, which is greylisted itself (an
    /// IPv6 one with its /64, never loopback) only on [`crate::pool::IP_STRIKES`] from
    /// distinct sources ([`crate::pool::Pool::strike`]). An unauthenticated connection
    /// ([`Offender::Remote`]) punishes nobody but its own socket. Every violation is
    /// counted; a [`Event::Banned`] (and a ban in the stats) only when something is
    /// refused because of it.
    pub fn handle_violation(&mut self, who: Offender, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        let until = now + self.config.greylist_duration;
        let (point, source) = match who {
            Offender::Conn(conn) => match self.conns.get(&conn) {
                Some(m) => (Some(m.point), m.point),
                None => return,
            },
            Offender::Point(p) => (Some(canonical(p)), canonical(p)),
            Offender::Remote(r) => (None, canonical(r)),
            Offender::Ip(ip) => (None, SocketAddr::new(canonical_ip(ip), 0)),
        };
        self.stats.violations += 1;
        let point_banned = point
            .is_some_and(|p| self.pool.get(&p).is_some() || check_point(&p, None, true).is_ok());
        let whole_ip = self.pool.strike(source, now);
        if point_banned || whole_ip {
            self.stats.bans += 1;
            let point = point.filter(|_| point_banned);
            self.emit(|| Event::Banned {
                at: now,
                point,
                ip: source.ip(),
                whole_ip,
                until,
            });
        }
        let conn = match who {
            Offender::Conn(conn) => Some(conn),
            Offender::Point(_) => point.and_then(|p| self.conn_at(&p)),
            Offender::Remote(_) | Offender::Ip(_) => None,
        };
        if let Some(conn) = conn {
            self.stats.closed.violation += 1;
            self.close(conn, CloseReason::ProtocolViolation, now);
        }
        if let Some(p) = point.filter(|_| point_banned) {
            if self.pool.get(&p).is_none() {
                // Recorded first, so that the greylisting holds for a point never seen.
                self.pool.add_point(p, Source::Incoming, now);
            }
            self.pool.greylist(p, now);
        }
        self.settle(now);
    }

    /// A peer proposes a swap (the octez policy): if we accepted none within the swap
    /// linger and `point` is not connected, we dial it, tell the peer one of our other
    /// peers, and drop that one once the new connection is up. Ignored by the peerkeeper
    /// policy.
    pub fn handle_swap_request(&mut self, conn: ConnId, point: SocketAddr, now: Time) {
        if self.stopped || self.config.policy != Policy::Octez || self.config.private_mode {
            return;
        }
        self.tick(now);
        let Some(meta) = self.conns.get(&conn).copied() else {
            return;
        };
        let point = canonical(point);
        if self.last_swap.is_some_and(|t| now < t + OCTEZ_SWAP_LINGER)
            || self.own_points.contains(&point)
            || self
                .pool
                .get(&point)
                .is_some_and(|p| p.dialing || p.state != PointState::Disconnected)
        {
            return;
        }
        let others: Vec<SocketAddr> = self
            .pool
            .connections()
            .map(|(a, _)| a)
            .filter(|a| *a != meta.point)
            .collect();
        let Some(&give) = others.iter().choose(&mut self.rng) else {
            return;
        };
        self.last_swap = Some(now);
        self.actions
            .push_back(Action::SwapAck { conn, point: give });
        self.intake(&[point], Source::PeerSharing, Some(meta.point), now);
        self.swap_dial(point, give, now);
        self.settle(now);
    }

    /// The answer to our swap request (the octez policy): dial the point we were given,
    /// and drop the peer we proposed once the new connection is up.
    pub fn handle_swap_ack(&mut self, conn: ConnId, point: SocketAddr, now: Time) {
        if self.stopped || self.config.policy != Policy::Octez {
            return;
        }
        self.tick(now);
        let Some(meta) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(proposed) = meta.swap_sent.take() else {
            return;
        };
        let sender = meta.point;
        let point = canonical(point);
        if self.pool.connection(&point).is_some() {
            return;
        }
        self.intake(&[point], Source::PeerSharing, Some(sender), now);
        self.swap_dial(point, proposed, now);
        self.settle(now);
    }

    /// Time passed: maintenance timers (idle, backoff ends, the wait for points) and
    /// discovery rounds that are due.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.stopped {
            return;
        }
        self.tick(now);
        self.run_brain(now, |b, pool, rng, out| match b {
            Brain::Peerkeeper { m, .. } => m.handle_timeout(now, pool, rng, out),
            Brain::Octez(o) => o.handle_timeout(now, pool, rng, out),
        });

        let round = match &mut self.brain {
            Brain::Peerkeeper { d, .. } => d.poll_round(&self.pool, now, &mut self.rng),
            Brain::Octez(_) => None,
        };
        if let Some(peers) = round {
            for p in peers {
                self.ask(p);
            }
            self.actions.push_back(Action::PollSources);
        }
        self.settle(now);
        // Last: what maintenance decided (a top-up, the address book's test dials) goes
        // first.
        if self.next_exploration.is_some_and(|t| now >= t) {
            self.explore(now);
            self.settle(now);
        }
    }

    // ----- peer sets ------------------------------------------------------------------

    /// Tracks a peer set under `id` ([`peerset`], commonware's `track`): the set becomes
    /// the active one, the oldest past `peer_sets.kept_sets` is dropped. Then:
    ///
    /// * primaries (of any kept set) are dialed at their tracked address, up to
    ///   `peer_sets.primary_target` (by default all, within `max_connections`), and
    ///   their connections are protected from trims; at `max_connections` a primary gets
    ///   in by closing an unprotected connection;
    /// * a peer that left every kept set has its connection closed
    ///   ([`CloseReason::Untracked`]);
    /// * a peer given a new address has its connection on the old one closed
    ///   ([`CloseReason::AddressChanged`]) and, if a primary, is dialed at the new one.
    ///
    /// Addresses are taken as the operator's (like trusted points); our own entry in a
    /// set (our peer id) is never dialed.
    ///
    /// # Errors
    ///
    /// As [`PeerSets::track`] (a stale id, a set too large, a peer given two addresses):
    /// nothing changed. [`PeerSetError::Stopped`] after [`shutdown`](Self::shutdown).
    ///
    /// ```
    /// use peerkeeper::core::{Action, NodeCore, PeerSetError};
    /// use peerkeeper::{Config, PeerId, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// core.start(Time::ZERO);
    /// while core.poll_action().is_some() {}
    /// let b = "10.0.0.2:9000".parse().unwrap();
    /// let c = "10.0.0.3:9000".parse().unwrap();
    /// core.handle_track(1, vec![(PeerId::from_u64(2), b)], vec![(PeerId::from_u64(3), c)], Time::ZERO).unwrap();
    /// let dials: Vec<_> = std::iter::from_fn(|| core.poll_action())
    ///     .filter_map(|a| if let Action::Dial(p) = a { Some(p) } else { None })
    ///     .collect();
    /// assert_eq!(dials, vec![b]); // the primary, not the secondary
    /// assert!(matches!(core.handle_track(1, vec![], vec![], Time::ZERO),
    ///                  Err(PeerSetError::StaleId { .. })));
    /// ```
    pub fn handle_track(
        &mut self,
        id: u64,
        primary: Vec<(PeerId, SocketAddr)>,
        secondary: Vec<(PeerId, SocketAddr)>,
        now: Time,
    ) -> Result<SetChanges, PeerSetError> {
        if self.stopped {
            return Err(PeerSetError::Stopped);
        }
        self.tick(now);
        let changes = self
            .sets
            .track(id, canonical_all(primary), canonical_all(secondary))?;
        self.apply_set_changes(&changes, now);
        self.settle(now);
        Ok(changes)
    }

    /// Changes the addresses of tracked peers without a new set ([`peerset`],
    /// commonware's `overwrite`): a connection on an old address is closed
    /// ([`CloseReason::AddressChanged`]), inbound connections are admitted from the new
    /// address's IP only (in peer-sets-only and private mode), and primaries are dialed at
    /// the new address. Addresses of peers not tracked are ignored
    /// ([`SetChanges::ignored`]).
    ///
    /// # Errors
    ///
    /// As [`PeerSets::overwrite`] (too many addresses, a peer given two): nothing
    /// changed. [`PeerSetError::Stopped`] after [`shutdown`](Self::shutdown).
    pub fn handle_overwrite(
        &mut self,
        addresses: Vec<(PeerId, SocketAddr)>,
        now: Time,
    ) -> Result<SetChanges, PeerSetError> {
        if self.stopped {
            return Err(PeerSetError::Stopped);
        }
        self.tick(now);
        let changes = self.sets.overwrite(canonical_all(addresses))?;
        self.apply_set_changes(&changes, now);
        self.settle(now);
        Ok(changes)
    }

    fn apply_set_changes(&mut self, changes: &SetChanges, now: Time) {
        for r in &changes.readdressed {
            if let Some(at) = self.pool.connected_point_of(r.peer) {
                if at != r.new {
                    if let Some(conn) = self.conn_at(&at) {
                        self.stats.closed.address_changed += 1;
                        self.close(conn, CloseReason::AddressChanged, now);
                    }
                }
            }
            // The old address is stale: never dialed again (unless the operator trusts
            // it, or a dial to it is in flight: its result is dropped).
            if !self.pool.is_trusted(&r.old) && r.old != r.new {
                self.pool.forget(r.old);
            }
            self.primary_dials.remove(&r.peer);
        }
        for (peer, _) in &changes.untracked {
            if let Some(conn) = self
                .pool
                .connected_point_of(*peer)
                .and_then(|at| self.conn_at(&at))
            {
                self.stats.closed.untracked += 1;
                self.close(conn, CloseReason::Untracked, now);
            }
            self.primary_dials.remove(peer);
        }
        self.pool
            .set_protected_peers(self.sets.primaries().map(|(p, _)| p));
    }

    // ----- internals -----------------------------------------------------------------

    fn tick(&mut self, now: Time) {
        if now > self.clock {
            self.clock = now;
        }
        self.pool.advance(self.clock);
    }

    fn refusal_size(&self) -> usize {
        match self.config.policy {
            Policy::Peerkeeper => self.config.discovery.answer_size.min(MAX_REFUSAL_POINTS),
            Policy::Octez => MAX_REFUSAL_POINTS,
        }
    }

    fn answer_size(&self) -> usize {
        match self.config.policy {
            Policy::Peerkeeper => self.config.discovery.answer_size,
            Policy::Octez => 50,
        }
    }

    /// Whether the node is closed to strangers: private mode, or peer sets only. It then
    /// never shares points nor takes them from refusals.
    fn closed_network(&self) -> bool {
        self.config.private_mode || self.config.peer_sets.only
    }

    /// The primaries to dial now: not ourselves, not connected, not being dialed, their
    /// address dialable (not backed off, not dialed within [`PRIMARY_DIAL_INTERVAL`]).
    /// `busy` counts the primaries connected or being dialed.
    fn primary_candidates(&self, now: Time) -> (usize, Vec<(PeerId, SocketAddr)>) {
        let mut busy = 0;
        let mut todo = Vec::new();
        for (peer, addr) in self.sets.primaries() {
            if peer == self.me || self.pool.connected_point_of(peer).is_some() {
                busy += usize::from(peer != self.me);
                continue;
            }
            if self.pool.get(&addr).is_some_and(|p| p.dialing) {
                busy += 1;
                continue;
            }
            if addr.port() == 0 || scope(addr.ip()).is_none() || self.own_points.contains(&addr) {
                continue;
            }
            let recently = self
                .primary_dials
                .get(&peer)
                .is_some_and(|t| now < *t + PRIMARY_DIAL_INTERVAL);
            if !recently {
                todo.push((peer, addr));
            }
        }
        (busy, todo)
    }

    /// Dials primaries of the tracked peer sets, up to `peer_sets.primary_target` (all,
    /// within `max_connections`) connected or being dialed, within `max_concurrent_dials`.
    /// Dials nothing when `max_connections` is reached and every connection is protected.
    fn dial_primaries(&mut self, now: Time) {
        if self.stopped || self.sets.is_empty() {
            return;
        }
        let (busy, todo) = self.primary_candidates(now);
        if todo.is_empty() {
            return;
        }
        let max = self.config.max_connections;
        let target = self.config.peer_sets.primary_target.unwrap_or(max).min(max);
        let room = target.saturating_sub(busy);
        let mut slots = self
            .config
            .max_concurrent_dials
            .saturating_sub(self.pool.dialing_count())
            .min(room);
        if self.pool.active_count() >= max
            && self
                .pool
                .connections()
                .all(|(a, _)| self.pool.is_protected(&a))
        {
            return;
        }
        for (peer, addr) in todo {
            if slots == 0 {
                break;
            }
            if self.pool.get(&addr).is_none()
                && self.pool.add_point(addr, Source::External, now) != Added::New
            {
                continue;
            }
            if self.try_dial(addr, now) {
                self.primary_dials.insert(peer, now);
                slots -= 1;
            }
        }
    }

    /// When a primary not dialed now becomes dialable (its backoff or the dial interval
    /// ends), if later than now.
    fn primary_deadline(&self) -> Option<Time> {
        if self.stopped || self.sets.is_empty() {
            return None;
        }
        let clock = self.clock;
        self.sets
            .primaries()
            .filter(|(peer, _)| *peer != self.me && self.pool.connected_point_of(*peer).is_none())
            .filter_map(|(peer, addr)| {
                let point = self.pool.get(&addr);
                if point.is_some_and(|p| p.dialing) {
                    return None;
                }
                let ready = point.map_or(Time::ZERO, |p| p.next_dial);
                let interval = self
                    .primary_dials
                    .get(&peer)
                    .map_or(Time::ZERO, |t| *t + PRIMARY_DIAL_INTERVAL);
                Some(ready.max(interval))
            })
            .filter(|t| *t > clock)
            .min()
    }

    /// At `max_connections`, a primary gets in: one unprotected, untrusted connection is
    /// closed (sent points first), chosen as a trim chooses. Returns whether room was made.
    fn evict_for_primary(&mut self, now: Time) -> bool {
        let grace = self.config.newcomer_grace;
        let victim = trim_for(
            &self.pool,
            &self.config,
            1,
            now - grace,
            |_, _| true,
            &mut self.rng,
        );
        let Some(conn) = victim.first().and_then(|p| self.conn_at(p)) else {
            return false;
        };
        let point = victim[0];
        self.stats.closed.trimmed += 1;
        self.farewell_and_close(conn, point, now);
        true
    }

    fn note_dialer(&mut self, point: SocketAddr, now: Time) {
        if check_point(
            &point,
            Some(point.ip()),
            self.config.discovery.allow_private_addresses,
        )
        .is_err()
        {
            return;
        }
        // Octez registers a dialer's point during authentication; so do we (as its own
        // source: a dialer reaches only its own group's place in the address book).
        self.pool
            .add_point_from(point, Source::Incoming, point.ip(), now);
        if let Some(i) = self.recent_dialers.iter().position(|p| *p == point) {
            self.recent_dialers.remove(i);
        }
        if self.recent_dialers.len() >= RECENT_DIALERS {
            self.recent_dialers.pop_front();
        }
        self.recent_dialers.push_back(point);
    }

    /// The one sample a node tells a peer at `requester` (answer, refusal, farewell):
    /// only points the requester accepts from us, never itself or us.
    fn sample_for(&mut self, requester: SocketAddr, n: usize) -> Vec<SocketAddr> {
        if self.closed_network() || n == 0 {
            return Vec::new();
        }
        let allow = self.config.discovery.allow_private_addresses;
        let ip = requester.ip();
        let own = &self.own_points;
        let keep = |a: &SocketAddr, _: &PointInfo| {
            *a != requester && !own.contains(a) && shareable(a, ip, allow)
        };
        match self.config.policy {
            Policy::Peerkeeper => {
                // Recent dialers first (newest first): alive and looking for peers.
                let mut out: Vec<SocketAddr> = self
                    .recent_dialers
                    .iter()
                    .rev()
                    .filter(|a| self.pool.get(a).is_some_and(|p| keep(a, p)))
                    .take(n / 2)
                    .copied()
                    .collect();
                // Then points known to work (connected, or connected once and not failing
                // since), and a sample of the other points we can vouch for. Never
                // hearsay: a point some peer told us of and that nobody has verified since
                // is not passed on, so a flood of invented addresses stops at its first
                // hop (octez and Bitcoin relay such points).
                let rest = n - out.len();
                let best = rest / 2;
                let vouched = |p: &PointInfo| {
                    p.is_good()
                        || p.sources.contains(Source::Trusted)
                        || p.sources.contains(Source::Bootstrap)
                        || p.sources.contains(Source::External)
                        || p.sources.contains(Source::Incoming)
                };
                let more = self.pool.share_sample(
                    best,
                    rest - best,
                    false,
                    |a, p| vouched(p) && keep(a, p) && !out.contains(a),
                    &mut self.rng,
                );
                out.extend(more);
                out.truncate(n);
                out
            }
            // octez: 30 best (connected first) + 20 random known points, failing ones
            // included (octez's list_known_points).
            Policy::Octez => {
                let best = n * 3 / 5;
                self.pool
                    .share_sample(best, n - best, true, keep, &mut self.rng)
            }
        }
    }

    /// At `max_connections`: close one inbound connection old enough to make room for a
    /// newcomer (sending it points first), if the rate allows. Returns whether room was
    /// made.
    fn make_room(&mut self, now: Time) -> bool {
        let Some(interval) = self.config.make_room_interval else {
            return false;
        };
        if self.last_room_made.is_some_and(|t| now < t + interval) {
            return false;
        }
        // Only an inbound connection, never a protected one: an inbound newcomer never
        // takes the place of a peer we chose; and only one inbound eviction leaves
        // unprotected (maintenance::evict): a flood of fresh connections from one host or
        // group evicts its own, never a long-lived peer.
        let victim = evict_inbound(&self.pool, now, self.config.newcomer_grace, |_, _| true);
        let Some(point) = victim else {
            self.stats.admission.no_room_protected += 1;
            return false;
        };
        let Some(conn) = self.conn_at(&point) else {
            return false;
        };
        self.last_room_made = Some(now);
        self.stats.admission.made_room += 1;
        self.stats.closed.trimmed += 1;
        self.farewell_and_close(conn, point, now);
        true
    }

    /// Points first (a peer we let go learns where else to go), then the close.
    fn farewell_and_close(&mut self, conn: ConnId, point: SocketAddr, now: Time) {
        let size = self.answer_size();
        let points = self.sample_for(point, size);
        if !points.is_empty() {
            self.actions.push_back(Action::SendPoints { conn, points });
        }
        self.close(conn, CloseReason::TooManyConnections, now);
    }

    /// Forgets a connection and tells the driver to close it.
    fn close(&mut self, conn: ConnId, reason: CloseReason, now: Time) {
        if let Some(meta) = self.conns.remove(&conn) {
            if self
                .pool
                .connection(&meta.point)
                .is_some_and(|c| c.id == conn)
            {
                self.pool.connection_closed(meta.point, now);
            }
            if reason == CloseReason::Duplicate {
                self.stats.closed.duplicate += 1;
            }
            self.disconnected(conn, meta, Ended::ByUs(reason), now);
            self.actions.push_back(Action::Close { conn, reason });
        }
    }

    fn ask(&mut self, point: SocketAddr) {
        let Some(conn) = self.conn_at(&point) else {
            return;
        };
        if let Some(meta) = self.conns.get_mut(&conn) {
            meta.awaiting_answer = true;
        }
        self.stats.sharing.requests += 1;
        self.actions.push_back(Action::AskForPoints { conn });
    }

    /// Points received: each passes the intake rule (with `sender` as their source's
    /// address; `None` is this node itself); kept ones enter the pool. Returns how many
    /// were new.
    fn intake(
        &mut self,
        points: &[SocketAddr],
        source: Source,
        from: Option<SocketAddr>,
        now: Time,
    ) -> usize {
        let sender = from.map(|p| p.ip());
        let allow = self.config.discovery.allow_private_addresses;
        let take = points.len().min(crate::MAX_POINTS_PER_MESSAGE);
        self.stats.points.received += take as u64;
        let mut new = 0;
        for p in &points[..take] {
            let p = canonical(*p);
            let verdict = if self.own_points.contains(&p) {
                Err(PointDropped::Myself)
            } else {
                check_point(&p, sender, allow)
            };
            match verdict {
                Ok(()) => match self.pool.learn(p, source, sender, now) {
                    Added::New => new += 1,
                    Added::Known => {}
                    Added::Full => self.stats.points.dropped.count(PointDropped::PoolFull),
                    Added::Collision => self.stats.points.dropped.count(PointDropped::Collision),
                },
                Err(why) => self.stats.points.dropped.count(why),
            }
        }
        self.stats.points.new += new as u64;
        if let Brain::Peerkeeper { d, .. } = &mut self.brain {
            d.points_learned(new, now);
        }
        self.emit(|| Event::PointsLearned {
            at: now,
            from,
            received: take,
            new,
        });
        new
    }

    fn propose_swap(&mut self) {
        let conns: Vec<(ConnId, SocketAddr)> =
            self.pool.connections().map(|(a, c)| (c.id, a)).collect();
        let Some(&(to, to_point)) = conns.iter().choose(&mut self.rng) else {
            return;
        };
        let Some(&(_, point)) = conns
            .iter()
            .filter(|(_, a)| *a != to_point)
            .choose(&mut self.rng)
        else {
            return;
        };
        if let Some(meta) = self.conns.get_mut(&to) {
            meta.swap_sent = Some(point);
        }
        self.stats.swaps += 1;
        self.actions
            .push_back(Action::SwapRequest { conn: to, point });
    }

    /// Schedules the next exploration dial, between half and one and a half
    /// `exploration_interval` from `now` (none with the octez policy or in private mode).
    fn schedule_exploration(&mut self, now: Time) {
        if self.config.policy != Policy::Peerkeeper || self.config.private_mode {
            self.next_exploration = None;
            return;
        }
        let base = self.config.exploration_interval;
        let jitter = self.rng.gen_range(0.5..1.5);
        self.next_exploration = Some(now + base.mul_f64(jitter));
    }

    /// An exploration dial (Bitcoin Core's feeler): a node in range dials one known point
    /// it is not connected to, preferring one outside the groups of its connections, even
    /// a backed-off one. A node short of connections is topping up already: it explores
    /// nothing. Islands of in-range nodes merge this way after a partition heals.
    ///
    /// Below the trim target (`max_target`) the connection is added. At or above it the
    /// exploration is a swap, as Bitcoin Core's extra block-relay-only peer (one every
    /// 5 minutes, then the least useful evicted): once the new connection is up, one of
    /// our other outbound connections is closed ([`Self::swap_out_for`]: never a protected
    /// one, never below the outbound floor), so the count does not grow and the room
    /// above stays for inbound peers (a node behind a NAT has no other way in). A full
    /// node closes it before it keeps the new one. Swaps are rare: at most one per
    /// [`Config::exploration_swap_interval`] (the first one interval after the start),
    /// and only while one of our outbound connections can be given up; the explorations
    /// due in between are skipped.
    fn explore(&mut self, now: Time) {
        self.schedule_exploration(now);
        if self
            .exploring_swap
            .is_some_and(|p| !self.pool.get(&p).is_some_and(|i| i.dialing))
        {
            // Its dial ended without an outcome (the point was dropped meanwhile).
            self.exploring_swap = None;
        }
        let open = self.pool.active_count();
        let dialing = self.pool.dialing_count();
        if self.stopped
            || open < self.bounds.min_threshold
            || dialing >= self.config.max_concurrent_dials
            || self.exploring_swap.is_some()
        {
            return;
        }
        let swap = open + dialing >= self.bounds.max_target;
        if swap {
            let rested = self
                .last_swap_exploration
                .is_none_or(|t| now >= t + self.config.exploration_swap_interval);
            // What a swap could give up: outbound connections above the floor, the new
            // one counted (a full node gives one up before it counts the new one).
            let outbound = self
                .pool
                .connections()
                .filter(|(a, c)| c.direction == Direction::Outbound && !self.pool.is_protected(a))
                .count();
            let full = open + dialing >= self.config.max_connections;
            if !rested || outbound + usize::from(!full) <= self.config.outbound_floor() {
                return;
            }
        }
        let groups: BTreeSet<u64> = self
            .pool
            .connections()
            .map(|(a, _)| self.pool.group(&a))
            .collect();
        let own = &self.own_points;
        let pool = &self.pool;
        let ip_ok = |a: &SocketAddr| !pool.is_ip_greylisted(a.ip(), now);
        // A swap gives up a working connection: never for a peer the application scored
        // below zero (its point's standing).
        let usable = |a: &SocketAddr, info: &PointInfo| {
            info.state == PointState::Disconnected
                && !info.dialing
                && !own.contains(a)
                && ip_ok(a)
                && !(swap && pool.standing(a) == Some(false))
        };
        // Outside the groups already connected, from a random place in the pool; only if
        // every known point is in a connected group, any (as the planner's diverse dials:
        // never a second connection into one group, an attacker's say, while another
        // group is known).
        let start = self.rng.gen_range(0..usize::MAX);
        let pick = pool
            .find_from(start, |a, info| {
                usable(a, info) && !groups.contains(&pool.group(a))
            })
            .or_else(|| pool.find_from(start, usable));
        if let Some(point) = pick {
            if self.pool.begin_exploration(point, now) {
                self.stats.dials.explorations += 1;
                if swap {
                    self.stats.dials.exploration_swaps += 1;
                    self.exploring_swap = Some(point);
                    self.last_swap_exploration = Some(now);
                }
                self.dial_started(point);
            }
        }
    }

    fn swap_dial(&mut self, point: SocketAddr, replaces: SocketAddr, now: Time) {
        if self.try_dial(point, now) {
            self.swaps.insert(point, replaces);
        }
    }

    /// Starts a dial to `point` if the pool's one gate lets it through
    /// ([`Pool::begin_dial`]); returns whether it did.
    fn try_dial(&mut self, point: SocketAddr, now: Time) -> bool {
        let ok = self.pool.begin_dial(point, now);
        if ok {
            self.dial_started(point);
        }
        ok
    }

    /// A dial the pool has let through: counted, and handed to the shell.
    fn dial_started(&mut self, point: SocketAddr) {
        self.stats.dials.attempted += 1;
        self.stats.dials.in_flight += 1;
        self.actions.push_back(Action::Dial(point));
    }

    fn run_brain(
        &mut self,
        now: Time,
        f: impl FnOnce(&mut Brain, &mut Pool, &mut SeededRng, &mut Vec<maintenance::Action>),
    ) {
        let mut out = Vec::new();
        f(&mut self.brain, &mut self.pool, &mut self.rng, &mut out);
        for a in out {
            match a {
                // The planner passed it through the pool's gate already.
                maintenance::Action::Dial(p) => self.dial_started(p),
                maintenance::Action::Close(point, conn, reason) => {
                    // The machine already removed it from the pool.
                    self.stats.closed.trimmed += 1;
                    if self.config.policy == Policy::Peerkeeper
                        && reason == CloseReason::TooManyConnections
                    {
                        self.farewell_and_close(conn, point, now);
                    } else {
                        self.close(conn, reason, now);
                    }
                }
                maintenance::Action::WantPoints(want) => match &mut self.brain {
                    Brain::Peerkeeper { d, .. } => d.set_wanted(want, now),
                    Brain::Octez(_) => {
                        // octez's Bootstrap: every connected peer, every time.
                        if want {
                            let all: Vec<SocketAddr> =
                                self.pool.connections().map(|(a, _)| a).collect();
                            for p in all {
                                self.ask(p);
                            }
                            self.actions.push_back(Action::PollSources);
                        }
                    }
                },
                maintenance::Action::Swap => self.propose_swap(),
                maintenance::Action::CycleStarted { cycle, reasons } => {
                    self.cycle_covers = self.tickets;
                    self.actions
                        .push_back(Action::CycleStarted { cycle, reasons });
                }
                maintenance::Action::CycleEnded(report) => {
                    if self.events.is_some() {
                        let report = Box::new(report.clone());
                        self.emit(|| Event::CycleEnded { at: now, report });
                    }
                    self.actions.push_back(Action::CycleEnded {
                        report: Box::new(report),
                        covers: self.cycle_covers,
                    });
                }
            }
        }
    }

    /// Turns what changed in the pool into the triggers' reactions: too few / too many
    /// (at the policy's thresholds), new points or peers (a starving node tops up), a new
    /// connection (asked for points at once while points are wanted). Repeats while the
    /// reactions change the pool, a bounded number of times.
    fn settle(&mut self, now: Time) {
        if self.stats.points.new
            >= self
                .new_points_at_save
                .saturating_add(SAVE_AFTER_NEW_POINTS)
        {
            self.unsaved(now);
        }
        self.settle_triggers(now);
        self.dial_primaries(now);
        self.test_collisions(now);
    }

    /// The address book's test-before-evict ([`crate::pool::book`]): settles the tried-side
    /// collisions and dials one occupant due for its test, while a dial slot and a
    /// connection slot are free and the node is online (a test failing because we are
    /// offline would evict a good point).
    fn test_collisions(&mut self, now: Time) {
        if self.stopped || self.offline_since.is_some() || self.pool.collisions_pending() == 0 {
            return;
        }
        let tests = self.pool.collision_tests(now);
        let Some(&point) = tests.first() else {
            return;
        };
        if self.pool.collision_test_running()
            || self.pool.dialing_count() >= self.config.max_concurrent_dials
            || self.pool.active_count() + self.pool.dialing_count() >= self.config.max_connections
        {
            return;
        }
        if self.try_dial(point, now) {
            self.stats.dials.tests += 1;
        }
    }

    fn settle_triggers(&mut self, now: Time) {
        for _ in 0..8 {
            let c = self.pool.take_changes();
            self.stats.max_connections_seen =
                self.stats.max_connections_seen.max(c.count_after as u64);
            if c.new_point || c.new_connection {
                self.pay_owed_answers();
            }
            let mut reasons: Vec<WakeReason> = Vec::new();
            let count = match self.config.policy {
                Policy::Peerkeeper => count_trigger(c.count_before, c.count_after, &self.bounds),
                Policy::Octez => octez_trigger(c.count_before, c.count_after, &self.config),
            };
            if let Some(kind) = count.filter(|k| self.switches[*k as usize]) {
                self.actions.push_back(Action::Trigger(kind));
                reasons.push(match kind {
                    TriggerKind::TooFewConnections => WakeReason::TooFewConnections,
                    _ => WakeReason::TooManyConnections,
                });
            }
            let mut points = false;
            for (fired, kind) in [
                (c.new_point, TriggerKind::NewPoint),
                (c.new_peer, TriggerKind::NewPeer),
            ] {
                if fired && self.switches[kind as usize] {
                    self.actions.push_back(Action::Trigger(kind));
                    points = true;
                }
            }
            if points {
                reasons.push(WakeReason::NewPoints);
            }
            // The outbound floor: wake when it starts to lack connections while a
            // candidate exists (an outbound peer left, points arrived).
            if self.config.policy == Policy::Peerkeeper && self.started && !self.stopped {
                let short = outbound_need(&self.pool, &self.config) > 0
                    && self
                        .pool
                        .candidates(self.config.private_mode)
                        .next()
                        .is_some();
                // New points or peers wake it only while their trigger is on.
                let points_off = (c.new_point && !self.switches[TriggerKind::NewPoint as usize])
                    || (c.new_peer && !self.switches[TriggerKind::NewPeer as usize]);
                if short && !self.outbound_short && !points_off {
                    reasons.push(WakeReason::OutboundFloor);
                }
                self.outbound_short = short;
            }
            if c.new_connection && self.switches[TriggerKind::NewConnection as usize] {
                self.actions
                    .push_back(Action::Trigger(TriggerKind::NewConnection));
                let ask = match &mut self.brain {
                    Brain::Peerkeeper { d, .. } => d.poll_new_connections(&self.pool, now),
                    Brain::Octez(_) => Vec::new(),
                };
                for p in ask {
                    self.ask(p);
                }
            }
            if reasons.is_empty() {
                return;
            }
            for r in reasons {
                self.run_brain(now, |b, pool, rng, out| match b {
                    Brain::Peerkeeper { m, .. } => m.wake(r, now, pool, rng, out),
                    Brain::Octez(o) => o.wake(r, now, pool, rng, out),
                });
            }
        }
    }

    /// Checks the core's tables against each other and the pool's invariants (for tests;
    /// `O(n)`).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.pool.check_invariants();
        assert_eq!(
            self.conns.len(),
            self.pool.active_count(),
            "connection tables disagree"
        );
        for (id, meta) in &self.conns {
            assert_eq!(
                self.pool.connection(&meta.point).map(|c| c.id),
                Some(*id),
                "connection {id} at {} not in the pool",
                meta.point
            );
        }
        assert!(
            self.stats.dials.adds_up(),
            "dial outcomes do not add up: {:?}",
            self.stats.dials
        );
        assert_eq!(
            self.stats.dials.in_flight as usize,
            self.pool.dialing_count()
        );
        assert!(self.pool.active_count() <= self.config.max_connections + 1);
        assert!(self.recent_dialers.len() <= RECENT_DIALERS);
        assert!(self.own_points.len() <= MAX_OWN_POINTS);
        self.sets.check_invariants();
        for (_, c) in self.pool.connections() {
            assert_eq!(
                self.pool.is_protected_peer(c.peer),
                self.sets.is_primary(c.peer),
                "protection of {} disagrees with the peer sets",
                c.peer
            );
        }
        assert!(self.primary_dials.keys().all(|p| self.sets.is_tracked(*p)));
        assert!(self.unreached.len() < OFFLINE_AFTER.max(1));
        assert!(self.scores.len() <= self.scores.capacity());
        assert!(self.parked.len() <= self.pool.limits().max_points);
        if self.offline_since.is_some() {
            assert!(self.unreached.is_empty(), "offline with unreached points");
        } else {
            assert!(self.parked.is_empty(), "points parked while online");
        }
    }
}

/// `p` with an IPv4-mapped IPv6 address written as the IPv4 address it is.
fn canonical(p: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(p.ip()), p.port())
}

fn canonical_all(v: Vec<(PeerId, SocketAddr)>) -> Vec<(PeerId, SocketAddr)> {
    v.into_iter().map(|(p, a)| (p, canonical(a))).collect()
}
