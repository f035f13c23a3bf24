//! peerkeeper's connection maintenance inside rust-libp2p: a [`NetworkBehaviour`] that
//! keeps a node between a minimum and a maximum of peers, driven by the same sans-IO
//! node core ([`peerkeeper::NodeCore`]) as peerkeeper's own tokio node and its simulator.
//!
//! libp2p has no connection manager that keeps a node connected: `connection-limits`
//! refuses past a limit, Kademlia dials for routing. This behaviour brings all of
//! peerkeeper's maintenance: bounds with hysteresis (dial below `min_threshold`, trim
//! above `max_threshold`), the point pool with backoff and bans, per-kind targets, peer
//! sets by epoch ([`Behaviour::track`]), the address book, peer feedback
//! ([`Behaviour::report`]), exploration dials, and peer sharing between nodes on
//! [`codec::PROTOCOL`] (`/peerkeeper/points/1`).
//!
//! # How libp2p maps onto the core
//!
//! * **Connections.** A dial the core asks for is a swarm dial of the point's multiaddr
//!   ([`to_multiaddr`]). Once Noise has proven both keys, the dialer sends its hello on
//!   `/peerkeeper/points/1` (the port it listens on, as in the native handshake), and the
//!   acceptor answers with the core's verdict from its one admission rule: admitted, or
//!   refused with a reason and, when it is full, points to try instead; a refused
//!   connection closes once the verdict is delivered (at most [`Config::linger`]). The
//!   dialer reports its dial to the core when the verdict comes. A libp2p peer that does
//!   not speak the protocol is a plain peer: admitted (or refused, and closed) after
//!   [`Config::verdict_wait`] without a hello, with its point where it dialed from
//!   (libp2p's TCP, with port reuse, its default, and QUIC dial from the port they listen
//!   on); kept at once when it says it does not support the protocol.
//! * **Before the handshake.** [`NetworkBehaviour::handle_pending_inbound_connection`]
//!   refuses a greylisted address, a source over [`MAX_PENDING_PER_IP`] pending
//!   connections (loopback exempt), and any past `max_incoming_connections` pending in
//!   all, each counted by reason ([`Status::refused_pending`]).
//! * **Points.** A peer's point is its IP address and the port of its hello. Listen
//!   addresses a peer announces through identify are fed with
//!   [`Behaviour::add_peer_addresses`], under the same relay rule and caps as shared
//!   points. See [`to_point`] for what maps.
//! * **Ids.** [`core_peer_id`]: an Ed25519 key's bytes, the same id as a native node's.
//! * **Time.** The core's timers run on the tokio clock of the swarm's task (a tokio
//!   runtime is required; a paused tokio clock drives it in tests).
//! * **Connections other behaviours dial** (Kademlia, the application) are not the
//!   core's: they are counted ([`Status::foreign`]) but neither kept alive nor trimmed by
//!   it.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use peerkeeper_libp2p::{Behaviour, Config};
//! use peerkeeper::pool::Source;
//! let key = libp2p::identity::Keypair::generate_ed25519();
//! let mut core = peerkeeper::Config::default();
//! (core.min_connections, core.expected_connections, core.max_connections) = (3, 6, 10);
//! let mut behaviour = Behaviour::new(Config::new(core), key.public().to_peer_id()).unwrap();
//! let seed = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
//! assert_eq!(behaviour.add_points(&[seed], Source::Bootstrap).unwrap(), 1);
//! // Put it in a Swarm (its `with_behaviour`), drive the swarm, and it keeps
//! // 3..=10 connections. `examples/node.rs` is a whole node.
//! # }
//! ```
//!
//! `docs/embedding.md` in the repository compares the three ways to use peerkeeper.

#![warn(missing_docs)]

mod addr;
pub mod codec;
mod handler;
mod metrics;

pub use addr::{core_peer_id, to_multiaddr, to_point, Transport, Unmapped};
pub use handler::{FromBehaviour, Handler};
pub use metrics::Metrics;

use codec::{Codec, Request, Response};
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use peerkeeper::core::CoreStats;
use peerkeeper::core::{
    Action, Admission, DialFailure, DialResult, DialVerdict, Hello, Offender, PeerSetError,
    RefuseReason, Report, SetChanges,
};
use peerkeeper::pool::{CloseReason, ConnId, Source};
use peerkeeper::trigger::TriggerKind;
use peerkeeper::{CycleReport, NodeCore, Policy, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Most pending (not yet handshaken) inbound connections from one IP address; loopback
/// is exempt, as in peerkeeper's own handshake budget.
pub const MAX_PENDING_PER_IP: usize = 8;

/// How long the core waits for a listen address before it starts dialing anyway (a
/// node that does not listen). libp2p's TCP dials from the listening port once there is
/// one, which is what lets the peers it dials know its point.
pub const LISTEN_WAIT: Duration = Duration::from_millis(500);

/// Most outstanding `/peerkeeper/points/1` requests of ours (asks, adverts, verdicts):
/// past it, new ones are not sent (the core asks again later).
pub const MAX_OUTSTANDING_REQUESTS: usize = 1024;

/// The behaviour's settings: the core's [`peerkeeper::Config`] and how it meets libp2p.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The node core's settings (bounds, pool, discovery, defences, ...).
    pub core: peerkeeper::Config,
    /// The transport points are dialed over.
    pub transport: Transport,
    /// The seed of the core's random choices (one seed, one outcome).
    pub seed: u64,
    /// How long a dialer waits for the acceptor's verdict before it counts the
    /// connection as made, and an acceptor for the dialer's hello before it admits the
    /// connection as a plain libp2p peer's (the peer may not speak peerkeeper).
    pub verdict_wait: Duration,
    /// How long a connection refused with points, or trimmed with a farewell, stays open
    /// for its points to be delivered.
    pub linger: Duration,
}

impl Config {
    /// The defaults around a core config: TCP, seed 0, a 2 s verdict wait, 2 s linger.
    pub fn new(core: peerkeeper::Config) -> Config {
        Config {
            core,
            transport: Transport::Tcp,
            seed: 0,
            verdict_wait: Duration::from_secs(2),
            linger: Duration::from_secs(2),
        }
    }

    /// Sets the transport.
    pub fn with_transport(mut self, t: Transport) -> Config {
        self.transport = t;
        self
    }

    /// Sets the seed of the core's random choices.
    pub fn with_seed(mut self, seed: u64) -> Config {
        self.seed = seed;
        self
    }
}

/// Why the behaviour cannot do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The core's config breaks a rule.
    #[error(transparent)]
    Config(#[from] peerkeeper::ConfigError),
    /// The octez policy needs octez's swap messages, which this protocol does not carry.
    #[error("policy `octez` is not supported over libp2p: use `peerkeeper`")]
    OctezPolicy,
    /// A multiaddr that does not map onto a point.
    #[error("{addr}: {reason}")]
    Unmapped {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: Unmapped,
    },
    /// A peer set was refused.
    #[error(transparent)]
    PeerSet(#[from] PeerSetError),
}

/// Why a connection was refused (the cause in [`ConnectionDenied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The remote address does not map onto a point.
    #[error("unmapped address: {0}")]
    Unmapped(Unmapped),
    /// The address is greylisted.
    #[error("greylisted address")]
    Greylisted,
    /// Too many pending connections from this address.
    #[error("too many pending connections from this address")]
    PerAddress,
    /// Too many pending inbound connections in all.
    #[error("too many pending inbound connections")]
    Busy,
    /// A dial the core had given up on (timed out) completed late.
    #[error("the dial had timed out")]
    Abandoned,
}

/// Pending inbound connections refused before their handshake, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingRefusals {
    /// From a greylisted address.
    pub greylisted: u64,
    /// Over [`MAX_PENDING_PER_IP`] from one address.
    pub per_address: u64,
    /// Over `max_incoming_connections` in all.
    pub busy: u64,
    /// From an address that does not map onto a point.
    pub unmapped: u64,
}

/// What the behaviour reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A maintenance cycle ended: every [`Behaviour::maintain`] ticket up to `covers` is
    /// answered.
    CycleEnded {
        /// What it did.
        report: Box<CycleReport>,
        /// The highest ticket it answers.
        covers: u64,
    },
    /// The core kept a connection.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its point.
        point: SocketAddr,
        /// Whether we dialed it.
        outbound: bool,
    },
    /// A kept connection ended (closed by either side).
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// Discovery wants points from the node's own sources (Kademlia, DNS, a ledger):
    /// feed them with [`Behaviour::add_points`].
    WantPoints,
}

/// A snapshot of the behaviour's state, for status lines and tests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Status {
    /// Connections the core keeps.
    pub connections: usize,
    /// Of which we dialed.
    pub outbound: usize,
    /// Dials in flight.
    pub dialing: usize,
    /// Points in the pool.
    pub known_points: usize,
    /// Connections other behaviours made, not managed.
    pub foreign: usize,
    /// The core's counters.
    pub stats: CoreStats,
    /// Multiaddrs refused as points, by reason ([`Unmapped::ALL`] order).
    pub unmapped: [u64; 5],
    /// Pending inbound connections refused, by reason.
    pub refused_pending: PendingRefusals,
    /// Peer-sharing messages that were malformed or too long.
    pub malformed: u64,
}

#[derive(Debug)]
enum Conn {
    /// The core keeps it.
    Managed {
        conn: ConnId,
        peer: PeerId,
        outbound: bool,
    },
    /// It dialed us: its hello is awaited until `until` (then it is taken as a libp2p
    /// peer that does not speak peerkeeper, listening where it dialed from).
    Greeting {
        peer: PeerId,
        remote: SocketAddr,
        until: Time,
    },
    /// We dialed it; the acceptor's verdict is awaited until `until`.
    Awaiting {
        point: SocketAddr,
        conn: ConnId,
        peer: PeerId,
        until: Time,
        /// Points the acceptor sent before its verdict reached us (another stream may
        /// overtake it: a full acceptor admits, then trims with a farewell at once), at
        /// most [`codec::MAX_POINTS`]: the core hears them once it keeps the connection.
        early: Vec<SocketAddr>,
    },
    /// Refused, or trimmed: open until its points are delivered or `until`. A farewell
    /// is delivered when `request` (our advert) is answered; a refusal when our verdict
    /// (a response: `request` is `None`) is sent.
    Lingering {
        peer: PeerId,
        until: Time,
        request: Option<OutboundRequestId>,
    },
    /// Another behaviour's.
    Foreign,
}

#[derive(Debug)]
enum Outstanding {
    Ask(ConnId),
    Deliver(ConnectionId),
    Hello(ConnectionId),
}

/// The behaviour: put it in a swarm (alone, or as a field of a `#[derive(NetworkBehaviour)]`
/// struct). See the [crate docs](crate).
pub struct Behaviour {
    core: NodeCore,
    rr: request_response::Behaviour<Codec>,
    transport: Transport,
    verdict_wait: Duration,
    linger: Duration,
    dial_timeout: Duration,
    max_pending: usize,
    epoch: Instant,
    started: bool,
    /// A listen address is known (dials wait for it, up to [`LISTEN_WAIT`], so that
    /// they leave from the port we listen on).
    listening: bool,
    next_conn: u64,
    conns: BTreeMap<ConnectionId, Conn>,
    by_core: BTreeMap<ConnId, ConnectionId>,
    /// Our dials not established yet: the point and when they time out.
    dials: BTreeMap<ConnectionId, (SocketAddr, Time)>,
    /// Dials reported to the core as timed out that may still complete.
    abandoned: BTreeMap<ConnectionId, Time>,
    pending_inbound: BTreeMap<ConnectionId, IpAddr>,
    /// Our dials whose hello goes out once the swarm has the connection.
    to_greet: BTreeSet<ConnectionId>,
    /// The points we listen on (their ports go in our hellos), at most 16.
    listen: Vec<SocketAddr>,
    answers: BTreeMap<ConnId, ResponseChannel<Response>>,
    outstanding: BTreeMap<OutboundRequestId, Outstanding>,
    /// The last `SendPoints` without a pending answer, per connection: a farewell when a
    /// close follows.
    farewell: Option<(ConnId, OutboundRequestId)>,
    out: VecDeque<ToSwarm<Event, THandlerInEvent<Self>>>,
    events: VecDeque<Event>,
    unmapped: [u64; 5],
    refused_pending: PendingRefusals,
    malformed: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    waker: Option<Waker>,
    metrics: Option<Metrics>,
}

impl Behaviour {
    /// A behaviour for the node `local` (its own libp2p id), with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the core config breaks a rule (it names the field);
    /// [`Error::OctezPolicy`] with the octez policy.
    pub fn new(config: Config, local: PeerId) -> Result<Behaviour, Error> {
        config.core.validate()?;
        if config.core.policy != Policy::Peerkeeper {
            return Err(Error::OctezPolicy);
        }
        let rr = request_response::Behaviour::with_codec(
            Codec,
            [(codec::PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
        );
        Ok(Behaviour {
            dial_timeout: config.core.dial_timeout,
            max_pending: config.core.max_incoming_connections,
            core: NodeCore::new(config.core, core_peer_id(&local), config.seed),
            rr,
            transport: config.transport,
            verdict_wait: config.verdict_wait,
            linger: config.linger,
            epoch: Instant::now(),
            started: false,
            listening: false,
            next_conn: 0,
            conns: BTreeMap::new(),
            by_core: BTreeMap::new(),
            dials: BTreeMap::new(),
            abandoned: BTreeMap::new(),
            pending_inbound: BTreeMap::new(),
            to_greet: BTreeSet::new(),
            listen: Vec::new(),
            answers: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            farewell: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            unmapped: [0; 5],
            refused_pending: PendingRefusals::default(),
            malformed: 0,
            sleep: None,
            waker: None,
            metrics: None,
        })
    }

    /// The node core, read-only (its pool, stats, bounds, scores).
    pub fn core(&self) -> &NodeCore {
        &self.core
    }

    /// Registers the behaviour's metrics in the application's registry (names start with
    /// `peerkeeper_`); they are updated as the swarm runs.
    pub fn register_metrics(&mut self, registry: &mut prometheus_client::registry::Registry) {
        let m = Metrics::new(registry);
        m.update(&self.status());
        self.metrics = Some(m);
    }

    /// A snapshot of the state.
    pub fn status(&self) -> Status {
        let mut outbound = 0;
        let mut foreign = 0;
        for c in self.conns.values() {
            match c {
                Conn::Managed { outbound: true, .. } => outbound += 1,
                Conn::Foreign => foreign += 1,
                _ => {}
            }
        }
        Status {
            connections: self.core.connection_count(),
            outbound,
            dialing: self.core.dials_in_flight(),
            known_points: self.core.pool().len(),
            foreign,
            stats: self.core.stats(),
            unmapped: self.unmapped,
            refused_pending: self.refused_pending,
            malformed: self.malformed,
        }
    }

    /// The libp2p peers the core keeps connections to, with their point and whether we
    /// dialed them, ordered by peer.
    pub fn peers(&self) -> Vec<(PeerId, SocketAddr, bool)> {
        let mut v: Vec<_> = self
            .conns
            .values()
            .filter_map(|c| match c {
                Conn::Managed {
                    conn,
                    peer,
                    outbound,
                } => self.core.point_of(*conn).map(|p| (*peer, p, *outbound)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn now(&self) -> Time {
        Time::from_duration(Instant::now().saturating_duration_since(self.epoch))
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn map_points(&mut self, addrs: &[Multiaddr]) -> Vec<SocketAddr> {
        let mut v = Vec::with_capacity(addrs.len());
        for a in addrs {
            match to_point(a) {
                Ok((p, _)) => v.push(p),
                Err(r) => self.unmapped[r.index()] += 1,
            }
        }
        v
    }

    /// Adds points the node knows of (configured bootstrap or trusted points, or points
    /// from its own sources when [`Event::WantPoints`] asks); returns how many were new.
    /// Multiaddrs that do not map are counted ([`Status::unmapped`]) and skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Unmapped`] for the first that does not map, when none does.
    pub fn add_points(&mut self, addrs: &[Multiaddr], source: Source) -> Result<usize, Error> {
        let points = self.map_points(addrs);
        if points.is_empty() {
            if let Some(a) = addrs.first() {
                let reason = to_point(a).err().unwrap_or(Unmapped::NotIp);
                return Err(Error::Unmapped {
                    addr: a.clone(),
                    reason,
                });
            }
        }
        let now = self.now();
        let n = self.core.add_points(&points, source, now);
        self.drain(now);
        Ok(n)
    }

    /// Listen addresses a connected peer announced (identify's `listen_addrs`): taken as
    /// points it shared, under the relay rule and caps of peer sharing. Ignored for a
    /// peer the core keeps no connection to.
    pub fn add_peer_addresses(&mut self, peer: &PeerId, addrs: &[Multiaddr]) {
        let Some(conn) = self.managed_conn_of(peer) else {
            return;
        };
        let mut points = self.map_points(addrs);
        points.truncate(codec::MAX_POINTS);
        let now = self.now();
        self.core.handle_points(conn, &points, now);
        self.drain(now);
    }

    /// Asks for a maintenance cycle (coalesced with any pending); the returned ticket is
    /// answered by the [`Event::CycleEnded`] whose `covers` reaches it.
    pub fn maintain(&mut self) -> u64 {
        let now = self.now();
        self.start(now);
        let t = self.core.maintain(now);
        self.drain(now);
        t
    }

    /// Switches a trigger on or off.
    pub fn set_trigger(&mut self, kind: TriggerKind, enabled: bool) {
        self.core.set_trigger(kind, enabled);
        let now = self.now();
        self.drain(now);
    }

    /// The application's judgement of a peer (feeds its score; low scores disconnect,
    /// then ban).
    pub fn report(&mut self, peer: &PeerId, report: Report) {
        let now = self.now();
        self.core.handle_report(core_peer_id(peer), report, now);
        self.drain(now);
    }

    fn map_set(
        &mut self,
        v: Vec<(PeerId, Multiaddr)>,
    ) -> Result<Vec<(peerkeeper::PeerId, SocketAddr)>, Error> {
        let mut out = Vec::with_capacity(v.len());
        for (p, a) in v {
            match to_point(&a) {
                Ok((pt, _)) => out.push((core_peer_id(&p), pt)),
                Err(reason) => {
                    self.unmapped[reason.index()] += 1;
                    return Err(Error::Unmapped { addr: a, reason });
                }
            }
        }
        Ok(out)
    }

    /// Tracks peer set `id` (commonware's `AddressableManager::track`): primaries are
    /// dialed and kept, secondaries admitted. See [`NodeCore::handle_track`].
    ///
    /// # Errors
    ///
    /// [`Error::Unmapped`] for an address that does not map (nothing changed), or the
    /// core's [`PeerSetError`].
    pub fn track(
        &mut self,
        id: u64,
        primary: Vec<(PeerId, Multiaddr)>,
        secondary: Vec<(PeerId, Multiaddr)>,
    ) -> Result<SetChanges, Error> {
        let p = self.map_set(primary)?;
        let s = self.map_set(secondary)?;
        let now = self.now();
        self.start(now);
        let r = self.core.handle_track(id, p, s, now);
        self.drain(now);
        Ok(r?)
    }

    /// Changes the addresses of tracked peers ([`NodeCore::handle_overwrite`]).
    ///
    /// # Errors
    ///
    /// As [`track`](Self::track).
    pub fn overwrite(&mut self, addresses: Vec<(PeerId, Multiaddr)>) -> Result<SetChanges, Error> {
        let a = self.map_set(addresses)?;
        let now = self.now();
        let r = self.core.handle_overwrite(a, now);
        self.drain(now);
        Ok(r?)
    }

    /// Stops: every kept connection is closed, and nothing more is dialed.
    pub fn shutdown(&mut self) {
        let now = self.now();
        self.core.shutdown(now);
        self.drain(now);
    }

    fn start(&mut self, now: Time) {
        if !self.started {
            self.started = true;
            self.core.start(now);
        }
    }

    fn managed_conn_of(&self, peer: &PeerId) -> Option<ConnId> {
        self.conns.values().find_map(|c| match c {
            Conn::Managed { conn, peer: p, .. } if p == peer => Some(*conn),
            _ => None,
        })
    }

    fn next_conn_id(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn peer_of_conn(&self, conn: ConnId) -> Option<(ConnectionId, PeerId)> {
        let cid = *self.by_core.get(&conn)?;
        match self.conns.get(&cid)? {
            Conn::Managed { peer, .. } => Some((cid, *peer)),
            _ => None,
        }
    }

    fn close_now(&mut self, cid: ConnectionId, peer: PeerId) {
        self.out.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(cid),
        });
    }

    fn send(&mut self, peer: PeerId, req: Request, what: Outstanding) -> Option<OutboundRequestId> {
        if self.outstanding.len() >= MAX_OUTSTANDING_REQUESTS || !self.rr.is_connected(&peer) {
            return None;
        }
        let id = self.rr.send_request(&peer, req);
        self.outstanding.insert(id, what);
        Some(id)
    }

    /// Carries out the core's actions.
    fn drain(&mut self, now: Time) {
        // A farewell is points sent just before a close, in one batch of actions.
        self.farewell = None;
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Dial(point) => {
                    let opts = DialOpts::unknown_peer_id()
                        .address(to_multiaddr(point, self.transport))
                        .build();
                    self.dials
                        .insert(opts.connection_id(), (point, now + self.dial_timeout));
                    self.out.push_back(ToSwarm::Dial { opts });
                }
                Action::Close { conn, reason } => self.close_core_conn(conn, reason, now),
                Action::SendPoints { conn, points } => {
                    if let Some(ch) = self.answers.remove(&conn) {
                        let _ = self.rr.send_response(ch, Response::Points(points));
                    } else if let Some((cid, peer)) = self.peer_of_conn(conn) {
                        tracing::debug!(target: "peerkeeper_libp2p", %peer, n = points.len(), "sending points");
                        if let Some(id) =
                            self.send(peer, Request::Points(points), Outstanding::Deliver(cid))
                        {
                            self.farewell = Some((conn, id));
                        }
                    }
                }
                Action::AskForPoints { conn } => {
                    if let Some((_, peer)) = self.peer_of_conn(conn) {
                        self.send(peer, Request::Ask, Outstanding::Ask(conn));
                    }
                }
                Action::PollSources => self.events.push_back(Event::WantPoints),
                Action::CycleEnded { report, covers } => {
                    tracing::debug!(target: "peerkeeper_libp2p", covers, "maintenance cycle ended");
                    self.events.push_back(Event::CycleEnded { report, covers });
                }
                // Swaps belong to the octez policy, refused at construction; triggers and
                // cycle starts are for observers.
                _ => {}
            }
        }
        if let Some(m) = &self.metrics {
            m.update(&self.status());
        }
        self.wake();
    }

    /// The core closed `conn`: after a farewell (points sent just before), the connection
    /// lingers until they are delivered; otherwise it closes now.
    fn close_core_conn(&mut self, conn: ConnId, reason: CloseReason, now: Time) {
        let Some(cid) = self.by_core.remove(&conn) else {
            return;
        };
        self.answers.remove(&conn);
        let Some(Conn::Managed { peer, .. }) = self.conns.remove(&cid) else {
            return;
        };
        tracing::debug!(target: "peerkeeper_libp2p", %peer, ?reason, "closing");
        self.events.push_back(Event::Disconnected { peer });
        let farewell = match self.farewell {
            Some((c, id)) if c == conn => Some(id),
            _ => None,
        };
        if farewell.is_some() {
            self.conns.insert(
                cid,
                Conn::Lingering {
                    peer,
                    until: now + self.linger,
                    request: farewell,
                },
            );
        } else {
            self.close_now(cid, peer);
        }
    }

    fn keep(&mut self, cid: ConnectionId, peer: PeerId, conn: ConnId, outbound: bool) {
        self.conns.insert(
            cid,
            Conn::Managed {
                conn,
                peer,
                outbound,
            },
        );
        self.by_core.insert(conn, cid);
        if let Some(point) = self.core.point_of(conn) {
            self.events.push_back(Event::Connected {
                peer,
                point,
                outbound,
            });
        }
    }

    /// Our dial `cid` reached `peer` and the verdict is in (or did not come).
    fn finish_dial(
        &mut self,
        cid: ConnectionId,
        admitted: Option<(RefuseReason, Vec<SocketAddr>)>,
        now: Time,
    ) {
        let Some(Conn::Awaiting {
            point,
            conn,
            peer,
            early,
            ..
        }) = self.conns.remove(&cid)
        else {
            return;
        };
        tracing::debug!(target: "peerkeeper_libp2p", %peer, %point, ?admitted, "dial answered");
        match admitted {
            None => {
                let v = self.core.handle_dial_result(
                    point,
                    DialResult::Connected {
                        conn,
                        peer: core_peer_id(&peer),
                    },
                    now,
                );
                match v {
                    DialVerdict::Keep => {
                        self.keep(cid, peer, conn, true);
                        if !early.is_empty() {
                            self.core.handle_points(conn, &early, now);
                        }
                    }
                    _ => self.close_now(cid, peer),
                }
            }
            Some((reason, points)) => {
                self.core
                    .handle_dial_result(point, DialResult::Refused { reason, points }, now);
                self.close_now(cid, peer);
            }
        }
        self.drain(now);
    }

    fn on_timers(&mut self, now: Time) {
        if self.core.next_deadline().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        let late: Vec<ConnectionId> = self
            .dials
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(c, _)| *c)
            .collect();
        for cid in late {
            if let Some((point, _)) = self.dials.remove(&cid) {
                self.core
                    .handle_dial_result(point, DialResult::Failed(DialFailure::Timeout), now);
                self.abandoned.insert(cid, now + self.dial_timeout * 4);
            }
        }
        self.abandoned.retain(|_, t| *t > now);
        let due: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter_map(|(cid, c)| match c {
                Conn::Awaiting { until, .. }
                | Conn::Greeting { until, .. }
                | Conn::Lingering { until, .. }
                    if *until <= now =>
                {
                    Some(*cid)
                }
                _ => None,
            })
            .collect();
        for cid in due {
            match self.conns.get(&cid) {
                Some(Conn::Awaiting { .. }) => self.finish_dial(cid, None, now),
                // No hello: a libp2p peer that does not speak peerkeeper, whose point is
                // where it dialed from (libp2p's TCP port reuse, QUIC).
                Some(Conn::Greeting { .. }) => self.admit(cid, 0, None, now),
                Some(Conn::Lingering { request, .. }) => {
                    let r = *request;
                    self.delivered(cid, r)
                }
                _ => {}
            }
        }
        self.drain(now);
    }

    fn next_deadline(&self) -> Option<Time> {
        let conns = self.conns.values().filter_map(|c| match c {
            Conn::Awaiting { until, .. }
            | Conn::Greeting { until, .. }
            | Conn::Lingering { until, .. } => Some(*until),
            _ => None,
        });
        let dials = self.dials.values().map(|(_, t)| *t);
        let abandoned = self.abandoned.values().copied();
        self.core
            .next_deadline()
            .into_iter()
            .chain(conns)
            .chain(dials)
            .chain(abandoned)
            .min()
    }

    fn violation(&mut self, cid: ConnectionId, peer: PeerId, now: Time) {
        self.malformed += 1;
        match self.conns.get(&cid) {
            Some(Conn::Managed { conn, .. }) => {
                let conn = *conn;
                self.core.handle_violation(Offender::Conn(conn), now);
            }
            Some(Conn::Awaiting { point, .. }) => {
                let point = *point;
                self.conns.remove(&cid);
                self.core
                    .handle_dial_result(point, DialResult::Failed(DialFailure::Protocol), now);
                self.close_now(cid, peer);
            }
            Some(_) => {
                self.conns.remove(&cid);
                self.close_now(cid, peer);
            }
            None => {}
        }
        self.drain(now);
    }

    fn on_rr_event(&mut self, e: request_response::Event<Request, Response>, now: Time) {
        use request_response::{Event as E, InboundFailure, Message, OutboundFailure};
        match e {
            E::Message {
                peer,
                connection_id: cid,
                message:
                    Message::Request {
                        request, channel, ..
                    },
            } => self.on_request(peer, cid, request, channel, now),
            E::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match (self.outstanding.remove(&request_id), response) {
                (Some(Outstanding::Ask(conn)), Response::Points(points)) => {
                    self.core.handle_points(conn, &points, now);
                    self.drain(now);
                }
                (Some(Outstanding::Deliver(cid)), _) => self.delivered(cid, Some(request_id)),
                (
                    Some(Outstanding::Hello(cid)),
                    Response::Verdict {
                        admitted,
                        reason,
                        points,
                    },
                ) => self.finish_dial(cid, (!admitted).then_some((reason, points)), now),
                _ => {}
            },
            E::OutboundFailure {
                peer,
                connection_id,
                request_id,
                error,
            } => {
                match self.outstanding.remove(&request_id) {
                    Some(Outstanding::Deliver(cid)) => self.delivered(cid, Some(request_id)),
                    // A libp2p peer that does not speak peerkeeper: a plain peer.
                    Some(Outstanding::Hello(cid))
                        if matches!(error, OutboundFailure::UnsupportedProtocols) =>
                    {
                        self.finish_dial(cid, None, now)
                    }
                    _ => {}
                }
                if let OutboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.violation(connection_id, peer, now);
                    }
                }
            }
            E::InboundFailure {
                peer,
                connection_id,
                error,
                ..
            } => {
                self.delivered(connection_id, None);
                if let InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.violation(connection_id, peer, now);
                    }
                }
            }
            E::ResponseSent { connection_id, .. } => self.delivered(connection_id, None),
        }
    }

    /// What lingering `cid` waited for is done (`via`: the answer to our advert
    /// `Some(id)`, or our verdict sent, `None`): close it. Anything else on it (the
    /// response to its hello, an answer) does not end the wait.
    fn delivered(&mut self, cid: ConnectionId, via: Option<OutboundRequestId>) {
        if let Some(Conn::Lingering { peer, request, .. }) = self.conns.get(&cid) {
            if *request != via {
                return;
            }
            let peer = *peer;
            self.conns.remove(&cid);
            self.close_now(cid, peer);
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        cid: ConnectionId,
        request: Request,
        channel: ResponseChannel<Response>,
        now: Time,
    ) {
        match request {
            Request::Hello { listen_port } => {
                // On the connection it dialed, or (duplicates) another one of that peer's.
                let target = if matches!(self.conns.get(&cid), Some(Conn::Greeting { .. })) {
                    Some(cid)
                } else {
                    self.conns.iter().find_map(|(c, v)| match v {
                        Conn::Greeting { peer: p, .. } if *p == peer => Some(*c),
                        _ => None,
                    })
                };
                match target {
                    Some(t) => self.admit(t, listen_port, Some(channel), now),
                    None => {
                        // A second hello on a connection already decided.
                        let admitted = matches!(self.conns.get(&cid), Some(Conn::Managed { .. }));
                        let _ = self.rr.send_response(
                            channel,
                            Response::Verdict {
                                admitted,
                                reason: RefuseReason::AlreadyConnected,
                                points: Vec::new(),
                            },
                        );
                    }
                }
            }
            Request::Ask => match self.managed_conn_of(&peer) {
                Some(conn) if !self.answers.contains_key(&conn) => {
                    self.answers.insert(conn, channel);
                    self.core.handle_points_asked(conn, now);
                    self.drain(now);
                    // The core may decline (rate limits): an empty answer then.
                    if let Some(ch) = self.answers.remove(&conn) {
                        let _ = self.rr.send_response(ch, Response::Points(Vec::new()));
                    }
                }
                _ => {
                    let _ = self.rr.send_response(channel, Response::Points(Vec::new()));
                }
            },
            Request::Points(points) => {
                tracing::debug!(target: "peerkeeper_libp2p", %peer, n = points.len(), state = ?self.conns.get(&cid), "points received");
                let _ = self.rr.send_response(channel, Response::Ack);
                if let Some(conn) = self.managed_conn_of(&peer) {
                    self.core.handle_points(conn, &points, now);
                    self.drain(now);
                } else if let Some(Conn::Awaiting { early, .. }) = self.conns.get_mut(&cid) {
                    let room = codec::MAX_POINTS.saturating_sub(early.len());
                    early.extend(points.into_iter().take(room));
                }
            }
        }
    }

    /// The hello of inbound `cid` came (or not, by its deadline: `channel` is `None`):
    /// the core's admission, told to the dialer as a verdict.
    fn admit(
        &mut self,
        cid: ConnectionId,
        listen_port: u16,
        channel: Option<ResponseChannel<Response>>,
        now: Time,
    ) {
        let Some(Conn::Greeting { peer, remote, .. }) = self.conns.remove(&cid) else {
            return;
        };
        let conn = self.next_conn_id();
        // A dialer that listens nowhere: its point is where it dialed from.
        let listen_port = if listen_port == 0 {
            remote.port()
        } else {
            listen_port
        };
        let hello = Hello {
            peer: core_peer_id(&peer),
            listen_port,
        };
        let admission = self.core.handle_inbound(conn, remote, hello, now);
        tracing::debug!(target: "peerkeeper_libp2p", %peer, %remote, listen_port, ?admission, "inbound");
        let verdict = match admission {
            Admission::Accept => {
                self.keep(cid, peer, conn, false);
                Response::Verdict {
                    admitted: true,
                    reason: RefuseReason::Full,
                    points: Vec::new(),
                }
            }
            Admission::Refuse { reason, points } => {
                self.conns.insert(
                    cid,
                    Conn::Lingering {
                        peer,
                        until: now + self.linger,
                        request: None,
                    },
                );
                Response::Verdict {
                    admitted: false,
                    reason,
                    points,
                }
            }
        };
        let refused = matches!(
            verdict,
            Response::Verdict {
                admitted: false,
                ..
            }
        );
        let sent = channel.is_some_and(|ch| self.rr.send_response(ch, verdict).is_ok());
        if refused && !sent {
            self.delivered(cid, None);
        }
        self.drain(now);
    }

    /// The port to tell a peer at `ip` we listen on: one of ours of its family and scope.
    fn listen_port_for(&self, ip: IpAddr) -> u16 {
        self.listen
            .iter()
            .find(|p| p.is_ipv4() == ip.is_ipv4() && p.ip().is_loopback() == ip.is_loopback())
            .or_else(|| self.listen.iter().find(|p| p.is_ipv4() == ip.is_ipv4()))
            .map_or(0, |p| p.port())
    }

    fn handler(&self, keep_alive: bool, inner: handler::Inner) -> Handler {
        Handler { inner, keep_alive }
    }
}

/// Whether an I/O error is, or wraps (libp2p's transports box their errors), a refused
/// connection: the host answered, nobody listens there.
fn is_refused(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        return true;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = match e.get_ref() {
        Some(inner) => Some(inner),
        None => None,
    };
    // Bounded: error chains are short, and a cycle would be a bug of theirs.
    for _ in 0..16 {
        let Some(x) = cur else { break };
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return is_refused(io);
        }
        cur = x.source();
    }
    false
}

fn dial_failure(e: &DialError) -> DialFailure {
    match e {
        DialError::Transport(errs) => {
            let refused = errs
                .iter()
                .any(|(_, e)| matches!(e, libp2p::TransportError::Other(io) if is_refused(io)));
            if refused {
                DialFailure::Refused
            } else {
                DialFailure::Io
            }
        }
        DialError::WrongPeerId { .. } => DialFailure::Protocol,
        DialError::Aborted | DialError::DialPeerConditionFalse(_) => DialFailure::Cancelled,
        _ => DialFailure::Io,
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        cid: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.rr
            .handle_pending_inbound_connection(cid, local, remote)?;
        let point = match to_point(remote) {
            Ok((p, _)) => p,
            Err(r) => {
                self.unmapped[r.index()] += 1;
                self.refused_pending.unmapped += 1;
                return Err(ConnectionDenied::new(Refused::Unmapped(r)));
            }
        };
        let ip = point.ip();
        let now = self.now();
        if self.core.pool().is_ip_greylisted(ip, now) {
            self.refused_pending.greylisted += 1;
            return Err(ConnectionDenied::new(Refused::Greylisted));
        }
        if self.pending_inbound.len() >= self.max_pending {
            self.refused_pending.busy += 1;
            return Err(ConnectionDenied::new(Refused::Busy));
        }
        if !ip.is_loopback()
            && self.pending_inbound.values().filter(|i| **i == ip).count() >= MAX_PENDING_PER_IP
        {
            self.refused_pending.per_address += 1;
            return Err(ConnectionDenied::new(Refused::PerAddress));
        }
        self.pending_inbound.insert(cid, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        cid: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_inbound.remove(&cid);
        let inner = self
            .rr
            .handle_established_inbound_connection(cid, peer, local, remote)?;
        let point = match to_point(remote) {
            Ok((p, _)) => p,
            Err(r) => {
                self.unmapped[r.index()] += 1;
                return Err(ConnectionDenied::new(Refused::Unmapped(r)));
            }
        };
        let now = self.now();
        self.start(now);
        self.conns.insert(
            cid,
            Conn::Greeting {
                peer,
                remote: point,
                until: now + self.verdict_wait,
            },
        );
        self.wake();
        Ok(self.handler(true, inner))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        cid: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.rr
            .handle_pending_outbound_connection(cid, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        cid: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.abandoned.remove(&cid).is_some() {
            return Err(ConnectionDenied::new(Refused::Abandoned));
        }
        let inner = self
            .rr
            .handle_established_outbound_connection(cid, peer, addr, role, port_use)?;
        let now = self.now();
        match self.dials.remove(&cid) {
            Some((point, _)) => {
                let conn = self.next_conn_id();
                self.conns.insert(
                    cid,
                    Conn::Awaiting {
                        point,
                        conn,
                        peer,
                        until: now + self.verdict_wait,
                        early: Vec::new(),
                    },
                );
                self.to_greet.insert(cid);
                self.wake();
                Ok(self.handler(true, inner))
            }
            None => {
                self.conns.insert(cid, Conn::Foreign);
                Ok(self.handler(false, inner))
            }
        }
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.rr.on_swarm_event(event);
        let now = self.now();
        match event {
            // Our dial: its hello goes out now that the swarm has the connection.
            FromSwarm::ConnectionEstablished(e) if self.to_greet.remove(&e.connection_id) => {
                let port = match self.conns.get(&e.connection_id) {
                    Some(Conn::Awaiting { point, .. }) => self.listen_port_for(point.ip()),
                    _ => 0,
                };
                let hello = Request::Hello { listen_port: port };
                let sent = self.send(e.peer_id, hello, Outstanding::Hello(e.connection_id));
                if sent.is_none() {
                    self.finish_dial(e.connection_id, None, now);
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                self.to_greet.remove(&e.connection_id);
                match self.conns.remove(&e.connection_id) {
                    Some(Conn::Managed { conn, peer, .. }) => {
                        tracing::debug!(target: "peerkeeper_libp2p", %peer, cause = ?e.cause, "closed by the peer or the network");
                        self.by_core.remove(&conn);
                        self.answers.remove(&conn);
                        self.events.push_back(Event::Disconnected { peer });
                        self.core.handle_closed(conn, now);
                    }
                    Some(Conn::Awaiting { point, .. }) => {
                        self.core.handle_dial_result(
                            point,
                            DialResult::Failed(DialFailure::Io),
                            now,
                        );
                    }
                    _ => {}
                }
                self.drain(now);
            }
            FromSwarm::DialFailure(e) => {
                self.abandoned.remove(&e.connection_id);
                if let Some((point, _)) = self.dials.remove(&e.connection_id) {
                    let result = if matches!(e.error, DialError::LocalPeerId { .. }) {
                        // We dialed ourselves: the core learns one of its own points.
                        DialResult::Connected {
                            conn: self.next_conn_id(),
                            peer: self.core.peer_id(),
                        }
                    } else {
                        DialResult::Failed(dial_failure(e.error))
                    };
                    tracing::debug!(target: "peerkeeper_libp2p", %point, ?result, error = %e.error, "dial failed");
                    self.core.handle_dial_result(point, result, now);
                } else if let Some(Conn::Awaiting { point, .. }) =
                    self.conns.remove(&e.connection_id)
                {
                    // Denied by another behaviour after we took it.
                    self.core.handle_dial_result(
                        point,
                        DialResult::Failed(DialFailure::Cancelled),
                        now,
                    );
                } else {
                    self.conns.remove(&e.connection_id);
                }
                self.drain(now);
            }
            FromSwarm::ListenFailure(e) => {
                self.pending_inbound.remove(&e.connection_id);
                if let Some(Conn::Managed { conn, .. }) = self.conns.remove(&e.connection_id) {
                    // Denied by another behaviour after the core admitted it.
                    self.by_core.remove(&conn);
                    self.core.handle_closed(conn, now);
                }
                self.drain(now);
            }
            FromSwarm::NewListenAddr(e) => {
                if let Ok((p, _)) = to_point(e.addr) {
                    self.core.add_own_point(p);
                    if self.listen.len() < 16 && !self.listen.contains(&p) {
                        self.listen.push(p);
                    }
                }
                self.listening = true;
                self.wake();
            }
            FromSwarm::ExternalAddrConfirmed(e) => {
                if let Ok((p, _)) = to_point(e.addr) {
                    self.core.add_own_point(p);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        cid: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.rr.on_connection_handler_event(peer, cid, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(a) = self.out.pop_front() {
                return Poll::Ready(a);
            }
            if let Some(e) = self.events.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(e));
            }
            if let Poll::Ready(a) = self.rr.poll(cx) {
                match a {
                    ToSwarm::GenerateEvent(e) => {
                        let now = self.now();
                        self.on_rr_event(e, now);
                    }
                    // Requests go only to connected peers: a dial for a request whose
                    // connection just closed is not made (the core redials on its own).
                    ToSwarm::Dial { .. } => {}
                    other => {
                        return Poll::Ready(
                            other
                                .map_in(FromBehaviour::Inner)
                                .map_out(|_| unreachable!("handled above")),
                        )
                    }
                }
                continue;
            }
            let now = self.now();
            if !self.started && (self.listening || now >= Time::ZERO + LISTEN_WAIT) {
                self.start(now);
                self.drain(now);
                continue;
            }
            if self.next_deadline().is_some_and(|t| t <= now) {
                self.on_timers(now);
                if !self.out.is_empty() || !self.events.is_empty() {
                    continue;
                }
            }
            let start_at = (!self.started).then_some(Time::ZERO + LISTEN_WAIT);
            if let Some(t) = self.next_deadline().into_iter().chain(start_at).min() {
                // A deadline still due after the timers ran would be a broken promise of
                // the core's; a millisecond's wait then, never a spin or a stall.
                let t = t.max(now + Duration::from_millis(1));
                let at = self.epoch + t.as_duration();
                match &mut self.sleep {
                    Some(s) => s.as_mut().reset(at),
                    None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                }
                if let Some(s) = &mut self.sleep {
                    if s.as_mut().poll(cx).is_ready() {
                        continue;
                    }
                }
            }
            self.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_octez_policy_and_a_bad_config_are_refused_with_the_reason() {
        let me = PeerId::random();
        let c = peerkeeper::Config {
            policy: Policy::Octez,
            ..Default::default()
        };
        assert!(matches!(
            Behaviour::new(Config::new(c), me),
            Err(Error::OctezPolicy)
        ));
        let c = peerkeeper::Config {
            min_connections: 500,
            ..Default::default()
        };
        let e = Behaviour::new(Config::new(c), me).err().expect("refused");
        assert!(e.to_string().contains("min_connections"), "{e}");
    }

    #[test]
    fn metrics_register_in_the_applications_registry_and_follow_the_core() {
        let mut registry = prometheus_client::registry::Registry::default();
        let mut b =
            Behaviour::new(Config::new(peerkeeper::Config::default()), PeerId::random()).unwrap();
        b.register_metrics(&mut registry);
        let points: Vec<Multiaddr> = ["/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/dns/x/tcp/1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        b.add_points(&points, Source::Bootstrap).unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("peerkeeper_known_points 2"), "{text}");
        assert!(
            text.contains("peerkeeper_libp2p_unmapped_addresses_total{reason=\"dns\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("peerkeeper_connections{direction=\"outbound\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_connection_is_recognised_through_the_transports_wrapping() {
        use std::io::{Error, ErrorKind};
        let direct = Error::from(ErrorKind::ConnectionRefused);
        let wrapped = Error::other(Error::other(Error::from(ErrorKind::ConnectionRefused)));
        assert!(is_refused(&direct) && is_refused(&wrapped));
        assert!(!is_refused(&Error::other(Error::from(ErrorKind::TimedOut))));
    }

    #[test]
    fn unmapped_points_are_counted_and_refused() {
        let mut b =
            Behaviour::new(Config::new(peerkeeper::Config::default()), PeerId::random()).unwrap();
        let relay: Multiaddr = "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit".parse().unwrap();
        assert!(matches!(
            b.add_points(std::slice::from_ref(&relay), Source::Bootstrap),
            Err(Error::Unmapped {
                reason: Unmapped::Relay,
                ..
            })
        ));
        let ok: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        assert_eq!(b.add_points(&[relay, ok], Source::Bootstrap).unwrap(), 1);
        assert_eq!(b.status().unmapped[Unmapped::Relay.index()], 2);
        assert_eq!(b.status().known_points, 1);
    }
}
