//! Helpers shared by the node tests.
//!
//! * Memory-network tests ([`Lab`]): nodes on a [`MemoryNetwork`] under a paused tokio
//!   clock, sharing one time origin so that a test can name the instant something
//!   happened ([`Lab::now`]) and compare it with a cycle report; passive peers (real nodes
//!   content with what they have); raw peers speaking the wire protocol on a memory link;
//!   an action tap ([`Tap`]) that sees every action of a node, cycle reports included.
//! * Real-socket tests: nodes on 127.0.0.1, raw TCP peers.
//! * Waiting: for a status condition ([`wait_status`]) or a condition on the node core
//!   ([`wait_core`], re-checked after every status change). Never a fixed sleep: on a
//!   paused clock the deadline is virtual; on real sockets it only bounds a wait on a
//!   watch.

#![allow(dead_code)] // each test crate uses its own subset

use futures::future::BoxFuture;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use peerkeeper::core::{Action, NodeCore, TracedAction};
use peerkeeper::handshake::{accept_hello, DialerHandshake, Role};
use peerkeeper::identity::{Identity, Keypair};
use peerkeeper::maintenance::CycleReport;
use peerkeeper::node::{Node, NodeBuilder, NodeStatus};
use peerkeeper::pool::{PointState, Source};
use peerkeeper::transport::memory::{MemoryLink, MemoryNetwork, MemoryTransport};
use peerkeeper::transport::tcp::{TcpLink, TcpTransport};
use peerkeeper::transport::{Link, Transport};
use peerkeeper::wire::{self, Message, RefuseCode, WireCodec, WireError, PROTOCOL_VERSION};
use peerkeeper::{Config, PeerId, Time};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// The longest a condition is awaited on real sockets.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The longest a condition is awaited on a paused clock (virtual time: costs nothing).
pub const VIRTUAL_DEADLINE: Duration = Duration::from_secs(3600);

// ----- waiting -----------------------------------------------------------------------

/// Waits until `pred` holds on the node's status; fails the test after `within`.
pub async fn wait_status(
    node: &Node,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&NodeStatus) -> bool,
) -> NodeStatus {
    let mut rx = node.status_watch();
    let waited = tokio::time::timeout(within, async {
        rx.wait_for(|s| pred(s)).await.map(|s| s.clone())
    })
    .await;
    match waited {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("the node stopped while waiting for {what}"),
        Err(_) => panic!("gave up waiting for {what}: {:?}", node.status()),
    }
}

/// Asserts that `pred` holds on no status the node publishes during `d` (on a paused
/// clock: `d` of virtual time).
pub async fn assert_never_within(
    node: &Node,
    d: Duration,
    what: &str,
    mut pred: impl FnMut(&NodeStatus) -> bool,
) {
    let mut rx = node.status_watch();
    let seen = tokio::time::timeout(d, async {
        rx.wait_for(|s| pred(s)).await.map(|s| s.clone())
    })
    .await;
    if let Ok(Ok(s)) = seen {
        panic!("{what} within {d:?}: {s:?}");
    }
}

/// Waits until `pred` holds on the node's core, re-checked after every status change;
/// fails the test after `within`.
pub async fn wait_core<F>(node: &Node, within: Duration, what: &str, pred: F)
where
    F: Fn(&NodeCore) -> bool + Clone + Send + 'static,
{
    let mut rx = node.status_watch();
    let give_up = Instant::now() + within;
    loop {
        rx.borrow_and_update();
        let p = pred.clone();
        if query(node, move |c| p(c)).await {
            return;
        }
        match tokio::time::timeout_at(give_up, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the node stopped while waiting for {what}"),
            Err(_) => panic!("gave up waiting for {what}: {:?}", node.status()),
        }
    }
}

/// A consistent read of the node's core (the node must be running).
pub async fn query<R: Send + 'static>(
    node: &Node,
    f: impl FnOnce(&NodeCore) -> R + Send + 'static,
) -> R {
    node.inspect(f).await.expect("the node is running")
}

/// Whether `node` has a connection to the point `to`.
pub async fn connected(node: &Node, to: SocketAddr) -> bool {
    query(node, move |c| c.pool().connection(&to).is_some()).await
}

/// The points `node` is connected to.
pub async fn connections(node: &Node) -> Vec<SocketAddr> {
    query(node, |c| c.pool().connections().map(|(a, _)| a).collect()).await
}

/// The state of `point` in `node`'s pool.
pub async fn point_state(node: &Node, point: SocketAddr) -> Option<PointState> {
    query(node, move |c| c.pool().get(&point).map(|p| p.state)).await
}

/// Whether `node` learned `point` from `source`.
pub async fn learned_from(node: &Node, point: SocketAddr, source: Source) -> bool {
    query(node, move |c| {
        c.pool()
            .get(&point)
            .is_some_and(|p| p.sources.contains(source))
    })
    .await
}

// ----- the action tap ----------------------------------------------------------------

/// Every action of one node, with its core time, in order.
pub struct Tap {
    rx: mpsc::Receiver<TracedAction>,
    /// Everything read so far.
    pub log: Vec<TracedAction>,
}

/// A tap to give [`NodeBuilder::action_tap`], large enough never to drop an action in a
/// test.
pub fn tap() -> (mpsc::Sender<TracedAction>, Tap) {
    let (tx, rx) = mpsc::channel(1 << 16);
    (
        tx,
        Tap {
            rx,
            log: Vec::new(),
        },
    )
}

impl Tap {
    /// The next action (waits for it).
    pub async fn next(&mut self) -> TracedAction {
        let a = self.rx.recv().await.expect("the node stopped");
        self.log.push(a.clone());
        a
    }

    async fn any_cycle_after(&mut self, after: u64) -> CycleReport {
        loop {
            if let Action::CycleEnded { report, .. } = self.next().await.action {
                if report.cycle > after {
                    return *report;
                }
            }
        }
    }

    /// The report of the first cycle numbered above `after` to end; fails the test if
    /// none ends within [`VIRTUAL_DEADLINE`].
    pub async fn cycle_after(&mut self, after: u64) -> CycleReport {
        match tokio::time::timeout(VIRTUAL_DEADLINE, self.any_cycle_after(after)).await {
            Ok(r) => r,
            Err(_) => panic!("no cycle after cycle {after} within {VIRTUAL_DEADLINE:?}"),
        }
    }

    /// Fails the test if a cycle numbered above `after` ends within `d`.
    pub async fn assert_no_cycle_within(&mut self, after: u64, d: Duration, why: &str) {
        if let Ok(r) = tokio::time::timeout(d, self.any_cycle_after(after)).await {
            panic!("{why}: {r:?}");
        }
    }

    /// Reads what is queued without waiting.
    pub fn drain(&mut self) {
        while let Ok(a) = self.rx.try_recv() {
            self.log.push(a);
        }
    }

    /// The times at which `pred` matched an action read so far.
    pub fn times_of(&self, pred: impl Fn(&Action) -> bool) -> Vec<Time> {
        self.log
            .iter()
            .filter(|t| pred(&t.action))
            .map(|t| t.at)
            .collect()
    }
}

// ----- memory-network tests ----------------------------------------------------------

/// `10.b.c.d:9732`.
pub fn ip4(b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::from(([10, b, c, d], 9732))
}

/// A config for a peer that never dials, never trims and never asks for points: it only
/// answers (a real node, content with what it has).
pub fn passive_config() -> Config {
    Config {
        min_connections: 0,
        expected_connections: 0,
        max_connections: 20,
        maintenance_idle_time: None,
        ..Config::default()
    }
}

/// A memory network and the time origin every node of a test shares.
pub struct Lab {
    /// The network.
    pub net: MemoryNetwork,
    /// Time zero of every node's core.
    pub origin: Instant,
}

impl Lab {
    /// Links of 10 ms.
    pub fn new() -> Lab {
        Lab::with(MemoryNetwork::new())
    }

    /// Over a network built by the caller (latencies).
    pub fn with(net: MemoryNetwork) -> Lab {
        Lab {
            net,
            origin: Instant::now(),
        }
    }

    /// The nodes' core time now.
    pub fn now(&self) -> Time {
        Time::from_duration(Instant::now().saturating_duration_since(self.origin))
    }

    /// Listens at `at`.
    pub fn bind(&self, at: SocketAddr) -> MemoryTransport {
        self.net.bind(at).expect("a free address")
    }

    /// A builder for a node at `at` with peer id and seed `id`, on the lab's clock.
    pub fn builder(&self, config: Config, at: SocketAddr, id: u64) -> NodeBuilder<MemoryTransport> {
        self.builder_on(config, self.bind(at), id)
    }

    /// As [`builder`](Self::builder), on a transport of the caller's.
    pub fn builder_on<T: Transport>(
        &self,
        config: Config,
        transport: T,
        id: u64,
    ) -> NodeBuilder<T> {
        Node::builder(config, transport)
            .identity(key(id))
            .seed(id)
            .origin(self.origin)
    }

    /// A started node.
    pub fn node(
        &self,
        config: &Config,
        at: SocketAddr,
        id: u64,
        bootstrap: Vec<SocketAddr>,
    ) -> Node {
        self.builder(config.clone(), at, id)
            .bootstrap(bootstrap)
            .start()
            .expect("a valid config")
    }

    /// A passive peer ([`passive_config`]).
    pub fn passive(&self, at: SocketAddr, id: u64) -> Node {
        self.node(&passive_config(), at, id, vec![])
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// The node listening at `at` among `nodes`.
pub fn node_at(nodes: &[Node], at: SocketAddr) -> &Node {
    nodes
        .iter()
        .find(|n| n.local_addr() == at)
        .expect("a node at that address")
}

/// A raw peer on the memory network: listens at its point (so its handshake names a
/// point that exists) and speaks the wire protocol itself.
pub struct MemPeer {
    /// Its point.
    pub point: SocketAddr,
    /// Its listener (kept open).
    pub transport: MemoryTransport,
    /// The link to the node it dialed.
    pub link: MemoryLink,
}

/// A raw peer at `point` with peer id `id` dials `to` and says hello; returns it with the
/// node's answer.
pub async fn mem_peer(lab: &Lab, point: SocketAddr, id: u64, to: SocketAddr) -> (MemPeer, Message) {
    let transport = lab.bind(point);
    let mut link = transport.connect(to).await.expect("the node listens");
    let reply = dial_handshake(&mut link, to, id, point.port(), "peerkeeper").await;
    (
        MemPeer {
            point,
            transport,
            link,
        },
        reply,
    )
}

// ----- a transport that counts dials ---------------------------------------------------

/// Dials seen by a [`Counting`] transport.
#[derive(Debug, Default)]
pub struct DialCounter {
    now: AtomicUsize,
    max: AtomicUsize,
    total: AtomicUsize,
}

impl DialCounter {
    /// Dials in flight now.
    pub fn in_flight(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }
    /// The most dials ever in flight at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
    /// Dials started.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

struct DialGuard(Arc<DialCounter>);

impl DialGuard {
    fn new(c: Arc<DialCounter>) -> DialGuard {
        let now = c.now.fetch_add(1, Ordering::SeqCst) + 1;
        c.max.fetch_max(now, Ordering::SeqCst);
        c.total.fetch_add(1, Ordering::SeqCst);
        DialGuard(c)
    }
}

impl Drop for DialGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A transport that counts the dials made through it: a dial is in flight from
/// `connect` until the peer's first answer arrives, the connect fails, or the attempt is
/// dropped. Every connect first waits `delay`, so no dial ends in no time and the count
/// sees every dial the node has in flight.
pub struct Counting<T> {
    inner: T,
    delay: Duration,
    /// The counts.
    pub counter: Arc<DialCounter>,
}

impl<T: Transport> Counting<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, delay: Duration) -> Counting<T> {
        Counting {
            inner,
            delay,
            counter: Arc::default(),
        }
    }
}

/// A link of a [`Counting`] transport.
pub struct CountedLink<L> {
    inner: L,
    guard: Option<DialGuard>,
}

impl<L: Link> Stream for CountedLink<L> {
    type Item = Result<Message, WireError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = Pin::new(&mut self.inner).poll_next(cx);
        if r.is_ready() {
            self.guard = None;
        }
        r
    }
}

impl<L: Link> Link for CountedLink<L> {
    fn secure(&mut self, keys: peerkeeper::secure::SessionKeys) {
        self.inner.secure(keys)
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr()
    }
}

impl<L: Link> Sink<Message> for CountedLink<L> {
    type Error = WireError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, m: Message) -> Result<(), WireError> {
        Pin::new(&mut self.inner).start_send(m)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<T: Transport> Transport for Counting<T> {
    type Link = CountedLink<T::Link>;

    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<Self::Link>> {
        let guard = DialGuard::new(self.counter.clone());
        let connect = self.inner.connect(point);
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            let inner = connect.await?;
            Ok(CountedLink {
                inner,
                guard: Some(guard),
            })
        }
        .boxed()
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(Self::Link, SocketAddr)>> {
        async move {
            let (inner, from) = self.inner.accept().await?;
            Ok((CountedLink { inner, guard: None }, from))
        }
        .boxed()
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

// ----- the wire, from a raw peer ---------------------------------------------------------

/// The key of test peer `id` (the same for the same id: [`Keypair::from_seed`]).
pub fn key(id: u64) -> Keypair {
    Keypair::from_seed(id)
}

/// The peer id of test peer `id`.
pub fn peer_of(id: u64) -> PeerId {
    key(id).peer_id()
}

/// A hello of raw peer `id` claiming to listen on `port`, naming no dialed address and a
/// fresh ephemeral key: for tests that only send a hello (a second hello, another
/// network).
pub fn hello(id: u64, port: u16, network: &str) -> Message {
    Message::Hello(wire::Hello {
        network: network.into(),
        version: PROTOCOL_VERSION,
        key: *peer_of(id).as_bytes(),
        ephemeral: peerkeeper::secure::Ephemeral::generate().public(),
        listen_port: port,
        dialed: None,
    })
}

/// The dialer's side of the v4 handshake on `link` to `to`, as raw peer `id` (listening on
/// `port`): hello, the node's hello, keys, our signature (sealed), the node's answer.
/// Returns the node's hello when it admitted us (its signature checked), or else the
/// message that ended the handshake (a refusal).
pub async fn dial_handshake<L: Link>(
    link: &mut L,
    to: SocketAddr,
    id: u64,
    port: u16,
    network: &str,
) -> Message {
    dial_handshake_as(link, to, &key(id), port, network).await
}

/// As [`dial_handshake`], with `signer`'s key.
pub async fn dial_handshake_as<L: Link>(
    link: &mut L,
    to: SocketAddr,
    signer: &Keypair,
    port: u16,
    network: &str,
) -> Message {
    let hs = DialerHandshake::new(signer.peer_id(), network, port, to);
    link.send(Message::Hello(hs.hello().clone())).await.unwrap();
    let reply = next_message(link).await.expect("an answer");
    let Message::Hello(h) = &reply else {
        return reply;
    };
    let agreed = hs.on_hello(h.clone()).expect("the node's hello is good");
    link.secure(agreed.keys);
    link.send(Message::Auth {
        signature: agreed.transcript.sign(signer, Role::Dialer),
    })
    .await
    .unwrap();
    match next_message(link).await.expect("an answer") {
        Message::Auth { signature } => {
            assert_eq!(
                agreed.transcript.verify(signer, Role::Acceptor, &signature),
                Ok(agreed.peer),
                "the node's signature verifies"
            );
            reply
        }
        other => other,
    }
}

/// The acceptor's side of the v4 handshake on `link` (the node dialed us), as raw peer
/// `id` listening on `port`: the node's hello, ours, its signature (checked), ours.
pub async fn accept_handshake_as<L: Link>(link: &mut L, id: u64, port: u16) {
    let signer = key(id);
    let m = next_message(link).await;
    let Some(Message::Hello(h)) = m else {
        panic!("expected a hello, got {m:?}");
    };
    let network = h.network.clone();
    let local = link.local_addr();
    let (ours, agreed) = accept_hello(signer.peer_id(), &network, port, h, local, &[])
        .expect("the node's hello is good");
    link.send(Message::Hello(ours)).await.unwrap();
    link.secure(agreed.keys);
    let m = next_message(link).await;
    let Some(Message::Auth { signature }) = m else {
        panic!("expected the node's signature, got {m:?}");
    };
    assert_eq!(
        agreed.transcript.verify(&signer, Role::Dialer, &signature),
        Ok(agreed.peer)
    );
    link.send(Message::Auth {
        signature: agreed.transcript.sign(&signer, Role::Acceptor),
    })
    .await
    .unwrap();
}

/// The next message on a link (`None` when it ends or breaks).
pub async fn next_message<L: Link>(link: &mut L) -> Option<Message> {
    match link.next().await {
        Some(Ok(m)) => Some(m),
        _ => None,
    }
}

/// Reads a link for up to `within`, skipping keepalives, until the node closes it: the
/// messages seen, and whether it closed (a `Close` or the end of the link).
pub async fn read_until_closed<L: Link>(link: &mut L, within: Duration) -> (Vec<Message>, bool) {
    let mut seen = Vec::new();
    let read = async {
        loop {
            match link.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(Message::KeepAlive | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(m @ Message::Close(_))) => {
                    seen.push(m);
                    return true;
                }
                Some(Ok(m)) => seen.push(m),
            }
        }
    };
    let closed = tokio::time::timeout(within, read).await.unwrap_or(false);
    (seen, closed)
}

/// Whether `m` refuses with `code`.
pub fn refused_with(m: &Message, code: RefuseCode) -> bool {
    matches!(m, Message::Refused { reason, .. } if *reason == code)
}

// ----- real sockets ----------------------------------------------------------------------

/// 127.0.0.1, any port.
pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A node on 127.0.0.1 with peer id and seed `id`, knowing `bootstrap`.
pub async fn tcp_node(config: &Config, id: u64, bootstrap: Vec<SocketAddr>) -> Node {
    let transport = TcpTransport::bind(local()).await.unwrap();
    Node::builder(config.clone(), transport)
        .identity(key(id))
        .seed(id)
        .bootstrap(bootstrap)
        .start()
        .expect("a valid config")
}

/// A raw TCP client that sends a handshake as `id` (listening on `port`) and returns the
/// connection with the node's reply.
pub async fn raw_peer(to: SocketAddr, id: u64, port: u16, network: &str) -> (TcpLink, Message) {
    let stream = TcpStream::connect(to).await.unwrap();
    let mut conn = Framed::new(stream, WireCodec::default());
    let reply = tokio::time::timeout(DEADLINE, dial_handshake(&mut conn, to, id, port, network))
        .await
        .expect("a reply in time");
    (conn, reply)
}

/// Reads until the node closes the connection (or says Close), within [`DEADLINE`].
pub async fn closed_by_node<L: Link>(conn: &mut L) -> bool {
    read_until_closed(conn, DEADLINE).await.1
}

/// Reads raw bytes until the node closes the socket, within [`DEADLINE`].
pub async fn raw_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.unwrap_or(false)
}

/// Waits until `target` has greylisted the point `127.0.0.1:port`, then checks that the
/// same point coming back (as peer `id`, on the right network) is refused and dropped.
pub async fn assert_greylisted_and_refused(target: &Node, id: u64, port: u16) {
    let bad = SocketAddr::from(([127, 0, 0, 1], port));
    wait_core(target, DEADLINE, "the point is greylisted", move |c| {
        c.pool().get(&bad).map(|p| p.state) == Some(PointState::Greylisted)
    })
    .await;
    let (mut c, reply) = raw_peer(target.local_addr(), id, port, "peerkeeper").await;
    assert!(refused_with(&reply, RefuseCode::Greylisted), "{reply:?}");
    assert!(closed_by_node(&mut c).await);
}
