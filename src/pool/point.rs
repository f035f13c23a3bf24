//! What the pool knows about one point (a dialable socket address) and one peer.

use crate::Time;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// A peer's identity: 32 opaque bytes, proven in the handshake (protocol v3).
///
/// With the default identity ([`crate::identity::Keypair`]) it is the peer's Ed25519
/// public key; a node with an identity of its own ([`crate::identity::Identity`]) maps its
/// public key to 32 bytes (the key itself, or a hash of a longer one). Ids from
/// [`from_u64`](Self::from_u64) are for simulations and tests: nothing proves them.
///
/// Shown and serialised (traces, `KEY@HOST:PORT`) as 64 lowercase hex characters.
///
/// ```
/// use peerkeeper::PeerId;
/// let id = PeerId::from_u64(7);
/// assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
/// assert_eq!(id.as_bytes()[7], 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; 32]);

impl PeerId {
    /// The id of these 32 bytes (with the default identity: an Ed25519 public key).
    pub const fn from_bytes(bytes: [u8; 32]) -> PeerId {
        PeerId(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An id made of a number (its big-endian bytes, then zeros), which orders as the
    /// numbers do. For simulations and tests: not a key, so not authenticated.
    pub fn from_u64(n: u64) -> PeerId {
        let mut b = [0; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        PeerId(b)
    }

    /// A 32-bit digest of the id, never 0: what a point record keeps of the peer last
    /// seen there. Equal ids have equal tags; different ids rarely do (among a hundred
    /// connected peers, about one chance in a million that a given point's tag matches
    /// another's), and a collision only hides a candidate until its peer disconnects.
    pub(crate) fn tag(&self) -> u32 {
        let mut h = crate::rng::Fold::new(0x7065_6572_5f74_6167);
        for w in self.0.chunks_exact(8) {
            h = h.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        (h.finish() as u32) | 1
    }

    /// The first 8 bytes as hex (16 characters): enough to tell peers apart in a log.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

/// A string that is not 64 hex characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a peer id is 64 hex characters (32 bytes)")]
pub struct BadPeerId;

impl std::str::FromStr for PeerId {
    type Err = BadPeerId;

    fn from_str(s: &str) -> Result<PeerId, BadPeerId> {
        let mut b = [0; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| BadPeerId)?;
        Ok(PeerId(b))
    }
}

impl Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(PeerId)
        }
    }
}

/// Where a point was learned from. A point can have several sources; its **kind** is the
/// best of them ([`Sources::kind`], by [`Source::rank`]): trusted > bootstrap > external >
/// peer-shared > incoming. The kind is what per-kind targets
/// ([`KindTargets`](crate::config::KindTargets)) count: a point the operator configured
/// stays the operator's even when peers also advertise it, and a dialer's point that a
/// ledger also lists counts as the ledger's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Source {
    /// Configured by the operator: never trimmed, never garbage-collected, dialed first.
    Trusted,
    /// A bootstrap point (configured, but not protected like a trusted one).
    Bootstrap,
    /// Advertised by another peer (peer sharing).
    PeerSharing,
    /// The listening point of a peer that connected to us.
    Incoming,
    /// An external source (DNS seeds, a ledger's relay list, ...).
    External,
}

impl Source {
    /// Every source, in order.
    pub const ALL: [Source; 5] = [
        Source::Trusted,
        Source::Bootstrap,
        Source::PeerSharing,
        Source::Incoming,
        Source::External,
    ];

    /// Every kind, best first (see [`rank`](Self::rank)).
    pub const BY_RANK: [Source; 5] = [
        Source::Trusted,
        Source::Bootstrap,
        Source::External,
        Source::PeerSharing,
        Source::Incoming,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The position of the source in [`Source::ALL`] (for per-kind arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind's rank, lower is better: trusted 0 (the operator's own roots), bootstrap 1
    /// (configured), external 2 (a source the node runs: a ledger, DNS seeds), peer-shared
    /// 3 (hearsay from peers), incoming 4 (a dialer told us its port: anyone can).
    pub fn rank(self) -> u8 {
        match self {
            Source::Trusted => 0,
            Source::Bootstrap => 1,
            Source::External => 2,
            Source::PeerSharing => 3,
            Source::Incoming => 4,
        }
    }

    /// The kind's name, as in configs and metrics labels (`trusted`, `bootstrap`,
    /// `external`, `peer_sharing`, `incoming`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Trusted => "trusted",
            Source::Bootstrap => "bootstrap",
            Source::External => "external",
            Source::PeerSharing => "peer_sharing",
            Source::Incoming => "incoming",
        }
    }
}

/// A set of [`Source`]s, one byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sources(u8);

impl Sources {
    /// The set holding just `s`.
    pub fn only(s: Source) -> Sources {
        Sources(s.bit())
    }
    /// Whether `s` is in the set.
    pub fn contains(self, s: Source) -> bool {
        self.0 & s.bit() != 0
    }
    /// Adds `s`.
    pub fn insert(&mut self, s: Source) {
        self.0 |= s.bit();
    }
    /// The sources in the set, in order.
    pub fn iter(self) -> impl Iterator<Item = Source> {
        Source::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The kind: the best source in the set ([`Source::rank`]); incoming for an empty set.
    ///
    /// ```
    /// use peerkeeper::pool::{Source, Sources};
    /// let mut s = Sources::only(Source::Incoming);
    /// s.insert(Source::PeerSharing);
    /// assert_eq!(s.kind(), Source::PeerSharing);
    /// s.insert(Source::External);
    /// assert_eq!(s.kind(), Source::External);
    /// ```
    pub fn kind(self) -> Source {
        Source::BY_RANK
            .into_iter()
            .find(|s| self.contains(*s))
            .unwrap_or(Source::Incoming)
    }
}

/// The state of a point. Whether a dial to it is in flight is kept apart
/// ([`PointInfo::dialing`]): an inbound connection from a point being dialed changes its
/// state, never the count of dials in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum PointState {
    /// Not connected; dialable once `next_dial` has passed.
    Disconnected,
    /// Connected (either direction).
    Connected,
    /// Refused until `next_dial` (a protocol violation, a ban).
    Greylisted,
}

/// A connection, as named by the driver of the node core: the tokio shell numbers the
/// connections it opens, the simulator numbers its links. Unique per node for its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a connection is closed (by us, or by the peer when it tells us).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloseReason {
    /// Maintenance trims above `max_threshold`, or makes room for a newcomer at
    /// `max_connections`.
    TooManyConnections,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// A second connection to a peer already connected.
    Duplicate,
    /// The node shuts down.
    Shutdown,
    /// The peer's address changed (the old connection is stale).
    AddressChanged,
    /// Replaced by another connection in a swap (the octez policy).
    Swapped,
    /// Nothing heard for too long (keepalive).
    Timeout,
    /// The connection failed (reset, closed without a word).
    Lost,
    /// The peer left every kept peer set ([`crate::core::peerset`]).
    Untracked,
}

impl CloseReason {
    /// Every reason.
    pub const ALL: [CloseReason; 9] = [
        CloseReason::TooManyConnections,
        CloseReason::ProtocolViolation,
        CloseReason::Duplicate,
        CloseReason::Shutdown,
        CloseReason::AddressChanged,
        CloseReason::Swapped,
        CloseReason::Timeout,
        CloseReason::Lost,
        CloseReason::Untracked,
    ];

    /// The reason's name, as in metrics labels (`too_many_connections`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::TooManyConnections => "too_many_connections",
            CloseReason::ProtocolViolation => "protocol_violation",
            CloseReason::Duplicate => "duplicate",
            CloseReason::Shutdown => "shutdown",
            CloseReason::AddressChanged => "address_changed",
            CloseReason::Swapped => "swapped",
            CloseReason::Timeout => "timeout",
            CloseReason::Lost => "lost",
            CloseReason::Untracked => "untracked",
        }
    }
}

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// We dialed it.
    Outbound,
    /// It dialed us.
    Inbound,
}

/// What the pool knows about one point.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PointInfo {
    /// Current state.
    pub state: PointState,
    /// Where it was learned from.
    pub sources: Sources,
    /// Consecutive failed dials (reset by a success); drives the backoff.
    pub failures: u32,
    /// When it last failed ([`Time::MAX`]: never; see [`last_failure`](Self::last_failure)).
    /// Kept without an `Option` so that the record is 16 bytes smaller: the pool holds
    /// one per known point.
    pub(crate) failed_at: Time,
    /// When a connection to it last succeeded ([`Time::MAX`]: never).
    pub(crate) succeeded_at: Time,
    /// When it was last heard of (learned, advertised, connected).
    pub last_seen: Time,
    /// Not dialed before this time (backoff, disconnection delay or greylist end).
    pub next_dial: Time,
    /// A 32-bit tag of the peer last seen at this point ([`PeerId::tag`]; 0: none). The
    /// full 32-byte id is kept only in the connection table: a point record stays small
    /// (the pool holds one per known point).
    pub(crate) peer_tag: u32,
    /// Where the point sits in the address book ([`super::book`]): a position on the
    /// *new* side, one on the *tried* side ([`book::TRIED`](super::book::TRIED) bit set),
    /// or [`book::NOWHERE`](super::book::NOWHERE) (not bucketed: the operator's points,
    /// or the book is off).
    pub(crate) place: u32,
    /// A dial to this point is in flight (whatever its state: an inbound connection
    /// from it may open meanwhile).
    pub dialing: bool,
}

impl PointInfo {
    pub(crate) fn new(source: Source, now: Time) -> PointInfo {
        PointInfo {
            state: PointState::Disconnected,
            sources: Sources::only(source),
            failures: 0,
            failed_at: Time::MAX,
            succeeded_at: Time::MAX,
            last_seen: now,
            next_dial: Time::ZERO,
            peer_tag: 0,
            place: super::book::NOWHERE,
            dialing: false,
        }
    }

    /// When it last failed, if ever.
    pub fn last_failure(&self) -> Option<Time> {
        (self.failed_at != Time::MAX).then_some(self.failed_at)
    }

    /// When a connection to it last succeeded, if ever.
    pub fn last_success(&self) -> Option<Time> {
        (self.succeeded_at != Time::MAX).then_some(self.succeeded_at)
    }

    /// The point's kind: its best source ([`Sources::kind`]).
    pub fn kind(&self) -> Source {
        self.sources.kind()
    }

    /// Whether the point is trusted.
    pub fn is_trusted(&self) -> bool {
        self.sources.contains(Source::Trusted)
    }

    /// Whether the point is known to work: it connected at least once and has not failed
    /// since. Only such points are shared with other peers.
    pub fn is_good(&self) -> bool {
        self.succeeded_at != Time::MAX && self.failures == 0
    }

    /// The candidate rank: lower dials first. Trusted first, then never failed (the
    /// points that worked or that the operator gave before the points only heard of,
    /// those on the address book's *new* side; each in an order scrambled by the pool's
    /// `salt`, so that nodes do not all prefer the same addresses), then the oldest
    /// failure.
    pub(crate) fn rank(&self, addr: &SocketAddr, salt: u64) -> u64 {
        const UNTRUSTED: u64 = 1 << 63;
        const FAILED: u64 = 1 << 62;
        const UNTRIED: u64 = 1 << 61;
        let mut key = 0;
        if !self.is_trusted() {
            key |= UNTRUSTED;
        }
        if self.failures > 0 {
            key |= FAILED
                | self
                    .last_failure()
                    .map_or(0, |t| t.as_millis().min(FAILED - 1));
        } else {
            if super::book::is_new(self.place) {
                key |= UNTRIED;
            }
            key |= scramble(addr, salt) >> 3;
        }
        key
    }

    /// Whether the point sits on the address book's *tried* side (it worked when we
    /// dialed it).
    pub fn is_tried(&self) -> bool {
        super::book::is_tried(self.place)
    }
}

/// A salted 64-bit hash of an address ([`crate::rng::Fold`] over its words).
pub(crate) fn scramble(addr: &SocketAddr, salt: u64) -> u64 {
    let h = crate::rng::Fold::new(salt);
    let h = match addr {
        SocketAddr::V4(a) => h.add(u64::from(u32::from(*a.ip()))),
        SocketAddr::V6(a) => {
            let v = u128::from(*a.ip());
            h.add(v as u64).add((v >> 64) as u64)
        }
    };
    h.add(u64::from(addr.port())).finish()
}

/// An open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connection {
    /// The driver's name for it.
    pub id: ConnId,
    /// The peer on the other side.
    pub peer: PeerId,
    /// Who opened it.
    pub direction: Direction,
    /// When it opened.
    pub since: Time,
    /// Its smoothed round-trip time in milliseconds, once the shell measured one
    /// ([`NodeCore::handle_rtt`](crate::core::NodeCore::handle_rtt)): inbound eviction
    /// protects the lowest.
    pub rtt_ms: Option<u32>,
    /// When the application last reported the peer useful on it
    /// ([`Report::Useful`](crate::core::Report::Useful)): inbound eviction protects the
    /// most recent.
    pub last_useful: Option<Time>,
}

/// The peer groups addresses are spread over when trimming, so that one operator with
/// many addresses in one range cannot hold all our connections: /16 for IPv4, /32 for IPv6.
pub fn netgroup(addr: &SocketAddr) -> u64 {
    match addr {
        SocketAddr::V4(a) => {
            let o = a.ip().octets();
            (4 << 32) | (u64::from(o[0]) << 8) | u64::from(o[1])
        }
        SocketAddr::V6(a) => {
            let s = a.ip().segments();
            (6 << 32) | (u64::from(s[0]) << 16) | u64::from(s[1])
        }
    }
}
