//! The node actor: the one task that owns the [`NodeCore`]. Everything reaches it through
//! its bounded mailbox ([`Cmd`]); after each input it drains the core's actions and
//! carries them out (spawn a dial, queue a message on a connection, resolve `maintain()`
//! callers), then re-arms its one timer on the core's next deadline. It never waits on
//! anything but its mailbox and that timer, so it cannot deadlock with the connection
//! tasks, which wait on it.

use super::conn::{self, Ctx};
use super::{NodeStatus, PointSource};
use crate::core::{
    Action, Admission, DialResult, DialVerdict, Event, Hello, Input, NodeCore, Offender,
    PeerSetError, Reply, SetChanges, TraceWriter, TracedAction,
};
use crate::maintenance::CycleReport;
use crate::pool::{CloseReason, ConnId, Source};
use crate::transport::Transport;
use crate::trigger::{TriggerKind, Triggers};
use crate::wire::Message;
use crate::Time;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A save due while the previous one is still being written waits this long (then looks
/// again), rather than being lost or spinning.
const SAVE_IN_FLIGHT_RETRY: Duration = Duration::from_millis(200);

/// What reads an operator's input's answer, and the core after it.
pub(crate) type AfterApply = Box<dyn FnOnce(&NodeCore, Reply) + Send>;

/// An input for the actor.
pub(crate) enum Cmd {
    Inbound {
        conn: ConnId,
        remote: SocketAddr,
        hello: Hello,
        handle: ConnHandle,
        reply: oneshot::Sender<Admission>,
    },
    DialDone {
        point: SocketAddr,
        result: DialResult,
        handle: Option<ConnHandle>,
        reply: Option<oneshot::Sender<DialVerdict>>,
    },
    Points(ConnId, Vec<SocketAddr>),
    Asked(ConnId),
    SwapRequest(ConnId, SocketAddr),
    SwapAck(ConnId, SocketAddr),
    Closed(ConnId),
    /// The connection task dropped the connection on its own (keepalive, stalled writes).
    Dropped(ConnId, CloseReason),
    Violation(Offender),
    /// The application's feedback on a peer ([`Input::Report`]).
    Report(crate::pool::PeerId, crate::core::Report),
    /// A round trip measured on a ping ([`Input::Rtt`]).
    Rtt(ConnId, Duration),
    SourcePoints(Vec<SocketAddr>, crate::pool::Source),
    SourcesDone,
    Maintain(oneshot::Sender<CycleReport>),
    SetTrigger(TriggerKind, bool),
    SetIdleTimer(bool),
    AddPoints(Vec<SocketAddr>, Source),
    /// Something outside the actor changed a counter the status shows: publish it.
    Nudge,
    Inspect(Box<dyn FnOnce(&NodeCore) + Send>),
    /// `track` or `overwrite` (an [`Input::Track`] or [`Input::Overwrite`]), answered.
    PeerSets(Input, oneshot::Sender<Result<SetChanges, PeerSetError>>),
    /// An operator's input (ban, unban, trust, protect, add), recorded like the rest;
    /// `then` reads the answer and the core after it.
    Apply(Input, AfterApply),
}

/// What the actor sends a connection task.
pub(crate) enum Out {
    Msg(Message),
    Close(CloseReason),
}

/// The actor's side of one connection task.
pub(crate) struct ConnHandle {
    pub tx: mpsc::Sender<Out>,
    pub cancel: CancellationToken,
    /// The peer's point (for logs and traces).
    pub point: SocketAddr,
    /// The peer and its application queue: entered in the peer table when the core keeps
    /// the connection, before the node's status or events say so (so that an application
    /// told of a connection can send on it at once).
    pub entry: Option<(crate::pool::PeerId, super::channel::PeerEntry)>,
}

pub(crate) struct Actor<T: Transport> {
    pub core: NodeCore,
    pub origin: Instant,
    pub conns: BTreeMap<ConnId, ConnHandle>,
    pub transport: Arc<T>,
    pub ctx: Arc<Ctx>,
    pub rx: mpsc::Receiver<Cmd>,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
    pub next_conn: Arc<AtomicU64>,
    pub sources: Vec<Arc<dyn PointSource>>,
    pub polling_sources: bool,
    pub waiters: Vec<(u64, oneshot::Sender<CycleReport>)>,
    pub status: watch::Sender<NodeStatus>,
    pub triggers: Arc<Triggers>,
    pub tap: Option<mpsc::Sender<TracedAction>>,
    pub events: tokio::sync::broadcast::Sender<Event>,
    pub trace: Option<TraceWriter<std::io::BufWriter<Box<dyn std::io::Write + Send>>>>,
    /// Inputs fed before `Start` (our own point, bootstrap points), recorded like the rest.
    pub initial: Vec<Input>,
    pub span: Option<tracing::Span>,
    pub dropped_at_accept: Arc<AtomicU64>,
    /// The saved pool to restore before the start (anchors dialed first).
    pub restore: Option<crate::pool::Snapshot>,
    /// Where the pool is saved, if anywhere.
    pub store: Option<Arc<crate::store::PoolStore>>,
    /// The save in flight (one at a time).
    pub saving: Option<tokio::task::JoinHandle<()>>,
    /// Key mismatches of configured points, logged at a bounded rate.
    pub key_log: KeyMismatchLog,
}

impl<T: Transport> Actor<T> {
    fn now(&self) -> Time {
        Time::from_duration(Instant::now().saturating_duration_since(self.origin))
    }

    pub(crate) async fn run(mut self) {
        let now = self.now();
        for input in std::mem::take(&mut self.initial) {
            self.input(now, input);
        }
        if let Some(snapshot) = self.restore.take() {
            let saved = snapshot.points.len();
            let anchors: Vec<std::net::SocketAddr> =
                snapshot.anchors.iter().map(|a| a.addr).collect();
            // Through `input`, so that a trace records it and a replay restores it too.
            self.input(
                now,
                Input::Restore {
                    snapshot: Box::new(snapshot),
                },
            );
            tracing::info!(
                points = saved,
                known = self.core.pool().len(),
                anchors = anchors.len(),
                anchors_dialed = anchors
                    .iter()
                    .filter(|a| self.core.pool().get(a).is_some_and(|p| p.dialing))
                    .count(),
                "restored the saved pool; dialing its anchors first"
            );
        }
        self.input(now, Input::Start);
        self.drain();
        self.publish();
        let mut next_save = self.store.as_ref().map(|s| Instant::now() + s.interval());
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map(|t| self.origin + t.as_duration());
            let save_due = self.save_due();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.handle(c),
                    None => break,
                },
                _ = sleep_or_never(deadline) => {
                    // Within one instant, inputs from the network come before timers (the
                    // simulator's rule too): let the connection tasks woken at this instant
                    // deliver, handle what they delivered, then the timer if still due.
                    tokio::task::yield_now().await;
                    while let Ok(cmd) = self.rx.try_recv() {
                        self.handle(cmd);
                        self.drain();
                    }
                    let now = self.now();
                    if self.core.next_deadline().is_some_and(|d| d <= now) {
                        self.input(now, Input::Timeout);
                    }
                }
                _ = sleep_or_never(next_save) => {
                    next_save = self.store.as_ref().map(|s| Instant::now() + s.interval());
                    self.save();
                }
                _ = sleep_or_never(save_due) => self.save(),
            }
            self.drain();
            self.publish();
            if self.rx.is_empty() {
                // Nothing waiting: a good moment to write out the trace, so that a crash
                // loses little and `tail -f` follows.
                if let Some(trace) = &mut self.trace {
                    let _ = trace.flush();
                }
            }
        }
        // Stopping: the pool is saved as it stands (its outbound peers the anchors of the
        // next start), then the core cancels its dials and closes every connection; tasks
        // stop waiting on the mailbox; `maintain()` callers get an error.
        if let Some(prev) = self.saving.take() {
            let _ = prev.await;
        }
        self.save();
        if let Some(last) = self.saving.take() {
            let _ = last.await;
        }
        let now = self.now();
        self.input(now, Input::Shutdown);
        self.drain();
        self.publish();
        if let Some(mut trace) = self.trace.take() {
            let _ = trace.flush();
        }
        self.cancel.cancel();
        self.rx.close();
        self.waiters.clear();
    }

    /// When the pool is due a save because it changed materially (the core's
    /// [`save_due`](crate::core::NodeCore::save_due)), if the node keeps it on disk;
    /// while a save is still in flight, a moment later.
    fn save_due(&self) -> Option<Instant> {
        self.store.as_ref()?;
        let due = self.origin + self.core.save_due()?.as_duration();
        Some(if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            due.max(Instant::now() + SAVE_IN_FLIGHT_RETRY)
        } else {
            due
        })
    }

    /// Takes a snapshot of the pool (here, in the actor: `O(points)`, no I/O) and writes
    /// it from a blocking task, unless a save is still in flight.
    fn save(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let now = self.now();
        let snapshot = self.core.snapshot(now);
        self.core.saved(now);
        self.saving = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = store.save(&snapshot) {
                tracing::warn!(file = %store.path().display(), error = %e, "cannot save the pool");
            } else {
                tracing::info!(file = %store.path().display(), points = snapshot.points.len(), anchors = snapshot.anchors.len(), "saved the pool");
            }
        }));
    }

    /// Feeds one input to the core, recording it when a trace is on.
    /// A connection the core keeps: its handle, and its peer in the peer table.
    fn keep(&mut self, conn: ConnId, mut handle: ConnHandle) {
        if let Some((peer, entry)) = handle.entry.take() {
            self.ctx.peers.insert(peer, entry);
        }
        self.conns.insert(conn, handle);
    }

    fn input(&mut self, now: Time, input: Input) -> Reply {
        if let Some(trace) = &mut self.trace {
            if let Err(e) = trace.write(now, &input) {
                tracing::warn!(error = %e, "the trace cannot be written: tracing stops");
                self.trace = None;
            }
        }
        self.core.apply(now, input)
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = self.now();
        match cmd {
            Cmd::Inbound {
                conn,
                remote,
                hello,
                handle,
                reply,
            } => {
                let admission = match self.input(
                    now,
                    Input::Inbound {
                        conn,
                        remote,
                        hello,
                    },
                ) {
                    Reply::Admission(a) => a,
                    other => unreachable!(
                        "an inbound handshake answers with an admission, not {other:?}"
                    ),
                };
                if admission == Admission::Accept {
                    self.keep(conn, handle);
                } else {
                    let point = SocketAddr::new(
                        crate::core::intake::canonical_ip(remote.ip()),
                        hello.listen_port,
                    );
                    if let Some(expected) = self.core.expected_peer(&point) {
                        if expected != hello.peer {
                            self.key_log
                                .mismatch(point, expected, hello.peer, "dialing in");
                        }
                    }
                }
                let _ = reply.send(admission);
            }
            Cmd::DialDone {
                point,
                result,
                handle,
                reply,
            } => {
                let conn = match &result {
                    DialResult::Connected { conn, .. } => Some(*conn),
                    _ => None,
                };
                if let DialResult::Connected { peer, .. } = &result {
                    if let Some(expected) = self.core.expected_peer(&point) {
                        if expected != *peer {
                            self.key_log.mismatch(point, expected, *peer, "dialed");
                        }
                    }
                }
                let verdict = match self.input(now, Input::DialResult { point, result }) {
                    Reply::Verdict(v) => v,
                    other => unreachable!("a dial result answers with a verdict, not {other:?}"),
                };
                if let (DialVerdict::Keep, Some(conn), Some(handle)) = (verdict, conn, handle) {
                    self.keep(conn, handle);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(verdict);
                }
            }
            Cmd::Points(conn, points) => {
                self.input(now, Input::Points { conn, points });
            }
            Cmd::Asked(conn) => {
                self.input(now, Input::PointsAsked { conn });
            }
            Cmd::Report(peer, report) => {
                self.input(now, Input::Report { peer, report });
            }
            Cmd::Rtt(conn, rtt) => {
                self.input(now, Input::Rtt { conn, rtt });
            }
            Cmd::SwapRequest(conn, point) => {
                self.input(now, Input::SwapRequest { conn, point });
            }
            Cmd::SwapAck(conn, point) => {
                self.input(now, Input::SwapAck { conn, point });
            }
            Cmd::Closed(conn) => {
                self.conns.remove(&conn);
                self.input(now, Input::Closed { conn });
            }
            Cmd::Dropped(conn, reason) => {
                self.conns.remove(&conn);
                self.input(now, Input::Dropped { conn, reason });
            }
            Cmd::Violation(offender) => {
                self.input(now, Input::Violation { offender });
            }
            Cmd::SourcePoints(points, kind) => {
                self.input(now, Input::SourcePoints { points, kind });
            }
            Cmd::SourcesDone => self.polling_sources = false,
            Cmd::Maintain(reply) => {
                // Calls queued together are concurrent: they share one cycle, which begins
                // after all of them.
                let mut replies = vec![reply];
                let mut next = None;
                while let Ok(cmd) = self.rx.try_recv() {
                    match cmd {
                        Cmd::Maintain(r) => replies.push(r),
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                let ticket = match self.input(now, Input::Maintain) {
                    Reply::Ticket(t) => t,
                    other => unreachable!("maintain answers with a ticket, not {other:?}"),
                };
                self.waiters.retain(|(_, w)| !w.is_closed());
                self.waiters
                    .extend(replies.into_iter().map(|r| (ticket, r)));
                if let Some(cmd) = next {
                    self.drain();
                    self.handle(cmd);
                }
            }
            Cmd::Nudge => self.ctx.nudged.store(false, Ordering::Relaxed),
            Cmd::SetTrigger(kind, enabled) => {
                self.input(now, Input::SetTrigger { kind, enabled });
                self.triggers.set_enabled(kind, enabled);
            }
            Cmd::SetIdleTimer(enabled) => {
                self.input(now, Input::SetIdleTimer { enabled });
                self.triggers.set_idle_timer(enabled);
            }
            Cmd::AddPoints(points, source) => {
                self.input(now, Input::AddPoints { points, source });
            }
            Cmd::Inspect(f) => f(&self.core),
            Cmd::Apply(input, then) => {
                let reply = self.input(now, input);
                then(&self.core, reply);
            }
            Cmd::PeerSets(input, reply) => {
                let answer = match self.input(now, input) {
                    Reply::PeerSets(r) => r,
                    other => unreachable!("track and overwrite answer, not with {other:?}"),
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn send(&mut self, conn: ConnId, m: Message) {
        if let Some(h) = self.conns.get(&conn) {
            // A full queue means the peer does not keep up: this hint is dropped.
            let _ = h.tx.try_send(Out::Msg(m));
        }
    }

    /// Carries out the core's actions, and passes its events to subscribers.
    fn drain(&mut self) {
        let now = self.now();
        while let Some(event) = self.core.poll_event() {
            log_event(&event, now);
            // No subscriber, or a slow one: the broadcast channel is bounded, and a lagging
            // receiver is told how many it missed.
            let _ = self.events.send(event);
        }
        let now = self.now();
        while let Some(action) = self.core.poll_action() {
            if let Some(tap) = &self.tap {
                let _ = tap.try_send(TracedAction {
                    at: now,
                    peer: action
                        .conn()
                        .and_then(|c| self.conns.get(&c))
                        .map(|h| h.point),
                    action: action.clone(),
                });
            }
            let _entered = self.span.as_ref().map(|s| s.clone().entered());
            match action {
                Action::Dial(point) => {
                    let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
                    // Not a child of the cycle's span: a dial becomes a connection that
                    // outlives its cycle, and a child would hold the cycle's span open
                    // (and its name on every line of the connection) for as long.
                    let span = tracing::debug_span!(parent: None, "dial", %point, %conn);
                    if let Some(cycle) = &self.span {
                        span.follows_from(cycle);
                    }
                    self.tracker.spawn(
                        conn::dial(
                            self.ctx.clone(),
                            self.transport.clone(),
                            point,
                            conn,
                            self.cancel.child_token(),
                        )
                        .instrument(span),
                    );
                }
                Action::Close { conn, reason } => {
                    if let Some(h) = self.conns.remove(&conn) {
                        tracing::debug!(%conn, ?reason, "closing");
                        if h.tx.try_send(Out::Close(reason)).is_err() {
                            h.cancel.cancel();
                        }
                    }
                }
                Action::SendPoints { conn, points } => self.send(conn, Message::Advertise(points)),
                Action::AskForPoints { conn } => self.send(conn, Message::AskForPoints),
                Action::SwapRequest { conn, point } => self.send(conn, Message::SwapRequest(point)),
                Action::SwapAck { conn, point } => self.send(conn, Message::SwapAck(point)),
                Action::PollSources => self.poll_sources(),
                Action::Trigger(kind) => self.triggers.fire(kind),
                Action::CycleStarted { cycle, reasons } => {
                    let span = tracing::info_span!("maintenance_cycle", cycle, reasons = %reasons);
                    span.in_scope(|| tracing::debug!("cycle started"));
                    self.span = Some(span);
                }
                Action::CycleEnded { report, covers } => {
                    tracing::info!(
                        cycle = report.cycle,
                        reasons = %report.reasons,
                        before = report.connections_before,
                        after = report.connections_after,
                        dialed = report.dialed,
                        succeeded = report.succeeded,
                        failed = report.failed,
                        closed = report.closed,
                        asked_for_points = report.asked_for_points,
                        outcome = ?report.outcome,
                        "maintenance cycle done"
                    );
                    let mut i = 0;
                    while i < self.waiters.len() {
                        if self.waiters[i].0 <= covers {
                            let (_, w) = self.waiters.swap_remove(i);
                            let _ = w.send((*report).clone());
                        } else {
                            i += 1;
                        }
                    }
                    self.status.send_modify(|s| s.last_report = Some(*report));
                    drop(_entered);
                    self.span = None;
                }
            }
        }
    }

    /// A discovery round: the node's own sources, one round at a time, each bounded by
    /// `request_timeout`.
    fn poll_sources(&mut self) {
        if self.sources.is_empty() || self.polling_sources {
            return;
        }
        self.polling_sources = true;
        let sources = self.sources.clone();
        let ctx = self.ctx.clone();
        let timeout = self.core.config().discovery.request_timeout;
        let stop = self.cancel.clone();
        let span = tracing::info_span!(parent: None, "discovery_round", sources = sources.len());
        if let Some(cycle) = &self.span {
            span.follows_from(cycle);
        }
        self.tracker.spawn(
            async move {
                for source in sources {
                    let fetched = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = tokio::time::timeout(timeout, source.fetch()) => r,
                    };
                    match fetched {
                        Ok(mut points) => {
                            tracing::debug!(
                                source = source.name(),
                                got = points.len(),
                                "point source polled"
                            );
                            points.truncate(crate::MAX_POINTS_PER_MESSAGE);
                            ctx.tell(Cmd::SourcePoints(points, source.kind())).await;
                        }
                        Err(_) => tracing::debug!(source = source.name(), "point source timed out"),
                    }
                }
                ctx.tell(Cmd::SourcesDone).await;
            }
            .instrument(span),
        );
    }

    fn publish(&self) {
        let core = &self.core;
        let connections = core.connection_count();
        let dialing = core.dials_in_flight();
        let known_points = core.pool().len();
        let stats = core.stats();
        let wants = core.wants_points();
        let dropped_at_accept = self.dropped_at_accept.load(Ordering::Relaxed);
        let handshakes = conn::lock(&self.ctx.gate).stats();
        let outbound = core.pool().outbound_count();
        let mut by_kind = [0; 5];
        for (a, _) in core.pool().connections() {
            by_kind[core.pool().kind_of(&a).index()] += 1;
        }
        self.status.send_if_modified(|s| {
            let changed = s.connections != connections
                || s.dialing != dialing
                || s.known_points != known_points
                || s.stats != stats
                || s.wants_points != wants
                || s.dropped_at_accept != dropped_at_accept
                || s.handshakes != handshakes
                || s.outbound != outbound
                || s.by_kind != by_kind;
            s.outbound = outbound;
            s.by_kind = by_kind;
            s.connections = connections;
            s.dialing = dialing;
            s.known_points = known_points;
            s.stats = stats;
            s.wants_points = wants;
            s.dropped_at_accept = dropped_at_accept;
            s.handshakes = handshakes;
            changed
        });
    }
}

async fn sleep_or_never(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Accepts links until the node stops; each handshake runs in its own task, within the
/// handshake budget ([`super::gate`]: what it refuses is dropped at once).
pub(crate) async fn accept_loop<T: Transport>(
    transport: Arc<T>,
    ctx: Arc<Ctx>,
    next_conn: Arc<AtomicU64>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    dropped: Arc<AtomicU64>,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = transport.accept() => a,
        };
        let (link, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a little, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let (admitted, evicted) = {
            let mut gate = conn::lock(&ctx.gate);
            let before = gate.stats().evicted;
            let admitted = gate.admit(remote.ip(), Instant::now());
            let evicted = gate.stats().evicted - before;
            (admitted, evicted)
        };
        // A link dropped at accept, or an idle one evicted for this one: both are links
        // closed before their handshake.
        let closed = evicted + u64::from(admitted.is_err());
        if closed > 0 {
            dropped.fetch_add(closed, Ordering::Relaxed);
            // One nudge at a time, never waiting: the status shows the count without
            // another input, and a flood cannot fill the mailbox with nudges.
            if !ctx.nudged.swap(true, Ordering::Relaxed)
                && ctx.mailbox.try_send(Cmd::Nudge).is_err()
            {
                ctx.nudged.store(false, Ordering::Relaxed);
            }
        }
        let Ok(ticket) = admitted else {
            tracing::debug!(%remote, why = ?admitted.err(), "over the handshake budget: dropped");
            continue;
        };
        let conn = ConnId(next_conn.fetch_add(1, Ordering::Relaxed));
        let span = tracing::debug_span!("inbound", %remote, %conn);
        tracker.spawn(
            conn::accept(
                ctx.clone(),
                link,
                remote,
                conn,
                ticket,
                cancel.child_token(),
            )
            .instrument(span),
        );
    }
}

/// What an operator reads at INFO: every connection opened and closed (peer, point,
/// direction, and who ended it and why), every ban (with its end on the wall clock).
/// One line per connection event: bounded by the connections themselves.
fn log_event(event: &Event, now: crate::Time) {
    match event {
        Event::Connected {
            point,
            peer,
            direction,
            ..
        } => tracing::info!(
            peer = %peer.short(),
            %point,
            direction = %crate::control::direction_name(*direction),
            "connected"
        ),
        Event::Disconnected {
            point,
            peer,
            direction,
            ended,
            ..
        } => {
            let (closed_by, reason) = match ended {
                crate::core::Ended::ByUs(r) => ("us", r.name()),
                // The peer closed it, or the network lost it.
                crate::core::Ended::ByPeer => ("peer", "by_peer"),
            };
            tracing::info!(
                peer = %peer.short(),
                %point,
                direction = %crate::control::direction_name(*direction),
                %closed_by,
                %reason,
                "disconnected"
            )
        }
        Event::Banned {
            point,
            ip,
            whole_ip,
            until,
            ..
        } => {
            let left = until.saturating_since(now);
            let until = crate::control::rfc3339(std::time::SystemTime::now() + left);
            // whole_ip: the address itself, after repeated violations from distinct
            // sources (or the operator's ban of an address).
            match point {
                Some(point) => tracing::info!(%point, %ip, whole_ip, %until, "banned"),
                None => tracing::info!(%ip, whole_ip, %until, "banned"),
            }
        }
        _ => {}
    }
}

/// Key mismatches logged at most once per point per this long (a configured point whose
/// key changed is dialed again and again; an impersonator may dial in as often).
const KEY_MISMATCH_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Points whose last key mismatch log is remembered.
const KEY_MISMATCH_LOG_POINTS: usize = 256;

/// Rate-limits the warnings about a point that proved another key than the one
/// configured for it (`KEY@HOST:PORT`).
#[derive(Default)]
pub(crate) struct KeyMismatchLog {
    last: BTreeMap<SocketAddr, (Instant, u64)>,
}

impl KeyMismatchLog {
    /// Logs that `point` proved `got` where `expected` was configured (`how`: dialed or
    /// dialing in), unless it was logged within the interval (then counted, and the
    /// count given with the next line).
    pub(crate) fn mismatch(
        &mut self,
        point: SocketAddr,
        expected: crate::pool::PeerId,
        got: crate::pool::PeerId,
        how: &'static str,
    ) {
        let now = Instant::now();
        if let Some((at, suppressed)) = self.last.get_mut(&point) {
            if now.saturating_duration_since(*at) < KEY_MISMATCH_LOG_INTERVAL {
                *suppressed += 1;
                return;
            }
        }
        let suppressed = self.last.remove(&point).map_or(0, |(_, n)| n);
        if self.last.len() >= KEY_MISMATCH_LOG_POINTS {
            // The oldest entry makes room (bounded: a flood of points cannot grow it).
            if let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(p, _)| *p)
            {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(point, (now, 0));
        tracing::warn!(
            %point,
            expected = %expected,
            got = %got,
            %how,
            suppressed_since_last = suppressed,
            "refused: the peer at a configured point proved another key than the one configured (KEY@): the key changed, or somebody else is there"
        );
    }
}
