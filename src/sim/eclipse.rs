//! The eclipse experiment (Heilman et al., USENIX Security 2015): attackers with `A`
//! addresses in `G` network groups try to own every outbound connection of honest nodes.
//!
//! # Model
//!
//! * **A spread address plan.** Honest node `i` listens at [`honest_addr`]`(i)`: a public
//!   address with a /16 of its own (first octet 11 to 99, second octet from `i`: up to
//!   [`MAX_HONEST`] nodes). Attacker address `j` (`0..A`) is [`attacker_addr`]`(j, G)`:
//!   group `j % G` is a /16 of a disjoint public range (first octets 101 to 223, skipping
//!   every range that is not public), with `ceil(A / G)` addresses in it. So the nodes'
//!   group rules ([`crate::pool::netgroup`]: IPv4 /16) see `honest + G` groups.
//!   Without the scenario, the simulator keeps [`node_addr`](super::node_addr) (one /16
//!   below 65,536 nodes) and its determinism pins.
//! * **Attackers** are simulated nodes after the honest ones (indexes `honest..honest +
//!   A`), scripted, with no node core: they accept every connection and never close one;
//!   they answer every request for points with `discovery.answer_size` attacker
//!   addresses only; from `attack_start` they send every connection they hold an
//!   unsolicited advertisement of `flood_size` attacker addresses every
//!   `flood_interval`, and they dial honest nodes so as to hold `per_node` inbound
//!   connections to each (one per *slot*: `min(per_node, G)` slots a node, each in its own
//!   group; a slot whose dial fails or whose connection is closed dials again, from a
//!   random address of its group, `redial_after` later). Their draws come from the
//!   scenario's own seeded RNG.
//! * **Churn with persistence.** Honest nodes leave and come back as churn says
//!   ([`SimConfig::churn_per_minute`](super::SimConfig::churn_per_minute), fractional
//!   rates carried over from minute to minute); a node that leaves saves its pool
//!   ([`NodeCore::snapshot`](crate::core::NodeCore::snapshot)) and, when it comes back,
//!   a fresh core restores it aged by the time away ([`Snapshot::aged`],
//!   [`NodeCore::restore`](crate::core::NodeCore::restore): its anchors dialed first
//!   when `defences.anchors` is on) before it starts, as `peerkeeper node --data-dir`
//!   does.
//! * **The restart case** (Heilman et al.'s attack): at `restart_at` a seeded sample of
//!   `restart_fraction` of the alive honest nodes (bootstrap nodes excepted) restarts at
//!   once from its saved pool, down for `restart_down`; they are measured `restart_check`
//!   after they come back.
//!
//! # Measured
//!
//! An honest node is **eclipsed** when it has at least one outbound connection and every
//! outbound connection is to an attacker address. At each checkpoint (`checks`, after
//! `attack_start`; 1 h and 24 h by default) and for the restart case: the alive honest
//! nodes, the fraction eclipsed, the nodes with no outbound connection, the mean share
//! of outbound connections to attackers (over the nodes with one), and the mean share of
//! attacker points in their pools (pollution). The nodes' defences are their config's
//! ([`Defences`]).

use super::{node_peer_id, Back, Ev, Msg, Simulation};
use crate::config::Defences;
use crate::core::{Admission, CoreStats, DialResult, Hello, Input};
use crate::pool::{netgroup, ConnId, Direction, Snapshot};
use crate::rng::{derive, seeded, SeededRng};
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// The port of every address of the plan.
pub const PORT: u16 = 9732;
/// Most honest nodes the plan has a /16 for (first octets 11 to 99).
pub const MAX_HONEST: usize = 89 * 256;
/// Most addresses in one attacker group (a /16, hosts 1 to 65,534).
pub const MAX_PER_GROUP: usize = 65_534;
/// Most attacker groups: every /16 of the public first octets 101 to 223 outside the
/// special ranges' first octets (100, 127, 169, 172, 192, 198, 203).
pub const MAX_GROUPS: usize = ATTACKER_OCTETS * 256;
const ATTACKER_OCTETS: usize = 117;
/// A churn rate for the scenario: each node restarts about every 6 hours.
pub const DEFAULT_CHURN_PER_MINUTE: f64 = 1.0 / 360.0;

/// The first octets of the attacker groups, in order.
fn attacker_octet(n: usize) -> u8 {
    (101u8..=223)
        .filter(|o| ![127, 169, 172, 192, 198, 203].contains(o))
        .nth(n)
        .unwrap_or(223)
}

/// The address of honest node `i` (below [`MAX_HONEST`]): `(11 + i / 256).(i % 256).0.1`,
/// a /16 of its own.
///
/// ```
/// use peerkeeper::sim::eclipse::honest_addr;
/// assert_eq!(honest_addr(0).to_string(), "11.0.0.1:9732");
/// assert_eq!(honest_addr(300).to_string(), "12.44.0.1:9732");
/// ```
pub fn honest_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([11 + (i >> 8) as u8, i as u8, 0, 1], PORT))
}

/// The address of attacker address `j` of an attacker with `groups` groups: in group
/// `j % groups` (a /16 from 101.0/16 up), host `j / groups + 1` (below
/// [`MAX_PER_GROUP`] per group).
///
/// ```
/// use peerkeeper::sim::eclipse::attacker_addr;
/// assert_eq!(attacker_addr(0, 3).to_string(), "101.0.0.1:9732");
/// assert_eq!(attacker_addr(4, 3).to_string(), "101.1.0.2:9732");
/// assert_eq!(attacker_addr(700, 1000).to_string(), "103.188.0.1:9732");
/// ```
pub fn attacker_addr(j: usize, groups: usize) -> SocketAddr {
    let g = j % groups.max(1);
    let host = j / groups.max(1) + 1;
    SocketAddr::from((
        [
            attacker_octet(g >> 8),
            g as u8,
            (host >> 8) as u8,
            host as u8,
        ],
        PORT,
    ))
}

/// The eclipse scenario ([`SimConfig::eclipse`](super::SimConfig::eclipse)).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EclipseConfig {
    /// Attacker addresses (`A`).
    pub attackers: usize,
    /// Attacker network groups (`G`, at most `A`): address `j` is in group `j % G`.
    pub groups: usize,
    /// When the attackers start dialing and flooding (the honest network converges
    /// first).
    pub attack_start: Duration,
    /// How often an attacker floods each connection it holds.
    pub flood_interval: Duration,
    /// Attacker addresses per flood (at most
    /// [`MAX_POINTS_PER_MESSAGE`](crate::MAX_POINTS_PER_MESSAGE): more is a protocol
    /// violation the nodes ban for).
    pub flood_size: usize,
    /// Inbound connections the attackers try to hold to each honest node (each from
    /// another group, so at most `groups`).
    pub per_node: usize,
    /// How long an attacker slot waits before dialing again after a failure or a close.
    pub redial_after: Duration,
    /// The restart case: when the sample restarts (virtual time from the run's start);
    /// `None`: no restart case.
    pub restart_at: Option<Duration>,
    /// The restart case: the fraction of the alive honest nodes that restarts.
    pub restart_fraction: f64,
    /// The restart case: how long the sample stays down.
    pub restart_down: Duration,
    /// The restart case: how long after they come back they are measured.
    pub restart_check: Duration,
    /// Checkpoints, after `attack_start`.
    pub checks: Vec<Duration>,
}

impl EclipseConfig {
    /// `attackers` addresses in `groups` groups; the attack starts at 10 min, floods of
    /// 100 addresses every 30 s, 4 inbound connections held per honest node (redialed 1
    /// min after a close), checkpoints 1 h and 24 h after the attack starts, and the
    /// restart case right after the last checkpoint: 10 % of the honest nodes down for 1
    /// min, measured 10 min after they come back.
    pub fn new(attackers: usize, groups: usize) -> EclipseConfig {
        let attack_start = Duration::from_secs(600);
        let checks = vec![Duration::from_secs(3600), Duration::from_secs(24 * 3600)];
        EclipseConfig {
            attackers,
            groups,
            attack_start,
            flood_interval: Duration::from_secs(30),
            flood_size: crate::MAX_POINTS_PER_MESSAGE,
            per_node: 4,
            redial_after: Duration::from_secs(60),
            restart_at: Some(attack_start + Duration::from_secs(24 * 3600)),
            restart_fraction: 0.1,
            restart_down: Duration::from_secs(60),
            restart_check: Duration::from_secs(600),
            checks,
        }
    }

    /// The restart case's time when the attack starts at `attack_start` and the
    /// checkpoints are as set: right after the last checkpoint.
    pub fn default_restart_at(&self) -> Duration {
        self.attack_start + self.checks.iter().copied().max().unwrap_or_default()
    }

    /// The virtual time the scenario needs for every figure: the last checkpoint, and the
    /// restart case's measurement.
    pub fn duration(&self) -> Duration {
        let checks = self.attack_start + self.checks.iter().copied().max().unwrap_or_default();
        let restart = self.restart_at.map_or(Duration::ZERO, |r| {
            r + self.restart_down + self.restart_check
        });
        checks.max(restart)
    }

    /// Whether the scenario fits `honest` honest nodes (late joiners included); the error
    /// names the `peerkeeper simulate` flag.
    ///
    /// # Errors
    ///
    /// No attacker; no group or more groups than addresses or than the plan has; more
    /// than [`MAX_PER_GROUP`] addresses in a group; more than [`MAX_HONEST`] honest nodes;
    /// a flood interval under a second; a flood size of 0 or above
    /// [`MAX_POINTS_PER_MESSAGE`](crate::MAX_POINTS_PER_MESSAGE); a restart fraction out
    /// of `[0, 1]`.
    pub fn check(&self, honest: usize) -> Result<(), String> {
        if self.attackers == 0 {
            return Err("--attackers must be at least 1".into());
        }
        if self.groups == 0 {
            return Err("--attacker-groups must be at least 1".into());
        }
        if self.groups > self.attackers {
            return Err(format!(
                "--attacker-groups must be at most --attackers ({}), got {}",
                self.attackers, self.groups
            ));
        }
        if self.groups > MAX_GROUPS {
            return Err(format!(
                "--attacker-groups must be at most {MAX_GROUPS} (the /16s of the attackers' range), got {}",
                self.groups
            ));
        }
        if self.attackers.div_ceil(self.groups) > MAX_PER_GROUP {
            return Err(format!(
                "--attackers: at most {MAX_PER_GROUP} addresses per group (a /16), got {} in {} groups",
                self.attackers, self.groups
            ));
        }
        if honest > MAX_HONEST {
            return Err(format!(
                "--nodes (with --late-joiners) must be at most {MAX_HONEST} with --attackers (a /16 each), got {honest}"
            ));
        }
        if self.flood_interval < Duration::from_secs(1) {
            return Err("--flood-interval must be at least 1s".into());
        }
        if self.flood_size == 0 || self.flood_size > crate::MAX_POINTS_PER_MESSAGE {
            return Err(format!(
                "the flood size must be in 1..={}, got {}",
                crate::MAX_POINTS_PER_MESSAGE,
                self.flood_size
            ));
        }
        if !(0.0..=1.0).contains(&self.restart_fraction) {
            return Err(format!(
                "--restart-fraction must be in [0, 1], got {}",
                self.restart_fraction
            ));
        }
        Ok(())
    }
}

/// The figures at one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EclipseCheck {
    /// When, virtual ms from the run's start.
    pub at_ms: u64,
    /// When, ms after the attack started.
    pub after_attack_ms: u64,
    /// Alive honest nodes measured.
    pub nodes: usize,
    /// Of them, those eclipsed: at least one outbound connection, every one to an
    /// attacker.
    pub eclipsed: usize,
    /// `eclipsed` over `nodes`.
    pub eclipsed_fraction: f64,
    /// Of the eclipsed, those whose every connection, inbound ones too, is an attacker's:
    /// the others still hear from honest peers that dialed them.
    pub fully_eclipsed: usize,
    /// Nodes with no outbound connection.
    pub no_outbound: usize,
    /// Mean outbound connections per node.
    pub mean_outbound: f64,
    /// Mean share of outbound connections to attackers, over the nodes with one.
    pub attacker_outbound_share: f64,
    /// Nodes with two or more outbound connections into one attacker group (what
    /// `defences.diverse_dials` prevents while other groups are known).
    pub doubled_in_attacker_group: usize,
    /// Mean inbound connections from attackers per node.
    pub mean_attacker_inbound: f64,
    /// Mean share of attacker addresses in the nodes' pools (pollution), over the nodes
    /// with a non-empty pool.
    pub pool_pollution: f64,
    /// Mean pool size.
    pub mean_pool: f64,
}

/// The restart case's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RestartFigures {
    /// When the sample restarted, virtual ms.
    pub at_ms: u64,
    /// Nodes restarted.
    pub restarted: usize,
    /// The restarted nodes (alive ones) measured `restart_check` after they came back;
    /// `None` when the run ended first.
    pub check: Option<EclipseCheck>,
}

/// The eclipse section of [`SimReport`](super::SimReport).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EclipseReport {
    /// Attacker addresses.
    pub attackers: usize,
    /// Attacker groups.
    pub groups: usize,
    /// Honest nodes (late joiners included).
    pub honest: usize,
    /// When the attack started, virtual ms.
    pub attack_start_ms: u64,
    /// The honest nodes' defences.
    pub defences: Defences,
    /// The checkpoints reached, in order (those past the end of the run are missing).
    pub checks: Vec<EclipseCheck>,
    /// The checkpoints asked for, ms after the attack started.
    pub checks_asked_ms: Vec<u64>,
    /// The restart case, when it ran.
    pub restart: Option<RestartFigures>,
    /// Dials by attackers to honest nodes.
    pub attacker_dials: u64,
    /// Of them, admitted.
    pub attacker_dials_admitted: u64,
    /// Of them, refused by the node's core (the rest reached a node that was down).
    pub attacker_dials_refused: u64,
    /// Dials by honest nodes that reached an attacker (all accepted).
    pub honest_dials_to_attackers: u64,
    /// Unsolicited advertisements the attackers sent.
    pub floods: u64,
    /// Requests for points the attackers answered.
    pub answers: u64,
    /// Connections honest nodes closed on attackers.
    pub closed_by_honest: u64,
    /// Unsolicited advertisements the honest cores ignored (over their rate).
    pub unsolicited_ignored: u64,
    /// Protocol violations the honest cores counted (and the bans that followed).
    pub violations: u64,
    /// Bans by honest cores.
    pub bans: u64,
    /// Honest nodes that came back and restored their saved pool (churn and the restart
    /// case).
    pub restores: u64,
    /// Anchors in the pools restored (the last outbound peers, longest-connected first).
    pub anchors_restored: u64,
    /// Of them, attacker addresses: an attacker never closes a connection, so its
    /// connections tend to be the longest-lived.
    pub anchors_to_attackers: u64,
}

/// One attacker slot: an inbound connection the attackers try to hold to one honest node.
#[derive(Clone, Copy, Debug)]
struct Slot {
    node: u32,
    group: u32,
    /// The connection held, or the dial in flight.
    link: Option<u64>,
}

/// The scenario's running state.
pub(super) struct EclipseState {
    cfg: EclipseConfig,
    honest: usize,
    /// Every simulated node's address: honest ones, then attackers.
    pub addrs: Vec<SocketAddr>,
    /// Address -> node (honest or attacker).
    pub table: HashMap<SocketAddr, usize>,
    rng: SeededRng,
    answer_size: usize,
    defences: Defences,
    /// Connections the attackers hold: link -> (attacker, honest node).
    held: BTreeMap<u64, (u32, u32)>,
    slots: Vec<Slot>,
    slot_of_link: HashMap<u64, usize>,
    /// Saved pools of the nodes that are away, and when they were saved.
    saved: HashMap<usize, (Snapshot, Time)>,
    churn_carry: f64,
    restarted: Vec<usize>,
    checks: Vec<EclipseCheck>,
    restart: Option<RestartFigures>,
    attacker_dials: u64,
    admitted: u64,
    refused: u64,
    honest_dials: u64,
    floods: u64,
    answers: u64,
    closed_by_honest: u64,
    restores: u64,
    anchors: (u64, u64),
    /// The counters of the honest cores that were replaced (churn).
    retired: (u64, u64, u64),
}

impl EclipseState {
    /// Counts a replaced core's counters.
    pub fn retire(&mut self, s: &CoreStats) {
        self.retired.0 += s.points.unsolicited_ignored;
        self.retired.1 += s.violations;
        self.retired.2 += s.bans;
    }

    /// Keeps the pool node `i` saved at `now`.
    pub fn save(&mut self, i: usize, snapshot: Snapshot, now: Time) {
        self.saved.insert(i, (snapshot, now));
    }

    /// How many nodes leave this minute when `expected` should on average: the fraction
    /// is carried over.
    pub fn churn_count(&mut self, expected: f64) -> usize {
        self.churn_carry += expected.max(0.0);
        let n = self.churn_carry.floor();
        self.churn_carry -= n;
        n as usize
    }

    fn is_attacker(&self, addr: &SocketAddr) -> bool {
        self.table.get(addr).is_some_and(|&j| j >= self.honest)
    }

    /// The section of the report; `cores` are the stats of the cores in place.
    pub fn report(&self, cores: impl Iterator<Item = CoreStats>) -> EclipseReport {
        let mut totals = self.retired;
        for s in cores {
            totals.0 += s.points.unsolicited_ignored;
            totals.1 += s.violations;
            totals.2 += s.bans;
        }
        EclipseReport {
            attackers: self.cfg.attackers,
            groups: self.cfg.groups,
            honest: self.honest,
            attack_start_ms: self.cfg.attack_start.as_millis() as u64,
            defences: self.defences.clone(),
            checks: self.checks.clone(),
            checks_asked_ms: self
                .cfg
                .checks
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            restart: self.restart.clone(),
            attacker_dials: self.attacker_dials,
            attacker_dials_admitted: self.admitted,
            attacker_dials_refused: self.refused,
            honest_dials_to_attackers: self.honest_dials,
            floods: self.floods,
            answers: self.answers,
            closed_by_honest: self.closed_by_honest,
            unsolicited_ignored: totals.0,
            violations: totals.1,
            bans: totals.2,
            restores: self.restores,
            anchors_restored: self.anchors.0,
            anchors_to_attackers: self.anchors.1,
        }
    }

    /// `k` attacker addresses drawn from the scenario's RNG (all of them if fewer).
    fn sample(&mut self, k: usize) -> Vec<SocketAddr> {
        let attackers = &self.addrs[self.honest..];
        attackers
            .choose_multiple(&mut self.rng, k.min(attackers.len()))
            .copied()
            .collect()
    }
}

impl Simulation {
    /// Sets the scenario up for `honest` honest nodes: the address plan, the attackers,
    /// the events.
    pub(super) fn setup_eclipse(&mut self, cfg: EclipseConfig, honest: usize) {
        let a = cfg.attackers;
        let g = cfg.groups.max(1);
        let mut addrs: Vec<SocketAddr> = (0..honest).map(honest_addr).collect();
        addrs.extend((0..a).map(|j| attacker_addr(j, g)));
        let table = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let mut rng = seeded(derive(self.link_seed, 0x0065_636c_6970_7365));
        // Each node's slots in distinct groups, from a random first group.
        let per = cfg.per_node.min(g);
        let mut slots = Vec::with_capacity(honest * per);
        for node in 0..honest {
            let base = rng.gen_range(0..g);
            for k in 0..per {
                slots.push(Slot {
                    node: node as u32,
                    group: ((base + k) % g) as u32,
                    link: None,
                });
            }
        }
        let start = Time::ZERO + cfg.attack_start;
        let checks: Vec<Duration> = cfg.checks.clone();
        let restart_at = cfg.restart_at;
        self.eclipse = Some(EclipseState {
            honest,
            addrs,
            table,
            rng,
            answer_size: self.config.discovery.answer_size,
            defences: self.config.defences.clone(),
            held: BTreeMap::new(),
            slots,
            slot_of_link: HashMap::new(),
            saved: HashMap::new(),
            churn_carry: 0.0,
            restarted: Vec::new(),
            checks: Vec::new(),
            restart: None,
            attacker_dials: 0,
            admitted: 0,
            refused: 0,
            honest_dials: 0,
            floods: 0,
            answers: 0,
            closed_by_honest: 0,
            restores: 0,
            anchors: (0, 0),
            retired: (0, 0, 0),
            cfg,
        });
        self.push(start, Ev::AttackStart);
        for (k, d) in checks.iter().enumerate() {
            self.push(start + *d, Ev::EclipseCheck(k));
        }
        if let Some(r) = restart_at {
            self.push(Time::ZERO + r, Ev::Restart);
        }
    }

    /// Node `i` comes back: its saved pool, aged by the time away, is restored (before
    /// it starts, as `peerkeeper node --data-dir` does).
    pub(super) fn restore_saved(&mut self, i: usize) {
        let now = self.now;
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        let Some((snap, saved_at)) = e.saved.remove(&i) else {
            return;
        };
        e.restores += 1;
        e.anchors.0 += snap.anchors.len() as u64;
        e.anchors.1 += snap
            .anchors
            .iter()
            .filter(|a| e.is_attacker(&a.addr))
            .count() as u64;
        let snap = snap.aged(now.saturating_since(saved_at));
        self.tracer.record(i, now, || Input::Restore {
            snapshot: Box::new(snap.clone()),
        });
        self.nodes[i].core.restore(&snap, now);
    }

    /// The attack starts: every slot dials (spread over the first flood interval), and
    /// the floods begin.
    pub(super) fn attack_start(&mut self) {
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        let spread = e.cfg.flood_interval.as_millis().max(1) as u64;
        let n = e.slots.len();
        let times: Vec<u64> = (0..n).map(|_| e.rng.gen_range(0..spread)).collect();
        let now = self.now;
        let flood = now + e.cfg.flood_interval;
        for (slot, t) in times.into_iter().enumerate() {
            self.push(now + Duration::from_millis(t), Ev::AttackDial(slot));
        }
        self.push(flood, Ev::Flood);
    }

    /// An attacker dials for `slot`, from a random address of the slot's group.
    pub(super) fn attack_dial(&mut self, slot: usize) {
        let link = self.next_link;
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        let s = e.slots[slot];
        if s.link.is_some() {
            return;
        }
        let g = e.cfg.groups.max(1);
        let group = s.group as usize;
        // Addresses group, group + G, ... below A.
        let in_group = (e.cfg.attackers - group).div_ceil(g);
        let j = group + g * e.rng.gen_range(0..in_group);
        let from = e.honest + j;
        let to = s.node as usize;
        e.slots[slot].link = Some(link);
        e.attacker_dials += 1;
        self.next_link += 1;
        self.links.insert(link, (from as u32, to as u32));
        // Hello, hello back, the dialer's signature.
        self.messages += 2;
        self.send_legs(
            from,
            to,
            3,
            Ev::AttackArrive {
                from,
                to,
                link,
                slot,
            },
        );
    }

    /// `slot`'s connection (or dial) ended: it dials again later.
    fn slot_lost(&mut self, slot: usize) {
        let now = self.now;
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        e.slots[slot].link = None;
        let at = now + e.cfg.redial_after;
        self.push(at, Ev::AttackDial(slot));
    }

    /// An attacker's handshake reaches honest node `to`: its core admits or refuses it.
    pub(super) fn attack_arrive(&mut self, from: usize, to: usize, link: u64, slot: usize) {
        let now = self.now;
        let remote = self.addr(from);
        let hello = Hello {
            peer: node_peer_id(self.cfg.seed, from),
            listen_port: remote.port(),
        };
        let n = &mut self.nodes[to];
        let admitted = if !n.alive || n.nat {
            false
        } else {
            let conn = ConnId(link);
            self.tracer.record(to, now, || Input::Inbound {
                conn,
                remote,
                hello,
            });
            let admission = n.core.handle_inbound(conn, remote, hello, now);
            let e = self.eclipse.as_mut().expect("the scenario runs");
            match admission {
                Admission::Accept => {
                    e.admitted += 1;
                    true
                }
                Admission::Refuse { .. } => {
                    e.refused += 1;
                    false
                }
            }
        };
        if admitted {
            let e = self.eclipse.as_mut().expect("the scenario runs");
            e.held.insert(link, (from as u32, to as u32));
            e.slot_of_link.insert(link, slot);
        } else {
            self.links.remove(&link);
            self.slot_lost(slot);
        }
        if self.nodes[to].alive {
            self.after(to);
        }
    }

    /// Honest node `from` dialed attacker `to`: it accepts.
    pub(super) fn attacker_accepts(
        &mut self,
        from: usize,
        to: usize,
        point: SocketAddr,
        link: u64,
    ) {
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        e.honest_dials += 1;
        e.held.insert(link, (to as u32, from as u32));
        let result = DialResult::Connected {
            conn: ConnId(link),
            peer: node_peer_id(self.cfg.seed, to),
        };
        let epoch = self.nodes[from].epoch;
        self.send(
            to,
            from,
            Ev::DialResult {
                at: from,
                epoch,
                to,
                point,
                link,
                result,
            },
        );
    }

    /// A message reaches attacker `to` on `link`.
    pub(super) fn attacker_gets(&mut self, to: usize, link: u64, msg: Msg) {
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        match msg {
            Msg::Ask => {
                let Some(&(_, h)) = e.held.get(&link) else {
                    return;
                };
                e.answers += 1;
                let k = e.answer_size;
                let points = e.sample(k);
                self.send_msg(to, h as usize, link, Msg::Points(points));
            }
            Msg::Close => {
                if e.held.remove(&link).is_some() {
                    e.closed_by_honest += 1;
                }
                if let Some(slot) = e.slot_of_link.remove(&link) {
                    self.slot_lost(slot);
                }
            }
            // Points, swaps: ignored.
            _ => {}
        }
    }

    /// Every attacker floods every connection it holds (in link order).
    pub(super) fn flood(&mut self) {
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        let held: Vec<(u64, (u32, u32))> = e.held.iter().map(|(l, p)| (*l, *p)).collect();
        let k = e.cfg.flood_size;
        let next = self.now + e.cfg.flood_interval;
        let mut floods = Vec::with_capacity(held.len());
        for (link, (a, h)) in held {
            floods.push((link, a as usize, h as usize, e.sample(k)));
        }
        e.floods += floods.len() as u64;
        for (link, a, h, points) in floods {
            self.send_msg(a, h, link, Msg::Points(points));
        }
        self.push(next, Ev::Flood);
    }

    /// The figures of the alive nodes among `who` now.
    fn measure(&self, who: &[usize], after_attack: Duration) -> EclipseCheck {
        let e = self.eclipse.as_ref().expect("the scenario runs");
        let now = self.now;
        let (mut nodes, mut eclipsed, mut no_out, mut doubled) = (0usize, 0usize, 0usize, 0usize);
        let mut fully = 0usize;
        let (mut out_total, mut share_sum, mut with_out) = (0usize, 0f64, 0usize);
        let (mut inbound_bad, mut pollution_sum, mut with_pool, mut pool_total) =
            (0usize, 0f64, 0usize, 0usize);
        for &i in who {
            let n = &self.nodes[i];
            if !n.alive {
                continue;
            }
            nodes += 1;
            let (mut out, mut bad) = (0usize, 0usize);
            let mut groups: Vec<u64> = Vec::new();
            for (a, c) in n.core.pool().connections() {
                let attacker = e.is_attacker(&a);
                if c.direction == Direction::Outbound {
                    out += 1;
                    bad += usize::from(attacker);
                    if attacker {
                        groups.push(netgroup(&a));
                    }
                } else {
                    inbound_bad += usize::from(attacker);
                }
            }
            groups.sort_unstable();
            if groups.windows(2).any(|w| w[0] == w[1]) {
                doubled += 1;
            }
            out_total += out;
            if out == 0 {
                no_out += 1;
            } else {
                with_out += 1;
                share_sum += bad as f64 / out as f64;
                if bad == out {
                    eclipsed += 1;
                    if n.core.pool().connections().all(|(a, _)| e.is_attacker(&a)) {
                        fully += 1;
                    }
                }
            }
            let snap = n.core.snapshot(now);
            if !snap.points.is_empty() {
                let bad = snap
                    .points
                    .iter()
                    .filter(|p| e.is_attacker(&p.addr))
                    .count();
                with_pool += 1;
                pool_total += snap.points.len();
                pollution_sum += bad as f64 / snap.points.len() as f64;
            }
        }
        let mean = |x: f64, n: usize| if n == 0 { 0.0 } else { x / n as f64 };
        EclipseCheck {
            at_ms: now.as_millis(),
            after_attack_ms: after_attack.as_millis() as u64,
            nodes,
            eclipsed,
            eclipsed_fraction: mean(eclipsed as f64, nodes),
            fully_eclipsed: fully,
            no_outbound: no_out,
            mean_outbound: mean(out_total as f64, nodes),
            attacker_outbound_share: mean(share_sum, with_out),
            doubled_in_attacker_group: doubled,
            mean_attacker_inbound: mean(inbound_bad as f64, nodes),
            pool_pollution: mean(pollution_sum, with_pool),
            mean_pool: mean(pool_total as f64, with_pool),
        }
    }

    /// The `k`-th checkpoint: every honest node.
    pub(super) fn eclipse_check(&mut self, k: usize) {
        let Some(e) = self.eclipse.as_ref() else {
            return;
        };
        let after = e.cfg.checks[k];
        let all: Vec<usize> = (0..e.honest).collect();
        let c = self.measure(&all, after);
        if let Some(e) = self.eclipse.as_mut() {
            e.checks.push(c);
        }
    }

    /// The restart case: a seeded sample of the alive honest nodes (bootstrap nodes
    /// excepted) restarts from its saved pool.
    pub(super) fn eclipse_restart(&mut self) {
        let now = self.now;
        let bootstrap = self.cfg.bootstrap;
        let Some(e) = self.eclipse.as_mut() else {
            return;
        };
        let alive: Vec<usize> = (bootstrap..e.honest)
            .filter(|i| self.nodes[*i].alive)
            .collect();
        let n = (e.cfg.restart_fraction * alive.len() as f64).round() as usize;
        let mut picks: Vec<usize> = alive.choose_multiple(&mut e.rng, n).copied().collect();
        picks.sort_unstable();
        let down = e.cfg.restart_down;
        let check = now + down + e.cfg.restart_check;
        e.restart = Some(RestartFigures {
            at_ms: now.as_millis(),
            restarted: picks.len(),
            check: None,
        });
        e.restarted = picks.clone();
        for i in picks {
            self.leave(i, Back::After(down));
        }
        self.push(check, Ev::RestartCheck);
    }

    /// The restart case's measurement: the restarted nodes.
    pub(super) fn restart_check(&mut self) {
        let Some(e) = self.eclipse.as_ref() else {
            return;
        };
        let who = e.restarted.clone();
        let after = self.now.saturating_since(Time::ZERO + e.cfg.attack_start);
        let c = self.measure(&who, after);
        if let Some(r) = self.eclipse.as_mut().and_then(|e| e.restart.as_mut()) {
            r.check = Some(c);
        }
    }
}
