//! Connection tasks: the handshake on a fresh link (dialing or accepting) and the loop
//! that carries one open connection. They translate between wire messages and node core
//! inputs, and decide nothing: every decision comes back from the actor (the core's
//! answer on a oneshot).

use super::actor::{Cmd, ConnHandle, Out};
use super::channel::{AppOut, Bucket, Channels, PeerEntry, PeerTable};
use super::gate::{Gate, Outcome, Refusal, Ticket};
use super::NetConfig;
use crate::core::{Admission, DialFailure, DialResult, DialVerdict, Hello, Offender, RefuseReason};
use crate::handshake::{accept_hello, Agreed, DialerHandshake, HandshakeRefusal, Role};
use crate::identity::Identity;
use crate::pool::{CloseReason, ConnId, PeerId};
use crate::transport::{Link, Transport};
use crate::wire::{self, CloseCode, Message, RefuseCode, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the connection tasks of one node share.
pub(crate) struct Ctx {
    pub net: NetConfig,
    pub me: PeerId,
    /// Our key: signs our side of every handshake, checks the other's.
    pub identity: Arc<dyn Identity>,
    pub listen_port: u16,
    pub mailbox: mpsc::Sender<Cmd>,
    pub dial_timeout: Duration,
    /// Cancelled when the node stops: a task never waits on a mailbox nobody reads.
    pub stop: CancellationToken,
    /// A [`Cmd::Nudge`] is queued and not handled yet.
    pub nudged: std::sync::atomic::AtomicBool,
    /// The application's open channels.
    pub channels: Arc<Channels>,
    /// The connected peers, with their application queues.
    pub peers: Arc<PeerTable>,
    /// The handshake budget of inbound sockets.
    pub gate: Arc<std::sync::Mutex<Gate>>,
}

impl Ctx {
    /// Tells the actor; `false` when the node is gone or stopping.
    pub(crate) async fn tell(&self, cmd: Cmd) -> bool {
        tokio::select! {
            r = self.mailbox.send(cmd) => r.is_ok(),
            _ = self.stop.cancelled() => false,
        }
    }
}

/// The refusal a handshake step's verdict is told as.
fn refusal_of(r: HandshakeRefusal) -> RefuseReason {
    match r {
        HandshakeRefusal::WrongNetwork => RefuseReason::WrongNetwork,
        HandshakeRefusal::WrongVersion => RefuseReason::WrongVersion,
        HandshakeRefusal::WrongAddress => RefuseReason::WrongAddress,
        HandshakeRefusal::Myself => RefuseReason::Myself,
        HandshakeRefusal::BadAuth | HandshakeRefusal::BadKey => RefuseReason::BadAuth,
    }
}

pub(crate) fn refuse_code(r: RefuseReason) -> RefuseCode {
    match r {
        RefuseReason::Full => RefuseCode::Full,
        RefuseReason::Myself => RefuseCode::Myself,
        RefuseReason::AlreadyConnected => RefuseCode::AlreadyConnected,
        RefuseReason::Greylisted => RefuseCode::Greylisted,
        RefuseReason::PrivateMode => RefuseCode::PrivateMode,
        RefuseReason::WrongNetwork => RefuseCode::WrongNetwork,
        RefuseReason::WrongVersion => RefuseCode::WrongVersion,
        RefuseReason::BadAuth => RefuseCode::BadAuth,
        RefuseReason::WrongAddress => RefuseCode::WrongAddress,
    }
}

fn refuse_reason(c: RefuseCode) -> RefuseReason {
    match c {
        RefuseCode::Full => RefuseReason::Full,
        RefuseCode::Myself => RefuseReason::Myself,
        RefuseCode::AlreadyConnected => RefuseReason::AlreadyConnected,
        RefuseCode::Greylisted => RefuseReason::Greylisted,
        RefuseCode::PrivateMode => RefuseReason::PrivateMode,
        RefuseCode::WrongNetwork => RefuseReason::WrongNetwork,
        RefuseCode::WrongVersion => RefuseReason::WrongVersion,
        RefuseCode::BadAuth => RefuseReason::BadAuth,
        RefuseCode::WrongAddress => RefuseReason::WrongAddress,
    }
}

/// The refusal for a hello of another version or network.
fn foreign_reason(version: u16) -> RefuseReason {
    if version != PROTOCOL_VERSION {
        RefuseReason::WrongVersion
    } else {
        RefuseReason::WrongNetwork
    }
}

pub(crate) fn close_code(r: CloseReason) -> CloseCode {
    match r {
        CloseReason::TooManyConnections => CloseCode::TooManyConnections,
        CloseReason::ProtocolViolation => CloseCode::ProtocolViolation,
        CloseReason::Duplicate => CloseCode::Duplicate,
        CloseReason::Shutdown => CloseCode::Shutdown,
        CloseReason::AddressChanged => CloseCode::AddressChanged,
        CloseReason::Swapped => CloseCode::Swapped,
        CloseReason::Timeout => CloseCode::Timeout,
        CloseReason::Lost => CloseCode::Other,
        CloseReason::Untracked => CloseCode::Untracked,
    }
}

/// Sends `m`, giving up after `within` (a peer that does not read). Returns whether it
/// was sent.
async fn send_within<L: Link>(link: &mut L, m: Message, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, link.send(m)).await, Ok(Ok(())))
}

/// A dial: connect, handshake, ask the core, then carry the connection if kept.
/// Every path reports exactly one outcome to the core.
pub(crate) async fn dial<T: Transport>(
    ctx: Arc<Ctx>,
    transport: Arc<T>,
    point: SocketAddr,
    conn: ConnId,
    cancel: CancellationToken,
) {
    let attempt = async {
        let mut link = transport.connect(point).await.map_err(|e| {
            DialResult::Failed(match e.kind() {
                std::io::ErrorKind::ConnectionRefused => DialFailure::Refused,
                _ => DialFailure::Io,
            })
        })?;
        let hs = DialerHandshake::new(ctx.me, &ctx.net.network, ctx.listen_port, point);
        let hello = Message::Hello(hs.hello().clone());
        if !send_within(&mut link, hello, ctx.net.handshake_timeout).await {
            return Err(DialResult::Failed(DialFailure::Io));
        }
        let agreed = match link.next().await {
            Some(Ok(Message::Hello(h))) => {
                let (network, version) = (h.network.clone(), h.version);
                // Our own key: we reached ourselves, or someone reflects our hello to
                // have us sign for our key (a relayed signature could prove "us" to our
                // own listener). We sign nothing; the link is dropped.
                if hs.is_ourselves(&h) {
                    return Err(DialResult::Refused {
                        reason: RefuseReason::Myself,
                        points: Vec::new(),
                    });
                }
                match hs.on_hello(h) {
                    Ok(a) => a,
                    Err(r) => {
                        if matches!(
                            r,
                            HandshakeRefusal::WrongNetwork | HandshakeRefusal::WrongVersion
                        ) {
                            tracing::info!(%point, %network, version, ours = %ctx.net.network,
                                our_version = PROTOCOL_VERSION, "the peer is of another network or version");
                            let code = CloseCode::ProtocolViolation;
                            let _ = send_within(
                                &mut link,
                                Message::Close(code),
                                ctx.net.handshake_timeout,
                            )
                            .await;
                        }
                        return Err(match r {
                            HandshakeRefusal::BadKey => DialResult::Failed(DialFailure::Protocol),
                            r => DialResult::Refused {
                                reason: refusal_of(r),
                                points: Vec::new(),
                            },
                        });
                    }
                }
            }
            Some(Ok(Message::Refused { reason, points })) => {
                log_dial_refusal(point, reason);
                return Err(DialResult::Refused {
                    reason: refuse_reason(reason),
                    points,
                });
            }
            Some(Err(wire::WireError::Foreign { network, version })) => {
                tracing::info!(%point, %network, version, our_version = PROTOCOL_VERSION,
                    "the peer speaks another protocol version or network");
                return Err(DialResult::Refused {
                    reason: foreign_reason(version),
                    points: Vec::new(),
                });
            }
            Some(Err(e)) if !e.is_violation() => return Err(DialResult::Failed(DialFailure::Io)),
            None => return Err(DialResult::Failed(DialFailure::Io)),
            // Garbage, or anything but a handshake.
            Some(_) => return Err(DialResult::Failed(DialFailure::Protocol)),
        };
        let Agreed {
            peer,
            keys,
            transcript,
        } = agreed;
        // Sealed from here, both ways: our proof first (the acceptor decides on proven
        // ids only), then theirs.
        link.secure(keys);
        let auth = Message::Auth {
            signature: transcript.sign(&*ctx.identity, Role::Dialer),
        };
        if !send_within(&mut link, auth, ctx.net.handshake_timeout).await {
            return Err(DialResult::Failed(DialFailure::Io));
        }
        match link.next().await {
            Some(Ok(Message::Auth { signature })) => {
                if transcript.verify(&*ctx.identity, Role::Acceptor, &signature) != Ok(peer) {
                    tracing::info!(%point, peer = %peer.short(), "the peer's handshake signature does not verify");
                    let code = CloseCode::ProtocolViolation;
                    let _ = send_within(&mut link, Message::Close(code), ctx.net.handshake_timeout)
                        .await;
                    return Err(DialResult::Failed(DialFailure::Protocol));
                }
                Ok((link, peer))
            }
            Some(Ok(Message::Refused { reason, points })) => {
                log_dial_refusal(point, reason);
                Err(DialResult::Refused {
                    reason: refuse_reason(reason),
                    points,
                })
            }
            Some(Err(e)) if !e.is_violation() => Err(DialResult::Failed(DialFailure::Io)),
            None => Err(DialResult::Failed(DialFailure::Io)),
            Some(_) => Err(DialResult::Failed(DialFailure::Protocol)),
        }
    };
    let outcome = tokio::select! {
        _ = cancel.cancelled() => return, // shutdown: the core cancels its dials itself
        r = tokio::time::timeout(ctx.dial_timeout, attempt) => r,
    };
    let (link, peer) = match outcome {
        Ok(Ok(ok)) => ok,
        Ok(Err(result)) => {
            ctx.tell(Cmd::DialDone {
                point,
                result,
                handle: None,
                reply: None,
            })
            .await;
            return;
        }
        Err(_) => {
            ctx.tell(Cmd::DialDone {
                point,
                result: DialResult::Failed(DialFailure::Timeout),
                handle: None,
                reply: None,
            })
            .await;
            return;
        }
    };
    let (tx, rx) = mpsc::channel(ctx.net.queue_len);
    let conn_cancel = cancel.child_token();
    let (reply, verdict) = oneshot::channel();
    let (entry, app) = app_queue(&ctx, conn, point, false);
    let told = ctx
        .tell(Cmd::DialDone {
            point,
            result: DialResult::Connected { conn, peer },
            handle: Some(ConnHandle {
                tx,
                cancel: conn_cancel.clone(),
                point,
                entry: Some((peer, entry)),
            }),
            reply: Some(reply),
        })
        .await;
    let mut link = link;
    if !told {
        return;
    }
    match verdict.await {
        Ok(DialVerdict::Keep) => {
            let open = Open { conn, peer, app };
            run(ctx, link, open, rx, conn_cancel).await
        }
        Ok(DialVerdict::Drop(reason)) => {
            let _ = send_within(
                &mut link,
                Message::Close(close_code(reason)),
                ctx.net.handshake_timeout,
            )
            .await;
        }
        _ => {}
    }
}

/// A refusal the node we dialed gave: the ones an operator must see (another network or
/// version, a relay or an unknown port mapping) at INFO, the rest (full, already
/// connected) at DEBUG.
fn log_dial_refusal(point: SocketAddr, reason: RefuseCode) {
    match reason {
        RefuseCode::WrongNetwork | RefuseCode::WrongVersion => {
            tracing::info!(%point, ?reason, our_version = PROTOCOL_VERSION, "refused by the peer: another network or protocol version")
        }
        RefuseCode::WrongAddress => tracing::info!(
            %point,
            "refused by the peer: it says we did not dial its address (a relay between us, or a port mapping it was not told of: NetConfig::external_addrs)"
        ),
        reason => tracing::debug!(%point, ?reason, "refused by the peer"),
    }
}

/// At most this many refusals a second are logged at INFO by the accepting side: a flood
/// of bad hellos cannot fill the disk.
const REFUSAL_LOGS_PER_SECOND: u32 = 10;

/// Whether one more refusal may be logged now (a one-second window).
fn refusal_log_allowed() -> bool {
    static WINDOW: std::sync::Mutex<Option<(std::time::Instant, u32)>> =
        std::sync::Mutex::new(None);
    let Ok(mut w) = WINDOW.lock() else {
        return false;
    };
    let now = std::time::Instant::now();
    match &mut *w {
        Some((start, n)) if now.duration_since(*start) < Duration::from_secs(1) => {
            *n += 1;
            *n <= REFUSAL_LOGS_PER_SECOND
        }
        slot => {
            *slot = Some((now, 1));
            true
        }
    }
}

/// How an inbound handshake ended, for the handshake budget ([`super::gate`]).
enum Handshaken<T> {
    /// Admitted: the connection runs.
    Admitted(T),
    /// A decision was reached (a refusal with its reason): it cost its sender nothing.
    Decided,
    /// Silent, garbage, unproven, or cut short: a failure charged to its address.
    Failed,
}

/// An accepted link: read the handshake, ask the core, answer, carry the connection if
/// admitted. `ticket` (the handshake budget's, see [`super::gate`]) is held until then:
/// its hello must arrive within the ticket's timeout, and an eviction ends it.
pub(crate) async fn accept<L: Link>(
    ctx: Arc<Ctx>,
    mut link: L,
    remote: SocketAddr,
    conn: ConnId,
    ticket: Ticket,
    cancel: CancellationToken,
) {
    let gate = ctx.gate.clone();
    let id = ticket.id;
    let handshake = async {
        use Handshaken::{Decided, Failed};
        let first = tokio::time::timeout(ticket.hello_timeout, link.next()).await;
        let Ok(first) = first else {
            return Failed;
        };
        let h = match first {
            Some(Ok(Message::Hello(h))) => {
                lock(&gate).hello(id);
                h
            }
            Some(Err(wire::WireError::Foreign { network, version })) => {
                // Another version's hello: told why, nothing more.
                lock(&gate).refused(match foreign_reason(version) {
                    RefuseReason::WrongVersion => Refusal::Version,
                    _ => Refusal::Network,
                });
                if refusal_log_allowed() {
                    tracing::info!(%remote, %network, version, our_version = PROTOCOL_VERSION,
                        "refused a hello of another protocol version or network");
                }
                let refusal = Message::Refused {
                    reason: refuse_code(foreign_reason(version)),
                    points: Vec::new(),
                };
                let _ = link.send(refusal).await;
                return Decided;
            }
            Some(Err(e)) if !e.is_violation() => return Failed,
            None => return Failed,
            Some(_) => {
                // Garbage, or anything but a handshake: its sender never said its point.
                ctx.tell(Cmd::Violation(Offender::Remote(remote))).await;
                return Failed;
            }
        };
        let (network, version, listen_port) = (h.network.clone(), h.version, h.listen_port);
        let claimed = PeerId::from_bytes(h.key);
        let dialed = h.dialed;
        let (ours, agreed) = match accept_hello(
            ctx.me,
            &ctx.net.network,
            ctx.listen_port,
            h,
            link.local_addr(),
            &ctx.net.external_addrs,
        ) {
            Ok(ok) => ok,
            Err(r) => {
                // Nothing in a hello is proven yet: the refusal punishes nobody, and is
                // told to the dialer with its reason.
                let counted = match r {
                    HandshakeRefusal::WrongNetwork => Some(Refusal::Network),
                    HandshakeRefusal::WrongVersion => Some(Refusal::Version),
                    HandshakeRefusal::WrongAddress => Some(Refusal::Address),
                    _ => None,
                };
                if let Some(why) = counted {
                    lock(&gate).refused(why);
                }
                if refusal_log_allowed() {
                    tracing::info!(%remote, peer = %claimed.short(), %network, version,
                        ours = %ctx.net.network, our_version = PROTOCOL_VERSION, ?dialed,
                        reason = %r, "refused a handshake");
                }
                let refusal = Message::Refused {
                    reason: refuse_code(refusal_of(r)),
                    points: Vec::new(),
                };
                let _ = link.send(refusal).await;
                return Decided;
            }
        };
        // Our hello in clear text, then everything sealed: the dialer's proof first.
        if link.send(Message::Hello(ours)).await.is_err() {
            return Failed;
        }
        let Agreed {
            peer: them,
            keys,
            transcript,
        } = agreed;
        link.secure(keys);
        match link.next().await {
            Some(Ok(Message::Auth { signature })) => {
                if transcript.verify(&*ctx.identity, Role::Dialer, &signature) != Ok(them) {
                    tracing::info!(%remote, peer = %them.short(), "handshake signature does not verify: refused");
                    let refusal = Message::Refused {
                        reason: RefuseCode::BadAuth,
                        points: Vec::new(),
                    };
                    let _ = link.send(refusal).await;
                    ctx.tell(Cmd::Violation(Offender::Remote(remote))).await;
                    return Failed;
                }
            }
            Some(Err(e)) if !e.is_violation() => return Failed,
            None => return Failed,
            Some(_) => {
                ctx.tell(Cmd::Violation(Offender::Remote(remote))).await;
                return Failed;
            }
        }
        let (tx, rx) = mpsc::channel(ctx.net.queue_len);
        let conn_cancel = cancel.child_token();
        let (reply, admission) = oneshot::channel();
        let hello = Hello {
            peer: them,
            listen_port,
        };
        let point = SocketAddr::new(remote.ip(), listen_port);
        let (entry, app) = app_queue(&ctx, conn, point, true);
        let handle = ConnHandle {
            tx,
            cancel: conn_cancel.clone(),
            point,
            entry: Some((them, entry)),
        };
        if !ctx
            .tell(Cmd::Inbound {
                conn,
                remote,
                hello,
                handle,
                reply,
            })
            .await
        {
            return Decided;
        }
        let Ok(admission) = admission.await else {
            return Decided;
        };
        match admission {
            Admission::Accept => {
                let auth = Message::Auth {
                    signature: transcript.sign(&*ctx.identity, Role::Acceptor),
                };
                if link.send(auth).await.is_err() {
                    ctx.peers.remove(&them, conn);
                    ctx.tell(Cmd::Closed(conn)).await;
                    return Decided;
                }
                let open = Open {
                    conn,
                    peer: them,
                    app,
                };
                Handshaken::Admitted((rx, conn_cancel, open))
            }
            Admission::Refuse { reason, points } => {
                let _ = link
                    .send(Message::Refused {
                        reason: refuse_code(reason),
                        points,
                    })
                    .await;
                Decided
            }
        }
    };
    let ended = tokio::select! {
        _ = cancel.cancelled() => Handshaken::Decided,
        _ = ticket.evicted.cancelled() => Handshaken::Failed,
        r = tokio::time::timeout(ctx.net.handshake_timeout, handshake) => r.unwrap_or(Handshaken::Failed),
    };
    let outcome = match ended {
        Handshaken::Failed => Outcome::Failed,
        _ => Outcome::Done,
    };
    lock(&gate).end(id, outcome, tokio::time::Instant::now());
    if let Handshaken::Admitted((rx, conn_cancel, open)) = ended {
        run(ctx, link, open, rx, conn_cancel).await;
    }
}

/// The handshake budget, locked (a poisoned lock is the gate's state all the same: its
/// updates are single assignments).
pub(crate) fn lock(gate: &std::sync::Mutex<Gate>) -> std::sync::MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open connection: who, and its application side.
struct Open {
    conn: ConnId,
    peer: PeerId,
    app: AppSide,
}

/// The connection task's side of its application queue.
struct AppSide {
    rx: mpsc::Receiver<AppOut>,
    rtt_us: Arc<AtomicU64>,
    ip: std::net::IpAddr,
}

/// A connection's application queue: the peer table's entry (handed to the actor, which
/// enters it when the core keeps the connection) and the task's side.
fn app_queue(ctx: &Ctx, conn: ConnId, point: SocketAddr, inbound: bool) -> (PeerEntry, AppSide) {
    let (app_tx, rx) = mpsc::channel::<AppOut>(ctx.net.send_queue_len);
    let rtt_us = Arc::new(AtomicU64::new(0));
    let entry = PeerEntry {
        conn,
        app: app_tx,
        point,
        inbound,
        since: Instant::now(),
        rtt_us: rtt_us.clone(),
    };
    let side = AppSide {
        rx,
        rtt_us,
        ip: point.ip(),
    };
    (entry, side)
}

/// Application messages written in one go before the task looks at its other work again
/// (peerkeeper's own messages, reads, keepalives).
const APP_BATCH: usize = 64;

/// Carries one open connection until it ends: outgoing messages from the actor (first)
/// and from the application's channels, incoming ones to the actor or to the channels,
/// keepalives with round-trip times. Ends by telling the actor ([`Cmd::Closed`]), and by
/// handing back the application messages it could not send.
async fn run<L: Link>(
    ctx: Arc<Ctx>,
    mut link: L,
    open: Open,
    mut rx: mpsc::Receiver<Out>,
    cancel: CancellationToken,
) {
    let Open {
        conn,
        peer,
        app: AppSide {
            rx: mut app_rx,
            rtt_us,
            ip,
        },
    } = open;
    // A write that cannot finish within this means the peer does not read: drop it rather
    // than block the task (which would also stop its keepalive check and its shutdown).
    let write_timeout = ctx.net.handshake_timeout;
    let mut last_heard = Instant::now();
    // The first tick one interval from now (an `interval`'s first tick is immediate, and
    // awaiting it here would hold the read loop back until the next millisecond).
    let mut ticker = tokio::time::interval_at(
        Instant::now() + ctx.net.keepalive_interval,
        ctx.net.keepalive_interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The ping in flight: its number and when it left.
    let mut ping: Option<(u64, Instant)> = None;
    let mut pings = 0u64;
    // Per channel, this peer's token bucket (only for open channels: bounded by them).
    let mut buckets: HashMap<u16, Bucket> = HashMap::new();
    // A received application message waiting for room in its channel's backlog: while
    // it waits, the peer is not read.
    let mut waiting: Option<(Arc<super::channel::Slot>, super::channel::Waiting)> = None;
    let mut app_open = true;
    // Set when this task ends the connection on its own: the core hears of it as ours.
    let mut dropped: Option<CloseReason> = None;
    let farewell = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Some(CloseReason::Shutdown),
            out = rx.recv() => match out {
                Some(Out::Close(reason)) => break Some(reason),
                Some(Out::Msg(m)) => {
                    if !send_within(&mut link, m, write_timeout).await {
                        dropped = Some(CloseReason::Timeout);
                        break None;
                    }
                }
                None => break None,
            },
            room = async {
                match &waiting {
                    Some((_, w)) => w.tx.clone().reserve_owned().await.ok(),
                    None => std::future::pending().await,
                }
            }, if waiting.is_some() => {
                if let (Some(permit), Some((slot, w))) = (room, waiting.take()) {
                    permit.send(w.message);
                    slot.delivered();
                }
                // We did not read while waiting: that silence is ours, not the peer's.
                last_heard = Instant::now();
            }
            frame = link.next(), if waiting.is_none() => {
                let cmd = match frame {
                    None => break None,
                    Some(Err(e)) => {
                        if e.is_violation() {
                            tracing::info!(%conn, %ip, peer = %peer.short(), error = %e, "protocol violation");
                            ctx.tell(Cmd::Violation(Offender::Conn(conn))).await;
                        }
                        break None;
                    }
                    Some(Ok(m)) => {
                        last_heard = Instant::now();
                        match m {
                            Message::AskForPoints => Cmd::Asked(conn),
                            Message::Advertise(points) => Cmd::Points(conn, points),
                            Message::SwapRequest(p) => Cmd::SwapRequest(conn, p),
                            Message::SwapAck(p) => Cmd::SwapAck(conn, p),
                            Message::KeepAlive => continue,
                            Message::Ping(n) => {
                                if !send_within(&mut link, Message::Pong(n), write_timeout).await {
                                    dropped = Some(CloseReason::Timeout);
                                    break None;
                                }
                                continue;
                            }
                            Message::Pong(n) => {
                                if let Some((sent, at)) = ping {
                                    if sent == n {
                                        ping = None;
                                        let rtt = at.elapsed();
                                        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                                        rtt_us.store(us, Ordering::Relaxed);
                                        // The core protects the lowest-latency peers
                                        // from eviction.
                                        Cmd::Rtt(conn, rtt)
                                    } else {
                                        continue;
                                    }
                                } else {
                                    continue;
                                }
                            }
                            Message::App { channel, payload } => {
                                let Some(slot) = ctx.channels.get(channel) else {
                                    // A channel we do not have open (an application of
                                    // another version): dropped.
                                    continue;
                                };
                                let now = Instant::now();
                                let bucket = buckets
                                    .entry(channel)
                                    .or_insert_with(|| Bucket::new(&slot.config, now));
                                if payload.len() > slot.config.max_message
                                    || !bucket.take(&slot.config, now)
                                {
                                    tracing::info!(%conn, %ip, peer = %peer.short(), channel,
                                        len = payload.len(), "broke the channel's size or rate");
                                    slot.counters.violations.fetch_add(1, Ordering::Relaxed);
                                    ctx.tell(Cmd::Violation(Offender::Conn(conn))).await;
                                    break None;
                                }
                                match slot.deliver(peer, payload) {
                                    Ok(()) | Err(None) => {}
                                    // The backlog is full: stop reading this peer until
                                    // there is room (its sends wait), go on writing.
                                    Err(Some(w)) => waiting = Some((slot.clone(), w)),
                                }
                                continue;
                            }
                            Message::Close(code) => {
                                tracing::debug!(%conn, ?code, "peer closed");
                                break None;
                            }
                            Message::Hello(_) | Message::Refused { .. } | Message::Auth { .. } => {
                                ctx.tell(Cmd::Violation(Offender::Conn(conn))).await;
                                break None;
                            }
                        }
                    }
                };
                if !ctx.tell(cmd).await {
                    break Some(CloseReason::Shutdown);
                }
            }
            _ = ticker.tick() => {
                // (While we wait for the application, the peer is not read: its silence
                // is ours.)
                if waiting.is_some() {
                    last_heard = Instant::now();
                }
                if last_heard.elapsed() >= ctx.net.keepalive_timeout {
                    tracing::debug!(%conn, "keepalive timeout");
                    dropped = Some(CloseReason::Timeout);
                    break Some(CloseReason::Timeout);
                }
                // A ping keeps the connection alive and measures its round trip (one in
                // flight: an unanswered one is simply replaced).
                pings += 1;
                ping = Some((pings, Instant::now()));
                if !send_within(&mut link, Message::Ping(pings), write_timeout).await {
                    dropped = Some(CloseReason::Timeout);
                    break None;
                }
            }
            first = app_rx.recv(), if app_open => {
                // No sender left (the peer table dropped this connection's entry): nothing
                // more to write from the application, the connection goes on.
                let Some(first) = first else {
                    app_open = false;
                    continue;
                };
                if !write_app(&mut link, first, &mut app_rx, write_timeout).await {
                    dropped = Some(CloseReason::Timeout);
                    break None;
                }
            }
        }
    };
    ctx.peers.remove(&peer, conn);
    if let Some(reason) = farewell {
        let _ = send_within(
            &mut link,
            Message::Close(close_code(reason)),
            Duration::from_millis(200),
        )
        .await;
    }
    // Closing flushes what is queued: bounded too, or a peer that stopped reading would
    // keep this task (and the node's shutdown) waiting for ever.
    let _ = tokio::time::timeout(Duration::from_millis(200), link.close()).await;
    // What the application queued and we could not send: handed back, not lost silently.
    app_rx.close();
    while let Ok(out) = app_rx.try_recv() {
        if let Some(slot) = ctx.channels.get(out.channel) {
            slot.undelivered(peer, out.message);
        }
    }
    // The core ignores a connection it already forgot (one it closed itself).
    match dropped {
        Some(reason) => ctx.tell(Cmd::Dropped(conn, reason)).await,
        None => ctx.tell(Cmd::Closed(conn)).await,
    };
}

/// Writes `first` and up to [`APP_BATCH`] more queued application messages, then flushes
/// once (one write for many small messages). Returns whether it all went out in time.
async fn write_app<L: Link>(
    link: &mut L,
    first: AppOut,
    queue: &mut mpsc::Receiver<AppOut>,
    within: Duration,
) -> bool {
    let app = |o: AppOut| Message::App {
        channel: o.channel,
        payload: o.message,
    };
    let write = async {
        link.feed(app(first)).await?;
        for _ in 0..APP_BATCH {
            match queue.try_recv() {
                Ok(o) => link.feed(app(o)).await?,
                Err(_) => break,
            }
        }
        link.flush().await
    };
    matches!(tokio::time::timeout(within, write).await, Ok(Ok(())))
}
