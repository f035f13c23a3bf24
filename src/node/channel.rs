//! Application channels: the embedding node's own messages, carried on the connections
//! peerkeeper keeps ([`Node::channel`](super::Node::channel)).
//!
//! A channel is a number (`u16`) both sides agree on, with a [`ChannelConfig`]: the
//! largest message, a per-peer rate for what peers send us, and a backlog of received
//! messages waiting for [`Receiver::recv`]. [`Sender::send`] queues a message for one
//! peer, some peers or every connected peer, and never waits: each connection has a
//! bounded queue of application messages
//! ([`NetConfig::send_queue_len`](super::NetConfig::send_queue_len)), and when a peer's is
//! full the caller's [`WhenFull`] says whether that peer's copy is dropped or the send
//! errs. A connection task sends peerkeeper's own messages (points, requests, closes,
//! keepalives) before any application message, so application traffic never holds
//! maintenance back.
//!
//! What peers send is checked in their connection task, before it reaches the
//! application: a message over the channel's `max_message`, or beyond its rate, is a
//! protocol violation (the connection is dropped and the peer's point greylisted, like
//! any misbehaving peer). A message for a channel nobody opened is dropped. When a
//! message arrives and the backlog is full, the connection stops reading from that peer
//! until the application makes room (the peer's sends then wait: TCP flow control), while
//! it goes on writing our maintenance messages and pings: a slow application slows its
//! senders, it loses nothing and never stalls maintenance.
//!
//! A message queued for a connection that then closes is not lost silently: it is counted
//! and handed back on [`Receiver::undelivered`] (up to the backlog; beyond, counted only).
//!
//! The core never sees application traffic: only connection events and feedback
//! ([`Node::report`](super::Node::report)).

use crate::pool::{ConnId, PeerId};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// A channel's limits. Both sides of a channel should use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Largest message, bytes (at most [`MAX_APP_MESSAGE`](crate::wire::MAX_APP_MESSAGE)).
    /// A larger one is refused by [`Sender::send`], and is a violation from a peer.
    pub max_message: usize,
    /// How many messages a second one peer may send us on this channel (a token bucket
    /// of `burst` tokens refilled at `rate` a second). Beyond, it is a violation.
    pub rate: u32,
    /// The token bucket's size: how many messages a peer may send at once.
    pub burst: u32,
    /// Received messages waiting for [`Receiver::recv`], from all peers together; when
    /// it is full, connections stop reading until there is room.
    pub backlog: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            max_message: 64 * 1024,
            rate: 100,
            burst: 1000,
            backlog: 1024,
        }
    }
}

impl ChannelConfig {
    /// Checks every rule; the first broken one is returned, naming its field.
    ///
    /// ```
    /// use peerkeeper::node::ChannelConfig;
    /// assert!(ChannelConfig::default().validate().is_ok());
    /// let bad = ChannelConfig { rate: 0, ..ChannelConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("rate"));
    /// ```
    pub fn validate(&self) -> Result<(), ChannelError> {
        let invalid =
            |field: &'static str, rule: &'static str| Err(ChannelError::Invalid { field, rule });
        if self.max_message == 0 || self.max_message > crate::wire::MAX_APP_MESSAGE {
            return invalid("max_message", "must be 1 to 1048576 bytes");
        }
        if self.rate == 0 {
            return invalid("rate", "must be greater than 0");
        }
        if self.burst == 0 {
            return invalid("burst", "must be greater than 0");
        }
        if self.backlog == 0 || self.backlog > 1 << 20 {
            return invalid("backlog", "must be 1 to 1048576");
        }
        Ok(())
    }
}

/// Who a message goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients {
    /// One peer.
    One(PeerId),
    /// These peers (those not connected are skipped).
    Some(Vec<PeerId>),
    /// Every connected peer.
    All,
}

/// What [`Sender::send`] does for a peer whose queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Drop that peer's copy (counted), queue the others, and succeed.
    Drop,
    /// Queue the others, and return [`SendError::Full`] naming the peers that missed it.
    Error,
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    /// The channel is open already (its [`Receiver`] is alive).
    #[error("channel {0} is open already")]
    InUse(u16),
    /// A limit is out of range.
    #[error("channel config: {field} {rule}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// Why a message was not queued for every recipient.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The message is over the channel's `max_message`: sent to nobody.
    #[error("a message of {len} bytes is over the channel's limit of {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// [`Recipients::One`] names a peer with no connection.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// Some peers' queues were full ([`WhenFull::Error`]); the others have it.
    #[error("{} peers' queues are full", full.len())]
    Full {
        /// The peers it was queued for.
        queued: Vec<PeerId>,
        /// The peers whose queue was full.
        full: Vec<PeerId>,
    },
    /// The channel's [`Receiver`] was dropped, or the node stopped.
    #[error("the channel is closed")]
    Closed,
}

/// A message that was queued for a peer and never sent: its connection closed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// The peer it was for.
    pub peer: PeerId,
    /// The message.
    pub message: Bytes,
}

/// A channel's counters (cumulative, since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Copies queued for peers.
    pub queued: u64,
    /// Copies not queued because the peer's queue was full.
    pub full: u64,
    /// Copies queued and then not sent: their connection closed.
    pub undelivered: u64,
    /// Messages received and handed to the [`Receiver`].
    pub received: u64,
    /// Times a connection stopped reading because this channel's backlog was full (its
    /// peer's messages then wait: TCP flow control; nothing is dropped).
    pub backlog_waits: u64,
    /// Peers dropped for breaking the channel's size or rate.
    pub violations: u64,
}

/// A received message waiting for room in its channel's backlog.
pub(crate) struct Waiting {
    pub(crate) tx: mpsc::Sender<(PeerId, Bytes)>,
    pub(crate) message: (PeerId, Bytes),
}

#[derive(Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    full: AtomicU64,
    undelivered: AtomicU64,
    received: AtomicU64,
    backlog_waits: AtomicU64,
    pub(crate) violations: AtomicU64,
}

/// One open channel, as the connection tasks see it.
pub(crate) struct Slot {
    pub(crate) config: ChannelConfig,
    tx: mpsc::Sender<(PeerId, Bytes)>,
    undelivered: mpsc::Sender<Undelivered>,
    pub(crate) counters: Counters,
}

impl Slot {
    /// Hands a received message to the application. When the backlog is full, the
    /// message comes back (counted) with a sender to wait on: the connection stops reading
    /// until there is room ([`Slot::delivered`] then). When the channel is closed, it is
    /// dropped.
    pub(crate) fn deliver(&self, peer: PeerId, message: Bytes) -> Result<(), Option<Waiting>> {
        match self.tx.try_send((peer, message)) {
            Ok(()) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(m)) => {
                self.counters.backlog_waits.fetch_add(1, Ordering::Relaxed);
                Err(Some(Waiting {
                    tx: self.tx.clone(),
                    message: m,
                }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(None),
        }
    }

    /// A message that waited for room was handed over.
    pub(crate) fn delivered(&self) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A message queued for `peer` that will never be sent.
    pub(crate) fn undelivered(&self, peer: PeerId, message: Bytes) {
        self.counters.undelivered.fetch_add(1, Ordering::Relaxed);
        let _ = self.undelivered.try_send(Undelivered { peer, message });
    }
}

/// The open channels of a node.
#[derive(Default)]
pub(crate) struct Channels {
    map: RwLock<HashMap<u16, Arc<Slot>>>,
}

impl Channels {
    pub(crate) fn get(&self, id: u16) -> Option<Arc<Slot>> {
        self.map.read().ok()?.get(&id).cloned()
    }
}

/// An application message queued for a connection.
pub(crate) struct AppOut {
    pub channel: u16,
    pub message: Bytes,
}

/// A connected peer, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its proven id.
    pub peer: PeerId,
    /// Its point (for an inbound peer, its address and the port it said it listens on).
    pub point: SocketAddr,
    /// Whether it dialed us.
    pub inbound: bool,
    /// How long it has been connected.
    pub connected_for: Duration,
    /// The last round-trip time measured on a keepalive, if any yet.
    pub rtt: Option<Duration>,
}

pub(crate) struct PeerEntry {
    pub conn: ConnId,
    pub app: mpsc::Sender<AppOut>,
    pub point: SocketAddr,
    pub inbound: bool,
    pub since: tokio::time::Instant,
    /// Microseconds; 0 until measured.
    pub rtt_us: Arc<AtomicU64>,
}

/// The connected peers, for senders (their application queues) and the peer list. A peer
/// has one connection, or for a moment two (a duplicate the core is about to close): the
/// newest is the one messages go to.
#[derive(Default)]
pub(crate) struct PeerTable {
    map: RwLock<HashMap<PeerId, Vec<PeerEntry>>>,
}

impl PeerTable {
    pub(crate) fn insert(&self, peer: PeerId, entry: PeerEntry) {
        if let Ok(mut m) = self.map.write() {
            m.entry(peer).or_default().push(entry);
        }
    }

    /// Removes connection `conn` of `peer`.
    pub(crate) fn remove(&self, peer: &PeerId, conn: ConnId) {
        if let Ok(mut m) = self.map.write() {
            if let Some(v) = m.get_mut(peer) {
                v.retain(|e| e.conn != conn);
                if v.is_empty() {
                    m.remove(peer);
                }
            }
        }
    }

    pub(crate) fn list(&self) -> Vec<PeerInfo> {
        let Ok(m) = self.map.read() else {
            return Vec::new();
        };
        let mut v: Vec<PeerInfo> = m
            .iter()
            .filter_map(|(peer, v)| Some((peer, v.last()?)))
            .map(|(peer, e)| PeerInfo {
                peer: *peer,
                point: e.point,
                inbound: e.inbound,
                connected_for: e.since.elapsed(),
                rtt: match e.rtt_us.load(Ordering::Relaxed) {
                    0 => None,
                    us => Some(Duration::from_micros(us)),
                },
            })
            .collect();
        v.sort_by_key(|p| p.peer);
        v
    }
}

/// Sends on one channel. Cheap to clone; every clone sends on the same channel.
#[derive(Clone)]
pub struct Sender {
    id: u16,
    slot: Arc<Slot>,
    peers: Arc<PeerTable>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("channel", &self.id).finish()
    }
}

impl Sender {
    /// The channel's number.
    pub fn channel(&self) -> u16 {
        self.id
    }

    /// Queues `message` for `to`, never waiting: returns the peers it was queued for.
    /// A peer whose queue is full is skipped or makes the send err, as `when_full` says
    /// (either way it is counted). Not async, so there is nothing to cancel.
    ///
    /// Errors: [`SendError::TooLarge`] (sent to nobody), [`SendError::NotConnected`] for
    /// [`Recipients::One`], [`SendError::Full`] with [`WhenFull::Error`],
    /// [`SendError::Closed`] once the channel's [`Receiver`] is dropped.
    pub fn send(
        &self,
        to: Recipients,
        message: impl Into<Bytes>,
        when_full: WhenFull,
    ) -> Result<Vec<PeerId>, SendError> {
        let message = message.into();
        self.sendable(&message)?;
        let Ok(peers) = self.peers.map.read() else {
            return Err(SendError::Closed);
        };
        let mut queued = Vec::new();
        let mut full = Vec::new();
        let mut offer = |peer: &PeerId, entry: &PeerEntry| {
            let out = AppOut {
                channel: self.id,
                message: message.clone(),
            };
            match entry.app.try_send(out) {
                Ok(()) => queued.push(*peer),
                Err(mpsc::error::TrySendError::Full(_)) => full.push(*peer),
                // Closing: not queued (the caller sees it missing from the list).
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        };
        let newest = |p: &PeerId| peers.get(p).and_then(|v| v.last());
        match &to {
            Recipients::One(p) => match newest(p) {
                Some(e) => offer(p, e),
                None => return Err(SendError::NotConnected(*p)),
            },
            Recipients::Some(list) => {
                for p in list {
                    if let Some(e) = newest(p) {
                        offer(p, e);
                    }
                }
            }
            Recipients::All => {
                for (p, v) in peers.iter() {
                    if let Some(e) = v.last() {
                        offer(p, e);
                    }
                }
            }
        }
        drop(peers);
        let c = &self.slot.counters;
        c.queued.fetch_add(queued.len() as u64, Ordering::Relaxed);
        c.full.fetch_add(full.len() as u64, Ordering::Relaxed);
        if !full.is_empty() && when_full == WhenFull::Error {
            return Err(SendError::Full { queued, full });
        }
        Ok(queued)
    }

    /// Queues `message` for one peer, waiting for room in its queue: for a bulk sender
    /// that wants backpressure rather than a drop or an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, the message was not
    /// queued.
    ///
    /// Errors: [`SendError::TooLarge`], [`SendError::NotConnected`] (also when the
    /// connection closes while waiting), [`SendError::Closed`].
    pub async fn send_wait(&self, to: PeerId, message: impl Into<Bytes>) -> Result<(), SendError> {
        let message = message.into();
        self.sendable(&message)?;
        let queue = {
            let peers = self.peers.map.read().map_err(|_| SendError::Closed)?;
            match peers.get(&to).and_then(|v| v.last()) {
                Some(e) => e.app.clone(),
                None => return Err(SendError::NotConnected(to)),
            }
        };
        let out = AppOut {
            channel: self.id,
            message,
        };
        queue
            .send(out)
            .await
            .map_err(|_| SendError::NotConnected(to))?;
        self.slot.counters.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `message` may go at all: within the channel's size, on an open channel.
    fn sendable(&self, message: &Bytes) -> Result<(), SendError> {
        if message.len() > self.slot.config.max_message {
            return Err(SendError::TooLarge {
                len: message.len(),
                max: self.slot.config.max_message,
            });
        }
        if self.slot.tx.is_closed() {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// The channel's counters.
    pub fn stats(&self) -> ChannelStats {
        let c = &self.slot.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ChannelStats {
            queued: get(&c.queued),
            full: get(&c.full),
            undelivered: get(&c.undelivered),
            received: get(&c.received),
            backlog_waits: get(&c.backlog_waits),
            violations: get(&c.violations),
        }
    }
}

/// Receives on one channel. Dropping it closes the channel: later messages for it are
/// dropped (and counted as unknown by the connections), and its senders get
/// [`SendError::Closed`].
pub struct Receiver {
    id: u16,
    rx: mpsc::Receiver<(PeerId, Bytes)>,
    undelivered: mpsc::Receiver<Undelivered>,
    channels: Arc<Channels>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.id)
            .finish()
    }
}

impl Receiver {
    /// The next message and the peer that sent it; `None` once the node has stopped and
    /// the backlog is empty. Cancel-safe: a message is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<(PeerId, Bytes)> {
        self.rx.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<(PeerId, Bytes)> {
        self.rx.try_recv().ok()
    }

    /// The next message that was queued and never sent (its connection closed first).
    /// Cancel-safe. Pending for ever while the node runs and nothing is undelivered:
    /// use it in a `select!`, or [`Receiver::try_undelivered`].
    pub async fn undelivered(&mut self) -> Option<Undelivered> {
        self.undelivered.recv().await
    }

    /// The next undelivered message, if any.
    pub fn try_undelivered(&mut self) -> Option<Undelivered> {
        self.undelivered.try_recv().ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(mut m) = self.channels.map.write() {
            m.remove(&self.id);
        }
    }
}

/// Opens channel `id` (what [`Node::channel`](super::Node::channel) does).
pub(crate) fn open(
    channels: &Arc<Channels>,
    peers: &Arc<PeerTable>,
    id: u16,
    config: ChannelConfig,
) -> Result<(Sender, Receiver), ChannelError> {
    config.validate()?;
    let mut map = channels.map.write().map_err(|_| ChannelError::InUse(id))?;
    if map.contains_key(&id) {
        return Err(ChannelError::InUse(id));
    }
    let (tx, rx) = mpsc::channel(config.backlog);
    let (utx, urx) = mpsc::channel(config.backlog);
    let slot = Arc::new(Slot {
        config,
        tx,
        undelivered: utx,
        counters: Counters::default(),
    });
    map.insert(id, slot.clone());
    drop(map);
    Ok((
        Sender {
            id,
            slot,
            peers: peers.clone(),
        },
        Receiver {
            id,
            rx,
            undelivered: urx,
            channels: channels.clone(),
        },
    ))
}

/// A peer's token bucket on one channel (in its connection task).
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    pub(crate) fn new(config: &ChannelConfig, now: tokio::time::Instant) -> Bucket {
        Bucket {
            tokens: f64::from(config.burst),
            at: now,
        }
    }

    /// Takes one token; `false` when the peer is over its rate.
    pub(crate) fn take(&mut self, config: &ChannelConfig, now: tokio::time::Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * f64::from(config.rate)).min(f64::from(config.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
