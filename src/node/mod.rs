//! The tokio shell: a running node ([`Node`]) around one [`NodeCore`], on any
//! [`Transport`] (TCP for real nodes, the in-memory network for tests).
//!
//! The shell owns sockets, tasks and timers, and decides nothing:
//!
//! * one actor task owns the core; everything reaches it through its bounded mailbox
//!   (commonware's shape), and it carries out the core's actions;
//! * one task accepts links, one task per handshake (within the handshake budget of
//!   [`gate`], each bounded by `handshake_timeout`), one task per dial (bounded by
//!   `dial_timeout`), one task per open connection (keepalive, a bounded outgoing queue,
//!   writes bounded by `handshake_timeout`);
//! * wire messages are converted to core inputs at the edge (`node/conn.rs`).
//!
//! Every task is tracked and stops when the node stops, on [`Node::shutdown`], when the
//! node is dropped, or when the cancellation token given at start is cancelled.
//!
//! Points from elsewhere than peer sharing come through [`PointSource`]s, polled in every
//! discovery round; each reports the kind of its points ([`PointSource::kind`], external
//! by default), which per-kind targets count. [`ledger::LedgerSource`] is one: the relays
//! of a stake distribution's largest pools.

mod actor;
pub mod channel;
mod conn;
pub mod demo;
pub mod dns;
pub mod gate;
pub mod ledger;
mod ops;

use crate::config::{Bounds, Config, ConfigError};
use crate::core::{
    CoreStats, Event, Input, NodeCore, PeerSetError, SetChanges, TraceHeader, TraceWriter,
    TracedAction,
};
use crate::identity::{Identity, Keypair};
use crate::maintenance::CycleReport;
use crate::pool::{PeerId, Source};
use crate::transport::Transport;
use crate::trigger::{TriggerKind, Triggers};
use actor::{Actor, Cmd};
pub use channel::{
    ChannelConfig, ChannelError, ChannelStats, PeerInfo, Receiver, Recipients, SendError, Sender,
    Undelivered, WhenFull,
};
use conn::Ctx;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Events a subscriber may fall behind by before it loses some (and is told how many).
pub const EVENT_CAPACITY: usize = 1024;

/// Commands queued for the node actor at most; senders wait beyond (a connection task
/// then stops reading its socket: backpressure, not memory).
pub const MAILBOX_LEN: usize = 1024;

/// Settings of the network layer, beyond the core's [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The network name sent in the handshake; peers of other networks are refused.
    pub network: String,
    /// A handshake (either side) must finish within this, and so must every write on an
    /// open connection.
    pub handshake_timeout: Duration,
    /// A keepalive is sent after this much silence from us.
    pub keepalive_interval: Duration,
    /// A connection silent for this long is closed.
    pub keepalive_timeout: Duration,
    /// Outgoing maintenance messages (points, requests, closes) queued per connection.
    /// They go before application messages.
    pub queue_len: usize,
    /// Outgoing application messages ([`Node::channel`]) queued per connection: when
    /// full, a [`channel::Sender`] drops or errs, as its caller chooses; it never blocks.
    pub send_queue_len: usize,
    /// Addresses this node is reachable at besides its sockets' own (a NAT's port
    /// mapping, a load balancer): a dialer must have dialed one of our addresses, or the
    /// handshake is refused (`WrongAddress`: see [`crate::handshake`]).
    pub external_addrs: Vec<SocketAddr>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            network: "peerkeeper".into(),
            handshake_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            queue_len: 32,
            send_queue_len: 1024,
            external_addrs: Vec::new(),
        }
    }
}

impl NetConfig {
    /// Checks every rule; the first broken one is returned, naming its field.
    ///
    /// ```
    /// use peerkeeper::node::NetConfig;
    /// use std::time::Duration;
    /// let bad = NetConfig { keepalive_interval: Duration::ZERO, ..NetConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().field(), Some("keepalive_interval"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, rule: &str| ConfigError::Invalid {
            field,
            rule: rule.to_string(),
        };
        if self.network.is_empty() || self.network.len() > crate::wire::MAX_NETWORK_NAME {
            return Err(invalid(
                "network",
                &format!("must be 1 to {} bytes", crate::wire::MAX_NETWORK_NAME),
            ));
        }
        for (field, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(field, "must be greater than 0"));
            }
        }
        if self.keepalive_timeout <= self.keepalive_interval {
            return Err(invalid(
                "keepalive_timeout",
                "must be greater than keepalive_interval (a live peer would time out)",
            ));
        }
        for (field, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
        ] {
            crate::config::check_duration(field, d, true)?;
        }
        if self.queue_len == 0 || self.queue_len > 1 << 20 {
            return Err(invalid("queue_len", "must be 1 to 1048576"));
        }
        if self.send_queue_len == 0 || self.send_queue_len > 1 << 20 {
            return Err(invalid("send_queue_len", "must be 1 to 1048576"));
        }
        if self.external_addrs.len() > 64 {
            return Err(invalid("external_addrs", "must hold at most 64 addresses"));
        }
        Ok(())
    }
}

/// Another source of points than peer sharing: DNS seeds, a ledger's relay list, a
/// static file. Polled in every discovery round (also while the node has no connection).
pub trait PointSource: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// The kind of the points it gives ([`KindTargets`](crate::config::KindTargets) count
    /// connections by kind): [`Source::External`] by default (a ledger, DNS seeds, a
    /// file); a local-roots file may say [`Source::Trusted`], a seed list
    /// [`Source::Bootstrap`].
    fn kind(&self) -> crate::pool::Source {
        crate::pool::Source::External
    }
    /// Fetches points. At most [`MAX_POINTS_PER_MESSAGE`](crate::MAX_POINTS_PER_MESSAGE)
    /// are taken from one fetch; each passes the intake rule. Failures are the source's to
    /// log: return an empty list. A fetch longer than `discovery.request_timeout` is
    /// abandoned (its future dropped): it must be cancel-safe.
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>>;
}

/// Why a node could not start, or no longer answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node has stopped (shut down, dropped, or its worker ended).
    #[error("the node has stopped")]
    Stopped,
    /// A setting breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `track` or `overwrite` was refused (a stale id, a bound broken): nothing
    /// changed.
    #[error(transparent)]
    PeerSet(PeerSetError),
    /// The AS map (`defences.asmap`) cannot be used.
    #[error("defences.asmap: {path}: {source}")]
    AsMap {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: crate::pool::AsMapError,
    },
    /// The trace could not be started.
    #[error("cannot write the trace: {source}")]
    Trace {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a running node shows: updated after every input the node handles. Cheap to read
/// ([`Node::status`]) and to wait on ([`Node::status_watch`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Open connections.
    pub connections: usize,
    /// Dials in flight.
    pub dialing: usize,
    /// Points in the pool.
    pub known_points: usize,
    /// Whether discovery wants points.
    pub wants_points: bool,
    /// Every counter of the core.
    pub stats: CoreStats,
    /// Incoming links closed before their handshake by the handshake budget: dropped at
    /// accept, or evicted idle for a newcomer (see [`gate`] and
    /// [`handshakes`](Self::handshakes)).
    pub dropped_at_accept: u64,
    /// The handshake budget's counters ([`gate`]).
    pub handshakes: gate::HandshakeStats,
    /// The last maintenance cycle's report.
    pub last_report: Option<CycleReport>,
    /// Open connections we dialed (the rest dialed us).
    pub outbound: usize,
    /// Open connections by kind, in [`Source::ALL`](crate::pool::Source::ALL) order (see
    /// [`connections_of`](Self::connections_of)).
    pub by_kind: [usize; 5],
}

impl NodeStatus {
    /// Open connections that dialed us.
    pub fn inbound(&self) -> usize {
        self.connections.saturating_sub(self.outbound)
    }

    /// Open connections of `kind` (their point's best source), either direction.
    pub fn connections_of(&self, kind: crate::pool::Source) -> usize {
        self.by_kind[kind.index()]
    }
}

/// A running node. See the [module docs](self). Cheap to clone: clones are handles to
/// the same node, which stops when the last one is dropped (or at
/// [`shutdown`](Self::shutdown)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
/// let net = MemoryNetwork::new();
/// let config = Config { min_connections: 1, expected_connections: 2, max_connections: 3,
///                       ..Config::default() };
/// let a = Node::builder(config.clone(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
///     .identity(Keypair::from_seed(1)).seed(1).start().unwrap();
/// let b = Node::builder(config, net.bind("10.0.0.2:1".parse().unwrap()).unwrap())
///     .identity(Keypair::from_seed(2)).seed(2).bootstrap(vec![a.local_addr()]).start().unwrap();
/// b.status_watch().wait_for(|s| s.connections == 1).await.unwrap();
/// let report = b.maintain().await.unwrap(); // one full cycle, with what it did
/// assert_eq!(report.connections_after, 1);
/// b.shutdown().await;
/// a.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

/// What every clone of a [`Node`] shares; the node stops when the last clone goes.
struct NodeInner {
    events: tokio::sync::broadcast::Sender<Event>,
    mailbox: mpsc::Sender<Cmd>,
    status: watch::Receiver<NodeStatus>,
    triggers: Arc<Triggers>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    local_addr: SocketAddr,
    peer_id: PeerId,
    bounds: Bounds,
    channels: Arc<channel::Channels>,
    peers: Arc<channel::PeerTable>,
    /// The instant the core's time counts from, and the wall clock then.
    origin: (tokio::time::Instant, std::time::SystemTime),
    /// `network` of the net config (for the metrics' info).
    network: String,
    /// The core's policy (for the metrics' info).
    policy: crate::Policy,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("local_addr", &self.inner.local_addr)
            .field("peer_id", &self.inner.peer_id)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Node`]: [`Node::builder`], then the options, then
/// [`start`](NodeBuilder::start).
pub struct NodeBuilder<T: Transport> {
    config: Config,
    transport: T,
    net: NetConfig,
    identity: Option<Arc<dyn Identity>>,
    expected: Vec<(SocketAddr, PeerId)>,
    seed: u64,
    bootstrap: Vec<SocketAddr>,
    sources: Vec<Arc<dyn PointSource>>,
    parent: Option<CancellationToken>,
    origin: Option<tokio::time::Instant>,
    tap: Option<mpsc::Sender<TracedAction>>,
    trace: Option<Box<dyn std::io::Write + Send>>,
    store: Option<crate::store::PoolStore>,
    asmap: Option<Arc<crate::pool::AsMap>>,
}

impl<T: Transport> std::fmt::Debug for NodeBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("identity", &self.identity)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> NodeBuilder<T> {
    /// The network settings (default: [`NetConfig::default`]).
    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// The node's identity: its key, which its peer id names and every handshake proves
    /// ([`crate::identity`]). Default: a new [`Keypair`] from the operating system's random
    /// generator, so a different peer id at every start; a node that keeps its id gives
    /// its key here (`peerkeeper node --key FILE` loads one with
    /// [`crate::identity::load_or_generate`]), and a node with keys of its own gives its
    /// [`Identity`].
    pub fn identity(mut self, identity: impl Identity) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// As [`identity`](Self::identity), shared.
    pub fn shared_identity(mut self, identity: Arc<dyn Identity>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The point `point` (a bootstrap or trusted one) must prove `peer` in its handshake
    /// (`--peer KEY@HOST:PORT`): a dial there reaching another key is dropped, counted
    /// ([`crate::core::DialStats::wrong_peer`]) and backed off. At most
    /// [`crate::core::MAX_EXPECTED_PEERS`] points.
    pub fn expect_peer(mut self, point: SocketAddr, peer: PeerId) -> Self {
        self.expected.push((point, peer));
        self
    }

    /// The seed of every random choice the node makes (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Bootstrap points: dialed at start, not protected like trusted points.
    pub fn bootstrap(mut self, points: Vec<SocketAddr>) -> Self {
        self.bootstrap = points;
        self
    }

    /// Adds a point source, polled in every discovery round.
    pub fn source(mut self, source: Arc<dyn PointSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Stops the node when `parent` (or its parent) is cancelled. Cancelling the node
    /// never cancels `parent`: the node uses a child token.
    pub fn cancel_token(mut self, parent: CancellationToken) -> Self {
        self.parent = Some(parent);
        self
    }

    /// The instant the core's time counts from (default: now). Nodes sharing an origin
    /// share a clock, as simulated nodes do.
    pub fn origin(mut self, origin: tokio::time::Instant) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Every action the core produces, with its time and peer, is also sent here (dropped
    /// if the receiver lags): what the trace tests compare with the simulator.
    pub fn action_tap(mut self, tap: mpsc::Sender<TracedAction>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Records every input of the node's core to `out`, as JSON lines (a header, then one
    /// input a line): `peerkeeper replay` feeds them to a fresh core and shows each
    /// decision. Written through a buffer, flushed when the node stops.
    pub fn trace(mut self, out: Box<dyn std::io::Write + Send>) -> Self {
        self.trace = Some(out);
        self
    }

    /// Groups peers by autonomous system with `map` ([`crate::pool::AsMap`]) instead of
    /// reading `defences.asmap` at start (an embedding node that has the map in memory,
    /// or a command that read it before binding).
    pub fn asmap(mut self, map: Arc<crate::pool::AsMap>) -> Self {
        self.asmap = Some(map);
        self
    }

    /// Keeps the pool in `store` across restarts ([`crate::store`]): at start the saved
    /// pool is restored (a missing file is a fresh start; a corrupt one is moved aside
    /// with a warning) and its anchors, the outbound peers of the last run, are dialed
    /// before anything else and removed from the file at once; while the node runs the
    /// pool is saved every [`PoolStore::save_interval`](crate::store::PoolStore::save_interval),
    /// off the actor (in a blocking task), and once more at shutdown. The config's
    /// trusted points stay the config's whatever the file says.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::{identity::Keypair, store::PoolStore, transport::memory::MemoryNetwork, Config, Node};
    /// let dir = std::env::temp_dir().join(format!("pk-persist-doc-{}", std::process::id()));
    /// let net = MemoryNetwork::new();
    /// let node = Node::builder(Config::default(), net.bind("127.0.0.1:7000".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(1))
    ///     .persist(PoolStore::in_dir(&dir).unwrap())
    ///     .start()
    ///     .unwrap();
    /// node.shutdown().await; // saved: DIR/pool.dat
    /// assert!(dir.join("pool.dat").exists());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// ```
    pub fn persist(mut self, store: crate::store::PoolStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the settings and starts the node's tasks on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`NodeError::Config`] naming the field when the config or net config breaks a rule.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<Node, NodeError> {
        self.config.validate()?;
        self.net.validate()?;
        let local_addr = self.transport.local_addr();
        let identity = self
            .identity
            .unwrap_or_else(|| Arc::new(Keypair::generate()));
        let peer_id = identity.peer_id();
        let bounds = self.config.bounds();
        let max_incoming = self.config.max_incoming_connections;
        let handshake_timeout = self.net.handshake_timeout;
        let dial_timeout = self.config.dial_timeout;
        let origin = self.origin.unwrap_or_else(tokio::time::Instant::now);
        let origin_wall = std::time::SystemTime::now()
            .checked_sub(origin.elapsed())
            .unwrap_or_else(std::time::SystemTime::now);
        let network = self.net.network.clone();
        let policy = self.config.policy;
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_sub(origin.elapsed().as_millis() as u64);
        let header =
            TraceHeader::new(self.config.clone(), peer_id, self.seed).started_at(started_unix_ms);
        let asmap = match (self.asmap, &self.config.defences.asmap) {
            (Some(map), _) => Some(map),
            (None, Some(path)) => Some(Arc::new(crate::pool::AsMap::load(path).map_err(
                |source| NodeError::AsMap {
                    path: path.clone(),
                    source,
                },
            )?)),
            (None, None) => None,
        };
        let restore = self.store.as_ref().and_then(load_store);
        let mut core = NodeCore::new(self.config, peer_id, self.seed);
        core.set_asmap(asmap);
        core.set_events(true);
        let mut initial: Vec<Input> = self
            .expected
            .into_iter()
            .map(|(point, peer)| Input::ExpectPeer { point, peer })
            .collect();
        initial.extend([
            Input::AddOwnPoint { point: local_addr },
            Input::AddPoints {
                points: self.bootstrap,
                source: Source::Bootstrap,
            },
        ]);
        let trace = match self.trace {
            Some(out) => Some(
                TraceWriter::new(std::io::BufWriter::new(out), &header)
                    .map_err(|e| NodeError::Trace { source: e })?,
            ),
            None => None,
        };
        let (events, _) = tokio::sync::broadcast::channel(EVENT_CAPACITY);
        let cancel = self.parent.map(|p| p.child_token()).unwrap_or_default();
        let tracker = TaskTracker::new();
        let (tx, rx) = mpsc::channel(MAILBOX_LEN);
        let ctx = Arc::new(Ctx {
            net: self.net,
            me: peer_id,
            identity,
            listen_port: local_addr.port(),
            mailbox: tx.clone(),
            dial_timeout,
            stop: cancel.clone(),
            nudged: std::sync::atomic::AtomicBool::new(false),
            channels: Arc::default(),
            peers: Arc::default(),
            gate: Arc::new(std::sync::Mutex::new(gate::Gate::new(
                max_incoming,
                handshake_timeout,
            ))),
        });
        let (channels, peers) = (ctx.channels.clone(), ctx.peers.clone());
        let transport = Arc::new(self.transport);
        let next_conn = Arc::new(AtomicU64::new(1));
        let triggers = Arc::new(Triggers::new());
        let (status_tx, status_rx) = watch::channel(NodeStatus::default());
        let dropped = Arc::new(AtomicU64::new(0));
        tracker.spawn(actor::accept_loop(
            transport.clone(),
            ctx.clone(),
            next_conn.clone(),
            tracker.clone(),
            cancel.clone(),
            dropped.clone(),
        ));
        let actor = Actor {
            core,
            origin,
            conns: BTreeMap::new(),
            transport,
            ctx,
            rx,
            tracker: tracker.clone(),
            cancel: cancel.clone(),
            next_conn,
            sources: self.sources,
            polling_sources: false,
            waiters: Vec::new(),
            status: status_tx,
            triggers: triggers.clone(),
            tap: self.tap,
            events: events.clone(),
            trace,
            initial,
            span: None,
            dropped_at_accept: dropped,
            restore,
            store: self.store.map(Arc::new),
            saving: None,
            key_log: actor::KeyMismatchLog::default(),
        };
        tracker.spawn(actor.run());
        Ok(Node {
            inner: Arc::new(NodeInner {
                events,
                mailbox: tx,
                status: status_rx,
                triggers,
                cancel,
                tracker,
                local_addr,
                peer_id,
                bounds,
                channels,
                peers,
                origin: (origin, origin_wall),
                network,
                policy,
            }),
        })
    }
}

/// Reads the store at start, logging what happened; writes the file back without its
/// anchors at once (consumed: a crash loop cannot pin the node to them).
fn load_store(store: &crate::store::PoolStore) -> Option<crate::pool::Snapshot> {
    use crate::store::Loaded;
    let path = store.path().display();
    match store.load() {
        Loaded::Missing => {
            tracing::info!(file = %path, "no saved pool: a fresh start");
            None
        }
        Loaded::Found { snapshot, age } => {
            tracing::info!(
                file = %path,
                points = snapshot.points.len(),
                banned_ips = snapshot.banned_ips.len(),
                anchors = snapshot.anchors.len(),
                age = %humantime::format_duration(Duration::from_secs(age.as_secs())),
                "loaded the saved pool"
            );
            if !snapshot.anchors.is_empty() {
                if let Err(e) = store.save(&snapshot.clone().without_anchors()) {
                    tracing::warn!(file = %path, error = %e, "cannot rewrite the pool file without its anchors");
                }
            }
            Some(snapshot)
        }
        Loaded::Corrupt {
            error,
            bytes,
            moved_to,
        } => {
            tracing::warn!(
                file = %path,
                error = %error,
                bytes,
                moved_to = %moved_to.as_ref().map_or_else(|| "(not moved)".into(), |p| p.display().to_string()),
                "the saved pool is unusable: its points, bans and anchors are lost; starting from the config's points (trusted ones kept)"
            );
            None
        }
        Loaded::Unreadable(e) => {
            tracing::warn!(file = %path, error = %e, "cannot read the saved pool: starting from the config's points; the file is left in place and not overwritten while it cannot be read");
            None
        }
    }
}

impl Node {
    /// A node for `config` on `transport`; see [`NodeBuilder`] for the options.
    pub fn builder<T: Transport>(config: Config, transport: T) -> NodeBuilder<T> {
        NodeBuilder {
            config,
            transport,
            net: NetConfig::default(),
            identity: None,
            expected: Vec::new(),
            seed: 0,
            bootstrap: Vec::new(),
            sources: Vec::new(),
            parent: None,
            origin: None,
            tap: None,
            trace: None,
            store: None,
            asmap: None,
        }
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The bounds derived from the config.
    pub fn bounds(&self) -> Bounds {
        self.inner.bounds
    }

    /// Opens application channel `id` on every connection this node keeps, now and later:
    /// a [`Sender`] to send bytes to one peer, some or all, and a [`Receiver`] of what
    /// peers send on it, each message with the proven id of its sender. See
    /// [`channel`] for the bounds, the priorities and what happens to a peer that breaks
    /// the channel's limits. Both sides must open the channel; a message for a channel
    /// that is not open is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::node::{ChannelConfig, Node, Recipients, WhenFull};
    /// use peerkeeper::{identity::Keypair, transport::memory::MemoryNetwork, Config};
    /// let net = MemoryNetwork::new();
    /// let config = Config { min_connections: 1, expected_connections: 2, max_connections: 3,
    ///                       ..Config::default() };
    /// let a = Node::builder(config.clone(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(1)).seed(1).start().unwrap();
    /// let b = Node::builder(config, net.bind("10.0.0.2:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(2)).seed(2).bootstrap(vec![a.local_addr()]).start().unwrap();
    /// let (_a_tx, mut a_rx) = a.channel(7, ChannelConfig::default()).unwrap();
    /// let (b_tx, _b_rx) = b.channel(7, ChannelConfig::default()).unwrap();
    /// b.status_watch().wait_for(|s| s.connections == 1).await.unwrap();
    /// b_tx.send(Recipients::One(a.peer_id()), &b"hello"[..], WhenFull::Error).unwrap();
    /// let (from, msg) = a_rx.recv().await.unwrap();
    /// assert_eq!((from, &msg[..]), (b.peer_id(), &b"hello"[..]));
    /// # }
    /// ```
    pub fn channel(
        &self,
        id: u16,
        config: ChannelConfig,
    ) -> Result<(Sender, Receiver), ChannelError> {
        channel::open(&self.inner.channels, &self.inner.peers, id, config)
    }

    /// The connected peers (ordered by id), with the round-trip time measured on
    /// keepalives where known.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner.peers.list()
    }

    async fn ask<R>(&self, cmd: impl FnOnce(oneshot::Sender<R>) -> Cmd) -> Result<R, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .mailbox
            .send(cmd(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    async fn tell(&self, cmd: Cmd) -> Result<(), NodeError> {
        self.inner
            .mailbox
            .send(cmd)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Asks for maintenance and returns the report of the first full cycle that began at
    /// or after this call, also when nothing needed doing. Concurrent calls coalesce into
    /// one cycle.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future forgets the wait (the cycle still runs).
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] at once if the node has stopped.
    pub async fn maintain(&self) -> Result<CycleReport, NodeError> {
        self.ask(Cmd::Maintain).await
    }

    /// Testing API: switches a trigger off (the node no longer reacts to it) or on.
    /// Cancel-safe (the switch may or may not have happened).
    pub async fn set_trigger(&self, kind: TriggerKind, enabled: bool) -> Result<(), NodeError> {
        self.tell(Cmd::SetTrigger(kind, enabled)).await
    }

    /// Testing API: switches the maintenance idle timer off or on. Cancel-safe (the switch
    /// may or may not have happened).
    pub async fn set_idle_timer(&self, enabled: bool) -> Result<(), NodeError> {
        self.tell(Cmd::SetIdleTimer(enabled)).await
    }

    /// The application's word on a peer: it delivered something new or first
    /// ([`Report::Useful`](crate::core::Report::Useful)), it is slow, or it misbehaved
    /// (with a severity). The core keeps a decaying score per peer
    /// ([`Config::feedback`](crate::Config::feedback)): the most useful peers are kept
    /// through trims and room-making and their points dialed first; a peer whose score
    /// falls below `feedback.disconnect_below` is disconnected, below `feedback.ban_below`
    /// (or on a fatal report) banned. Every report is a core input: traces record it and
    /// `peerkeeper replay` explains what it led to. Cancel-safe (the report may or may not
    /// have been made).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::core::{Report, Severity};
    /// use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
    /// let net = MemoryNetwork::new();
    /// let node = Node::builder(Config::default(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(1)).seed(1).start().unwrap();
    /// let peer = Keypair::from_seed(2);
    /// node.report(peerkeeper::identity::Identity::peer_id(&peer), Report::Misbehaved(Severity::Low)).await.unwrap();
    /// node.shutdown().await;
    /// # }
    /// ```
    pub async fn report(&self, peer: PeerId, report: crate::core::Report) -> Result<(), NodeError> {
        self.tell(Cmd::Report(peer, report)).await
    }

    /// Learns points (of the given source, through the intake rule for sources other
    /// than trusted and bootstrap). Cancel-safe (they may or may not have been learned).
    pub async fn add_points(
        &self,
        points: Vec<SocketAddr>,
        source: Source,
    ) -> Result<(), NodeError> {
        self.tell(Cmd::AddPoints(points, source)).await
    }

    /// Tracks a peer set under `id` (commonware's `track`; the rules are in
    /// [`crate::core::peerset`]): ids strictly increase and the highest is the active
    /// set; the last `peer_sets.kept_sets` sets are kept; primaries are dialed and never
    /// trimmed, secondaries admitted but not dialed; a peer that left every kept set is
    /// disconnected ([`CloseReason::Untracked`](crate::pool::CloseReason::Untracked)).
    /// Returns what changed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::{transport::memory::MemoryNetwork, Config, Node, NodeError, PeerId};
    /// use peerkeeper::{core::PeerSetError, identity::{Identity, Keypair}, PeerSetConfig};
    /// // Two validators: peer sets only, the default config otherwise.
    /// let config = Config { peer_sets: PeerSetConfig { only: true, ..PeerSetConfig::default() },
    ///                       ..Config::default() };
    /// let net = MemoryNetwork::new();
    /// let (a, b) = ("10.0.0.1:9732".parse().unwrap(), "10.0.0.2:9732".parse().unwrap());
    /// // Each validator's id is its public key, proven in the handshake.
    /// let (k1, k2) = (Keypair::generate(), Keypair::generate());
    /// let (id1, id2): (PeerId, PeerId) = (k1.peer_id(), k2.peer_id());
    /// let v1 = Node::builder(config.clone(), net.bind(a).unwrap()).identity(k1).start().unwrap();
    /// let v2 = Node::builder(config, net.bind(b).unwrap()).identity(k2).start().unwrap();
    /// // Epoch 7's validators: each dials the other (a primary) and keeps it.
    /// let epoch = vec![(id1, a), (id2, b)];
    /// v1.track(7, epoch.clone(), vec![]).await.unwrap();
    /// v2.track(7, epoch, vec![]).await.unwrap();
    /// v1.status_watch().wait_for(|s| s.connections == 1).await.unwrap();
    /// // Epoch 7 again: refused, nothing changes.
    /// assert!(matches!(v1.track(7, vec![], vec![]).await,
    ///                  Err(NodeError::PeerSet(PeerSetError::StaleId { id: 7, latest: 7 }))));
    /// // Validator 2 moved (an address in another set of IPs): the connection on its old
    /// // address is severed, the new one dialed.
    /// let moved = "10.0.1.2:9732".parse().unwrap();
    /// let changes = v1.overwrite(vec![(id2, moved)]).await.unwrap();
    /// assert_eq!(changes.readdressed.len(), 1);
    /// v1.shutdown().await;
    /// v2.shutdown().await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe in the usual sense: once the command is queued, dropping the
    /// future loses only the answer; the set may or may not have been tracked (read
    /// [`PeerSets::latest_id`](crate::core::PeerSets::latest_id) through
    /// [`inspect`](Self::inspect) to know).
    ///
    /// # Errors
    ///
    /// [`NodeError::PeerSet`] for a refused set (a stale id, too many peers, a peer given
    /// two addresses); [`NodeError::Stopped`] if the node has stopped.
    pub async fn track(
        &self,
        id: u64,
        primary: Vec<(PeerId, SocketAddr)>,
        secondary: Vec<(PeerId, SocketAddr)>,
    ) -> Result<SetChanges, NodeError> {
        let input = Input::Track {
            id,
            primary,
            secondary,
        };
        self.peer_sets(input).await
    }

    /// Changes the addresses of tracked peers without a new set (commonware's
    /// `overwrite`): a connection on an old address is severed
    /// ([`CloseReason::AddressChanged`](crate::pool::CloseReason::AddressChanged)), the
    /// peer is admitted inbound from its new address's IP only (peer-sets-only and
    /// private mode), and a primary is dialed at its new address. Addresses of untracked
    /// peers are ignored. Returns what changed. See [`track`](Self::track) for an example.
    ///
    /// # Cancel safety
    ///
    /// As [`track`](Self::track): dropping the future loses only the answer.
    ///
    /// # Errors
    ///
    /// [`NodeError::PeerSet`] for more than `peer_sets.max_overwrite` addresses or a peer
    /// given two; [`NodeError::Stopped`] if the node has stopped.
    pub async fn overwrite(
        &self,
        addresses: Vec<(PeerId, SocketAddr)>,
    ) -> Result<SetChanges, NodeError> {
        self.peer_sets(Input::Overwrite { addresses }).await
    }

    async fn peer_sets(&self, input: Input) -> Result<SetChanges, NodeError> {
        match self.ask(|tx| Cmd::PeerSets(input, tx)).await? {
            Ok(changes) => Ok(changes),
            Err(PeerSetError::Stopped) => Err(NodeError::Stopped),
            Err(e) => Err(NodeError::PeerSet(e)),
        }
    }

    /// Runs `f` on the core, in the actor, between two inputs: a consistent read of
    /// anything the core knows. Cancel-safe.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&NodeCore) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.ask(|tx| {
            Cmd::Inspect(Box::new(move |core: &NodeCore| {
                let _ = tx.send(f(core));
            }))
        })
        .await
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver of the status, to wait for a condition
    /// (`status_watch().wait_for(|s| s.connections >= 2)`).
    pub fn status_watch(&self) -> watch::Receiver<NodeStatus> {
        self.inner.status.clone()
    }

    /// A stream of what happens in the node ([`Event`]): connections, disconnections with
    /// their reason, dial outcomes, points learned, bans, cycle reports. Bounded: a
    /// subscriber that falls more than [`EVENT_CAPACITY`] events behind loses the oldest
    /// and is told how many (`RecvError::Lagged`); it never slows the node.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The triggers, as they fire (to wait on; switching them is
    /// [`set_trigger`](Self::set_trigger)'s job).
    pub fn triggers(&self) -> &Triggers {
        &self.inner.triggers
    }

    /// Whether the node has stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.mailbox.is_closed()
    }

    /// Stops the node: dials cancelled, connections closed (peers are told), every task
    /// ended when this returns.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the node stops anyway; only the wait for its tasks is lost.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

impl Drop for NodeInner {
    /// Dropping the last clone of a node stops its tasks (without waiting for them).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
