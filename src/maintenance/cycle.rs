//! The maintenance cycle as a sans-IO state machine.
//!
//! [`Maintenance`] decides *when*: when a wake reason starts a cycle, when to dial more as
//! dials finish, when to ask for points and how long to wait for them, when the cycle ends
//! and when the next timer is due. It never waits and never does I/O: a driver (the tokio
//! worker, or the simulator for thousands of nodes at once) feeds it events with an
//! explicit `now` and carries out the [`Action`]s it pushes. Between events the driver
//! sleeps until [`Maintenance::next_deadline`].
//!
//! # A cycle
//!
//! 1. Above `max_threshold`: close down to `max_target`; the cycle ends.
//! 2. Below `min_threshold`: a top-up. Dial the best candidates, at most
//!    `max_concurrent_dials` in flight; as each dial finishes, dial more, until
//!    `min_target` connections are open or no candidate is left.
//! 3. No candidate left while short: ask for points (the driver wakes discovery) and wait
//!    up to `time_between_looking_for_peers` for new points, dialing them as they come.
//! 4. Otherwise (in range) nothing: the cycle ends at once, with its report; unless a
//!    kind is below its floor ([`crate::config::KindTargets`]) and has a candidate: then
//!    a top-up for the floor.
//!
//! A `maintain()` hint, too-many or idle wake that arrives during a cycle is remembered and
//! starts another cycle right after, so a caller always gets a cycle that began after its
//! call. Hints coalesce: many hints during one cycle make one more cycle. While connections
//! stay short after a cycle ("starving"), new points and the end of a point's backoff wake
//! a new cycle; discovery keeps asking, on its own backoff, until the range is reached.

use crate::config::{Config, RangeStatus};
use crate::maintenance::plan::{
    floor_evictions, floors_dialable, floors_unmet, outbound_floor_evictions, plan, top_up_dials,
};
use crate::pool::{CloseReason, ConnId, Pool};
use crate::Time;
use rand::Rng;
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a cycle ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum WakeReason {
    /// The worker started.
    Activation,
    /// The too-few trigger fired.
    TooFewConnections,
    /// The too-many trigger fired.
    TooManyConnections,
    /// `maintain()` was called.
    Maintain,
    /// The idle timer expired.
    Idle,
    /// New points or peers arrived while connections were short.
    NewPoints,
    /// A backed-off point became dialable while connections were short.
    BackoffExpired,
    /// The outbound floor ([`Config::outbound_floor`]) lacks connections (an outbound
    /// connection ended, or the node started with inbound ones only).
    OutboundFloor,
}

impl WakeReason {
    /// Every reason, in order.
    pub const ALL: [WakeReason; 8] = [
        WakeReason::Activation,
        WakeReason::TooFewConnections,
        WakeReason::TooManyConnections,
        WakeReason::Maintain,
        WakeReason::Idle,
        WakeReason::NewPoints,
        WakeReason::BackoffExpired,
        WakeReason::OutboundFloor,
    ];
}

/// A set of [`WakeReason`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WakeReasons(u8);

impl WakeReasons {
    /// Adds a reason.
    pub fn insert(&mut self, r: WakeReason) {
        self.0 |= 1 << r as u8;
    }
    /// Whether `r` is in the set.
    pub fn contains(self, r: WakeReason) -> bool {
        self.0 & (1 << r as u8) != 0
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The reasons, in order.
    pub fn iter(self) -> impl Iterator<Item = WakeReason> {
        WakeReason::ALL
            .into_iter()
            .filter(move |r| self.contains(*r))
    }
}

impl fmt::Display for WakeReasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.iter().map(|r| format!("{r:?}")).collect();
        f.write_str(&names.join("+"))
    }
}

impl Serialize for WakeReasons {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl WakeReason {
    /// The reason's name, as in metrics labels and traces (`too_few_connections`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WakeReason::Activation => "activation",
            WakeReason::TooFewConnections => "too_few_connections",
            WakeReason::TooManyConnections => "too_many_connections",
            WakeReason::Maintain => "maintain",
            WakeReason::Idle => "idle",
            WakeReason::NewPoints => "new_points",
            WakeReason::BackoffExpired => "backoff_expired",
            WakeReason::OutboundFloor => "outbound_floor",
        }
    }
}

/// How a cycle ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum CycleOutcome {
    /// Already in range: nothing to do.
    NothingToDo,
    /// Connections were trimmed down to `max_target`.
    Trimmed,
    /// A top-up reached `min_target`.
    ToppedUp,
    /// A top-up ended short: no candidate left (and no new point arrived in time).
    Short,
}

impl CycleOutcome {
    /// Every outcome.
    pub const ALL: [CycleOutcome; 4] = [
        CycleOutcome::NothingToDo,
        CycleOutcome::Trimmed,
        CycleOutcome::ToppedUp,
        CycleOutcome::Short,
    ];

    /// The outcome's name, as in metrics labels (`nothing_to_do`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CycleOutcome::NothingToDo => "nothing_to_do",
            CycleOutcome::Trimmed => "trimmed",
            CycleOutcome::ToppedUp => "topped_up",
            CycleOutcome::Short => "short",
        }
    }
}

/// What one maintenance cycle did. `maintain()` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CycleReport {
    /// Cycle number, from 1.
    pub cycle: u64,
    /// Why it ran.
    pub reasons: WakeReasons,
    /// When it began.
    pub started: Time,
    /// When it ended.
    pub ended: Time,
    /// Connections when it began.
    pub connections_before: usize,
    /// Connections when it ended.
    pub connections_after: usize,
    /// Dials started.
    pub dialed: usize,
    /// Dials that gave a connection.
    pub succeeded: usize,
    /// Dials that failed.
    pub failed: usize,
    /// Connections closed by the trim.
    pub closed: usize,
    /// Whether it asked for more points.
    pub asked_for_points: bool,
    /// How it ended.
    pub outcome: CycleOutcome,
}

impl CycleReport {
    /// The report of a cycle that begins at `now` with `connections` open.
    pub fn new(cycle: u64, reasons: WakeReasons, now: Time, connections: usize) -> CycleReport {
        CycleReport {
            cycle,
            reasons,
            started: now,
            ended: now,
            connections_before: connections,
            connections_after: connections,
            dialed: 0,
            succeeded: 0,
            failed: 0,
            closed: 0,
            asked_for_points: false,
            outcome: CycleOutcome::NothingToDo,
        }
    }
}

/// What a finished dial meant, as the maintenance machine sees it (the node core has
/// already recorded it in the pool, see `core::NodeCore::handle_dial_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialOutcome {
    /// A connection is open.
    Succeeded,
    /// The point failed: its failure count grew and it is backed off.
    Failed,
    /// No verdict on the point (it was ourselves, the peer was already connected, the
    /// dial was cancelled).
    Cancelled,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Dial this point (the pool already marks it dialing); report the result with
    /// [`Maintenance::dial_finished`].
    Dial(SocketAddr),
    /// Close this connection (already removed from the pool).
    Close(SocketAddr, ConnId, CloseReason),
    /// In range: propose a swap to a peer (the octez policy; the node core picks whom).
    Swap,
    /// Tell discovery whether points are wanted (sent on change).
    WantPoints(bool),
    /// A cycle began.
    CycleStarted {
        /// Its number.
        cycle: u64,
        /// Why.
        reasons: WakeReasons,
    },
    /// A cycle ended.
    CycleEnded(CycleReport),
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    TopUp(Box<CycleReport>),
    WaitingForPoints(Box<CycleReport>, Time),
}

/// The maintenance state machine. See the module docs.
///
/// ```
/// use peerkeeper::maintenance::{Action, Maintenance, WakeReason};
/// use peerkeeper::{pool::{Pool, Source}, Config, Time};
/// use rand::{rngs::StdRng, SeedableRng};
/// use std::sync::Arc;
///
/// let config = Arc::new(Config { min_connections: 2, expected_connections: 4,
///                                max_connections: 6, ..Config::default() });
/// let mut pool = Pool::new(&config);
/// pool.add_point("10.0.0.1:1".parse().unwrap(), Source::PeerSharing, Time::ZERO);
/// let mut m = Maintenance::new(config);
/// let mut rng = StdRng::seed_from_u64(1);
/// let mut out = Vec::new();
/// m.wake(WakeReason::Activation, Time::ZERO, &mut pool, &mut rng, &mut out);
/// assert!(out.contains(&Action::Dial("10.0.0.1:1".parse().unwrap())));
/// ```
#[derive(Clone, Debug)]
pub struct Maintenance {
    config: Arc<Config>,
    phase: Phase,
    pending: WakeReasons,
    cycles: u64,
    idle_deadline: Option<Time>,
    idle_timer: bool,
    wanting_points: bool,
    starving: bool,
    /// A kind was below its floor when the last cycle ended (per-kind targets).
    floor_hungry: bool,
    ask_until: Option<Time>,
}

impl Maintenance {
    /// A machine that has run no cycle; wake it with [`WakeReason::Activation`].
    pub fn new(config: Arc<Config>) -> Maintenance {
        Maintenance {
            config,
            phase: Phase::Idle,
            pending: WakeReasons::default(),
            cycles: 0,
            idle_deadline: None,
            idle_timer: true,
            wanting_points: false,
            starving: false,
            floor_hungry: false,
            ask_until: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Cycles started so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Whether a cycle is running.
    pub fn is_running(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Whether discovery has been told points are wanted.
    pub fn wants_points(&self) -> bool {
        self.wanting_points
    }

    /// Testing API: switches the idle timer off or on (on top of `maintenance_idle_time`).
    pub fn set_idle_timer(&mut self, enabled: bool, now: Time) {
        self.idle_timer = enabled;
        if enabled && self.idle_deadline.is_none() {
            self.idle_deadline = self.config.maintenance_idle_time.map(|d| now + d);
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has work, if any.
    pub fn next_deadline(&self, pool: &Pool) -> Option<Time> {
        match &self.phase {
            // While dials are in flight their completions drive the machine.
            Phase::WaitingForPoints(..) if pool.dialing_count() > 0 => None,
            // The wait ends at `until`, or earlier when a backed-off point becomes
            // dialable again.
            Phase::WaitingForPoints(_, until) => {
                Some(pool.next_ready_time().map_or(*until, |t| t.min(*until)))
            }
            Phase::TopUp(_) => None,
            Phase::Idle => {
                let idle = self.idle_deadline.filter(|_| self.idle_timer);
                let backoff = pool
                    .next_ready_time()
                    .filter(|_| self.starving || self.floor_hungry);
                match (idle, backoff) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// A wake reason arrived at `now`. Starts a cycle if none is running (new points only
    /// start one while starving); during a cycle, a hint, too-many or idle wake is kept for
    /// the next cycle, and too-few or new points let the running top-up dial more.
    pub fn wake<R: Rng + ?Sized>(
        &mut self,
        reason: WakeReason,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        match self.phase {
            Phase::Idle => {
                let starts = match reason {
                    WakeReason::NewPoints | WakeReason::BackoffExpired => {
                        self.starving || self.floor_hungry
                    }
                    _ => true,
                };
                if starts {
                    self.pending.insert(reason);
                    self.start_cycle(now, pool, rng, out);
                }
            }
            Phase::TopUp(_) | Phase::WaitingForPoints(..) => match reason {
                WakeReason::Maintain | WakeReason::TooManyConnections => {
                    self.pending.insert(reason);
                }
                WakeReason::Activation | WakeReason::Idle => {}
                WakeReason::TooFewConnections
                | WakeReason::NewPoints
                | WakeReason::BackoffExpired
                | WakeReason::OutboundFloor => self.step(now, pool, rng, out),
            },
        }
    }

    /// A dial started by [`Action::Dial`] finished, already recorded in the pool by the
    /// node core (connection registered, or failure and backoff). The report counts it,
    /// and the top-up continues.
    pub fn dial_finished<R: Rng + ?Sized>(
        &mut self,
        outcome: DialOutcome,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        pool.advance(now);
        match outcome {
            DialOutcome::Succeeded => {
                if let Some(r) = self.report_mut() {
                    r.succeeded += 1;
                }
            }
            DialOutcome::Failed => {
                if let Some(r) = self.report_mut() {
                    r.failed += 1;
                }
            }
            DialOutcome::Cancelled => {}
        }
        self.step(now, pool, rng, out);
    }

    /// Time passed: ends a wait for points that timed out, or starts an idle or
    /// backoff-expired cycle when due.
    pub fn handle_timeout<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        pool.advance(now);
        // A starving node dials as soon as a candidate exists again (a backoff ended). A
        // cycle that ended short left no candidate, so one now is a new one.
        let backoff_due = (self.starving
            && pool.candidates(self.config.private_mode).next().is_some())
            || (self.floor_hungry && self.floor_work(pool));
        match &self.phase {
            // Dial what became dialable during the wait; end the cycle if the wait is over
            // and nothing is left.
            Phase::WaitingForPoints(..) if pool.dialing_count() == 0 => {
                self.step(now, pool, rng, out);
            }
            Phase::Idle => {
                if self.idle_timer && self.idle_deadline.is_some_and(|t| t <= now) {
                    self.wake(WakeReason::Idle, now, pool, rng, out);
                } else if backoff_due {
                    self.wake(WakeReason::BackoffExpired, now, pool, rng, out);
                }
            }
            _ => {}
        }
    }

    fn report_mut(&mut self) -> Option<&mut CycleReport> {
        match &mut self.phase {
            Phase::TopUp(r) | Phase::WaitingForPoints(r, _) => Some(r),
            Phase::Idle => None,
        }
    }

    fn set_wanting(&mut self, want: bool, out: &mut Vec<Action>) {
        if self.wanting_points != want {
            self.wanting_points = want;
            out.push(Action::WantPoints(want));
        }
    }

    fn start_cycle<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        pool.advance(now);
        self.cycles += 1;
        let reasons = std::mem::take(&mut self.pending);
        self.ask_until = None;
        out.push(Action::CycleStarted {
            cycle: self.cycles,
            reasons,
        });
        let before = pool.active_count();
        let report = Box::new(CycleReport::new(self.cycles, reasons, now, before));
        let bounds = self.config.bounds();
        self.phase = Phase::TopUp(report);
        match bounds.classify(before) {
            RangeStatus::TooMany => {
                let p = plan(pool, &self.config, now, rng);
                for addr in p.close {
                    if let Some(c) = pool.connection_closed(addr, now) {
                        out.push(Action::Close(addr, c.id, CloseReason::TooManyConnections));
                        if let Some(r) = self.report_mut() {
                            r.closed += 1;
                        }
                    }
                }
                self.end_cycle(CycleOutcome::Trimmed, now, pool, rng, out);
            }
            // In range, a kind below its floor (per-kind targets) is still dialed for.
            RangeStatus::InRange if self.floor_work(pool) => self.step(now, pool, rng, out),
            RangeStatus::InRange => self.end_cycle(CycleOutcome::NothingToDo, now, pool, rng, out),
            RangeStatus::TooFew => self.step(now, pool, rng, out),
        }
    }

    /// The top-up step: dial what fits, end when done, ask for points when nothing is left.
    fn step<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        if matches!(self.phase, Phase::Idle) {
            return;
        }
        pool.advance(now);
        let bounds = self.config.bounds();
        let active = pool.active_count();
        // Too many arrived meanwhile (incoming): stop dialing; the pending trim follows.
        let dials = if active > bounds.max_threshold {
            Vec::new()
        } else {
            // A kind below its floor with candidates but no room: make room first.
            let young_after = now - self.config.newcomer_grace;
            let mut evict = floor_evictions(pool, &self.config, young_after, rng);
            if evict.is_empty() {
                // The outbound floor at max_connections: inbound connections never
                // satisfy maintenance alone.
                evict = outbound_floor_evictions(pool, &self.config, now);
            }
            for addr in evict {
                if let Some(c) = pool.connection_closed(addr, now) {
                    out.push(Action::Close(addr, c.id, CloseReason::TooManyConnections));
                    if let Some(r) = self.report_mut() {
                        r.closed += 1;
                    }
                }
            }
            top_up_dials(pool, &self.config, now)
        };
        let active = pool.active_count();
        for addr in &dials {
            if pool.begin_dial(*addr, now) {
                out.push(Action::Dial(*addr));
                if let Some(r) = self.report_mut() {
                    r.dialed += 1;
                }
            }
        }
        if !dials.is_empty() {
            if let Phase::WaitingForPoints(..) = self.phase {
                self.resume_top_up();
            }
        }
        if pool.dialing_count() > 0 {
            return;
        }
        // Nothing in flight, nothing more to dial now. A cycle that began in range (a
        // floor's top-up) ends here too: it does not ask for points.
        let began_in_range = self
            .report_mut()
            .is_some_and(|r| r.connections_before >= bounds.min_threshold);
        if active >= bounds.min_target
            || active > bounds.max_threshold
            || (began_in_range && active >= bounds.min_threshold)
        {
            self.end_cycle(CycleOutcome::ToppedUp, now, pool, rng, out);
            return;
        }
        if self.config.private_mode {
            self.end_cycle(CycleOutcome::Short, now, pool, rng, out);
            return;
        }
        let until = *self
            .ask_until
            .get_or_insert(now + self.config.time_between_looking_for_peers);
        if until <= now {
            self.end_cycle(CycleOutcome::Short, now, pool, rng, out);
            return;
        }
        if let Phase::TopUp(_) = self.phase {
            let Phase::TopUp(mut report) = std::mem::replace(&mut self.phase, Phase::Idle) else {
                unreachable!("phase checked above")
            };
            report.asked_for_points = true;
            self.set_wanting(true, out);
            self.phase = Phase::WaitingForPoints(report, until);
        }
    }

    /// Whether a kind below its floor has a candidate (dialed with room, or after making
    /// room: see [`floor_evictions`]).
    fn floor_work(&self, pool: &Pool) -> bool {
        floors_dialable(pool, &self.config)
    }

    fn resume_top_up(&mut self) {
        if let Phase::WaitingForPoints(report, _) = std::mem::replace(&mut self.phase, Phase::Idle)
        {
            self.phase = Phase::TopUp(report);
        }
    }

    fn end_cycle<R: Rng + ?Sized>(
        &mut self,
        outcome: CycleOutcome,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        let (Phase::TopUp(mut report) | Phase::WaitingForPoints(mut report, _)) =
            std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            return;
        };
        let bounds = self.config.bounds();
        let active = pool.active_count();
        report.ended = now;
        report.connections_after = active;
        report.outcome = outcome;
        self.starving = active < bounds.min_threshold;
        self.floor_hungry = floors_unmet(pool, &self.config);
        self.set_wanting(
            (self.starving || self.floor_hungry) && !self.config.private_mode,
            out,
        );
        self.idle_deadline = self.config.maintenance_idle_time.map(|d| now + d);
        // The shells log the report (the tokio node at info, in the cycle's span).
        out.push(Action::CycleEnded(*report));
        // A hint or a trim request that arrived during the cycle gets a cycle of its own.
        if !self.pending.is_empty() {
            self.start_cycle(now, pool, rng, out);
        }
    }
}
