//! A deterministic, discrete-event network simulator that drives the same pure core as
//! the tokio workers (the [`Pool`], the [`Maintenance`] cycle machine, the
//! [`DiscoveryState`]) for thousands of nodes in virtual time, or the
//! [octez model](octez) for comparison.
//!
//! # Model
//!
//! * Every node has a listening point (`10.x.y.z:9732`); a few are the bootstrap points
//!   every node knows at start. Nodes start at random times in the first five seconds.
//! * Each link has a latency drawn once from the configured distribution (so messages on
//!   one link stay in order). A dial is a request and a result, each one latency; a close
//!   reaches the other side one latency later.
//! * Faults: a dial fails with probability `dial_failure_rate`; a peer-sharing message
//!   (request or answer) is lost with probability `message_loss`; a `nat_fraction` of the
//!   nodes accept no incoming connection; churn makes nodes leave (closing their links)
//!   and come back later with a fresh pool; a one-off departure of a fraction of the nodes
//!   can be scheduled.
//! * A node at `max_connections` refuses a dial with up to 50 other points (octez's Nack).
//!
//! # Determinism
//!
//! One seed drives everything: the topology, each node's RNG, faults, latencies. Events
//! are ordered by (time, sequence number), every collection iterated is ordered, and the
//! processed events are folded into a 64-bit FNV-1a hash reported as `event_log_hash`:
//! the same seed gives the same hash.

mod chart;
pub mod octez;

pub use chart::write_chart;

use crate::config::{Bounds, Config};
use crate::discovery::{validate_point, DiscoveryState};
use crate::maintenance::{Action, Maintenance, WakeReason};
use crate::pool::{Direction, PeerId, Pool, PoolLimits, Source};
use crate::report::{components, DialCounts, NetworkReport, SharingCounts, Spread};
use crate::transport::{CloseReason, DialError};
use crate::trigger::{count_trigger, TriggerKind};
use crate::Time;
use octez::{octez_backoff, octez_trigger, OctezModel};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which maintenance algorithm the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// peerkeeper's maintenance and discovery.
    Peerkeeper,
    /// A model of octez's maintenance algorithm (not octez itself; see the `octez` module).
    Octez,
}

/// How link latencies are drawn (once per link).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Every link the same.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform(Duration, Duration),
}

impl Latency {
    fn draw(&self, rng: &mut StdRng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) if hi > lo => {
                Duration::from_micros(rng.gen_range(lo.as_micros() as u64..=hi.as_micros() as u64))
            }
            Latency::Uniform(lo, _) => lo,
        }
    }
}

/// A simulation scenario.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// The seed of everything.
    pub seed: u64,
    /// Virtual duration.
    pub duration: Duration,
    /// The algorithm.
    pub policy: Policy,
    /// The nodes' config (targets, timers); the octez model keeps octez's own timers.
    pub node_config: Config,
    /// How many nodes are bootstrap points (the first ones).
    pub bootstrap: usize,
    /// Link latency.
    pub latency: Latency,
    /// Probability that a dial fails.
    pub dial_failure_rate: f64,
    /// Probability that a peer-sharing message is lost.
    pub message_loss: f64,
    /// Fraction of nodes that accept no incoming connection.
    pub nat_fraction: f64,
    /// Fraction of the nodes that leave (and come back 1 to 5 minutes later) per virtual
    /// minute.
    pub churn_per_minute: f64,
    /// At this time, this fraction of the nodes leaves for good.
    pub mass_departure: Option<(Duration, f64)>,
    /// At most this many chart samples are kept.
    pub max_samples: usize,
}

impl SimConfig {
    /// A fault-free scenario of `nodes` nodes for `duration`, with the simulator's node
    /// config ([`sim_node_config`]).
    pub fn new(nodes: usize, seed: u64, duration: Duration, policy: Policy) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            duration,
            policy,
            node_config: sim_node_config(),
            bootstrap: 3.min(nodes),
            latency: Latency::Uniform(Duration::from_millis(10), Duration::from_millis(150)),
            dial_failure_rate: 0.0,
            message_loss: 0.0,
            nat_fraction: 0.0,
            churn_per_minute: 0.0,
            mass_departure: None,
            max_samples: 1000,
        }
    }
}

/// The node config the simulator uses by default: targets 4/8/12 (thresholds 5 and 11),
/// octez's timers (120 s idle, 5 s between looks for peers), a pool of 256 points.
pub fn sim_node_config() -> Config {
    let mut c = Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        max_concurrent_dials: 4,
        max_known_points: 256,
        known_points_gc_target: 192,
        max_known_peers: 256,
        ..Config::default()
    };
    c.discovery.allow_private_addresses = true;
    c
}

/// One chart sample.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Virtual time, ms.
    pub t_ms: u64,
    /// Connections per alive node.
    pub connections: Spread,
    /// Mean pool size per alive node.
    pub mean_pool: f64,
    /// Alive nodes.
    pub alive: usize,
}

/// What a run reports: the demo's report keys plus the simulator's.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// The keys shared with `peerkeeper demo`.
    #[serde(flatten)]
    pub network: NetworkReport,
    /// The policy run.
    pub policy: Policy,
    /// Virtual time simulated, ms.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages sent (dial requests and results, closes, peer-sharing requests/answers).
    pub messages: u64,
    /// FNV-1a hash of the processed events, hex.
    pub event_log_hash: String,
    /// Alive nodes at the end.
    pub alive: usize,
    /// Alive nodes below `min_threshold` at the end, and why, if any.
    pub short_nodes: usize,
    /// Why some nodes are short, when they are.
    pub short_reason: Option<String>,
    /// Maintenance cycles per alive node per virtual hour, over the last half of the run.
    pub late_cycles_per_node_hour: f64,
    /// Dials per alive node per virtual hour, over the last half of the run.
    pub late_dials_per_node_hour: f64,
    /// Heap bytes of node state per node, estimated from the pools' sizes.
    pub approx_bytes_per_node: usize,
}

/// A finished run: the report and the chart samples.
#[derive(Clone, Debug)]
pub struct SimOutcome {
    /// The report.
    pub report: SimReport,
    /// Samples over time (bounded by `max_samples`).
    pub samples: Vec<Sample>,
    /// Final connection count per node (alive or not).
    pub final_connections: Vec<usize>,
    /// Whether each node is alive at the end.
    pub alive: Vec<bool>,
}

enum Brain {
    Ours {
        m: Box<Maintenance>,
        d: Box<DiscoveryState>,
    },
    Octez(Box<OctezModel>),
}

impl Brain {
    fn cycles(&self) -> u64 {
        match self {
            Brain::Ours { m, .. } => m.cycles(),
            Brain::Octez(o) => o.cycles(),
        }
    }
}

struct SimNode {
    addr: SocketAddr,
    peer: PeerId,
    alive: bool,
    nat: bool,
    epoch: u32,
    pool: Pool,
    brain: Brain,
    rng: StdRng,
    timer: Option<Time>,
    dtimer: Option<Time>,
    in_range: bool,
    max_seen: usize,
    cycles_before: u64,
}

#[derive(Clone, Debug)]
enum Ev {
    Start(usize),
    Timer(usize, u32),
    DiscoveryTimer(usize, u32),
    DialArrive {
        from: usize,
        epoch: u32,
        to: usize,
    },
    DialResult {
        at: usize,
        epoch: u32,
        point: SocketAddr,
        result: Result<PeerId, DialError>,
        points: Vec<SocketAddr>,
    },
    CloseArrive {
        from: usize,
        to: usize,
        to_epoch: u32,
    },
    AskArrive {
        from: usize,
        epoch: u32,
        to: usize,
    },
    PointsArrive {
        to: usize,
        epoch: u32,
        points: Vec<SocketAddr>,
    },
    Leave(usize, bool),
    Join(usize),
    Sample,
    ChurnTick,
}

impl Ev {
    fn code(&self) -> (u8, u64, u64) {
        match self {
            Ev::Start(i) => (1, *i as u64, 0),
            Ev::Timer(i, e) => (2, *i as u64, u64::from(*e)),
            Ev::DiscoveryTimer(i, e) => (3, *i as u64, u64::from(*e)),
            Ev::DialArrive { from, to, .. } => (4, *from as u64, *to as u64),
            Ev::DialResult { at, result, .. } => (5, *at as u64, u64::from(result.is_ok())),
            Ev::CloseArrive { from, to, .. } => (6, *from as u64, *to as u64),
            Ev::AskArrive { from, to, .. } => (7, *from as u64, *to as u64),
            Ev::PointsArrive { to, points, .. } => (8, *to as u64, points.len() as u64),
            Ev::Leave(i, _) => (9, *i as u64, 0),
            Ev::Join(i) => (10, *i as u64, 0),
            Ev::Sample => (11, 0, 0),
            Ev::ChurnTick => (12, 0, 0),
        }
    }
}

struct Scheduled {
    t: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (time, sequence).
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// The point of node `i`.
pub fn node_addr(i: usize) -> SocketAddr {
    let i = i as u32;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

fn node_of(addr: &SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.port() == 9732 && a.ip().octets()[0] == 10 => {
            let o = a.ip().octets();
            Some((usize::from(o[1]) << 16) | (usize::from(o[2]) << 8) | usize::from(o[3]))
        }
        _ => None,
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, v: u64) -> u64 {
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The simulator. Build with [`Simulation::new`], run with [`Simulation::run`].
///
/// ```
/// use peerkeeper::sim::{Policy, SimConfig, Simulation};
/// use std::time::Duration;
/// let cfg = SimConfig::new(50, 7, Duration::from_secs(120), Policy::Peerkeeper);
/// let a = Simulation::new(cfg.clone()).run(|_| {});
/// let b = Simulation::new(cfg).run(|_| {});
/// assert_eq!(a.report.event_log_hash, b.report.event_log_hash);
/// assert!(a.report.network.converged);
/// ```
pub struct Simulation {
    cfg: SimConfig,
    config: Arc<Config>,
    octez_config: Arc<Config>,
    bounds: Bounds,
    nodes: Vec<SimNode>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    now: Time,
    rng: StdRng,
    link_seed: u64,
    hash: u64,
    events: u64,
    messages: u64,
    dials: DialCounts,
    sharing: SharingCounts,
    alive: usize,
    in_range: usize,
    converged_at: Option<Time>,
    samples: Vec<Sample>,
    sample_every: Duration,
    half_dials: u64,
    late_dials: u64,
    half_marked: bool,
    starts: usize,
}

impl Simulation {
    /// Sets up the network (nothing runs yet).
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let config = Arc::new(cfg.node_config.clone());
        let mut oc = cfg.node_config.clone();
        oc.reconnection = octez_backoff();
        oc.disconnection_delay = Duration::from_secs(60);
        oc.time_between_looking_for_peers = octez::OCTEZ_LOOKING_FOR_PEERS;
        let octez_config = Arc::new(oc);
        let bounds = config.bounds();
        let link_seed = rng.gen();
        let mut nat: Vec<bool> = (0..cfg.nodes)
            .map(|i| i >= cfg.bootstrap && rng.gen_bool(cfg.nat_fraction.clamp(0.0, 1.0)))
            .collect();
        nat.truncate(cfg.nodes);
        let mut sim = Simulation {
            sample_every: (cfg.duration / cfg.max_samples.max(1) as u32)
                .max(Duration::from_secs(1)),
            cfg,
            config,
            octez_config,
            bounds,
            nodes: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            now: Time::ZERO,
            rng,
            link_seed,
            hash: FNV_OFFSET,
            events: 0,
            messages: 0,
            dials: DialCounts::default(),
            sharing: SharingCounts::default(),
            alive: 0,
            in_range: 0,
            converged_at: None,
            samples: Vec::new(),
            half_dials: 0,
            late_dials: 0,
            half_marked: false,
            starts: 0,
        };
        for (i, nat) in nat.into_iter().enumerate() {
            let node = sim.fresh_node(i, nat, 0);
            sim.nodes.push(node);
            let start = Time::from_millis(sim.rng.gen_range(0..5_000));
            sim.push(start, Ev::Start(i));
        }
        sim.push(Time::ZERO, Ev::Sample);
        if sim.cfg.churn_per_minute > 0.0 {
            sim.push(Time::ZERO + Duration::from_secs(60), Ev::ChurnTick);
        }
        if let Some((at, fraction)) = sim.cfg.mass_departure {
            let mut ids: Vec<usize> = (0..sim.cfg.nodes).collect();
            ids.shuffle(&mut sim.rng);
            let n = (fraction * sim.cfg.nodes as f64).round() as usize;
            for i in ids.into_iter().take(n) {
                sim.push(Time::ZERO + at, Ev::Leave(i, false));
            }
        }
        sim
    }

    fn policy_config(&self) -> Arc<Config> {
        match self.cfg.policy {
            Policy::Peerkeeper => self.config.clone(),
            Policy::Octez => self.octez_config.clone(),
        }
    }

    fn fresh_node(&mut self, i: usize, nat: bool, epoch: u32) -> SimNode {
        let config = self.policy_config();
        let mut pool = Pool::with_limits(PoolLimits::from(&*config));
        let seed =
            self.cfg.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(epoch) << 48;
        pool.set_salt(seed);
        for b in 0..self.cfg.bootstrap {
            if b != i {
                pool.add_point(node_addr(b), Source::Bootstrap, self.now);
            }
        }
        pool.take_changes();
        let brain = match self.cfg.policy {
            Policy::Peerkeeper => Brain::Ours {
                m: Box::new(Maintenance::new(config.clone())),
                d: Box::new(DiscoveryState::new(&config, vec![node_addr(i)])),
            },
            Policy::Octez => Brain::Octez(Box::new(OctezModel::new(config))),
        };
        SimNode {
            addr: node_addr(i),
            peer: PeerId(seed.rotate_left(13) ^ i as u64),
            alive: false,
            nat,
            epoch,
            pool,
            brain,
            rng: StdRng::seed_from_u64(seed),
            timer: None,
            dtimer: None,
            in_range: false,
            max_seen: 0,
            cycles_before: 0,
        }
    }

    fn push(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn latency(&self, a: usize, b: usize) -> Duration {
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let mut r = StdRng::seed_from_u64(fnv(fnv(self.link_seed, x as u64), y as u64));
        self.cfg.latency.draw(&mut r)
    }

    fn send(&mut self, from: usize, to: usize, ev: Ev) {
        self.messages += 1;
        let t = self.now + self.latency(from, to);
        self.push(t, ev);
    }

    /// Runs to the end; `progress` gets the fraction of virtual time done, now and then.
    pub fn run(mut self, mut progress: impl FnMut(f64)) -> SimOutcome {
        let end = Time::ZERO + self.cfg.duration;
        let half = Time::ZERO + self.cfg.duration / 2;
        let mut last_progress = 0u64;
        while let Some(s) = self.heap.pop() {
            if s.t > end {
                break;
            }
            self.now = s.t;
            if !self.half_marked && self.now >= half {
                self.mark_half();
            }
            self.events += 1;
            let (k, a, b) = s.ev.code();
            self.hash = fnv(
                fnv(fnv(fnv(self.hash, s.t.as_millis()), u64::from(k)), a),
                b,
            );
            self.handle(s.ev);
            let pct = self.now.as_millis() * 100 / end.as_millis().max(1);
            if pct > last_progress {
                last_progress = pct;
                progress(pct as f64 / 100.0);
            }
        }
        if !self.half_marked {
            self.mark_half();
        }
        self.now = end;
        progress(1.0);
        self.finish()
    }

    fn mark_half(&mut self) {
        self.half_marked = true;
        self.half_dials = self.dials.attempted;
        for n in &mut self.nodes {
            n.cycles_before = n.brain.cycles();
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Start(i) => {
                // Before every node has started, "all in range" is not convergence.
                self.starts += 1;
                self.start_node(i);
            }
            Ev::Join(i) => {
                let epoch = self.nodes[i].epoch + 1;
                let nat = self.nodes[i].nat;
                self.nodes[i] = self.fresh_node(i, nat, epoch);
                self.start_node(i);
            }
            Ev::Timer(i, e) => {
                let n = &mut self.nodes[i];
                if !n.alive || n.epoch != e || n.timer != Some(self.now) {
                    return;
                }
                n.timer = None;
                let now = self.now;
                self.drive(i, |brain, pool, rng, out| match brain {
                    Brain::Ours { m, .. } => m.handle_timeout(now, pool, rng, out),
                    Brain::Octez(o) => o.handle_timeout(now, pool, rng, out),
                });
            }
            Ev::DiscoveryTimer(i, e) => {
                let n = &mut self.nodes[i];
                if !n.alive || n.epoch != e || n.dtimer != Some(self.now) {
                    return;
                }
                n.dtimer = None;
                let now = self.now;
                let ask = match &mut n.brain {
                    Brain::Ours { d, .. } => d.poll_round(&n.pool, now, &mut n.rng),
                    Brain::Octez(_) => Vec::new(),
                };
                self.ask(i, ask);
                self.reschedule(i);
            }
            Ev::DialArrive { from, epoch, to } => self.dial_arrive(from, epoch, to),
            Ev::DialResult {
                at,
                epoch,
                point,
                result,
                points,
            } => self.dial_result(at, epoch, point, result, points),
            Ev::CloseArrive { from, to, to_epoch } => {
                let n = &mut self.nodes[to];
                if !n.alive || n.epoch != to_epoch {
                    return;
                }
                let addr = node_addr(from);
                let now = self.now;
                if n.pool.connection(&addr).is_some() {
                    n.pool.connection_closed(addr, now);
                    self.after_change(to);
                }
            }
            Ev::AskArrive { from, epoch, to } => {
                let (to_alive, linked) = {
                    let n = &self.nodes[to];
                    (n.alive, n.pool.connection(&node_addr(from)).is_some())
                };
                if !to_alive || !linked {
                    return;
                }
                let n = &mut self.nodes[to];
                let answer = match &mut n.brain {
                    Brain::Ours { d, .. } => d.answer(&n.pool, node_addr(from), &mut n.rng),
                    Brain::Octez(_) => n.pool.sample_good(50, Some(node_addr(from)), &mut n.rng),
                };
                if !self.lost() {
                    self.send(
                        to,
                        from,
                        Ev::PointsArrive {
                            to: from,
                            epoch,
                            points: answer,
                        },
                    );
                }
            }
            Ev::PointsArrive { to, epoch, points } => {
                let n = &self.nodes[to];
                if !n.alive || n.epoch != epoch {
                    return;
                }
                self.ingest_points(to, &points);
                self.after_change(to);
            }
            Ev::Leave(i, comes_back) => self.leave(i, comes_back),
            Ev::Sample => {
                self.sample();
                let next = self.now + self.sample_every;
                self.push(next, Ev::Sample);
            }
            Ev::ChurnTick => {
                let n = (self.cfg.churn_per_minute * self.cfg.nodes as f64).round() as usize;
                let alive: Vec<usize> = (self.cfg.bootstrap..self.nodes.len())
                    .filter(|i| self.nodes[*i].alive)
                    .collect();
                let picks: Vec<usize> = alive
                    .choose_multiple(&mut self.rng, n.min(alive.len()))
                    .copied()
                    .collect();
                for i in picks {
                    let at = self.now + Duration::from_millis(self.rng.gen_range(0..60_000));
                    self.push(at, Ev::Leave(i, true));
                }
                let next = self.now + Duration::from_secs(60);
                self.push(next, Ev::ChurnTick);
            }
        }
    }

    /// Points received by node `i` (an answer, a refusal, a trim): through discovery for
    /// peerkeeper, straight into the pool for the octez model.
    fn ingest_points(&mut self, i: usize, points: &[SocketAddr]) {
        let now = self.now;
        self.sharing.points_received += points.len() as u64;
        let n = &mut self.nodes[i];
        match &mut n.brain {
            Brain::Ours { d, .. } => {
                // Over the cap is a violation a real node greylists; the simulator's peers
                // never send one.
                let _ = d.on_points(points, Source::PeerSharing, &mut n.pool, now);
            }
            Brain::Octez(_) => {
                for p in points.iter().take(crate::MAX_POINTS_PER_MESSAGE) {
                    if *p != n.addr && validate_point(p, true).is_ok() {
                        n.pool.add_point(*p, Source::PeerSharing, now);
                    }
                }
            }
        }
    }

    /// Tells node `j` that `i` closed their link (one latency later).
    fn send_close(&mut self, i: usize, j: usize) {
        let to_epoch = self.nodes[j].epoch;
        self.send(
            i,
            j,
            Ev::CloseArrive {
                from: i,
                to: j,
                to_epoch,
            },
        );
    }

    fn lost(&mut self) -> bool {
        self.cfg.message_loss > 0.0 && self.rng.gen_bool(self.cfg.message_loss.min(1.0))
    }

    fn start_node(&mut self, i: usize) {
        self.nodes[i].alive = true;
        self.alive += 1;
        let now = self.now;
        self.drive(i, |brain, pool, rng, out| match brain {
            Brain::Ours { m, .. } => m.wake(WakeReason::Activation, now, pool, rng, out),
            Brain::Octez(o) => o.wake(WakeReason::Activation, now, pool, rng, out),
        });
    }

    fn leave(&mut self, i: usize, comes_back: bool) {
        if !self.nodes[i].alive {
            return;
        }
        let links: Vec<SocketAddr> = self.nodes[i].pool.connections().map(|(a, _)| a).collect();
        for a in links {
            if let Some(j) = node_of(&a) {
                self.send_close(i, j);
            }
        }
        let n = &mut self.nodes[i];
        n.alive = false;
        n.epoch += 1;
        n.timer = None;
        n.dtimer = None;
        self.alive -= 1;
        if n.in_range {
            n.in_range = false;
            self.in_range -= 1;
        }
        if comes_back {
            let back = self.now + Duration::from_millis(self.rng.gen_range(60_000..300_000));
            self.push(back, Ev::Join(i));
        }
    }

    /// Feeds the node's brain, carries out its actions, turns pool changes into wakes.
    fn drive(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Brain, &mut Pool, &mut StdRng, &mut Vec<Action>),
    ) {
        let mut out = Vec::new();
        {
            let n = &mut self.nodes[i];
            f(&mut n.brain, &mut n.pool, &mut n.rng, &mut out);
        }
        self.carry_out(i, out);
        self.after_change(i);
    }

    fn carry_out(&mut self, i: usize, out: Vec<Action>) {
        let now = self.now;
        for a in out {
            match a {
                Action::Dial(p) => {
                    self.dials.attempted += 1;
                    let epoch = self.nodes[i].epoch;
                    match node_of(&p).filter(|j| *j < self.nodes.len()) {
                        Some(j) => self.send(
                            i,
                            j,
                            Ev::DialArrive {
                                from: i,
                                epoch,
                                to: j,
                            },
                        ),
                        None => {
                            self.push(
                                now,
                                Ev::DialResult {
                                    at: i,
                                    epoch,
                                    point: p,
                                    result: Err(DialError::Io("no such node".into())),
                                    points: Vec::new(),
                                },
                            );
                        }
                    }
                }
                Action::Close(p, reason) => {
                    if let Some(j) = node_of(&p).filter(|j| *j < self.nodes.len()) {
                        let to_epoch = self.nodes[j].epoch;
                        // A peer we trim still learns points from us (as a refused dialer
                        // does): sent before the close, on the same link.
                        if reason == CloseReason::TooManyConnections {
                            let n = &mut self.nodes[i];
                            if let Brain::Ours { d, .. } = &mut n.brain {
                                let points = d.answer(&n.pool, p, &mut n.rng);
                                if !points.is_empty() {
                                    self.send(
                                        i,
                                        j,
                                        Ev::PointsArrive {
                                            to: j,
                                            epoch: to_epoch,
                                            points,
                                        },
                                    );
                                }
                            }
                        }
                        self.send_close(i, j);
                    }
                }
                Action::WantPoints(want) => match &mut self.nodes[i].brain {
                    Brain::Ours { d, .. } => d.set_wanted(want, now),
                    Brain::Octez(_) => {
                        if want {
                            let all: Vec<SocketAddr> =
                                self.nodes[i].pool.connections().map(|(a, _)| a).collect();
                            self.ask(i, all);
                        }
                    }
                },
                Action::CycleStarted { .. } | Action::CycleEnded(_) => {}
            }
        }
    }

    fn ask(&mut self, i: usize, peers: Vec<SocketAddr>) {
        let epoch = self.nodes[i].epoch;
        for p in peers {
            self.sharing.requests += 1;
            if let Some(j) = node_of(&p) {
                if self.lost() {
                    self.messages += 1;
                    continue;
                }
                self.send(
                    i,
                    j,
                    Ev::AskArrive {
                        from: i,
                        epoch,
                        to: j,
                    },
                );
            }
        }
    }

    fn dial_arrive(&mut self, from: usize, epoch: u32, to: usize) {
        let point = node_addr(to);
        let now = self.now;
        let fail = self.cfg.dial_failure_rate > 0.0
            && self.rng.gen_bool(self.cfg.dial_failure_rate.min(1.0));
        let from_addr = node_addr(from);
        let from_peer = self.nodes[from].peer;
        let max = self.policy_config().max_connections;
        let n = &mut self.nodes[to];
        let (result, points) = if !n.alive || n.nat || fail {
            (Err(DialError::Io("unreachable".into())), Vec::new())
        } else if n.pool.connection(&from_addr).is_some() {
            // Both dialed at once: one link, both sides have it.
            (Ok(n.peer), Vec::new())
        } else if n.pool.active_count() >= max {
            let points = n.pool.sample_good(50, Some(from_addr), &mut n.rng);
            (Err(DialError::Refused("full".into())), points)
        } else {
            match n
                .pool
                .connection_opened(from_addr, from_peer, Direction::Inbound, now)
            {
                Ok(_) => (Ok(n.peer), Vec::new()),
                Err(_) => (Err(DialError::AlreadyConnected), Vec::new()),
            }
        };
        if result.is_ok() {
            self.after_change(to);
        }
        self.send(
            to,
            from,
            Ev::DialResult {
                at: from,
                epoch,
                point,
                result,
                points,
            },
        );
    }

    fn dial_result(
        &mut self,
        at: usize,
        epoch: u32,
        point: SocketAddr,
        result: Result<PeerId, DialError>,
        points: Vec<SocketAddr>,
    ) {
        let now = self.now;
        let n = &mut self.nodes[at];
        if !n.alive || n.epoch != epoch {
            // The dialer left meanwhile: the other side drops the link.
            if let (Ok(_), Some(j)) = (&result, node_of(&point)) {
                self.send_close(at, j);
            }
            return;
        }
        match &result {
            Ok(peer) => {
                self.dials.succeeded += 1;
                let max = match self.cfg.policy {
                    Policy::Peerkeeper => self.config.max_connections,
                    Policy::Octez => self.octez_config.max_connections,
                };
                // Full meanwhile (inbound connections arrived): the new link goes, as the TCP
                // transport does.
                let full = n.pool.active_count() >= max;
                if n.pool.connection(&point).is_none()
                    && (full
                        || n.pool
                            .connection_opened(point, *peer, Direction::Outbound, now)
                            .is_err())
                {
                    if let Some(j) = node_of(&point) {
                        self.send_close(at, j);
                    }
                }
            }
            Err(e) if e.counts_as_failure() => self.dials.failed += 1,
            Err(_) => {}
        }
        if !points.is_empty() {
            self.ingest_points(at, &points);
        }
        self.drive(at, |brain, pool, rng, out| match brain {
            Brain::Ours { m, .. } => m.dial_finished(point, result, now, pool, rng, out),
            Brain::Octez(o) => o.dial_finished(point, result, now, pool, rng, out),
        });
    }

    /// Turns the pool's changes into wakes (as the tokio shell does with triggers), then
    /// updates the range accounting and the timers.
    fn after_change(&mut self, i: usize) {
        let now = self.now;
        for _ in 0..8 {
            let n = &mut self.nodes[i];
            let c = n.pool.take_changes();
            let mut reasons = Vec::new();
            let count = match self.cfg.policy {
                Policy::Peerkeeper => count_trigger(c.count_before, c.count_after, &self.bounds),
                Policy::Octez => octez_trigger(c.count_before, c.count_after, &self.octez_config),
            };
            match count {
                Some(TriggerKind::TooFewConnections) => reasons.push(WakeReason::TooFewConnections),
                Some(TriggerKind::TooManyConnections) => {
                    reasons.push(WakeReason::TooManyConnections)
                }
                _ => {}
            }
            if c.new_point || c.new_peer {
                reasons.push(WakeReason::NewPoints);
            }
            if c.new_connection {
                if let Brain::Ours { d, .. } = &mut n.brain {
                    let ask = d.poll_new_connections(&n.pool, now);
                    if !ask.is_empty() {
                        self.ask(i, ask);
                    }
                }
            }
            let n = &mut self.nodes[i];
            if reasons.is_empty() {
                break;
            }
            let mut out = Vec::new();
            for r in reasons {
                match &mut n.brain {
                    Brain::Ours { m, .. } => m.wake(r, now, &mut n.pool, &mut n.rng, &mut out),
                    Brain::Octez(o) => o.wake(r, now, &mut n.pool, &mut n.rng, &mut out),
                }
            }
            self.carry_out(i, out);
        }
        self.account(i);
        self.reschedule(i);
    }

    fn account(&mut self, i: usize) {
        let (lo, hi) = (self.bounds.min_threshold, self.bounds.max_threshold);
        let n = &mut self.nodes[i];
        let count = n.pool.active_count();
        n.max_seen = n.max_seen.max(count);
        let in_range = n.alive && (lo..=hi).contains(&count);
        if in_range != n.in_range {
            n.in_range = in_range;
            if in_range {
                self.in_range += 1;
            } else {
                self.in_range -= 1;
            }
        }
        if self.converged_at.is_none()
            && self.alive > 0
            && self.in_range == self.alive
            && self.starts == self.cfg.nodes
        {
            self.converged_at = Some(self.now);
        }
    }

    fn reschedule(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if !n.alive {
            return;
        }
        let epoch = n.epoch;
        let deadline = match &n.brain {
            Brain::Ours { m, .. } => m.next_deadline(&n.pool),
            Brain::Octez(o) => o.next_deadline(&n.pool),
        }
        .map(|t| t.max(self.now));
        if deadline.is_some() && deadline != n.timer {
            n.timer = deadline;
            let t = deadline.unwrap_or(self.now);
            self.push(t, Ev::Timer(i, epoch));
        }
        let n = &mut self.nodes[i];
        let ddeadline = match &n.brain {
            Brain::Ours { d, .. } => d.next_deadline().map(|t| t.max(self.now)),
            Brain::Octez(_) => None,
        };
        if ddeadline.is_some() && ddeadline != n.dtimer {
            n.dtimer = ddeadline;
            let t = ddeadline.unwrap_or(self.now);
            self.push(t, Ev::DiscoveryTimer(i, epoch));
        }
    }

    fn sample(&mut self) {
        if self.samples.len() >= self.cfg.max_samples {
            return;
        }
        let mut counts = Vec::with_capacity(self.alive);
        let mut pool_total = 0usize;
        for n in self.nodes.iter().filter(|n| n.alive) {
            counts.push(n.pool.active_count());
            pool_total += n.pool.len();
        }
        self.samples.push(Sample {
            t_ms: self.now.as_millis(),
            connections: Spread::of(&counts),
            mean_pool: if counts.is_empty() {
                0.0
            } else {
                pool_total as f64 / counts.len() as f64
            },
            alive: counts.len(),
        });
    }

    fn finish(mut self) -> SimOutcome {
        self.sample();
        let mut counts = Vec::new();
        let mut edges = Vec::new();
        let mut cycles = 0;
        let mut late_cycles = 0;
        let mut max_seen = 0;
        let mut short = 0;
        let mut short_nat = 0;
        let mut pool_points = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            cycles += n.brain.cycles();
            max_seen = max_seen.max(n.max_seen);
            if !n.alive {
                continue;
            }
            late_cycles += n.brain.cycles() - n.cycles_before.min(n.brain.cycles());
            let c = n.pool.active_count();
            counts.push(c);
            pool_points += n.pool.len();
            if c < self.bounds.min_threshold {
                short += 1;
                if n.nat {
                    short_nat += 1;
                }
            }
            for (a, _) in n.pool.connections() {
                if let Some(j) = node_of(&a) {
                    if i < j {
                        edges.push((i, j));
                    }
                }
            }
        }
        let alive_ids: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive)
            .collect();
        let mut index = vec![usize::MAX; self.nodes.len()];
        for (k, i) in alive_ids.iter().enumerate() {
            index[*i] = k;
        }
        let alive_edges: Vec<(usize, usize)> = edges
            .iter()
            .filter(|(a, b)| index[*a] != usize::MAX && index[*b] != usize::MAX)
            .map(|(a, b)| (index[*a], index[*b]))
            .collect();
        self.late_dials = self.dials.attempted - self.half_dials;
        let half_hours = self.cfg.duration.as_secs_f64() / 2.0 / 3600.0;
        let per_node_hour = |x: u64| {
            if self.alive == 0 || half_hours == 0.0 {
                0.0
            } else {
                x as f64 / self.alive as f64 / half_hours
            }
        };
        let converged =
            self.alive > 0 && short == 0 && counts.iter().all(|c| *c <= self.bounds.max_threshold);
        let short_reason = (short > 0).then(|| {
            if short_nat == short {
                format!("{short} nodes below min_threshold, all behind NAT: they can only dial out, and the public nodes are full")
            } else {
                format!("{short} nodes below min_threshold ({short_nat} behind NAT)")
            }
        });
        let network = NetworkReport {
            nodes: self.cfg.nodes,
            seed: self.cfg.seed,
            converged,
            converged_at_ms: self.converged_at.map(Time::as_millis),
            connections: Spread::of(&counts),
            components: components(alive_ids.len(), &alive_edges),
            max_observed_connections: max_seen,
            dials: self.dials,
            peer_sharing: self.sharing,
            maintenance_cycles: cycles,
            wall_ms: 0,
        };
        let approx = if alive_ids.is_empty() {
            0
        } else {
            // Pool entries (about 180 bytes a point, see BENCHMARKS.md) plus the fixed state.
            std::mem::size_of::<SimNode>()
                + 2 * std::mem::size_of::<Maintenance>()
                + pool_points / alive_ids.len() * 180
        };
        let report = SimReport {
            network,
            policy: self.cfg.policy,
            virtual_ms: self.cfg.duration.as_millis() as u64,
            events: self.events,
            messages: self.messages,
            event_log_hash: format!("{:016x}", self.hash),
            alive: alive_ids.len(),
            short_nodes: short,
            short_reason,
            late_cycles_per_node_hour: per_node_hour(late_cycles),
            late_dials_per_node_hour: per_node_hour(self.late_dials),
            approx_bytes_per_node: approx,
        };
        SimOutcome {
            report,
            samples: self.samples,
            final_connections: self.nodes.iter().map(|n| n.pool.active_count()).collect(),
            alive: self.nodes.iter().map(|n| n.alive).collect(),
        }
    }
}
