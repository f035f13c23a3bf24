//! A model of octez's maintenance algorithm: the planner half of the octez policy
//! ([`Policy::Octez`](crate::Policy)), which the node core runs in place of ours so that
//! the simulator (and a real node) compare the two inside one program. The node core
//! adds the rest of the policy: octez's admission (one random extra slot past
//! `max_connections`), its answers (30 best + 20 random known points), its swap requests
//! and its requests for points to every peer every 5 s.
//!
//! This is a model written from the description in the project's reference notes
//! (`reference/tezos-octez-p2p.md`), not octez itself. What it reproduces:
//!
//! * the too-few trigger fires only below `min_connections` and the too-many trigger at
//!   `max_connections` (see [`octez_trigger`]), while action starts below `min_threshold`
//!   and above `max_threshold`: between them only the 120 s idle timer acts;
//! * a top-up dials every candidate at once (up to `max_target - n`), waits for all of
//!   them, and repeats until `min_target` is reached or no candidate is left (octez's
//!   `try_to_contact` loop), then re-checks the thresholds;
//! * with no candidate left it asks every connected peer for points, waits for a new point
//!   or 5 s, and tries again: forever, with no backoff, as long as it is short;
//! * a trim closes connections chosen uniformly at random (trusted ones included);
//! * a failed point is retried after `1 s * 1.2^n` (capped at 2 days), a lost connection
//!   after 60 s;
//! * triggers that fire while a pass runs are lost (octez waits on them only between
//!   passes).
//!
//! * a wake that finds the node in range proposes a swap ([`Action::Swap`]; the node core
//!   carries out octez's swap protocol).
//!
//! Admission follows octez's older rule (one random extra inbound slot past
//! `max_connections`, then the too-many trigger trims back), which deployed nodes ran for
//! years; octez since 2026-03 refuses at `max_threshold` while maintenance runs.
//!
//! What it simplifies: candidates come from the same pool index as ours (octez scans every
//! point; the order, never failed first then oldest failure, is the same; ties go in one
//! pseudo-random order shared by every node, as octez's point hash table iterates the same
//! way on every node, where ours scrambles the order per node).

use crate::config::{BackoffConfig, Bounds, Config, RangeStatus};
use crate::maintenance::{Action, CycleOutcome, CycleReport, DialOutcome, WakeReason, WakeReasons};
use crate::pool::{CloseReason, Pool};
use crate::trigger::TriggerKind;
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// octez's hard-coded wait between two requests for points.
pub const OCTEZ_LOOKING_FOR_PEERS: Duration = Duration::from_secs(5);

/// octez's reconnection backoff: 1 s, x1.2, capped at 2 days, no jitter.
pub fn octez_backoff() -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_secs(1),
        factor: 1.2,
        cap: Duration::from_secs(2 * 24 * 3600),
        jitter: 0.0,
    }
}

/// octez's swap linger: a node accepts at most one swap per 30 s.
pub const OCTEZ_SWAP_LINGER: Duration = Duration::from_secs(30);

/// The settings an octez node runs with, from ours: the same targets, octez's own timers
/// (its reconnection backoff, 60 s before redialing a lost connection, 5 s between
/// requests for points).
pub fn octez_config(config: &Config) -> Config {
    let mut c = config.clone();
    c.reconnection = octez_backoff();
    c.disconnection_delay = Duration::from_secs(60);
    c.time_between_looking_for_peers = OCTEZ_LOOKING_FOR_PEERS;
    // octez keeps one flat table of known points, dials with no regard to groups and
    // has no anchors.
    c.defences = crate::config::Defences::off();
    c
}

/// octez's count triggers: too few after a loss leaves fewer than `min_connections`; too
/// many after a gain reaches `max_connections`.
pub fn octez_trigger(before: usize, after: usize, config: &Config) -> Option<TriggerKind> {
    if after < before && after < config.min_connections {
        Some(TriggerKind::TooFewConnections)
    } else if after > before && after >= config.max_connections {
        Some(TriggerKind::TooManyConnections)
    } else {
        None
    }
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    Dialing(Box<CycleReport>),
    Asking(Box<CycleReport>, Time),
}

/// The octez model's state for one node. Same inputs and [`Action`]s as
/// [`Maintenance`](crate::maintenance::Maintenance), so one harness drives either.
#[derive(Clone, Debug)]
pub struct OctezModel {
    config: Arc<Config>,
    bounds: Bounds,
    phase: Phase,
    idle_deadline: Option<Time>,
    passes: u64,
    /// Inside octez's `try_to_contact` loop: a batch was dialed and the loop goes on
    /// until `min_target` (not just `min_threshold`) or no candidate is left.
    contacting: bool,
    /// The test switch of the idle timer (octez has none; the node core offers it for
    /// both policies).
    idle_timer: bool,
}

impl OctezModel {
    /// A model node with `config`'s targets and idle time (octez's defaults apply for the
    /// rest: 5 s between requests for points, no dial cap).
    pub fn new(config: Arc<Config>) -> OctezModel {
        let bounds = config.bounds();
        OctezModel {
            config,
            bounds,
            phase: Phase::Idle,
            idle_deadline: None,
            passes: 0,
            contacting: false,
            idle_timer: true,
        }
    }

    /// Testing API: switches the idle timer off or on.
    pub fn set_idle_timer(&mut self, enabled: bool, now: Time) {
        self.idle_timer = enabled;
        if enabled && self.idle_deadline.is_none() {
            self.idle_deadline = self.config.maintenance_idle_time.map(|d| now + d);
        }
    }

    /// Maintenance passes run (each entry into octez's `do_maintain`, including the
    /// re-entries after each request for points).
    pub fn cycles(&self) -> u64 {
        self.passes
    }

    /// The next timer.
    pub fn next_deadline(&self, _pool: &Pool) -> Option<Time> {
        match &self.phase {
            Phase::Idle => self.idle_deadline.filter(|_| self.idle_timer),
            Phase::Dialing(_) => None,
            Phase::Asking(_, until) => Some(*until),
        }
    }

    /// A wake reason. Between passes every reason starts one; during a pass only new
    /// points matter (they end the wait after a request for points).
    pub fn wake<R: Rng + ?Sized>(
        &mut self,
        reason: WakeReason,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        match (&self.phase, reason) {
            (Phase::Idle, WakeReason::NewPoints | WakeReason::BackoffExpired) => {}
            (Phase::Idle, _) => {
                let mut reasons = WakeReasons::default();
                reasons.insert(reason);
                self.start(reasons, now, pool, rng, out);
            }
            (Phase::Asking(..), WakeReason::NewPoints) => self.pass(now, pool, rng, out),
            _ => {}
        }
    }

    /// A dial finished (already recorded in the pool by the node core).
    pub fn dial_finished<R: Rng + ?Sized>(
        &mut self,
        outcome: DialOutcome,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        if let Phase::Dialing(r) = &mut self.phase {
            match outcome {
                DialOutcome::Succeeded => r.succeeded += 1,
                DialOutcome::Failed => r.failed += 1,
                DialOutcome::Cancelled => {}
            }
        }
        // octez waits for every dial of the batch before looking again.
        if pool.dialing_count() == 0 && matches!(self.phase, Phase::Dialing(_)) {
            self.pass(now, pool, rng, out);
        }
    }

    /// Time passed: the idle timer, or the 5 s wait after a request for points.
    pub fn handle_timeout<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        match &self.phase {
            Phase::Idle if self.idle_timer && self.idle_deadline.is_some_and(|t| t <= now) => {
                self.wake(WakeReason::Idle, now, pool, rng, out)
            }
            Phase::Asking(_, until) if *until <= now => self.pass(now, pool, rng, out),
            _ => {}
        }
    }

    fn start<R: Rng + ?Sized>(
        &mut self,
        reasons: WakeReasons,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        let n = pool.active_count();
        let cycle = self.passes + 1;
        out.push(Action::CycleStarted { cycle, reasons });
        // octez's maintain: in range, one swap request (never in private mode).
        if self.bounds.classify(n) == RangeStatus::InRange && !self.config.private_mode {
            out.push(Action::Swap);
        }
        self.phase = Phase::Dialing(Box::new(CycleReport::new(cycle, reasons, now, n)));
        self.pass(now, pool, rng, out);
    }

    /// One entry into octez's `do_maintain`.
    fn pass<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        pool: &mut Pool,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        self.passes += 1;
        pool.advance(now);
        let n = pool.active_count();
        match self.bounds.classify(n) {
            RangeStatus::TooMany => {
                // Uniform random among all running connections.
                let mut all: Vec<_> = pool.connections().map(|(a, _)| a).collect();
                all.shuffle(rng);
                let mut closed = 0;
                for a in all.into_iter().take(n - self.bounds.max_target) {
                    if let Some(c) = pool.connection_closed(a, now) {
                        out.push(Action::Close(a, c.id, CloseReason::TooManyConnections));
                        closed += 1;
                    }
                }
                if let Some(r) = self.report_mut() {
                    r.closed += closed;
                }
                self.end(CycleOutcome::Trimmed, now, pool, out);
            }
            RangeStatus::InRange if !(self.contacting && n < self.bounds.min_target) => {
                self.contacting = false;
                self.end(CycleOutcome::ToppedUp, now, pool, out)
            }
            // Below min_threshold, or inside the try_to_contact loop below min_target.
            RangeStatus::TooFew | RangeStatus::InRange => {
                let max_to_contact = self.bounds.max_target.saturating_sub(n);
                let picks: Vec<_> = pool
                    .candidates(self.config.private_mode)
                    .take(max_to_contact)
                    .collect();
                let mut dialed = 0;
                for p in picks {
                    if pool.begin_dial(p, now) {
                        out.push(Action::Dial(p));
                        dialed += 1;
                    }
                }
                if dialed > 0 {
                    let mut report = self.take_report(now, n);
                    report.dialed += dialed;
                    self.contacting = true;
                    self.phase = Phase::Dialing(report);
                } else {
                    // try_to_contact failed: ask for more contacts, wait for a new point
                    // or 5 s, then re-enter do_maintain (which checks min_threshold again).
                    self.contacting = false;
                    let mut report = self.take_report(now, n);
                    if !self.config.private_mode {
                        report.asked_for_points = true;
                        // Every time, to every connected peer: the sim asks them all.
                        out.push(Action::WantPoints(true));
                    }
                    self.phase = Phase::Asking(report, now + OCTEZ_LOOKING_FOR_PEERS);
                }
            }
        }
    }

    fn report_mut(&mut self) -> Option<&mut CycleReport> {
        match &mut self.phase {
            Phase::Dialing(r) | Phase::Asking(r, _) => Some(r),
            Phase::Idle => None,
        }
    }

    fn take_report(&mut self, now: Time, n: usize) -> Box<CycleReport> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Dialing(r) | Phase::Asking(r, _) => r,
            Phase::Idle => Box::new(CycleReport::new(
                self.passes,
                WakeReasons::default(),
                now,
                n,
            )),
        }
    }

    fn end(&mut self, outcome: CycleOutcome, now: Time, pool: &Pool, out: &mut Vec<Action>) {
        self.contacting = false;
        let mut report = self.take_report(now, pool.active_count());
        report.ended = now;
        report.connections_after = pool.active_count();
        report.outcome = outcome;
        self.idle_deadline = self.config.maintenance_idle_time.map(|d| now + d);
        out.push(Action::CycleEnded(*report));
    }
}
