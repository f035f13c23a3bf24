//! The TCP transport: dials with a handshake, accepts with caps, runs one task per
//! connection, and keeps the pool the one truth about what is connected.
//!
//! # Bounds
//!
//! * Connections still handshaking (incoming) are capped by `max_incoming_connections`; a
//!   connection over the cap is closed at once, and a handshake must finish within
//!   [`NetConfig::handshake_timeout`].
//! * Above `max_connections` a handshake is refused with up to 50 other points.
//! * Each connection has a bounded outgoing queue; a peer that cannot keep up loses
//!   messages that are only hints (answers), never blocks us. A write to an open
//!   connection that does not finish within [`NetConfig::handshake_timeout`] (the peer
//!   does not read) drops the connection, so a stalled peer cannot wedge its task.
//! * A peer that asks for points more often than once per `peer_ask_interval / 4` gets no
//!   answer to the extra requests.
//!
//! # Duplicates
//!
//! Two nodes that dial each other at the same time end up with two connections. Both
//! sides keep the one dialed by the node with the smaller peer id, so they agree without
//! talking, and close the other.

use super::wire::{
    Handshake, Message, RefuseReason, WireCodec, WireError, MAX_REFUSAL_POINTS, PROTOCOL_VERSION,
};
use crate::config::Config;
use crate::discovery::{validate_point, Discovery};
use crate::handle::PoolHandle;
use crate::pool::{Direction, PeerId, Refused, Source};
use crate::transport::{CloseReason, DialError, Transport};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Settings of the real network, beyond the core's [`Config`].
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
    /// Outgoing messages queued per connection.
    pub queue_len: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            network: "peerkeeper".into(),
            handshake_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            queue_len: 32,
        }
    }
}

/// Transport counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransportStats {
    /// Incoming connections accepted (handshake done).
    pub accepted: u64,
    /// Incoming connections dropped: too many handshaking, or a greylisted address.
    pub dropped_at_accept: u64,
    /// Handshakes refused (wrong network or version, full, duplicate, ...).
    pub refused: u64,
    /// Protocol violations (garbage, oversized frames, over-cap messages).
    pub violations: u64,
    /// Connections handshaking now.
    pub handshaking: u64,
    /// Most connections ever open at once.
    pub max_connections_seen: u64,
    /// Requests for points answered.
    pub answers: u64,
    /// Unsolicited advertisements dropped unread (over the rate).
    pub unsolicited_dropped: u64,
}

struct ConnEntry {
    id: u64,
    peer: PeerId,
    direction: Direction,
    tx: mpsc::Sender<Message>,
    cancel: CancellationToken,
}

struct Inner {
    config: Arc<Config>,
    net: NetConfig,
    me: PeerId,
    listen_port: u16,
    pool: PoolHandle,
    discovery: OnceLock<Arc<Discovery>>,
    conns: Mutex<BTreeMap<SocketAddr, ConnEntry>>,
    handshakes: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    next_id: AtomicU64,
    accepted: AtomicU64,
    dropped_at_accept: AtomicU64,
    refused: AtomicU64,
    violations: AtomicU64,
    max_seen: AtomicUsize,
    answers: AtomicU64,
    unsolicited_dropped: AtomicU64,
}

/// The TCP transport of one node. See the module docs.
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("me", &self.inner.me)
            .field("listen_port", &self.inner.listen_port)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// A transport for the node `me` listening on `listen_port`, registering connections
    /// in `pool`. Nothing runs until [`serve`](Self::serve) or a dial.
    pub fn new(
        config: Arc<Config>,
        net: NetConfig,
        me: PeerId,
        listen_port: u16,
        pool: PoolHandle,
    ) -> TcpTransport {
        let handshakes = Arc::new(Semaphore::new(config.max_incoming_connections));
        TcpTransport {
            inner: Arc::new(Inner {
                config,
                net,
                me,
                listen_port,
                pool,
                discovery: OnceLock::new(),
                conns: Mutex::new(BTreeMap::new()),
                handshakes,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                next_id: AtomicU64::new(1),
                accepted: AtomicU64::new(0),
                dropped_at_accept: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                violations: AtomicU64::new(0),
                max_seen: AtomicUsize::new(0),
                answers: AtomicU64::new(0),
                unsolicited_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Hands the discovery worker its peer-sharing messages (set once, before serving).
    pub fn set_discovery(&self, discovery: Arc<Discovery>) {
        let _ = self.inner.discovery.set(discovery);
    }

    /// Accepts connections on `listener` until [`shutdown`](Self::shutdown).
    pub fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        self.inner.tracker.spawn(accept_loop(inner, listener));
    }

    /// Counters.
    pub fn stats(&self) -> TransportStats {
        let i = &self.inner;
        TransportStats {
            accepted: i.accepted.load(Ordering::Relaxed),
            dropped_at_accept: i.dropped_at_accept.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            violations: i.violations.load(Ordering::Relaxed),
            handshaking: (i.config.max_incoming_connections - i.handshakes.available_permits())
                as u64,
            max_connections_seen: i.max_seen.load(Ordering::Relaxed) as u64,
            answers: i.answers.load(Ordering::Relaxed),
            unsolicited_dropped: i.unsolicited_dropped.load(Ordering::Relaxed),
        }
    }

    /// Open connections known to the transport.
    pub fn connection_count(&self) -> usize {
        lock(&self.inner.conns).len()
    }

    /// Closes every connection and waits for every task of the transport to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn handshake(&self) -> Message {
        Message::Handshake(Handshake {
            network: self.net.network.clone(),
            version: PROTOCOL_VERSION,
            peer_id: self.me,
            listen_port: self.listen_port,
        })
    }

    fn check_handshake(&self, h: &Handshake) -> Result<(), RefuseReason> {
        if h.network != self.net.network {
            Err(RefuseReason::WrongNetwork)
        } else if h.version != PROTOCOL_VERSION {
            Err(RefuseReason::WrongVersion)
        } else if h.peer_id == self.me {
            Err(RefuseReason::Myself)
        } else {
            Ok(())
        }
    }

    fn violation(&self, point: Option<SocketAddr>, ip: std::net::IpAddr, why: &WireError) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(?point, %ip, error = %why, "protocol violation: dropped and greylisted");
        match point {
            Some(p) => {
                self.pool.greylist(p);
            }
            // Loopback is shared by every local process: never IP-greylisted.
            None if ip.is_loopback() => {}
            None => {
                let now = self.pool.now();
                let until = now + self.config.greylist_duration;
                self.pool.with(|pool| pool.greylist_ip(ip, until));
            }
        }
    }

    /// Points received from a peer: through discovery (validation, cap, backoff reset).
    fn points_received(&self, points: &[SocketAddr]) -> Result<(), ()> {
        match self.discovery.get() {
            Some(d) => d.on_points(points).map(|_| ()).map_err(|_| ()),
            None => {
                let allow = self.config.discovery.allow_private_addresses;
                for p in points.iter().take(crate::MAX_POINTS_PER_MESSAGE) {
                    if validate_point(p, allow).is_ok() {
                        self.pool.add_point(*p, Source::PeerSharing);
                    }
                }
                Ok(())
            }
        }
    }

    fn answer(&self, requester: SocketAddr) -> Vec<SocketAddr> {
        self.answers.fetch_add(1, Ordering::Relaxed);
        match self.discovery.get() {
            Some(d) => d.answer(requester),
            None => Vec::new(),
        }
    }

    fn refusal_points(&self, requester: SocketAddr) -> Vec<SocketAddr> {
        let mut points = self.answer(requester);
        points.truncate(MAX_REFUSAL_POINTS);
        points
    }

    /// Registers a handshaken connection in the pool and the table, resolving duplicates
    /// (the connection dialed by the smaller peer id wins). Returns the receiver of its
    /// outgoing queue and its id, or why it loses.
    fn register(
        &self,
        point: SocketAddr,
        peer: PeerId,
        direction: Direction,
    ) -> Result<(u64, mpsc::Receiver<Message>, CancellationToken), RefuseReason> {
        let mut conns = lock(&self.conns);
        let (existing_point, active) = self
            .pool
            .read(|p| (p.connected_point_of(peer), p.active_count()));
        // Checked under the table's lock: concurrent handshakes and dials cannot together
        // push the node past max_connections.
        if existing_point.is_none() && active >= self.config.max_connections {
            return Err(RefuseReason::Full);
        }
        if let Some(old_point) = existing_point {
            let old_dir = conns.get(&old_point).map(|c| c.direction);
            if !new_connection_wins(self.me, peer, old_dir, direction) {
                return Err(RefuseReason::AlreadyConnected);
            }
            // The new one wins: the old one goes.
            if let Some(old) = conns.remove(&old_point) {
                old.cancel.cancel();
            }
            self.pool.connection_closed(old_point);
        }
        match self.pool.connection_opened(point, peer, direction) {
            Ok(_) => {}
            Err(Refused::Greylisted) => return Err(RefuseReason::Greylisted),
            Err(Refused::Full) => return Err(RefuseReason::Full),
            Err(_) => return Err(RefuseReason::AlreadyConnected),
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.net.queue_len);
        let cancel = self.cancel.child_token();
        conns.insert(
            point,
            ConnEntry {
                id,
                peer,
                direction,
                tx,
                cancel: cancel.clone(),
            },
        );
        // The pool's count: the table may still hold connections the pool already let go
        // (trimmed, closing).
        self.max_seen
            .fetch_max(self.pool.active_count(), Ordering::Relaxed);
        Ok((id, rx, cancel))
    }

    /// A connection task ended: unregister it, unless a newer connection replaced it.
    fn unregister(&self, point: SocketAddr, id: u64) {
        let mut conns = lock(&self.conns);
        if conns.get(&point).is_some_and(|c| c.id == id) {
            let entry = conns.remove(&point);
            drop(conns);
            if let Some(e) = entry {
                if self.pool.read(|p| p.connection(&point).map(|c| c.peer)) == Some(e.peer) {
                    self.pool.connection_closed(point);
                }
            }
        }
    }
}

/// Whether a new connection to `peer` replaces the one we have (whose direction is `old`;
/// `None` when the transport no longer tracks it). Of two connections between the same two nodes, both keep the one dialed by
/// the node with the smaller peer id, so they agree without a message.
///
/// ```
/// use peerkeeper::net::new_connection_wins;
/// use peerkeeper::pool::{Direction, PeerId};
/// let (a, b) = (PeerId(1), PeerId(2));
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

type Conn = Framed<TcpStream, WireCodec>;

async fn dial(inner: Arc<Inner>, point: SocketAddr) -> Result<PeerId, DialError> {
    let stream = TcpStream::connect(point)
        .await
        .map_err(|e| DialError::Io(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let ip = stream.peer_addr().map(|a| a.ip()).unwrap_or(point.ip());
    let mut conn = Framed::new(stream, WireCodec::default());
    conn.send(inner.handshake())
        .await
        .map_err(|e| DialError::Io(e.to_string()))?;
    let reply = tokio::time::timeout(inner.net.handshake_timeout, conn.next())
        .await
        .map_err(|_| DialError::Timeout)?;
    let h = match reply {
        None => return Err(DialError::Io("closed during handshake".into())),
        Some(Err(e)) if e.is_violation() => {
            inner.violation(Some(point), ip, &e);
            return Err(DialError::Protocol(e.to_string()));
        }
        Some(Err(e)) => return Err(DialError::Io(e.to_string())),
        Some(Ok(Message::Handshake(h))) => h,
        Some(Ok(Message::Refused { reason, points })) => {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            let _ = inner.points_received(&points);
            return Err(match reason {
                RefuseReason::Myself => DialError::Myself,
                RefuseReason::AlreadyConnected => DialError::AlreadyConnected,
                r => DialError::Refused(format!("{r:?}")),
            });
        }
        Some(Ok(other)) => {
            let e = WireError::Malformed(format!("expected a handshake, got {other:?}"));
            inner.violation(Some(point), ip, &e);
            return Err(DialError::Protocol(e.to_string()));
        }
    };
    if let Err(reason) = inner.check_handshake(&h) {
        let _ = conn
            .send(Message::Close(CloseReason::ProtocolViolation))
            .await;
        return Err(match reason {
            RefuseReason::Myself => DialError::Myself,
            r => DialError::Refused(format!("{r:?}")),
        });
    }
    match inner.register(point, h.peer_id, Direction::Outbound) {
        Ok((id, rx, cancel)) => {
            let task_inner = inner.clone();
            inner.tracker.spawn(
                run_connection(task_inner, conn, point, ip, id, rx, cancel)
                    .instrument(tracing::debug_span!("connection", %point, direction = "out")),
            );
            Ok(h.peer_id)
        }
        Err(RefuseReason::Greylisted) => {
            let _ = conn
                .send(Message::Close(CloseReason::ProtocolViolation))
                .await;
            Err(DialError::Refused("greylisted".into()))
        }
        Err(RefuseReason::Full) => {
            let _ = conn
                .send(Message::Close(CloseReason::TooManyConnections))
                .await;
            Err(DialError::Refused("we are full".into()))
        }
        Err(_) => {
            let _ = conn.send(Message::Close(CloseReason::Duplicate)).await;
            Err(DialError::AlreadyConnected)
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a little, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let now = inner.pool.now();
        if inner.pool.read(|p| p.is_ip_greylisted(remote.ip(), now)) {
            inner.dropped_at_accept.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(permit) = inner.handshakes.clone().try_acquire_owned() else {
            inner.dropped_at_accept.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "too many handshakes in progress: dropped");
            continue;
        };
        let task_inner = inner.clone();
        inner.tracker.spawn(async move {
            let timeout = task_inner.net.handshake_timeout;
            let cancel = task_inner.cancel.clone();
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::timeout(timeout, accept_one(task_inner.clone(), stream, remote, permit)) => {}
            }
        });
    }
}

async fn accept_one(
    inner: Arc<Inner>,
    stream: TcpStream,
    remote: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, WireCodec::default());
    let h = match conn.next().await {
        Some(Ok(Message::Handshake(h))) => h,
        Some(Err(e)) if e.is_violation() => {
            inner.violation(None, remote.ip(), &e);
            return;
        }
        Some(Ok(other)) => {
            let e = WireError::Malformed(format!("expected a handshake, got {other:?}"));
            inner.violation(None, remote.ip(), &e);
            return;
        }
        _ => return,
    };
    let point = SocketAddr::new(remote.ip(), h.listen_port);
    let refuse = |reason| Message::Refused {
        reason,
        points: Vec::new(),
    };
    if let Err(reason) = inner.check_handshake(&h) {
        inner.refused.fetch_add(1, Ordering::Relaxed);
        let _ = conn.send(refuse(reason)).await;
        if reason == RefuseReason::WrongNetwork && h.listen_port != 0 {
            // Told why, and greylisted: a node of another network retrying would only
            // waste handshake slots (the loopback address itself is never greylisted).
            // Recorded first, so that the greylisting holds even for a point never seen
            // (it is never shared: only points that once connected are). A point we may
            // not dial is not recorded: its IP address is greylisted instead (loopback
            // excepted).
            if validate_point(&point, inner.config.discovery.allow_private_addresses).is_ok() {
                inner.pool.add_point(point, Source::Incoming);
            }
            let e = WireError::Malformed(format!("wrong network {:?}", h.network));
            inner.violation(Some(point), remote.ip(), &e);
        }
        return;
    }
    if h.listen_port == 0 {
        let e = WireError::Malformed("listening port 0".into());
        inner.violation(None, remote.ip(), &e);
        return;
    }
    if inner.pool.active_count() >= inner.config.max_connections {
        inner.refused.fetch_add(1, Ordering::Relaxed);
        let points = inner.refusal_points(point);
        let _ = conn
            .send(Message::Refused {
                reason: RefuseReason::Full,
                points,
            })
            .await;
        // The refused dialer's point is still worth knowing, if it is one we may dial: its
        // address is the peer's to choose, so it passes the same check as shared points.
        if validate_point(&point, inner.config.discovery.allow_private_addresses).is_ok() {
            inner.pool.add_point(point, Source::Incoming);
        }
        return;
    }
    match inner.register(point, h.peer_id, Direction::Inbound) {
        Ok((id, rx, cancel)) => {
            if conn.send(inner.handshake()).await.is_err() {
                inner.unregister(point, id);
                return;
            }
            inner.accepted.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let task_inner = inner.clone();
            inner.tracker.spawn(
                run_connection(task_inner, conn, point, remote.ip(), id, rx, cancel)
                    .instrument(tracing::debug_span!("connection", %point, direction = "in")),
            );
        }
        Err(reason) => {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            let _ = conn.send(refuse(reason)).await;
        }
    }
}

async fn run_connection(
    inner: Arc<Inner>,
    conn: Conn,
    point: SocketAddr,
    ip: std::net::IpAddr,
    id: u64,
    mut rx: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let (mut sink, mut stream) = conn.split();
    // A write that cannot finish within this means the peer does not read: drop it rather
    // than block the task (which would also stop its keepalive check and its shutdown).
    let write_timeout = inner.net.handshake_timeout;
    let mut last_heard = Instant::now();
    let mut last_answer: Option<Instant> = None;
    let min_answer_gap = inner.config.discovery.peer_ask_interval / 4;
    // Advertisements: one answer per request of ours, plus at most one unsolicited one per
    // `min_answer_gap` (a peer that trims us sends one); the rest are dropped unread, so a
    // flood costs the peer its bandwidth and us almost nothing.
    let mut awaiting_answer = false;
    let mut last_unsolicited: Option<Instant> = None;
    let mut ticker = tokio::time::interval(inner.net.keepalive_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let close_reason = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Replaced by a duplicate that won, closed while its queue was full, or the
                // node shuts down.
                break Some(if inner.cancel.is_cancelled() { CloseReason::Shutdown } else { CloseReason::Duplicate });
            }
            out = rx.recv() => match out {
                Some(Message::Close(reason)) => break Some(reason),
                Some(m) => {
                    awaiting_answer |= m == Message::AskForPoints;
                    if !send_within(&mut sink, m, write_timeout).await {
                        break None;
                    }
                }
                None => break None,
            },
            frame = stream.next() => match frame {
                None => break None,
                Some(Err(e)) => {
                    if e.is_violation() {
                        inner.violation(Some(point), ip, &e);
                        break Some(CloseReason::ProtocolViolation);
                    }
                    break None;
                }
                Some(Ok(m)) => {
                    last_heard = Instant::now();
                    match m {
                        Message::AskForPoints => {
                            let now = Instant::now();
                            if last_answer.is_none_or(|t| now.duration_since(t) >= min_answer_gap) {
                                last_answer = Some(now);
                                let points = inner.answer(point);
                                if !send_within(&mut sink, Message::Advertise(points), write_timeout).await {
                                    break None;
                                }
                            }
                        }
                        Message::Advertise(points) => {
                            let now = Instant::now();
                            let solicited = std::mem::take(&mut awaiting_answer);
                            let welcome = solicited
                                || last_unsolicited
                                    .is_none_or(|t| now.duration_since(t) >= min_answer_gap);
                            if !welcome {
                                inner.unsolicited_dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            if !solicited {
                                last_unsolicited = Some(now);
                            }
                            if inner.points_received(&points).is_err() {
                                let e = WireError::OverLimit(format!("{} points", points.len()));
                                inner.violation(Some(point), ip, &e);
                                break Some(CloseReason::ProtocolViolation);
                            }
                        }
                        Message::KeepAlive => {}
                        Message::Close(reason) => {
                            tracing::debug!(%point, ?reason, "peer closed");
                            break None;
                        }
                        Message::Handshake(_) | Message::Refused { .. } => {
                            let e = WireError::Malformed("handshake after handshake".into());
                            inner.violation(Some(point), ip, &e);
                            break Some(CloseReason::ProtocolViolation);
                        }
                    }
                }
            },
            _ = ticker.tick() => {
                if last_heard.elapsed() >= inner.net.keepalive_timeout {
                    tracing::debug!(%point, "keepalive timeout");
                    break None;
                }
                if !send_within(&mut sink, Message::KeepAlive, write_timeout).await {
                    break None;
                }
            }
        }
    };
    if let Some(reason) = close_reason {
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            sink.send(Message::Close(reason)),
        )
        .await;
    }
    inner.unregister(point, id);
}

/// Sends `m`, giving up after `within` (a peer that does not read). Returns whether it
/// was sent.
async fn send_within(
    sink: &mut futures::stream::SplitSink<Conn, Message>,
    m: Message,
    within: Duration,
) -> bool {
    match tokio::time::timeout(within, sink.send(m)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!("write stalled: the peer does not read; dropping it");
            false
        }
    }
}

impl Transport for TcpTransport {
    fn dial(&self, point: SocketAddr) -> BoxFuture<'static, Result<PeerId, DialError>> {
        dial(self.inner.clone(), point).boxed()
    }

    fn close(&self, point: SocketAddr, reason: CloseReason) {
        // The connection task unregisters itself (and tells the pool, if the pool still
        // has it) when it ends.
        let points = (reason == CloseReason::TooManyConnections).then(|| self.inner.answer(point));
        if let Some(e) = lock(&self.inner.conns).get(&point) {
            // A peer we trim still learns points from us, as a refused dialer does.
            if let Some(points) = points.filter(|p| !p.is_empty()) {
                let _ = e.tx.try_send(Message::Advertise(points));
            }
            if e.tx.try_send(Message::Close(reason)).is_err() {
                e.cancel.cancel();
            }
        }
    }

    fn request_points(&self, point: SocketAddr) {
        if let Some(e) = lock(&self.inner.conns).get(&point) {
            // A full queue means the peer is not keeping up: skip this request.
            let _ = e.tx.try_send(Message::AskForPoints);
        }
    }
}
