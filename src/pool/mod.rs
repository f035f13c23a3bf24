//! The point pool: every known address (point) and peer, with state, sources, failures
//! and backoff; bounded, garbage-collected, and indexed for "the best dialable points now".
//!
//! # Why an index
//!
//! octez scans every known point on every maintenance cycle to find candidates. Here a
//! disconnected point lives in exactly one of two ordered sets:
//!
//! * `ready`: dialable now, ordered by rank (trusted first, then never failed, then the
//!   oldest failure), so the best `k` are the first `k` entries: `O(k + log n)`;
//! * `waiting`: backed off or greylisted, ordered by the time it may be dialed again.
//!
//! [`Pool::advance`] moves the points whose time has come from `waiting` to `ready`; each
//! point moves once per failure, so the cost is amortised `O(log n)` per failure, never a
//! scan. Points being dialed and connected points are in neither set.
//!
//! # Memory
//!
//! Each point is stored once, in a 64-byte slot of the point table (`table.rs`:
//! fixed-size chunks of slots holding the record and the address packed in 8 bytes, found
//! through a `hashbrown::HashTable` of bare slot ids); the ordered sets name a point by
//! its 4-byte slot id in 12-byte entries, never by its 32-byte address. Under 128 bytes per
//! known point (about 93 at 100,000 points and 97 at a million;
//! `cargo bench --bench pool_memory`).
//!
//! # Bounds
//!
//! Past `max_known_points` the pool is garbage-collected down to `known_points_gc_target`,
//! dropping the most failed, then the longest unseen points first, and never a trusted,
//! dialing or connected one. The peer table and the IP greylist are bounded the same way.
//!
//! The pool is plain data, no tokio: the maintenance cycle, the discovery state and the
//! simulator all drive it with an explicit `now`.

mod asmap;
mod backoff;
pub mod book;
mod point;
pub mod snapshot;
mod table;

pub use asmap::{AsMap, AsMapError, MAX_ASMAP_BYTES, MAX_ASMAP_ENTRIES};
pub use backoff::jittered;
pub use point::{
    netgroup, BadPeerId, CloseReason, ConnId, Connection, Direction, PeerId, PointInfo, PointState,
    Source, Sources,
};
pub use snapshot::{Anchor, Restored, Snapshot, SnapshotError};

use crate::config::{BackoffConfig, Config};
use crate::Time;
use book::{Book, NOWHERE};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use table::{Entry, Id, PointTable};

/// Most IP addresses held in the IP greylist.
pub const MAX_GREYLISTED_IPS: usize = 4096;

/// Violations from distinct sources (connections or points) of one address (an IPv6
/// address: its /64) within [`STRIKE_WINDOW`] that greylist the address itself. Fewer
/// punish only the point or the connection that broke the protocol: peers behind one NAT
/// or one LAN address are not refused together for one bad frame.
pub const IP_STRIKES: u32 = 3;
/// How long a violation counts towards [`IP_STRIKES`].
pub const STRIKE_WINDOW: Duration = Duration::from_secs(600);
/// Most addresses with a strike record (the oldest record makes room).
pub const MAX_STRIKE_RECORDS: usize = 4096;

/// The longest backoff of a configured point (trusted or bootstrap) after failed dials
/// (with the peerkeeper policy): the operator named it, so it costs nothing to retry,
/// and a node started before its seed reaches the seed within about this long of the
/// seed's start. Only a node short of connections dials it again (a top-up), so the
/// cost is bounded by the node's need: one dial per point per this long.
pub const CONFIGURED_RETRY_CAP: Duration = Duration::from_secs(1);
/// The first backoff of a configured point (at most `reconnection.initial`).
pub const CONFIGURED_RETRY_INITIAL: Duration = Duration::from_millis(500);

/// The pool's limits and delays, taken from [`Config`].
#[derive(Clone, Debug)]
pub struct PoolLimits {
    /// Most points.
    pub max_points: usize,
    /// GC shrinks to this many points.
    pub gc_target: usize,
    /// Most peer ids.
    pub max_peers: usize,
    /// Redial backoff.
    pub reconnection: BackoffConfig,
    /// Redial backoff of configured points (trusted, bootstrap): `reconnection` capped
    /// at [`CONFIGURED_RETRY_CAP`]; `None` (the octez model): as any point.
    pub configured_retry: Option<BackoffConfig>,
    /// Delay before redialing a point whose connection ended.
    pub disconnection_delay: Duration,
    /// How long a greylisting lasts.
    pub greylist_duration: Duration,
    /// Points learned from the network go to the partitioned address book ([`book`]);
    /// false: one flat pool.
    pub buckets: bool,
}

impl From<&Config> for PoolLimits {
    fn from(c: &Config) -> Self {
        PoolLimits {
            max_points: c.max_known_points,
            gc_target: c.known_points_gc_target,
            max_peers: c.max_known_peers,
            reconnection: c.reconnection.clone(),
            configured_retry: (c.policy == crate::config::Policy::Peerkeeper).then(|| {
                let cap = c.reconnection.cap.min(CONFIGURED_RETRY_CAP);
                BackoffConfig {
                    initial: c
                        .reconnection
                        .initial
                        .min(CONFIGURED_RETRY_INITIAL)
                        .min(cap),
                    cap,
                    ..c.reconnection.clone()
                }
            }),
            disconnection_delay: c.disconnection_delay,
            greylist_duration: c.greylist_duration,
            buckets: c.defences.address_buckets,
        }
    }
}

/// What adding a point did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Added {
    /// The point is new to the pool.
    New,
    /// The point was known; its sources and last-seen time were updated.
    Known,
    /// The pool is full of points it may not drop (trusted, dialing, connected).
    Full,
    /// The point's position in the address book ([`book`]) is held by a point worth
    /// keeping: the newcomer is dropped.
    Collision,
}

/// Why the pool refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// This peer id already has a connection.
    #[error("peer {0} is already connected")]
    DuplicatePeer(PeerId),
    /// This point already has a connection.
    #[error("point is already connected")]
    AlreadyConnected,
    /// The point or its address is greylisted.
    #[error("point is greylisted")]
    Greylisted,
    /// The pool is full of points it may not drop.
    #[error("pool is full")]
    Full,
}

/// Counters a user can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Garbage collections run.
    pub gc_runs: u64,
    /// Points dropped by garbage collection.
    pub points_dropped: u64,
    /// Points refused because the pool was full of undroppable points.
    pub points_refused: u64,
    /// Greylistings.
    pub greylistings: u64,
    /// Points dropped because their address-book position was held ([`Added::Collision`]).
    pub points_collided: u64,
    /// Worthless points that gave their address-book position to a newcomer.
    pub points_replaced: u64,
    /// Tried points evicted after failing their test (or not answering in time).
    pub tried_evicted: u64,
    /// Tried points kept because they answered (or had worked recently).
    pub tried_kept: u64,
}

/// What changed in the pool since the last [`Pool::take_changes`]: what a shell turns into
/// trigger fires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changes {
    /// A new point entered.
    pub new_point: bool,
    /// A new peer id was seen.
    pub new_peer: bool,
    /// A connection opened.
    pub new_connection: bool,
    /// Active connections at the previous take.
    pub count_before: usize,
    /// Active connections now.
    pub count_after: usize,
}

#[derive(Clone, Copy, Debug)]
struct PeerEntry {
    last_seen: Time,
}

/// The point and peer tables. See the module docs.
///
/// ```
/// use peerkeeper::{pool::{Pool, Source}, Config, Time};
/// let mut pool = Pool::new(&Config::default());
/// let a = "10.0.0.1:9732".parse().unwrap();
/// pool.add_point(a, Source::PeerSharing, Time::ZERO);
/// pool.advance(Time::ZERO);
/// assert_eq!(pool.candidates(false).next(), Some(a));
/// ```
#[derive(Clone, Debug)]
pub struct Pool {
    limits: PoolLimits,
    clock: Time,
    points: PointTable,
    /// (rank, slot).
    ready: BTreeSet<Entry>,
    /// (next dial time in ms, slot).
    waiting: BTreeSet<Entry>,
    dialing: BTreeSet<SocketAddr>,
    connections: BTreeMap<SocketAddr, Connection>,
    connected_peers: BTreeMap<PeerId, SocketAddr>,
    /// Connected peers by [`PeerId::tag`] (how many: tags may collide).
    connected_tags: HashMap<u32, u32>,
    good: BTreeSet<Id>,
    peers: HashMap<PeerId, PeerEntry>,
    ip_greylist: BTreeMap<IpAddr, Time>,
    /// Violations per address (its greylist key) within [`STRIKE_WINDOW`]: since when,
    /// how many from distinct sources, and the last source (a source counts once in a
    /// row). At most [`MAX_STRIKE_RECORDS`].
    strikes: BTreeMap<IpAddr, (Time, u32, SocketAddr)>,
    trusted: usize,
    stats: PoolStats,
    changes: Changes,
    salt: u64,
    /// Points a peer-set module or the embedding node vouches for (see [`Pool::protect`]).
    protected: BTreeSet<SocketAddr>,
    /// Points admitted in private mode besides the trusted ones (see [`Pool::admit`]).
    admitted: BTreeSet<SocketAddr>,
    /// Peers whose connections are never trimmed (primaries of tracked peer sets, see
    /// [`Pool::set_protected_peers`]).
    protected_peers: BTreeSet<PeerId>,
    /// The address book's positions ([`book`]).
    book: Book,
    /// Groups by autonomous system, when given ([`Pool::set_asmap`]).
    asmap: Option<std::sync::Arc<AsMap>>,
    /// Points whose peer's feedback score is positive (`true`) or negative (`false`): the
    /// planner dials the first before otherwise-equal candidates, the second after them
    /// ([`Pool::set_standing`]). At most [`MAX_STANDINGS`].
    standing: BTreeMap<SocketAddr, bool>,
}

/// Most points with a standing ([`Pool::set_standing`]).
pub const MAX_STANDINGS: usize = 4096;

impl Pool {
    /// An empty pool with the limits of `config`, holding its trusted points.
    pub fn new(config: &Config) -> Pool {
        let mut pool = Pool::with_limits(PoolLimits::from(config));
        for p in &config.trusted_points {
            pool.add_point(*p, Source::Trusted, Time::ZERO);
        }
        pool
    }

    /// An empty pool with explicit limits.
    pub fn with_limits(limits: PoolLimits) -> Pool {
        let book = Book::new(limits.max_points, limits.buckets);
        Pool {
            book,
            asmap: None,
            limits,
            clock: Time::ZERO,
            points: PointTable::default(),
            ready: BTreeSet::new(),
            waiting: BTreeSet::new(),
            dialing: BTreeSet::new(),
            connections: BTreeMap::new(),
            connected_peers: BTreeMap::new(),
            connected_tags: HashMap::new(),
            good: BTreeSet::new(),
            peers: HashMap::new(),
            ip_greylist: BTreeMap::new(),
            strikes: BTreeMap::new(),
            trusted: 0,
            stats: PoolStats::default(),
            changes: Changes::default(),
            salt: 0,
            protected: BTreeSet::new(),
            admitted: BTreeSet::new(),
            protected_peers: BTreeSet::new(),
            standing: BTreeMap::new(),
        }
    }

    /// Scrambles the order of never-failed candidates with `salt` (a node's seed), so that
    /// the nodes of a network do not all dial the same addresses first. Re-indexes the
    /// candidates: call it at start.
    pub fn set_salt(&mut self, salt: u64) {
        let old = std::mem::take(&mut self.ready);
        self.salt = salt;
        self.book.set_key(crate::rng::derive(salt, 0x626f_6f6b));
        for e in old {
            let id = e.id();
            let rank = self.points.info(id).rank(&self.points.addr(id), salt);
            self.ready.insert(Entry::new(rank, id));
        }
    }

    /// Groups peers by the autonomous system that announces them ([`AsMap`]) instead of
    /// by /16 (/32): for dial diversity, trims and the address book. Set it at start,
    /// before points are learned (a point placed under one grouping stays where it is;
    /// saved positions that no longer fit are placed again at restore).
    pub fn set_asmap(&mut self, map: Option<std::sync::Arc<AsMap>>) {
        self.asmap = map;
    }

    /// The network group of `addr`: its AS when an AS map is set and covers it, else its
    /// /16 (IPv6: /32), [`netgroup`].
    pub fn group(&self, addr: &SocketAddr) -> u64 {
        match &self.asmap {
            Some(m) => m.group(addr),
            None => netgroup(addr),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    /// Number of known points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is known.
    pub fn is_empty(&self) -> bool {
        self.points.len() == 0
    }

    /// Number of trusted points.
    pub fn trusted_count(&self) -> usize {
        self.trusted
    }

    /// Number of open connections.
    pub fn active_count(&self) -> usize {
        self.connections.len()
    }

    /// Number of dials in flight.
    pub fn dialing_count(&self) -> usize {
        self.dialing.len()
    }

    /// Number of known peer ids.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// What changed since the previous call (new points, peers, connections; the count
    /// then and now).
    pub fn take_changes(&mut self) -> Changes {
        let mut c = std::mem::take(&mut self.changes);
        c.count_after = self.connections.len();
        self.changes.count_before = c.count_after;
        c
    }

    /// What is known of `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&PointInfo> {
        self.points.get(addr)
    }

    /// Sets the peers whose connections are protected from trims (the primaries of the
    /// kept peer sets; see [`crate::core::peerset`]), replacing the previous ones. The
    /// caller bounds them.
    pub fn set_protected_peers(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        self.protected_peers = peers.into_iter().collect();
    }

    /// Records what the feedback score of the peer at `addr` says of it: `Some(true)`
    /// (positive: it proved useful), `Some(false)` (negative), `None` (no opinion). The
    /// planner dials points with a positive standing before otherwise-equal candidates and
    /// those with a negative one after them (see [`crate::maintenance::top_up_dials`]).
    /// Bounded by [`MAX_STANDINGS`]: past it a new standing is not recorded (returns
    /// `false`).
    pub fn set_standing(&mut self, addr: SocketAddr, standing: Option<bool>) -> bool {
        match standing {
            None => {
                self.standing.remove(&addr);
                true
            }
            Some(s) => {
                if self.standing.len() >= MAX_STANDINGS && !self.standing.contains_key(&addr) {
                    return false;
                }
                self.standing.insert(addr, s);
                true
            }
        }
    }

    /// The standing of `addr` ([`set_standing`](Self::set_standing)), if any.
    pub fn standing(&self, addr: &SocketAddr) -> Option<bool> {
        self.standing.get(addr).copied()
    }

    /// Whether any point has a standing (when none has, the planner's order is the
    /// candidate index's exactly).
    pub fn has_standings(&self) -> bool {
        !self.standing.is_empty()
    }

    /// Records a smoothed round-trip time (milliseconds) on the connection at `addr`.
    /// Returns whether a connection is there.
    pub fn set_rtt(&mut self, addr: &SocketAddr, rtt_ms: u32) -> bool {
        match self.connections.get_mut(addr) {
            Some(c) => {
                c.rtt_ms = Some(rtt_ms);
                true
            }
            None => false,
        }
    }

    /// Records that the peer on the connection at `addr` was reported useful at `now`.
    pub fn mark_useful(&mut self, addr: &SocketAddr, now: Time) {
        if let Some(c) = self.connections.get_mut(addr) {
            c.last_useful = Some(now);
        }
    }

    /// Whether `peer` is protected (a primary of a kept peer set).
    pub fn is_protected_peer(&self, peer: PeerId) -> bool {
        !self.protected_peers.is_empty() && self.protected_peers.contains(&peer)
    }

    /// Whether `addr` is a trusted point.
    pub fn is_trusted(&self, addr: &SocketAddr) -> bool {
        self.points.get(addr).is_some_and(PointInfo::is_trusted)
    }

    /// Whether `addr` is protected: trusted, marked with [`protect`](Self::protect), or
    /// connected to a protected peer ([`set_protected_peers`](Self::set_protected_peers)).
    /// A protected connection is never trimmed and never closed to make room for a
    /// newcomer, and a protected peer is admitted inbound beyond `max_inbound`.
    pub fn is_protected(&self, addr: &SocketAddr) -> bool {
        self.is_trusted(addr)
            || self.protected.contains(addr)
            || self
                .connections
                .get(addr)
                .is_some_and(|c| self.is_protected_peer(c.peer))
    }

    /// Marks `addr` protected (or not): the hook by which a peer-set module keeps its
    /// primaries (commonware's `track`) out of trims. At most `max_known_points` points
    /// are protected; past that the call is refused (returns `false`).
    pub fn protect(&mut self, addr: SocketAddr, on: bool) -> bool {
        if !on {
            self.protected.remove(&addr);
            return true;
        }
        if self.protected.len() >= self.limits.max_points && !self.protected.contains(&addr) {
            return false;
        }
        self.protected.insert(addr);
        true
    }

    /// Whether `addr` is admitted in private mode: trusted, or marked with
    /// [`admit`](Self::admit).
    pub fn is_admitted(&self, addr: &SocketAddr) -> bool {
        self.is_trusted(addr) || self.admitted.contains(addr)
    }

    /// Marks `addr` admitted in private mode (or not): the hook by which a peer-set module
    /// lets its tracked peers (primaries and secondaries) in. Bounded like
    /// [`protect`](Self::protect).
    pub fn admit(&mut self, addr: SocketAddr, on: bool) -> bool {
        if !on {
            self.admitted.remove(&addr);
            return true;
        }
        if self.admitted.len() >= self.limits.max_points && !self.admitted.contains(&addr) {
            return false;
        }
        self.admitted.insert(addr);
        true
    }

    /// Open connections we dialed.
    pub fn outbound_count(&self) -> usize {
        self.connections
            .values()
            .filter(|c| c.direction == Direction::Outbound)
            .count()
    }

    /// Open connections that dialed us.
    pub fn inbound_count(&self) -> usize {
        self.connections.len() - self.outbound_count()
    }

    /// The kind of `addr` ([`PointInfo::kind`]); incoming for an unknown point.
    pub fn kind_of(&self, addr: &SocketAddr) -> Source {
        self.points
            .get(addr)
            .map_or(Source::Incoming, PointInfo::kind)
    }

    /// Open connections and dials in flight by kind ([`Source::index`] order).
    pub fn kind_counts(&self) -> [usize; 5] {
        let mut n = [0; 5];
        let dialing = self
            .dialing
            .iter()
            .filter(|a| !self.connections.contains_key(*a));
        for a in self.connections.keys().chain(dialing) {
            n[self.kind_of(a).index()] += 1;
        }
        n
    }

    /// Open connections, ordered by point.
    pub fn connections(&self) -> impl Iterator<Item = (SocketAddr, &Connection)> + '_ {
        self.connections.iter().map(|(a, c)| (*a, c))
    }

    /// The connection at `addr`, if any.
    pub fn connection(&self, addr: &SocketAddr) -> Option<&Connection> {
        self.connections.get(addr)
    }

    /// Whether the peer last seen at `addr` is connected now (at this point or another):
    /// such a point is no candidate.
    pub fn last_peer_connected(&self, addr: &SocketAddr) -> bool {
        self.points
            .get(addr)
            .is_some_and(|p| p.peer_tag != 0 && self.connected_tags.contains_key(&p.peer_tag))
    }

    /// The point connected to `peer`, if any.
    pub fn connected_point_of(&self, peer: PeerId) -> Option<SocketAddr> {
        self.connected_peers.get(&peer).copied()
    }

    /// Points with a dial in flight, ordered.
    pub fn dialing(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.dialing.iter().copied()
    }

    /// The latest `now` the pool was advanced to.
    pub fn clock(&self) -> Time {
        self.clock
    }

    /// Dialable points now, best first: trusted, then never failed, then the oldest
    /// failure; excluding connected, dialing, greylisted and backed-off points, points
    /// whose IP address is greylisted (a dial would be refused), and points whose peer is
    /// already connected. With `trusted_only` (private mode) only trusted points. Reflects
    /// the last [`advance`](Self::advance). Taking `k` costs `O(k + log n)` (plus one skip
    /// per connected peer known under another point or point on a greylisted IP).
    pub fn candidates(&self, trusted_only: bool) -> impl Iterator<Item = SocketAddr> + '_ {
        self.ready
            .iter()
            .take_while(move |e| !trusted_only || e.key() >> 63 == 0)
            .filter(move |e| {
                let tag = self.points.info(e.id()).peer_tag;
                tag == 0 || !self.connected_tags.contains_key(&tag)
            })
            .map(|e| self.points.addr(e.id()))
            .filter(move |a| !self.is_ip_greylisted(a.ip(), self.clock))
    }

    /// The earliest time a waiting (backed-off or greylisted) point becomes dialable.
    pub fn next_ready_time(&self) -> Option<Time> {
        self.waiting.first().map(|e| Time::from_millis(e.key()))
    }

    /// Moves the points whose backoff or greylisting ended by `now` to the candidates.
    pub fn advance(&mut self, now: Time) {
        if now > self.clock {
            self.clock = now;
        }
        while let Some(&e) = self.waiting.first() {
            let id = e.id();
            if Time::from_millis(e.key()) > self.clock {
                break;
            }
            self.waiting.pop_first();
            let mut info = self.points.info(id).clone();
            if info.state == PointState::Greylisted {
                info.state = PointState::Disconnected;
                self.points.set_info(id, info.clone());
            }
            let rank = info.rank(&self.points.addr(id), self.salt);
            self.ready.insert(Entry::new(rank, id));
        }
    }

    fn unindex(&mut self, id: Id, addr: SocketAddr, info: &PointInfo) {
        if info.dialing {
            self.dialing.remove(&addr);
        } else if info.state != PointState::Connected
            && !self
                .ready
                .remove(&Entry::new(info.rank(&addr, self.salt), id))
        {
            self.waiting
                .remove(&Entry::new(info.next_dial.as_millis(), id));
        }
        if info.is_good() {
            self.good.remove(&id);
        }
    }

    fn index(&mut self, id: Id, addr: SocketAddr, info: &PointInfo) {
        if info.dialing {
            self.dialing.insert(addr);
        } else {
            match info.state {
                PointState::Disconnected if info.next_dial <= self.clock => {
                    self.ready
                        .insert(Entry::new(info.rank(&addr, self.salt), id));
                }
                PointState::Disconnected | PointState::Greylisted => {
                    self.waiting
                        .insert(Entry::new(info.next_dial.as_millis(), id));
                }
                PointState::Connected => {}
            }
        }
        if info.is_good() {
            self.good.insert(id);
        }
    }

    /// Applies `f` to the point's info, keeping the indexes right.
    fn update<T>(&mut self, addr: SocketAddr, f: impl FnOnce(&mut PointInfo) -> T) -> Option<T> {
        let id = self.points.id(&addr)?;
        let mut info = self.points.info(id).clone();
        self.unindex(id, addr, &info);
        let was_trusted = info.is_trusted();
        let out = f(&mut info);
        if info.is_trusted() && !was_trusted {
            self.trusted += 1;
        }
        self.index(id, addr, &info);
        self.points.set_info(id, info);
        Some(out)
    }

    /// Learns a point from `source` at `now`, as the operator's or the embedding node's
    /// word (not bucketed: see [`add_point_from`](Self::add_point_from) for points heard
    /// from the network). Past `max_known_points` the pool is garbage-collected first; if
    /// nothing can be dropped, an untrusted point is refused.
    pub fn add_point(&mut self, addr: SocketAddr, source: Source, now: Time) -> Added {
        self.learn(addr, source, None, now)
    }

    /// Learns a point heard from the network: `sender` is the IP address of the peer that
    /// told us (for a point that connected to us, its own). With the address book on
    /// ([`book`]) a new point at a public address gets the position the sender's group
    /// allows, or is dropped ([`Added::Collision`]) when a point worth keeping holds it;
    /// off, or for a loopback or private address, as [`add_point`](Self::add_point).
    ///
    /// ```
    /// use peerkeeper::{pool::{Added, Pool, Source}, Config, Time};
    /// let mut pool = Pool::new(&Config::default());
    /// let sender = "45.33.1.7".parse().unwrap();
    /// // One sender flooding 20,000 addresses of its own range gets a small share.
    /// let kept = (0..20_000u32)
    ///     .map(|i| std::net::SocketAddr::from(([45, 33, (i >> 8) as u8, i as u8], 9732)))
    ///     .filter(|a| pool.add_point_from(*a, Source::PeerSharing, sender, Time::ZERO) == Added::New)
    ///     .count();
    /// assert!(kept <= 2 * 64, "{kept}"); // its group's 2 buckets, not the pool's 4,000
    /// ```
    pub fn add_point_from(
        &mut self,
        addr: SocketAddr,
        source: Source,
        sender: IpAddr,
        now: Time,
    ) -> Added {
        self.learn(addr, source, Some(sender), now)
    }

    /// [`add_point_from`](Self::add_point_from) with `Some(sender)`,
    /// [`add_point`](Self::add_point) with `None`.
    pub(crate) fn learn(
        &mut self,
        addr: SocketAddr,
        source: Source,
        sender: Option<IpAddr>,
        now: Time,
    ) -> Added {
        if let Some(id) = self.points.id(&addr) {
            let info = self.points.info_mut(id);
            if source != Source::Trusted || info.is_trusted() {
                // Neither the rank nor the state changes: no re-indexing (the common case:
                // a point heard of again).
                info.sources.insert(source);
                info.last_seen = info.last_seen.max(now);
            } else {
                self.update(addr, |p| {
                    p.sources.insert(source);
                    p.last_seen = p.last_seen.max(now);
                });
            }
            return Added::Known;
        }
        let place = match sender {
            Some(ip) if self.book.on && source != Source::Trusted && book::bucketed(&addr) => {
                let sender = self.group(&SocketAddr::new(ip, 0));
                let place = self.book.new_place(&addr, self.group(&addr), sender);
                if let Some(held) = self.book.at(place) {
                    if !self.worthless(held, now) {
                        self.stats.points_collided += 1;
                        return Added::Collision;
                    }
                    let old = self.points.addr(held);
                    self.remove_point(old);
                    self.stats.points_replaced += 1;
                }
                place
            }
            _ => NOWHERE,
        };
        if self.points.len() >= self.limits.max_points {
            self.gc();
            if self.points.len() >= self.limits.max_points && source != Source::Trusted {
                self.stats.points_refused += 1;
                return Added::Full;
            }
        }
        let mut info = PointInfo::new(source, now);
        info.place = place;
        if info.is_trusted() {
            self.trusted += 1;
        }
        let id = self.points.insert(addr, info.clone());
        if place != NOWHERE {
            self.book.put(place, id);
        }
        self.index(id, addr, &info);
        self.changes.new_point = true;
        Added::New
    }

    /// Whether the new-side point `id` may give its position to a newcomer: it failed
    /// [`book::TERRIBLE_FAILURES`] times in a row, or was not heard of for
    /// [`book::STALE_AFTER`] (and is neither trusted, dialing nor connected).
    fn worthless(&self, id: Id, now: Time) -> bool {
        let p = self.points.info(id);
        !p.is_trusted()
            && !p.dialing
            && p.state != PointState::Connected
            && (p.failures >= book::TERRIBLE_FAILURES
                || now.saturating_since(p.last_seen) >= book::STALE_AFTER)
    }

    /// Removes a point from every table (the caller checked it may go).
    fn remove_point(&mut self, addr: SocketAddr) -> Option<PointInfo> {
        let (id, info) = self.points.remove(&addr)?;
        self.unindex(id, addr, &info);
        if info.place != NOWHERE {
            self.book.clear(info.place, id);
        }
        if info.is_trusted() {
            self.trusted -= 1;
        }
        Some(info)
    }

    /// Drops points down to the GC target: most failed first, then longest unseen; never
    /// trusted, dialing or connected ones. With the address book on, points heard from
    /// the network that hold no position (they connected to us while their position was
    /// held) go first. `O(n log n)`, run once per `max - gc_target` insertions.
    pub fn gc(&mut self) {
        let excess = self.points.len().saturating_sub(self.limits.gc_target);
        if excess == 0 {
            return;
        }
        self.stats.gc_runs += 1;
        let book = self.book.on;
        let mut droppable: Vec<(bool, u32, Time, SocketAddr)> = self
            .points
            .iter()
            .filter(|(_, _, p)| !p.is_trusted() && !p.dialing && p.state != PointState::Connected)
            .map(|(_, a, p)| {
                let loose = book
                    && p.place == NOWHERE
                    && p.kind() == Source::Incoming
                    && book::bucketed(&a);
                (!loose, p.failures, p.last_seen, a)
            })
            .collect();
        // Loose first, then most failures, then oldest last_seen, then address (for
        // determinism).
        droppable.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0)
                .then(y.1.cmp(&x.1))
                .then(x.2.cmp(&y.2))
                .then(x.3.cmp(&y.3))
        });
        for (_, _, _, addr) in droppable.into_iter().take(excess) {
            if self.remove_point(addr).is_some() {
                self.stats.points_dropped += 1;
            }
        }
    }

    /// Forgets a point (for instance our own address, learned from a peer). A trusted
    /// point is kept. Returns whether it was removed.
    pub fn forget(&mut self, addr: SocketAddr) -> bool {
        let removable = self
            .points
            .get(&addr)
            .is_some_and(|p| !p.is_trusted() && !p.dialing && p.state != PointState::Connected);
        if removable {
            self.remove_point(addr);
        }
        removable
    }

    /// Marks a point as being dialed: it leaves the candidates and counts as a dial in
    /// flight until [`end_dial`](Self::end_dial). Returns false if it is not a candidate
    /// now (connected, greylisted, on a greylisted address, backed off, or already being
    /// dialed): the one gate every dial passes, whatever chose it (a plan, a swap).
    pub fn begin_dial(&mut self, addr: SocketAddr, now: Time) -> bool {
        let now = now.max(self.clock);
        let ok = self.points.get(&addr).is_some_and(|p| {
            p.state == PointState::Disconnected && !p.dialing && p.next_dial <= now
        }) && !self.is_ip_greylisted(addr.ip(), now);
        if ok {
            self.update(addr, |p| p.dialing = true);
        }
        ok
    }

    /// The first point, in table order from slot `start` (wrapping; any number: it is
    /// reduced), that satisfies `pred`. `O(n)` at worst: for rare decisions (an
    /// exploration dial), not per message.
    pub fn find_from(
        &self,
        start: usize,
        pred: impl Fn(&SocketAddr, &PointInfo) -> bool,
    ) -> Option<SocketAddr> {
        let bound = self.points.id_bound() as usize;
        if bound == 0 {
            return None;
        }
        let start = start % bound;
        (start..bound)
            .chain(0..start)
            .filter_map(|i| self.points.try_get(i as Id))
            .find(|(a, info)| pred(a, info))
            .map(|(a, _)| a)
    }

    /// Starts an exploration dial to `addr` ([`crate::Config::exploration_interval`]): as
    /// [`begin_dial`](Self::begin_dial), but a backed-off point may be dialed (a point
    /// that failed during a partition is what an island must try again). Never a
    /// greylisted point or address.
    pub fn begin_exploration(&mut self, addr: SocketAddr, now: Time) -> bool {
        let now = now.max(self.clock);
        let ok = self
            .points
            .get(&addr)
            .is_some_and(|p| p.state == PointState::Disconnected && !p.dialing)
            && !self.is_ip_greylisted(addr.ip(), now);
        if ok {
            self.update(addr, |p| p.dialing = true);
        }
        ok
    }

    /// The dial to `addr` ended. With `failed` the point's failure count grows and it is
    /// backed off, unless it is connected meanwhile (an inbound connection from it
    /// opened while we dialed): a failed dial says nothing against a working peer.
    /// Without `failed` (a success, a cancelled dial, or no verdict on the point) it
    /// returns to the candidates untouched. Returns whether a dial was in flight.
    pub fn end_dial<R: Rng + ?Sized>(
        &mut self,
        addr: SocketAddr,
        failed: bool,
        now: Time,
        rng: &mut R,
    ) -> bool {
        if !self.points.get(&addr).is_some_and(|p| p.dialing) {
            return false;
        }
        let limits = &self.limits;
        let backoff = match &limits.configured_retry {
            Some(short)
                if self.points.get(&addr).is_some_and(|p| {
                    p.sources.contains(Source::Trusted) || p.sources.contains(Source::Bootstrap)
                }) =>
            {
                short.clone()
            }
            _ => limits.reconnection.clone(),
        };
        self.update(addr, |p| {
            p.dialing = false;
            if failed && p.state == PointState::Disconnected {
                p.failures = p.failures.saturating_add(1);
                p.failed_at = now;
                p.next_dial = p.next_dial.max(now + backoff.delay(p.failures, rng));
            }
        });
        true
    }

    /// The dial to `addr` failed while the node is offline (see the core's offline rule):
    /// no failure is counted and the point is not backed off by its failure count; it
    /// waits until `until` (a short retry) instead. Returns whether a dial was in flight.
    pub fn end_dial_offline(&mut self, addr: SocketAddr, until: Time) -> bool {
        if !self.points.get(&addr).is_some_and(|p| p.dialing) {
            return false;
        }
        self.update(addr, |p| {
            p.dialing = false;
            if p.state == PointState::Disconnected {
                p.next_dial = p.next_dial.max(until);
            }
        });
        true
    }

    /// Takes back one failure counted against `addr` by a dial that, it turns out, failed
    /// because we were offline: the count drops by one and the point waits until `until`
    /// at most. Returns whether anything changed (a disconnected point with a failure).
    pub fn forgive_failure(&mut self, addr: SocketAddr, until: Time) -> bool {
        let ok = self
            .points
            .get(&addr)
            .is_some_and(|p| p.state == PointState::Disconnected && !p.dialing && p.failures > 0);
        if ok {
            self.update(addr, |p| {
                p.failures -= 1;
                p.next_dial = p.next_dial.min(until);
            });
        }
        ok
    }

    /// Makes `addr` dialable at `now` if it is merely waiting (disconnected, not dialing):
    /// what the core does with the points that failed while it was offline, once the
    /// network is back. Returns whether it was waiting.
    pub fn release(&mut self, addr: SocketAddr, now: Time) -> bool {
        let ok = self.points.get(&addr).is_some_and(|p| {
            p.state == PointState::Disconnected && !p.dialing && p.next_dial > now
        });
        if ok {
            self.update(addr, |p| p.next_dial = now);
        }
        ok
    }

    /// A connection is open (dialed or accepted) to `peer` at its listening point `addr`.
    /// An inbound point unknown so far is added with source [`Source::Incoming`].
    /// Returns whether `peer` is a new peer id.
    pub fn connection_opened(
        &mut self,
        id: ConnId,
        addr: SocketAddr,
        peer: PeerId,
        direction: Direction,
        now: Time,
    ) -> Result<bool, Refused> {
        if self.connections.contains_key(&addr) {
            return Err(Refused::AlreadyConnected);
        }
        if self.connected_peers.contains_key(&peer) {
            return Err(Refused::DuplicatePeer(peer));
        }
        if self.is_ip_greylisted(addr.ip(), now) {
            return Err(Refused::Greylisted);
        }
        match self.points.get(&addr) {
            None => {
                // A point that connects to us is its own source; if its position is held
                // it is still recorded (a connection needs its point), without one.
                let sender = (direction == Direction::Inbound).then(|| addr.ip());
                let mut added = self.learn(addr, Source::Incoming, sender, now);
                if added == Added::Collision {
                    added = self.learn(addr, Source::Incoming, None, now);
                }
                if added == Added::Full {
                    return Err(Refused::Full);
                }
            }
            Some(p) if p.state == PointState::Greylisted && p.next_dial > now => {
                return Err(Refused::Greylisted);
            }
            Some(_) => {}
        }
        self.update(addr, |p| {
            p.state = PointState::Connected;
            p.failures = 0;
            p.succeeded_at = now;
            p.last_seen = now;
            p.peer_tag = peer.tag();
            if direction == Direction::Inbound {
                p.sources.insert(Source::Incoming);
            }
        });
        self.connections.insert(
            addr,
            Connection {
                id,
                peer,
                direction,
                since: now,
                rtt_ms: None,
                last_useful: None,
            },
        );
        self.connected_peers.insert(peer, addr);
        *self.connected_tags.entry(peer.tag()).or_default() += 1;
        self.changes.new_connection = true;
        if direction == Direction::Outbound {
            self.promote(addr, now);
        }
        Ok(self.see_peer(peer, now))
    }

    /// Records a peer id; returns whether it is new. Bounded by `max_peers`: when full,
    /// the quarter seen longest ago is dropped, never a connected peer (so while more
    /// peers than `max_peers` are connected, the table can hold more, up to the number of
    /// connections plus one).
    pub fn see_peer(&mut self, peer: PeerId, now: Time) -> bool {
        if let Some(e) = self.peers.get_mut(&peer) {
            e.last_seen = now;
            return false;
        }
        if self.peers.len() >= self.limits.max_peers {
            // Drop the quarter seen longest ago, never a connected peer.
            let mut old: Vec<(Time, PeerId)> = self
                .peers
                .iter()
                .filter(|(p, _)| !self.connected_peers.contains_key(p))
                .map(|(p, e)| (e.last_seen, *p))
                .collect();
            old.sort_unstable();
            let n = (self.limits.max_peers / 4).max(1);
            for (_, p) in old.into_iter().take(n) {
                self.peers.remove(&p);
            }
        }
        self.peers.insert(peer, PeerEntry { last_seen: now });
        self.changes.new_peer = true;
        true
    }

    /// The connection at `addr` ended (closed by either side). The point is not redialed
    /// before `disconnection_delay`. Returns the connection that ended.
    pub fn connection_closed(&mut self, addr: SocketAddr, now: Time) -> Option<Connection> {
        let conn = self.connections.remove(&addr)?;
        self.connected_peers.remove(&conn.peer);
        if let Some(n) = self.connected_tags.get_mut(&conn.peer.tag()) {
            *n -= 1;
            if *n == 0 {
                self.connected_tags.remove(&conn.peer.tag());
            }
        }
        let delay = self.limits.disconnection_delay;
        self.update(addr, |p| {
            if p.state == PointState::Connected {
                p.state = PointState::Disconnected;
                p.next_dial = p.next_dial.max(now + delay);
            }
        });
        Some(conn)
    }

    /// Refuses `addr` (this point only: its address is refused only on repeated abuse,
    /// see [`Pool::strike`]) for `greylist_duration` from `now` (a protocol violation). If
    /// it was connected, the connection is removed from the pool and returned: the
    /// caller closes it.
    pub fn greylist(&mut self, addr: SocketAddr, now: Time) -> Option<Connection> {
        self.stats.greylistings += 1;
        let conn = self.connection_closed(addr, now);
        let until = now + self.limits.greylist_duration;
        self.update(addr, |p| {
            p.state = PointState::Greylisted;
            p.next_dial = p.next_dial.max(until);
        });
        conn
    }

    /// Counts a violation by `source` (a connection's remote address, or a point) against
    /// its address. The [`IP_STRIKES`]th from distinct sources within [`STRIKE_WINDOW`]
    /// greylists the address (an IPv6 one: its /64) for `greylist_duration`, and returns
    /// `true`; loopback never is (every local process shares it). The same source twice
    /// in a row counts once, unless its port is 0 (a source not known: each counts).
    ///
    /// ```
    /// use peerkeeper::{pool::{Pool, IP_STRIKES}, Config, Time};
    /// let mut pool = Pool::new(&Config::default());
    /// let ip = "203.0.113.7".parse().unwrap();
    /// for port in 1..IP_STRIKES as u16 {
    ///     assert!(!pool.strike(std::net::SocketAddr::new(ip, 40_000 + port), Time::ZERO));
    /// }
    /// assert!(!pool.is_ip_greylisted(ip, Time::ZERO));
    /// assert!(pool.strike(std::net::SocketAddr::new(ip, 50_000), Time::ZERO));
    /// assert!(pool.is_ip_greylisted(ip, Time::ZERO));
    /// ```
    pub fn strike(&mut self, source: SocketAddr, now: Time) -> bool {
        let ip = greylist_key(source.ip());
        if ip.is_loopback() || self.is_ip_greylisted(ip, now) {
            // Never loopback; and an address banned already is not banned again.
            return false;
        }
        if !self.strikes.contains_key(&ip) && self.strikes.len() >= MAX_STRIKE_RECORDS {
            self.strikes
                .retain(|_, (since, _, _)| now < *since + STRIKE_WINDOW);
            if self.strikes.len() >= MAX_STRIKE_RECORDS {
                if let Some((&oldest, _)) = self.strikes.iter().min_by_key(|(ip, r)| (r.0, **ip)) {
                    self.strikes.remove(&oldest);
                }
            }
        }
        let record = self.strikes.entry(ip).or_insert((now, 0, source));
        if now >= record.0 + STRIKE_WINDOW {
            *record = (now, 0, source);
        }
        if record.1 > 0 && record.2 == source && source.port() != 0 {
            return false;
        }
        record.1 += 1;
        record.2 = source;
        if record.1 < IP_STRIKES {
            return false;
        }
        self.strikes.remove(&ip);
        let until = now + self.limits.greylist_duration;
        self.greylist_ip(ip, until);
        true
    }

    /// Refuses connections from `ip` until `until`: an IPv4 address alone, an IPv6 address
    /// with its whole /64 (what one host or one customer of a provider is given: per
    /// address, an attacker would walk its prefix). Bounded by [`MAX_GREYLISTED_IPS`]: when
    /// full, the entry that expires first makes room.
    pub fn greylist_ip(&mut self, ip: IpAddr, until: Time) {
        let ip = greylist_key(ip);
        if !self.ip_greylist.contains_key(&ip) && self.ip_greylist.len() >= MAX_GREYLISTED_IPS {
            let clock = self.clock;
            self.ip_greylist.retain(|_, t| *t > clock);
        }
        if !self.ip_greylist.contains_key(&ip) && self.ip_greylist.len() >= MAX_GREYLISTED_IPS {
            if let Some((&first, _)) = self.ip_greylist.iter().min_by_key(|(ip, t)| (**t, **ip)) {
                self.ip_greylist.remove(&first);
            }
        }
        let e = self.ip_greylist.entry(ip).or_insert(until);
        *e = (*e).max(until);
    }

    // ----- the operator's bans (control interface) --------------------------------------

    /// Refuses `addr` until `until` (an operator's ban: [`greylist`](Self::greylist) with
    /// a duration of the operator's choosing), and its IP address unless loopback. An
    /// unknown point is not added: its IP address alone is refused. Returns the
    /// connection removed from the pool, if it was connected: the caller closes it.
    pub fn ban_until(&mut self, addr: SocketAddr, until: Time) -> Option<Connection> {
        let conn = if self.points.get(&addr).is_some() {
            self.stats.greylistings += 1;
            let conn = self.connection_closed(addr, self.clock);
            self.update(addr, |p| {
                p.state = PointState::Greylisted;
                p.next_dial = p.next_dial.max(until);
            });
            conn
        } else {
            None
        };
        if !addr.ip().is_loopback() {
            self.greylist_ip(addr.ip(), until);
        }
        conn
    }

    /// Lifts the ban of `addr` (its greylisting, whatever the cause, and its IP address's):
    /// dialable again at `now`. Returns whether anything was lifted.
    pub fn unban(&mut self, addr: SocketAddr, now: Time) -> bool {
        let point = self
            .points
            .get(&addr)
            .is_some_and(|p| p.state == PointState::Greylisted);
        if point {
            self.update(addr, |p| {
                p.state = PointState::Disconnected;
                p.next_dial = now;
            });
        }
        self.unban_ip(addr.ip()) || point
    }

    /// Lifts the ban of the IP address `ip` (for IPv6, its /64). Returns whether it was
    /// banned.
    pub fn unban_ip(&mut self, ip: IpAddr) -> bool {
        self.ip_greylist.remove(&greylist_key(ip)).is_some()
    }

    /// When the ban of `ip` (for IPv6, its /64) ends, if it is banned at `now`.
    pub fn ip_banned_until(&self, ip: IpAddr, now: Time) -> Option<Time> {
        self.ip_greylist
            .get(&greylist_key(ip))
            .copied()
            .filter(|t| *t > now)
    }

    /// Every known point with what the pool knows of it, in no particular order: `O(n)`,
    /// for an operator's listing (the control interface), never for a decision.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &PointInfo)> + '_ {
        self.points.iter().map(|(_, a, p)| (a, p))
    }

    /// Whether connections from `ip` (an IPv6 address: from its /64) are refused at `now`.
    pub fn is_ip_greylisted(&self, ip: IpAddr, now: Time) -> bool {
        !self.ip_greylist.is_empty()
            && self
                .ip_greylist
                .get(&greylist_key(ip))
                .is_some_and(|t| *t > now)
    }

    /// A sample of points to tell a peer about (an answer, a refusal, a farewell): up to
    /// `best` points known to work (connected now first, then good ones: connected once
    /// and not failing since), then up to `random` more drawn at random from every known
    /// point that is not greylisted (nor failing, unless `include_failing`). `keep`
    /// filters, given the point and what the pool knows of it (the requester itself, the
    /// relay rule for the requester's address, what may be vouched for).
    ///
    /// Never scans the pool: it reads the connections, a window of `3 * best + 16`
    /// entries of the good set starting at a random place, and makes at most
    /// `2 * random + 8` random probes into the point table, so a flood of requests costs
    /// little.
    ///
    /// ```
    /// use peerkeeper::{pool::{Pool, Source}, Config, Time};
    /// use rand::{rngs::StdRng, SeedableRng};
    /// let mut pool = Pool::new(&Config::default());
    /// for i in 1..=20 {
    ///     pool.add_point(format!("10.0.0.{i}:1").parse().unwrap(), Source::PeerSharing, Time::ZERO);
    /// }
    /// let me: std::net::SocketAddr = "10.0.0.1:1".parse().unwrap();
    /// let s = pool.share_sample(5, 5, false, |a, _| *a != me, &mut StdRng::seed_from_u64(1));
    /// assert!(!s.is_empty() && s.len() <= 10 && !s.contains(&me));
    /// ```
    pub fn share_sample<R: Rng + ?Sized>(
        &self,
        best: usize,
        random: usize,
        include_failing: bool,
        keep: impl Fn(&SocketAddr, &PointInfo) -> bool,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        use rand::seq::IteratorRandom;
        let clock = self.clock;
        let keep = |a: &SocketAddr, info: &PointInfo| {
            keep(a, info) && (self.ip_greylist.is_empty() || !self.is_ip_greylisted(a.ip(), clock))
        };
        let mut out: Vec<SocketAddr> = self
            .connections
            .keys()
            .filter(|a| self.points.get(a).is_some_and(|info| keep(a, info)))
            .copied()
            .choose_multiple(rng, best);
        if out.len() < best && !self.good.is_empty() {
            let need = best - out.len();
            let start: Id = rng.gen_range(0..self.points.id_bound().max(1));
            let picked = self
                .good
                .range(start..)
                .chain(self.good.range(..start))
                .take(need * 3 + 16)
                .filter_map(|id| {
                    let info = self.points.info(*id);
                    let addr = self.points.addr(*id);
                    (info.state == PointState::Disconnected && keep(&addr, info)).then_some(addr)
                })
                .choose_multiple(rng, need);
            out.extend(picked);
        }
        let bound = self.points.id_bound();
        let target = out.len() + random;
        if bound > 0 {
            for _ in 0..random * 2 + 8 {
                if out.len() >= target {
                    break;
                }
                let Some((addr, info)) = self.points.try_get(rng.gen_range(0..bound)) else {
                    continue;
                };
                let usable =
                    info.state != PointState::Greylisted && (include_failing || info.failures == 0);
                if usable && keep(&addr, info) && !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
        out
    }

    /// Checks the internal indexes against the tables (for tests; `O(n)`).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let mut ready = 0;
        let mut waiting = 0;
        let mut good = 0;
        let mut len = 0;
        for (id, a, p) in self.points.iter() {
            len += 1;
            assert_eq!(self.points.id(&a), Some(id), "{a} not in the hash index");
            match p.state {
                _ if p.dialing => assert!(self.dialing.contains(&a), "{a} not dialing"),
                PointState::Disconnected
                    if self.ready.contains(&Entry::new(p.rank(&a, self.salt), id)) =>
                {
                    assert!(p.next_dial <= self.clock, "{a} ready before its time");
                    ready += 1;
                }
                PointState::Disconnected | PointState::Greylisted => {
                    // A greylisting that ended at or before the clock waits for the next
                    // `advance`; anything else waits for a time still to come.
                    let entry = Entry::new(p.next_dial.as_millis(), id);
                    assert!(self.waiting.contains(&entry), "{a} not indexed");
                    waiting += 1;
                }
                PointState::Connected => {
                    let c = self.connections.get(&a);
                    assert!(c.is_some(), "{a} connected without a connection");
                    assert_eq!(
                        c.map(|c| c.peer.tag()),
                        Some(p.peer_tag),
                        "{a} connected to another peer"
                    );
                }
            }
            if p.is_good() {
                assert!(self.good.contains(&id), "good {a} not in the good set");
                good += 1;
            }
        }
        assert_eq!(len, self.points.len());
        assert_eq!(ready, self.ready.len(), "stale entries in ready");
        assert_eq!(waiting, self.waiting.len(), "stale entries in waiting");
        assert_eq!(good, self.good.len(), "stale entries in good");
        for a in &self.dialing {
            assert_eq!(self.points.get(a).map(|p| p.dialing), Some(true));
        }
        for (a, c) in &self.connections {
            assert_eq!(
                self.points.get(a).map(|p| p.state),
                Some(PointState::Connected),
                "connection to {a} without a connected point"
            );
            assert_eq!(self.connected_peers.get(&c.peer), Some(a));
        }
        assert_eq!(self.connected_peers.len(), self.connections.len());
        assert_eq!(
            self.connected_tags
                .values()
                .map(|n| *n as usize)
                .sum::<usize>(),
            self.connections.len()
        );
        assert_eq!(
            self.trusted,
            self.points
                .iter()
                .filter(|(_, _, p)| p.is_trusted())
                .count()
        );
        // Only trusted points (the operator's, never dropped) may take the pool past its
        // bound; nothing from the network can.
        assert!(self.points.len() - self.trusted <= self.limits.max_points);
        assert!(self.ip_greylist.len() <= MAX_GREYLISTED_IPS);
        // The address book: every placed point sits where it says, alone.
        let mut placed = 0;
        for (place, id) in self.book.occupied() {
            assert_eq!(
                self.points.info(id).place,
                place,
                "book position out of step"
            );
            placed += 1;
        }
        let claimed = self
            .points
            .iter()
            .filter(|(_, _, p)| p.place != NOWHERE)
            .count();
        assert_eq!(
            placed, claimed,
            "a point claims a position it does not hold"
        );
        assert_eq!(placed, self.book.new_count + self.book.tried_count);
        assert!(self.book.collisions.len() <= book::MAX_COLLISIONS);
        if !self.book.on {
            assert_eq!(placed, 0, "points placed with the book off");
        }
    }
}

/// What the IP greylist is keyed by: an IPv4 address (an IPv4-mapped IPv6 one as the IPv4
/// address it is), or an IPv6 address's /64 prefix.
/// Whether a ban of `a` covers `b`: the same IPv4 address, or the same IPv6 /64 (an
/// IPv4-mapped address counts as the IPv4 address it is).
pub fn same_ban_key(a: IpAddr, b: IpAddr) -> bool {
    greylist_key(a) == greylist_key(b)
}

pub(crate) fn greylist_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}
