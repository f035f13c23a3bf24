//! The TCP transport: dials with a handshake, accepts behind caps, and runs one task per
//! connection (keepalive, peer-sharing messages, an outbound queue).
//!
//! Bounds: connections (`max_connections`, refusals carry points), handshakes in progress
//! (`max_incoming_connections`, excess accepted sockets are closed at once), a handshake
//! timeout, a bounded outbound queue per connection (a peer that cannot keep up is
//! dropped), a write timeout, an idle timeout, and at most one answer to a request for
//! points per [`NetConfig::min_answer_interval`] per connection.

use super::protocol::{self, Hello, Message, ProtocolError, RefuseReason, PROTOCOL_VERSION};
use crate::config::Config;
use crate::discovery::Discovery;
use crate::handle::PoolHandle;
use crate::pool::{Direction, PeerId};
use crate::transport::{CloseReason, DialError, Transport};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of the TCP layer (the maintenance and discovery settings are the [`Config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The network name carried in the handshake; peers of other networks are refused.
    pub network: String,
    /// How long an accepted connection may take to complete its handshake, and how long
    /// one write may take.
    pub handshake_timeout: Duration,
    /// A keepalive is sent after this long.
    pub keepalive_interval: Duration,
    /// A connection on which nothing arrived for this long is closed.
    pub idle_timeout: Duration,
    /// Messages queued for one connection before it counts as unable to keep up.
    pub queue_size: usize,
    /// A connection's requests for points are answered at most once per this interval.
    pub min_answer_interval: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            network: "peerkeeper".into(),
            handshake_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            queue_size: 64,
            min_answer_interval: Duration::from_millis(100),
        }
    }
}

/// Counters of the TCP layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetStats {
    /// Open connections (handshake done).
    pub connections: usize,
    /// Incoming connections still handshaking.
    pub handshaking: usize,
    /// Most incoming connections ever handshaking at once.
    pub max_handshaking: usize,
    /// Incoming connections accepted at the socket level.
    pub accepted: u64,
    /// Incoming connections closed at once: too many handshaking.
    pub refused_handshaking: u64,
    /// Incoming connections closed at once: greylisted address.
    pub refused_greylisted: u64,
    /// Handshakes refused because the node was full.
    pub refused_full: u64,
    /// Protocol violations (each dropped the connection and greylisted the peer).
    pub violations: u64,
    /// Requests for points sent.
    pub requests_sent: u64,
    /// Requests for points answered.
    pub requests_answered: u64,
    /// Connections dropped because their outbound queue was full.
    pub slow_peers: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused_handshaking: AtomicU64,
    refused_greylisted: AtomicU64,
    refused_full: AtomicU64,
    violations: AtomicU64,
    requests_sent: AtomicU64,
    requests_answered: AtomicU64,
    slow_peers: AtomicU64,
    max_handshaking: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Cmd {
    Send(Message),
    Close(CloseReason),
}

struct Live {
    id: u64,
    peer: PeerId,
    tx: mpsc::Sender<Cmd>,
    cancel: CancellationToken,
    since: Instant,
}

#[derive(Default)]
struct Conns {
    by_point: BTreeMap<SocketAddr, Live>,
    by_peer: BTreeMap<PeerId, SocketAddr>,
}

struct Inner {
    config: Config,
    net: NetConfig,
    pool: PoolHandle,
    me: PeerId,
    listen_port: AtomicU16,
    discovery: OnceLock<Arc<Discovery>>,
    conns: Mutex<Conns>,
    handshaking: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    counters: Counters,
    next_id: AtomicU64,
}

/// The TCP transport of one node. See the [module docs](self).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// use peerkeeper::{net::{NetConfig, TcpTransport}, Config, PeerId, PoolHandle};
/// let config = Config::default();
/// let pool = PoolHandle::new(&config);
/// let t = TcpTransport::new(config, NetConfig::default(), pool, PeerId(1));
/// let addr = t.listen("127.0.0.1:0".parse().unwrap()).await?;
/// println!("listening on {addr}");
/// t.shutdown().await;
/// # Ok(()) }
/// ```
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

enum ConnError {
    Io(String),
    Protocol(ProtocolError),
}

type Wire = Framed<TcpStream, LengthDelimitedCodec>;

async fn recv(framed: &mut Wire) -> Result<Message, ConnError> {
    match framed.next().await {
        None => Err(ConnError::Io("connection closed".into())),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(ConnError::Protocol(ProtocolError::Frame(e.to_string())))
        }
        Some(Err(e)) => Err(ConnError::Io(e.to_string())),
        Some(Ok(bytes)) => protocol::decode(&bytes).map_err(ConnError::Protocol),
    }
}

async fn send(framed: &mut Wire, msg: &Message, within: Duration) -> Result<(), ConnError> {
    let bytes = protocol::encode(msg).map_err(ConnError::Protocol)?;
    match tokio::time::timeout(within, framed.send(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ConnError::Io(e.to_string())),
        Err(_) => Err(ConnError::Io("write timed out".into())),
    }
}

impl TcpTransport {
    /// A transport for the node `me`, reporting to `pool`. Nothing runs until
    /// [`listen`](Self::listen) or a dial.
    pub fn new(config: Config, net: NetConfig, pool: PoolHandle, me: PeerId) -> Arc<TcpTransport> {
        let handshaking = Arc::new(Semaphore::new(config.max_incoming_connections));
        Arc::new(TcpTransport {
            inner: Arc::new(Inner {
                config,
                net,
                pool,
                me,
                listen_port: AtomicU16::new(0),
                discovery: OnceLock::new(),
                conns: Mutex::new(Conns::default()),
                handshaking,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                counters: Counters::default(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// Connects the discovery worker: requests for points are answered from it and points
    /// received go through it. Until then, requests get empty answers and points are
    /// dropped. Only the first call counts.
    pub fn set_discovery(&self, discovery: Arc<Discovery>) {
        let _ = self.inner.discovery.set(discovery);
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.me
    }

    /// Binds `addr` and accepts connections until shutdown; returns the bound address
    /// (with the port chosen by the system when `addr` has port 0). Also starts the
    /// housekeeping task that keeps the pool's connections and the open sockets in step.
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        self.inner
            .listen_port
            .store(local.port(), Ordering::Relaxed);
        let inner = self.inner.clone();
        self.inner.tracker.spawn(accept_loop(inner, listener));
        let inner = self.inner.clone();
        self.inner.tracker.spawn(housekeeping(inner));
        Ok(local)
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        let c = &self.inner.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetStats {
            connections: self.inner.lock().by_point.len(),
            handshaking: self.inner.config.max_incoming_connections
                - self.inner.handshaking.available_permits(),
            max_handshaking: r(&c.max_handshaking) as usize,
            accepted: r(&c.accepted),
            refused_handshaking: r(&c.refused_handshaking),
            refused_greylisted: r(&c.refused_greylisted),
            refused_full: r(&c.refused_full),
            violations: r(&c.violations),
            requests_sent: r(&c.requests_sent),
            requests_answered: r(&c.requests_answered),
            slow_peers: r(&c.slow_peers),
        }
    }

    /// The points with an open connection, and their peers.
    pub fn connected(&self) -> Vec<(SocketAddr, PeerId)> {
        self.inner
            .lock()
            .by_point
            .iter()
            .map(|(a, l)| (*a, l.peer))
            .collect()
    }

    /// Closes every connection (telling peers why) and the listener, and waits until no
    /// task of this transport is left.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hello(&self) -> Message {
        Message::Hello(Hello {
            network: self.net.network.clone(),
            version: PROTOCOL_VERSION,
            peer: self.me,
            listen_port: self.listen_port.load(Ordering::Relaxed),
        })
    }

    /// A protocol violation by the peer at `point`: greylist it (and its IP address).
    fn violation(&self, point: SocketAddr, err: &ProtocolError) {
        bump(&self.counters.violations);
        tracing::info!(%point, error = %err, "protocol violation: dropped and greylisted");
        self.pool.greylist(point);
    }

    fn on_points(&self, points: &[SocketAddr]) -> Result<usize, ProtocolError> {
        match self.discovery.get() {
            Some(d) => d
                .on_points(points)
                .map_err(|e| ProtocolError::TooManyPoints {
                    got: e.got,
                    max: e.max,
                }),
            None => Ok(0),
        }
    }

    fn answer(&self, requester: SocketAddr, max: usize) -> Vec<SocketAddr> {
        let mut points = match self.discovery.get() {
            Some(d) => d.answer(requester),
            None => Vec::new(),
        };
        points.truncate(max);
        points
    }

    /// Registers an open connection, unless the point or the peer already has one or the
    /// node is full.
    #[allow(clippy::type_complexity)]
    fn try_insert(
        &self,
        point: SocketAddr,
        peer: PeerId,
    ) -> Result<(u64, mpsc::Receiver<Cmd>, CancellationToken), RefuseReason> {
        let mut conns = self.lock();
        if conns.by_point.contains_key(&point) || conns.by_peer.contains_key(&peer) {
            return Err(RefuseReason::AlreadyConnected);
        }
        if conns.by_point.len() >= self.config.max_connections {
            return Err(RefuseReason::Full);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.net.queue_size.max(1));
        let cancel = self.cancel.child_token();
        conns.by_point.insert(
            point,
            Live {
                id,
                peer,
                tx,
                cancel: cancel.clone(),
                since: Instant::now(),
            },
        );
        conns.by_peer.insert(peer, point);
        Ok((id, rx, cancel))
    }

    /// Forgets the connection `id` at `point` (if it is still the registered one).
    fn remove(&self, point: SocketAddr, id: u64) {
        let mut conns = self.lock();
        if conns.by_point.get(&point).is_some_and(|l| l.id == id) {
            if let Some(l) = conns.by_point.remove(&point) {
                conns.by_peer.remove(&l.peer);
            }
        }
    }
}

impl Transport for TcpTransport {
    fn dial(&self, point: SocketAddr) -> BoxFuture<'static, Result<PeerId, DialError>> {
        let inner = self.inner.clone();
        async move {
            if inner.cancel.is_cancelled() {
                return Err(DialError::Io("shutting down".into()));
            }
            if inner.lock().by_point.contains_key(&point) {
                return Err(DialError::AlreadyConnected);
            }
            let stream = TcpStream::connect(point)
                .await
                .map_err(|e| DialError::Io(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let mut framed = Framed::new(stream, protocol::codec());
            let within = inner.net.handshake_timeout;
            let exchange = async {
                send(&mut framed, &inner.hello(), within).await?;
                recv(&mut framed).await
            };
            let reply = tokio::time::timeout(within, exchange)
                .await
                .map_err(|_| DialError::Timeout)?;
            let hello = match reply {
                Err(ConnError::Io(e)) => return Err(DialError::Io(e)),
                Err(ConnError::Protocol(e)) => {
                    inner.violation(point, &e);
                    return Err(DialError::Protocol(e.to_string()));
                }
                Ok(Message::Hello(h)) => h,
                Ok(Message::Refused { reason, points }) => {
                    if reason == RefuseReason::Full && !points.is_empty() {
                        // A full peer still tells us where else to go (octez's Nack).
                        let _ = inner.on_points(&points);
                    }
                    return Err(match reason {
                        RefuseReason::Myself => DialError::Myself,
                        RefuseReason::AlreadyConnected => DialError::AlreadyConnected,
                        r => DialError::Refused(r.to_string()),
                    });
                }
                Ok(_) => {
                    let e = ProtocolError::Unexpected("handshake expected");
                    inner.violation(point, &e);
                    return Err(DialError::Protocol(e.to_string()));
                }
            };
            if hello.network != inner.net.network || hello.version != PROTOCOL_VERSION {
                // It should have refused us: it answered a handshake it could not accept.
                let e = ProtocolError::Unexpected("handshake of another network or version");
                inner.violation(point, &e);
                return Err(DialError::Protocol(e.to_string()));
            }
            if hello.peer == inner.me {
                return Err(DialError::Myself);
            }
            let (id, rx, cancel) = match inner.try_insert(point, hello.peer) {
                Ok(x) => x,
                Err(reason) => {
                    let close = Message::Close(CloseReason::Duplicate);
                    let _ = send(&mut framed, &close, within).await;
                    return Err(match reason {
                        RefuseReason::AlreadyConnected => DialError::AlreadyConnected,
                        r => DialError::Refused(r.to_string()),
                    });
                }
            };
            let peer = hello.peer;
            let task_inner = inner.clone();
            inner.tracker.spawn(run_connection(
                task_inner, framed, point, peer, id, rx, cancel,
            ));
            Ok(peer)
        }
        .boxed()
    }

    fn close(&self, point: SocketAddr, reason: CloseReason) {
        let conns = self.inner.lock();
        if let Some(live) = conns.by_point.get(&point) {
            if live.tx.try_send(Cmd::Close(reason)).is_err() {
                live.cancel.cancel();
            }
        }
    }

    fn request_points(&self, point: SocketAddr) {
        let conns = self.inner.lock();
        if let Some(live) = conns.by_point.get(&point) {
            match live.tx.try_send(Cmd::Send(Message::GetPoints)) {
                Ok(()) => bump(&self.inner.counters.requests_sent),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    bump(&self.inner.counters.slow_peers);
                    tracing::debug!(%point, "outbound queue full: dropping the connection");
                    live.cancel.cancel();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = inner.cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = inner.cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        bump(&inner.counters.accepted);
        let now = inner.pool.now();
        if inner.pool.read(|p| p.is_ip_greylisted(remote.ip(), now)) {
            bump(&inner.counters.refused_greylisted);
            tracing::debug!(%remote, "greylisted address: closed at accept");
            continue;
        }
        let Ok(permit) = inner.handshaking.clone().try_acquire_owned() else {
            bump(&inner.counters.refused_handshaking);
            tracing::debug!(%remote, "too many handshakes in progress: closed at accept");
            continue;
        };
        let in_use =
            (inner.config.max_incoming_connections - inner.handshaking.available_permits()) as u64;
        inner
            .counters
            .max_handshaking
            .fetch_max(in_use, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        inner
            .tracker
            .spawn(inbound(inner.clone(), stream, remote, permit));
    }
}

async fn inbound(
    inner: Arc<Inner>,
    stream: TcpStream,
    remote: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut framed = Framed::new(stream, protocol::codec());
    let within = inner.net.handshake_timeout;
    let first = tokio::select! {
        _ = inner.cancel.cancelled() => return,
        r = tokio::time::timeout(within, recv(&mut framed)) => r,
    };
    let hello = match first {
        Err(_) => {
            tracing::debug!(%remote, "handshake timed out");
            return;
        }
        Ok(Err(ConnError::Io(_))) => return,
        Ok(Err(ConnError::Protocol(e))) => return inner.violation(remote, &e),
        Ok(Ok(Message::Hello(h))) => h,
        Ok(Ok(_)) => {
            return inner.violation(remote, &ProtocolError::Unexpected("handshake expected"))
        }
    };
    let refuse =
        |reason: RefuseReason, points: Vec<SocketAddr>| Message::Refused { reason, points };
    if hello.network != inner.net.network {
        let _ = send(
            &mut framed,
            &refuse(RefuseReason::WrongNetwork, vec![]),
            within,
        )
        .await;
        return inner.violation(remote, &ProtocolError::Unexpected("wrong network"));
    }
    if hello.version != PROTOCOL_VERSION {
        let _ = send(
            &mut framed,
            &refuse(RefuseReason::WrongVersion, vec![]),
            within,
        )
        .await;
        return;
    }
    if hello.peer == inner.me {
        let _ = send(&mut framed, &refuse(RefuseReason::Myself, vec![]), within).await;
        return;
    }
    // The connection's key: the peer's listening point.
    let point = match hello.listen_port {
        0 => remote,
        port => SocketAddr::new(remote.ip(), port),
    };
    let full = inner.pool.active_count() >= inner.config.max_connections;
    let inserted = if full {
        Err(RefuseReason::Full)
    } else {
        inner.try_insert(point, hello.peer)
    };
    let (id, rx, cancel) = match inserted {
        Ok(x) => x,
        Err(reason) => {
            let points = if reason == RefuseReason::Full {
                bump(&inner.counters.refused_full);
                inner.answer(point, protocol::MAX_POINTS_PER_REFUSAL)
            } else {
                Vec::new()
            };
            let _ = send(&mut framed, &refuse(reason, points), within).await;
            return;
        }
    };
    if send(&mut framed, &inner.hello(), within).await.is_err() {
        inner.remove(point, id);
        return;
    }
    if let Err(e) = inner
        .pool
        .connection_opened(point, hello.peer, Direction::Inbound)
    {
        tracing::debug!(%point, error = %e, "incoming connection refused by the pool");
        inner.remove(point, id);
        let _ = send(&mut framed, &Message::Close(CloseReason::Duplicate), within).await;
        return;
    }
    drop(permit);
    run_connection(inner, framed, point, hello.peer, id, rx, cancel).await;
}

enum End {
    Local,
    Remote(String),
    Violation(ProtocolError),
}

async fn run_connection(
    inner: Arc<Inner>,
    mut framed: Wire,
    point: SocketAddr,
    peer: PeerId,
    id: u64,
    mut rx: mpsc::Receiver<Cmd>,
    cancel: CancellationToken,
) {
    let net = inner.net.clone();
    let within = net.handshake_timeout;
    let mut keepalive = tokio::time::interval_at(
        Instant::now() + net.keepalive_interval,
        net.keepalive_interval,
    );
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut last_answer: Option<Instant> = None;
    tracing::debug!(%point, %peer, "connection open");
    let end = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let _ = send(&mut framed, &Message::Close(CloseReason::Shutdown), within).await;
                break End::Local;
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(msg)) => {
                    if let Err(ConnError::Io(e)) = send(&mut framed, &msg, within).await {
                        break End::Remote(e);
                    }
                }
                Some(Cmd::Close(reason)) => {
                    let _ = send(&mut framed, &Message::Close(reason), within).await;
                    break End::Local;
                }
                None => break End::Local,
            },
            msg = recv(&mut framed) => {
                last_rx = Instant::now();
                match msg {
                    Err(ConnError::Io(e)) => break End::Remote(e),
                    Err(ConnError::Protocol(e)) => break End::Violation(e),
                    Ok(Message::KeepAlive) => {}
                    Ok(Message::Close(reason)) => break End::Remote(format!("closed by peer: {reason:?}")),
                    Ok(Message::GetPoints) => {
                        let now = Instant::now();
                        if last_answer.is_some_and(|t| now < t + net.min_answer_interval) {
                            continue;
                        }
                        last_answer = Some(now);
                        let points = inner.answer(point, crate::MAX_POINTS_PER_MESSAGE);
                        bump(&inner.counters.requests_answered);
                        if let Err(ConnError::Io(e)) = send(&mut framed, &Message::Points(points), within).await {
                            break End::Remote(e);
                        }
                    }
                    Ok(Message::Points(points)) => {
                        if let Err(e) = inner.on_points(&points) {
                            break End::Violation(e);
                        }
                    }
                    Ok(Message::Hello(_) | Message::Refused { .. }) => {
                        break End::Violation(ProtocolError::Unexpected("handshake after handshake"));
                    }
                }
            }
            _ = keepalive.tick() => {
                if let Err(ConnError::Io(e)) = send(&mut framed, &Message::KeepAlive, within).await {
                    break End::Remote(e);
                }
            }
            _ = tokio::time::sleep_until(last_rx + net.idle_timeout) => {
                break End::Remote("idle timeout".into());
            }
        }
    };
    inner.remove(point, id);
    match end {
        End::Violation(e) => inner.violation(point, &e),
        End::Local | End::Remote(_) => {
            if let End::Remote(why) = &end {
                tracing::debug!(%point, %peer, %why, "connection lost");
            }
            let registered = inner
                .pool
                .read(|p| p.connection(&point).is_some_and(|c| c.peer == peer));
            if registered {
                inner.pool.connection_closed(point);
            }
        }
    }
}

/// Keeps the pool and the sockets in step: a connection the pool holds with no socket (a
/// dial whose connection died before maintenance registered it) is closed in the pool; a
/// socket the pool never registered within a grace period is closed.
async fn housekeeping(inner: Arc<Inner>) {
    let period = inner.net.keepalive_interval.min(Duration::from_secs(1));
    let grace = inner.net.handshake_timeout + inner.config.dial_timeout;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let in_pool: Vec<(SocketAddr, PeerId)> = inner
            .pool
            .read(|p| p.connections().map(|(a, c)| (a, c.peer)).collect());
        let stale: Vec<SocketAddr> = {
            let conns = inner.lock();
            in_pool
                .iter()
                .filter(|(a, peer)| conns.by_point.get(a).is_none_or(|l| l.peer != *peer))
                .map(|(a, _)| *a)
                .collect()
        };
        for a in stale {
            let now_stale = {
                let conns = inner.lock();
                !conns.by_point.contains_key(&a)
            };
            if now_stale {
                inner.pool.connection_closed(a);
            }
        }
        let now = Instant::now();
        let conns = inner.lock();
        for (a, live) in &conns.by_point {
            let known = in_pool.iter().any(|(p, peer)| p == a && *peer == live.peer);
            if !known && now.duration_since(live.since) > grace {
                let still = inner
                    .pool
                    .read(|p| p.connection(a).is_some_and(|c| c.peer == live.peer));
                if !still {
                    live.cancel.cancel();
                }
            }
        }
    }
}
