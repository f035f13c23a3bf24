//! The tokio maintenance worker: waits, carries out, reports. Every decision is the
//! [`Maintenance`] machine's.

use crate::config::Config;
use crate::handle::PoolHandle;
use crate::maintenance::cycle::{Action, CycleReport, Maintenance, WakeReason};
use crate::pool::PeerId;
use crate::transport::{DialError, Transport};
use crate::trigger::TriggerKind;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Counters of a running maintainer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintainerStats {
    /// Cycles run.
    pub cycles: u64,
    /// Dials started.
    pub dials: u64,
    /// Dials that gave a connection.
    pub dials_succeeded: u64,
    /// Dials that failed.
    pub dials_failed: u64,
    /// Connections closed by trims.
    pub closed: u64,
    /// Cycles that asked for points.
    pub asked_for_points: u64,
    /// Most dials ever in flight at once.
    pub max_dials_in_flight: u64,
}

struct Shared {
    hint: Notify,
    hints: AtomicU64,
    done: watch::Sender<Option<(u64, CycleReport)>>,
    want_points: watch::Sender<bool>,
    stats: Mutex<MaintainerStats>,
}

/// A running maintenance worker. See the [module docs](crate::maintenance).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use peerkeeper::{transport::memory::MemoryNetwork, Config, Maintainer, PoolHandle};
/// let config = Config { min_connections: 2, expected_connections: 4, max_connections: 6,
///                       ..Config::default() };
/// let net = MemoryNetwork::new();
/// let pool = PoolHandle::new(&config);
/// let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 7);
/// let report = m.maintain().await;
/// assert_eq!(report.connections_after, 0); // nobody to dial in an empty network
/// m.shutdown().await;
/// # }
/// ```
pub struct Maintainer {
    shared: Arc<Shared>,
    pool: PoolHandle,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Maintainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintainer").finish_non_exhaustive()
    }
}

impl Maintainer {
    /// Starts the worker on the current tokio runtime: it runs one cycle at once
    /// (activation), then waits for triggers, hints and timers. `seed` seeds its RNG
    /// (trim choices and backoff jitter).
    pub fn start<T: Transport + ?Sized>(
        config: Config,
        pool: PoolHandle,
        transport: Arc<T>,
        seed: u64,
    ) -> Maintainer {
        Maintainer::start_with_cancel(config, pool, transport, seed, CancellationToken::new())
    }

    /// As [`start`](Self::start), stopping when `cancel` (or a parent token) is cancelled.
    pub fn start_with_cancel<T: Transport + ?Sized>(
        config: Config,
        pool: PoolHandle,
        transport: Arc<T>,
        seed: u64,
        cancel: CancellationToken,
    ) -> Maintainer {
        let shared = Arc::new(Shared {
            hint: Notify::new(),
            hints: AtomicU64::new(0),
            done: watch::Sender::new(None),
            want_points: watch::Sender::new(false),
            stats: Mutex::new(MaintainerStats::default()),
        });
        let worker = Worker {
            machine: Maintenance::new(Arc::new(config)),
            pool: pool.clone(),
            transport,
            shared: shared.clone(),
            rng: StdRng::seed_from_u64(seed),
            dials: JoinSet::new(),
            cycle_hints: 0,
            span: None,
        };
        let task = tokio::spawn(worker.run(cancel.clone()));
        Maintainer {
            shared,
            pool,
            cancel,
            task: Mutex::new(Some(task)),
        }
    }

    /// Asks for maintenance and returns the report of the first full cycle that began at or
    /// after this call, also when nothing needed doing. Concurrent calls coalesce into one
    /// cycle. Cancel-safe. If the worker has shut down, returns the last report (or an empty
    /// one).
    pub async fn maintain(&self) -> CycleReport {
        let mut rx = self.shared.done.subscribe();
        let mine = self.shared.hints.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.hint.notify_one();
        loop {
            if let Some((covered, report)) = &*rx.borrow_and_update() {
                if *covered >= mine {
                    return report.clone();
                }
            }
            if rx.changed().await.is_err() || self.cancel.is_cancelled() {
                let last = rx.borrow().as_ref().map(|(_, r)| r.clone());
                return last.unwrap_or_else(|| empty_report(self.pool.now()));
            }
        }
    }

    /// Waits until a cycle numbered above `after` (cycles count from 1) has ended, without
    /// asking for one, and returns the report of the latest ended cycle: what tests and status displays use
    /// to follow the worker. Cancel-safe.
    pub async fn wait_for_cycle(&self, after: u64) -> CycleReport {
        let mut rx = self.shared.done.subscribe();
        loop {
            if let Some((_, report)) = &*rx.borrow_and_update() {
                if report.cycle > after {
                    return report.clone();
                }
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The pool this worker maintains.
    pub fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// Whether maintenance wants more points (what the discovery worker follows).
    pub fn want_points(&self) -> watch::Receiver<bool> {
        self.shared.want_points.subscribe()
    }

    /// The report of the last finished cycle.
    pub fn last_report(&self) -> Option<CycleReport> {
        self.shared.done.borrow().as_ref().map(|(_, r)| r.clone())
    }

    /// Counters.
    pub fn stats(&self) -> MaintainerStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the worker and waits for it and every dial it started to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn empty_report(now: crate::Time) -> CycleReport {
    CycleReport::new(0, Default::default(), now, 0)
}

struct Worker<T: ?Sized> {
    machine: Maintenance,
    pool: PoolHandle,
    transport: Arc<T>,
    shared: Arc<Shared>,
    rng: StdRng,
    dials: JoinSet<(SocketAddr, Result<PeerId, DialError>)>,
    /// `hints` as read before the event that started the running cycle.
    cycle_hints: u64,
    span: Option<tracing::Span>,
}

enum Event {
    Wake(WakeReason),
    Dial(SocketAddr, Result<PeerId, DialError>),
    Timeout,
}

impl<T: Transport + ?Sized> Worker<T> {
    async fn run(mut self, cancel: CancellationToken) {
        let triggers = self.pool.triggers();
        let mut too_few = triggers.subscribe(TriggerKind::TooFewConnections);
        let mut too_many = triggers.subscribe(TriggerKind::TooManyConnections);
        let mut new_point = triggers.subscribe(TriggerKind::NewPoint);
        let mut new_peer = triggers.subscribe(TriggerKind::NewPeer);
        let mut idle = triggers.idle_timer_watch();
        let enabled = *idle.borrow_and_update();
        let now = self.pool.now();
        self.machine.set_idle_timer(enabled, now);
        self.feed(Event::Wake(WakeReason::Activation));
        loop {
            let deadline = self.pool.read(|p| self.machine.next_deadline(p));
            let sleep_until = deadline.map(|t| self.pool.instant(t));
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(joined) = self.dials.join_next(), if !self.dials.is_empty() => match joined {
                    Ok((addr, result)) => Event::Dial(addr, result),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => continue,
                },
                _ = self.shared.hint.notified() => {
                    // A stale permit: every hint so far is covered by a cycle that began
                    // after it. Only newer hints need a cycle.
                    if self.shared.hints.load(Ordering::SeqCst) <= self.cycle_hints {
                        continue;
                    }
                    Event::Wake(WakeReason::Maintain)
                }
                _ = too_many.wait() => Event::Wake(WakeReason::TooManyConnections),
                _ = too_few.wait() => Event::Wake(WakeReason::TooFewConnections),
                _ = new_point.wait() => Event::Wake(WakeReason::NewPoints),
                _ = new_peer.wait() => Event::Wake(WakeReason::NewPoints),
                Ok(()) = idle.changed() => {
                    let on = *idle.borrow_and_update();
                    let now = self.pool.now();
                    self.machine.set_idle_timer(on, now);
                    continue;
                }
                _ = sleep_or_never(sleep_until) => Event::Timeout,
            };
            self.feed(event);
        }
        self.dials.shutdown().await;
        self.shared.want_points.send_replace(false);
    }

    /// Feeds one event to the machine (pool locked for the pure step only), then carries
    /// out its actions.
    fn feed(&mut self, event: Event) {
        let hints_before = self.shared.hints.load(Ordering::SeqCst);
        let now = self.pool.now();
        let mut out = Vec::new();
        let (machine, rng) = (&mut self.machine, &mut self.rng);
        self.pool.with(|pool| match event {
            Event::Wake(r) => machine.wake(r, now, pool, rng, &mut out),
            Event::Dial(addr, result) => {
                machine.dial_finished(addr, result, now, pool, rng, &mut out)
            }
            Event::Timeout => machine.handle_timeout(now, pool, rng, &mut out),
        });
        for action in out {
            self.carry_out(action, hints_before);
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, MaintainerStats> {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn carry_out(&mut self, action: Action, hints_before: u64) {
        let _entered = self.span.as_ref().map(|s| s.clone().entered());
        match action {
            Action::CycleStarted { cycle, reasons } => {
                self.cycle_hints = hints_before;
                let span = tracing::info_span!("maintenance_cycle", cycle, reasons = %reasons);
                span.in_scope(|| tracing::debug!("cycle started"));
                self.span = Some(span);
            }
            Action::Dial(addr) => {
                let transport = self.transport.clone();
                let timeout = self.machine.config().dial_timeout;
                let span = tracing::debug_span!("dial", %addr);
                self.dials.spawn(
                    async move {
                        let result = match tokio::time::timeout(timeout, transport.dial(addr)).await
                        {
                            Ok(r) => r,
                            Err(_) => Err(DialError::Timeout),
                        };
                        if let Err(e) = &result {
                            tracing::debug!(error = %e, "dial failed");
                        }
                        (addr, result)
                    }
                    .instrument(span),
                );
                // The pool's count, not the JoinSet's: finished dials not yet joined are
                // no longer in flight.
                let inflight = self.pool.read(|p| p.dialing_count()) as u64;
                let mut s = self.stats();
                s.dials += 1;
                s.max_dials_in_flight = s.max_dials_in_flight.max(inflight);
            }
            Action::Close(addr, reason) => {
                tracing::debug!(%addr, ?reason, "closing connection");
                self.transport.close(addr, reason);
            }
            Action::WantPoints(want) => {
                tracing::debug!(want, "points wanted");
                self.shared.want_points.send_replace(want);
            }
            Action::CycleEnded(report) => {
                tracing::info!(
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
                {
                    let mut s = self.stats();
                    s.cycles += 1;
                    s.dials_succeeded += report.succeeded as u64;
                    s.dials_failed += report.failed as u64;
                    s.closed += report.closed as u64;
                    s.asked_for_points += u64::from(report.asked_for_points);
                }
                self.shared
                    .done
                    .send_replace(Some((self.cycle_hints, report)));
                self.span = None;
            }
        }
    }
}

async fn sleep_or_never(until: Option<tokio::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
