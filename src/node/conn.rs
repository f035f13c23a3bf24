//! Connection tasks: the handshake on a fresh link (dialing or accepting) and the loop
//! that carries one open connection. They translate between wire messages and node core
//! inputs, and decide nothing: every decision comes back from the actor (the core's
//! answer on a oneshot).

use super::actor::{Cmd, ConnHandle, Out};
use super::NetConfig;
use crate::core::{Admission, DialFailure, DialResult, DialVerdict, Hello, Offender, RefuseReason};
use crate::identity::{fresh_nonce, transcript, verify_hello_auth, Identity, Role, Side};
use crate::pool::{CloseReason, ConnId, PeerId};
use crate::transport::{Link, Transport};
use crate::wire::{self, CloseCode, Message, RefuseCode, PROTOCOL_VERSION};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
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
}

impl Ctx {
    /// Our hello, with a fresh nonce (returned too: our side of this handshake).
    fn hello(&self) -> (Message, Side) {
        let me = Side {
            peer: self.me,
            nonce: fresh_nonce(),
        };
        let m = Message::Hello(wire::Hello {
            network: self.net.network.clone(),
            version: PROTOCOL_VERSION,
            key: *me.peer.as_bytes(),
            nonce: me.nonce,
            listen_port: self.listen_port,
        });
        (m, me)
    }

    /// The transcript `role` signs on this connection.
    fn transcript(&self, role: Role, dialer: &Side, acceptor: &Side) -> Vec<u8> {
        transcript(role, &self.net.network, PROTOCOL_VERSION, dialer, acceptor)
    }

    /// Our signature, as the side `role`.
    fn auth(&self, role: Role, dialer: &Side, acceptor: &Side) -> Message {
        Message::Auth {
            signature: self.identity.sign(&self.transcript(role, dialer, acceptor)),
        }
    }

    /// Whether `signature` proves the other side (`role`) holds its key.
    fn verify(&self, role: Role, dialer: &Side, acceptor: &Side, signature: &[u8]) -> bool {
        let signer = match role {
            Role::Dialer => dialer.peer,
            _ => acceptor.peer,
        };
        self.identity
            .verify(&signer, &self.transcript(role, dialer, acceptor), signature)
    }

    /// Network and version first: a peer of another network or version is not a node of
    /// ours, whatever it says next.
    fn check(&self, h: &wire::Hello) -> Result<(), RefuseReason> {
        if h.network != self.net.network {
            Err(RefuseReason::WrongNetwork)
        } else if h.version != PROTOCOL_VERSION {
            Err(RefuseReason::WrongVersion)
        } else {
            Ok(())
        }
    }

    /// Tells the actor; `false` when the node is gone or stopping.
    pub(crate) async fn tell(&self, cmd: Cmd) -> bool {
        tokio::select! {
            r = self.mailbox.send(cmd) => r.is_ok(),
            _ = self.stop.cancelled() => false,
        }
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
        let (hello, me) = ctx.hello();
        if !send_within(&mut link, hello, ctx.net.handshake_timeout).await {
            return Err(DialResult::Failed(DialFailure::Io));
        }
        let them = match link.next().await {
            Some(Ok(Message::Hello(h))) => {
                if let Err(reason) = ctx.check(&h) {
                    let code = CloseCode::ProtocolViolation;
                    let _ = send_within(&mut link, Message::Close(code), ctx.net.handshake_timeout)
                        .await;
                    return Err(DialResult::Refused {
                        reason,
                        points: Vec::new(),
                    });
                }
                Side {
                    peer: PeerId::from_bytes(h.key),
                    nonce: h.nonce,
                }
            }
            Some(Ok(Message::Refused { reason, points })) => {
                return Err(DialResult::Refused {
                    reason: refuse_reason(reason),
                    points,
                })
            }
            Some(Err(wire::WireError::Foreign { version, .. })) => {
                return Err(DialResult::Refused {
                    reason: foreign_reason(version),
                    points: Vec::new(),
                })
            }
            Some(Err(e)) if !e.is_violation() => return Err(DialResult::Failed(DialFailure::Io)),
            None => return Err(DialResult::Failed(DialFailure::Io)),
            // Garbage, or anything but a handshake.
            Some(_) => return Err(DialResult::Failed(DialFailure::Protocol)),
        };
        // A listener claiming our own key: we reached ourselves, or someone relays our
        // own hello back to us to have us sign for our key. Either way we sign nothing
        // (a relayed signature could prove "us" to our own listener): a dial to ourselves.
        if them.peer == me.peer {
            // The link is dropped: the listener's handshake ends without our proof.
            return Err(DialResult::Refused {
                reason: RefuseReason::Myself,
                points: Vec::new(),
            });
        }
        // Our proof first (the acceptor decides on proven ids only), then theirs.
        let auth = ctx.auth(Role::Dialer, &me, &them);
        if !send_within(&mut link, auth, ctx.net.handshake_timeout).await {
            return Err(DialResult::Failed(DialFailure::Io));
        }
        match link.next().await {
            Some(Ok(Message::Auth { signature })) => {
                if !ctx.verify(Role::Acceptor, &me, &them, &signature) {
                    tracing::info!(%point, peer = %them.peer.short(), "the peer's handshake signature does not verify");
                    let code = CloseCode::ProtocolViolation;
                    let _ = send_within(&mut link, Message::Close(code), ctx.net.handshake_timeout)
                        .await;
                    return Err(DialResult::Failed(DialFailure::Protocol));
                }
                Ok((link, them.peer))
            }
            Some(Ok(Message::Refused { reason, points })) => Err(DialResult::Refused {
                reason: refuse_reason(reason),
                points,
            }),
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
    let told = ctx
        .tell(Cmd::DialDone {
            point,
            result: DialResult::Connected { conn, peer },
            handle: Some(ConnHandle {
                tx,
                cancel: conn_cancel.clone(),
                point,
            }),
            reply: Some(reply),
        })
        .await;
    let mut link = link;
    if !told {
        return;
    }
    match verdict.await {
        Ok(DialVerdict::Keep) => run(ctx, link, conn, point.ip(), rx, conn_cancel).await,
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

/// An accepted link: read the handshake, ask the core, answer, carry the connection if
/// admitted. `permit` (one of `max_incoming_connections`) is held until then.
pub(crate) async fn accept<L: Link>(
    ctx: Arc<Ctx>,
    mut link: L,
    remote: SocketAddr,
    conn: ConnId,
    permit: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    let handshake = async {
        let h = match link.next().await {
            Some(Ok(Message::Hello(h))) => h,
            Some(Err(wire::WireError::Foreign { network, version })) => {
                // Another version's hello: told why, nothing more.
                tracing::debug!(%remote, %network, version, "hello of another protocol version");
                let refusal = Message::Refused {
                    reason: refuse_code(foreign_reason(version)),
                    points: Vec::new(),
                };
                let _ = link.send(refusal).await;
                return None;
            }
            Some(Err(e)) if !e.is_violation() => return None,
            None => return None,
            Some(_) => {
                // Garbage, or anything but a handshake: its sender never said its point.
                ctx.tell(Cmd::Violation(Offender::Ip(remote.ip()))).await;
                return None;
            }
        };
        if let Err(reason) = ctx.check(&h) {
            let refusal = Message::Refused {
                reason: refuse_code(reason),
                points: Vec::new(),
            };
            let _ = link.send(refusal).await;
            if reason == RefuseReason::WrongNetwork && h.listen_port != 0 {
                // Told why, then greylisted: a node of another network retrying would
                // only waste handshake slots.
                let point = SocketAddr::new(remote.ip(), h.listen_port);
                ctx.tell(Cmd::Violation(Offender::Point(point))).await;
            }
            return None;
        }
        // Our hello (a fresh nonce), then the dialer's proof over both nonces: the core
        // only ever hears of a proven id.
        let them = Side {
            peer: PeerId::from_bytes(h.key),
            nonce: h.nonce,
        };
        let (hello, me) = ctx.hello();
        if link.send(hello).await.is_err() {
            return None;
        }
        match link.next().await {
            Some(Ok(Message::Auth { signature })) => {
                let proven =
                    verify_hello_auth(&*ctx.identity, &ctx.net.network, &me, &h, &signature);
                if proven != Ok(them.peer) {
                    tracing::info!(%remote, peer = %them.peer.short(), "handshake signature does not verify: refused");
                    let refusal = Message::Refused {
                        reason: RefuseCode::BadAuth,
                        points: Vec::new(),
                    };
                    let _ = link.send(refusal).await;
                    ctx.tell(Cmd::Violation(Offender::Ip(remote.ip()))).await;
                    return None;
                }
            }
            Some(Err(e)) if !e.is_violation() => return None,
            None => return None,
            Some(_) => {
                ctx.tell(Cmd::Violation(Offender::Ip(remote.ip()))).await;
                return None;
            }
        }
        let (tx, rx) = mpsc::channel(ctx.net.queue_len);
        let conn_cancel = cancel.child_token();
        let (reply, admission) = oneshot::channel();
        let hello = Hello {
            peer: them.peer,
            listen_port: h.listen_port,
        };
        let handle = ConnHandle {
            tx,
            cancel: conn_cancel.clone(),
            point: SocketAddr::new(remote.ip(), h.listen_port),
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
            return None;
        }
        match admission.await.ok()? {
            Admission::Accept => {
                if link
                    .send(ctx.auth(Role::Acceptor, &them, &me))
                    .await
                    .is_err()
                {
                    ctx.tell(Cmd::Closed(conn)).await;
                    return None;
                }
                Some((rx, conn_cancel))
            }
            Admission::Refuse { reason, points } => {
                let _ = link
                    .send(Message::Refused {
                        reason: refuse_code(reason),
                        points,
                    })
                    .await;
                None
            }
        }
    };
    let admitted = tokio::select! {
        _ = cancel.cancelled() => None,
        r = tokio::time::timeout(ctx.net.handshake_timeout, handshake) => r.ok().flatten(),
    };
    drop(permit);
    if let Some((rx, conn_cancel)) = admitted {
        run(ctx, link, conn, remote.ip(), rx, conn_cancel).await;
    }
}

/// Carries one open connection until it ends: outgoing messages from the actor, incoming
/// ones to it, keepalives. Ends by telling the actor ([`Cmd::Closed`]).
async fn run<L: Link>(
    ctx: Arc<Ctx>,
    mut link: L,
    conn: ConnId,
    ip: std::net::IpAddr,
    mut rx: mpsc::Receiver<Out>,
    cancel: CancellationToken,
) {
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
    // Set when this task ends the connection on its own: the core hears of it as ours.
    let mut dropped: Option<CloseReason> = None;
    let farewell = loop {
        tokio::select! {
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
            frame = link.next() => {
                let cmd = match frame {
                    None => break None,
                    Some(Err(e)) => {
                        if e.is_violation() {
                            tracing::info!(%conn, %ip, error = %e, "protocol violation");
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
                if last_heard.elapsed() >= ctx.net.keepalive_timeout {
                    tracing::debug!(%conn, "keepalive timeout");
                    dropped = Some(CloseReason::Timeout);
                    break Some(CloseReason::Timeout);
                }
                if !send_within(&mut link, Message::KeepAlive, write_timeout).await {
                    dropped = Some(CloseReason::Timeout);
                    break None;
                }
            }
        }
    };
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
    // The core ignores a connection it already forgot (one it closed itself).
    match dropped {
        Some(reason) => ctx.tell(Cmd::Dropped(conn, reason)).await,
        None => ctx.tell(Cmd::Closed(conn)).await,
    };
}
