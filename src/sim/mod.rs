//! A deterministic, discrete-event network simulator. Each simulated node is a
//! [`NodeCore`], the very type `peerkeeper node` runs behind its tokio shell, with the
//! node's own [`Config`] (the defaults unless told otherwise), so what the simulator
//! proves is the program that runs.
//!
//! # Model
//!
//! * Every node has a listening point (`10.x.y.z:9732`). The first `bootstrap` nodes (one
//!   by default, as `peerkeeper node --peer` gives one) are the points every other node
//!   knows at start.
//! * Join schedules: by default nodes start at random times in the first five seconds;
//!   with a stagger, node `i` starts at `i * stagger`; late joiners (`late_joiners` more
//!   nodes) all start at `late_at`, when the rest has settled.
//! * Each link has a latency drawn once from the configured distribution, so messages on
//!   one link stay in order. A dial is the protocol v3 handshake: hello, hello back and
//!   the dialer's signature (three latencies: then the listener's core admits or refuses
//!   it), and the answer (one more latency: the dialer's core keeps or drops the
//!   connection), as on the tokio shell; every other message (a request for points, points,
//!   a swap, a close) takes one latency. Connections are named by link: both ends' cores
//!   use the link number as their [`ConnId`].
//! * Faults: a dial fails with probability `dial_failure_rate`; a peer-sharing message is
//!   lost with probability `message_loss`; a `nat_fraction` of the nodes accept no
//!   incoming connection; churn makes nodes leave (closing their links) and come back
//!   later with a fresh core; a one-off departure of a fraction of the nodes can be
//!   scheduled.
//! * Scenarios: epoch rotation ([`epochs`]), a ledger and per-kind floors ([`kinds`]), the
//!   eclipse experiment ([`eclipse`]: its own address plan, scripted attackers, churn
//!   that restores each node's saved pool).
//!
//! Admission, refusals with points, point intake, farewells, duplicates, the octez
//! policy's swaps: all are the node core's decisions; the simulator only carries
//! messages.
//!
//! # Determinism
//!
//! One seed drives everything: the topology, each node's RNG, faults, latencies. Events
//! are ordered by time, then inputs from the network before timers (the tokio node's
//! rule too), then sequence number; every collection iterated is ordered, and the
//! processed events are folded into a 64-bit hash ([`crate::rng::Fold`]) reported as
//! `event_log_hash`:
//! the same seed gives the same hash.

#[cfg(feature = "cli")]
mod chart;
pub mod eclipse;
pub mod epochs;
pub mod feedback;
pub mod kinds;

pub use eclipse::{EclipseCheck, EclipseConfig, EclipseReport, RestartFigures};
pub use epochs::{EpochConfig, EpochRecord, EpochReport};
pub use feedback::FeedbackReport;
pub use kinds::{KindFigures, KindsReport};

#[cfg(feature = "cli")]
pub use chart::{write_chart, write_charts};

use crate::config::{Bounds, Config, Policy};
use crate::core::{
    Action, Admission, CoreStats, DialFailure, DialResult, DialVerdict, Hello, Input, NodeCore,
    Recorded, TraceHeader, TraceWriter, TracedAction,
};
use crate::maintenance::octez::octez_config;
use crate::pool::{ConnId, PeerId, Source};
use crate::report::{components, NetworkReport, SharingCounts, Spread};
use crate::rng::{derive, mix, seeded, Fold, SeededRng};
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How link latencies are drawn (once per link).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Latency {
    /// Given by a function of the two nodes' indexes (smaller first): what the trace
    /// tests use to match a memory network's latencies exactly.
    PerLink(fn(usize, usize) -> Duration),
    /// Every link the same.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform(Duration, Duration),
    /// `min` plus an exponential tail of mean `(max - min) / 3`, capped at `max`: most
    /// links fast, a few slow (about 5 % at the cap), as on a wide-area network.
    Exponential(Duration, Duration),
}

impl Latency {
    fn draw(&self, a: usize, b: usize, rng: &mut SeededRng) -> Duration {
        match *self {
            Latency::PerLink(f) => f(a, b),
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) if hi > lo => {
                Duration::from_micros(rng.gen_range(lo.as_micros() as u64..=hi.as_micros() as u64))
            }
            Latency::Uniform(lo, _) => lo,
            Latency::Exponential(lo, hi) if hi > lo => {
                // Inverse transform: -ln(1 - u) * mean, with 1 - u uniform in (0, 1] in
                // steps of 2^-53 (as `gen_range(0.0..1.0)` draws), in integers.
                let span = (hi - lo).as_nanos();
                let one_minus_u = (rng.gen::<u64>() >> 11) + 1;
                let tail = (span / 3).saturating_mul(neg_ln_2p53(one_minus_u)) >> 32;
                lo + Duration::from_nanos(u64::try_from(tail.min(span)).unwrap_or(u64::MAX))
            }
            Latency::Exponential(lo, _) => lo,
        }
    }
}

/// `-ln(v / 2^53)` for `v` in `1..=2^53`, with 32 fractional bits (so at most `37 << 32`).
/// Integer arithmetic only (`f64::ln` comes from the platform's math library and may
/// differ in its last bit between machines; this is the same everywhere): `log2 v` bit by
/// bit, squaring the mantissa, then times ln 2. Exact to within 2^-30.
fn neg_ln_2p53(v: u64) -> u128 {
    /// ln 2 with 64 fractional bits.
    const LN_2: u128 = 0xb172_17f7_d1cf_79ab;
    debug_assert!((1..=1 << 53).contains(&v));
    let k = 63 - v.leading_zeros(); // v = 2^k * m, m in [1, 2)
    let mut m = u128::from(v) << (62 - k); // m with 62 fractional bits
    let mut frac = 0u128;
    for bit in (0..32).rev() {
        m = (m * m) >> 62;
        if m >> 63 == 1 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    let log2_v = (u128::from(k) << 32) | frac;
    (((53 << 32) - log2_v) * LN_2) >> 64
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn integer_logarithm_agrees_with_ln() {
        let mut rng = seeded(9);
        let samples = (0..64)
            .map(|k| 1u64 << k.min(53))
            .chain([3, 5, (1 << 53) - 1]);
        for v in samples.chain((0..10_000).map(|_| (rng.gen::<u64>() >> 11) + 1)) {
            let ours = neg_ln_2p53(v) as f64 / 4_294_967_296.0;
            let exact = -(v as f64 / 2f64.powi(53)).ln();
            assert!((ours - exact).abs() < 1e-8, "{v}: {ours} {exact}");
        }
    }

    #[test]
    fn exponential_latencies_keep_their_shape() {
        let (lo, hi) = (Duration::from_millis(20), Duration::from_millis(320));
        let mut rng = seeded(4);
        let draws: Vec<Duration> = (0..20_000)
            .map(|_| Latency::Exponential(lo, hi).draw(0, 1, &mut rng))
            .collect();
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        // Mean (hi - lo) / 3 = 100 ms before the cap; the cap takes e^-3, about 5 %.
        let capped = draws.iter().filter(|d| **d == hi).count() as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&capped), "{capped}");
        let median = {
            let mut d = draws.clone();
            d.sort();
            d[10_000]
        };
        // ln 2 * 100 ms = 69.3 ms above lo.
        assert!((Duration::from_millis(85)..Duration::from_millis(94)).contains(&median));
    }
}

/// When the nodes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Joins {
    /// At random times in the first five seconds ("started together").
    Together,
    /// Node `i` at `i * d`, in order.
    Stagger(Duration),
    /// One node every `d`, in a random order (seeded): the bootstrap nodes anywhere in it.
    Shuffled(Duration),
    /// The bootstrap nodes last: the others start as [`Joins::Together`], the bootstrap
    /// nodes this long after the last of them (`converge.py --seed-last`: a compose file
    /// or an orchestrator starts services in no fixed order).
    SeedLast(Duration),
}

impl Joins {
    /// When each of the first `nodes` nodes starts (`bootstrap` of them are the bootstrap
    /// nodes), drawn from `seed`.
    fn starts(self, nodes: usize, bootstrap: usize, seed: u64) -> Vec<Time> {
        let together =
            |i: usize| Time::from_millis(mix(node_seed(seed, i, 0) ^ 0x7374_6172) % 5_000);
        match self {
            Joins::Together => (0..nodes).map(together).collect(),
            Joins::Stagger(d) => (0..nodes).map(|i| Time::ZERO + d * i as u32).collect(),
            Joins::Shuffled(d) => {
                let mut slots: Vec<usize> = (0..nodes).collect();
                slots.shuffle(&mut seeded(mix(seed ^ 0x7368_7566_666c_6564)));
                slots
                    .into_iter()
                    .map(|k| Time::ZERO + d * k as u32)
                    .collect()
            }
            Joins::SeedLast(d) => {
                let last = (bootstrap..nodes).map(together).max().unwrap_or(Time::ZERO);
                (0..nodes)
                    .map(|i| if i < bootstrap { last + d } else { together(i) })
                    .collect()
            }
        }
    }
}

/// A simulation scenario.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes (not counting late joiners).
    pub nodes: usize,
    /// The seed of everything.
    pub seed: u64,
    /// Virtual duration.
    pub duration: Duration,
    /// The nodes' config, as `peerkeeper node` would run it (its `policy` chooses the
    /// algorithm).
    pub node_config: Config,
    /// How many nodes are bootstrap points (the first ones).
    pub bootstrap: usize,
    /// When the nodes start.
    pub joins: Joins,
    /// How many more nodes join at `late_at`.
    pub late_joiners: usize,
    /// When the late joiners join.
    pub late_at: Duration,
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
    /// Record every node's actions ([`SimOutcome::actions`]; small runs only).
    pub record_actions: bool,
    /// Record every input these nodes' cores get, as traces ([`SimOutcome::traces`]) that
    /// `peerkeeper replay` reads.
    pub trace_nodes: Vec<usize>,
    /// The epoch-rotation scenario ([`epochs`]), when set.
    pub epochs: Option<EpochConfig>,
    /// Relays of a simulated ledger ([`kinds`]): this many nodes' points are given to
    /// every node as external points (0: no ledger).
    pub ledger: usize,
    /// The eclipse experiment ([`eclipse`]), when set: a spread address plan, scripted
    /// attackers, churn that restores each node's saved pool, and the restart case.
    pub eclipse: Option<EclipseConfig>,
    /// Peer feedback ([`feedback`]): this fraction of the nodes (bootstrap nodes
    /// excepted) is useless, and every other node reports on its peers every
    /// [`feedback::REPORT_INTERVAL`]. 0: no report at all.
    pub useless_fraction: f64,
    /// A partition, when set: from `at`, for `length`, the nodes of even index and those
    /// of odd index cannot reach each other (dials between them time out, messages are
    /// lost, and the connections between them end as a keepalive timeout ends them).
    /// The report says how long after the heal the overlay was one component again
    /// ([`SimReport::partition`]).
    pub partition: Option<Partition>,
}

/// A partition of the simulated network in two halves ([`SimConfig::partition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// When it starts.
    pub at: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// What became of a partition ([`SimConfig::partition`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionReport {
    /// Components of the overlay just before the heal.
    pub components_before_heal: usize,
    /// Time from the heal until the overlay was one component again (checked every
    /// second), ms; `None` if it never was before the run ended.
    pub merged_after_ms: Option<u64>,
    /// Exploration dials per alive node per virtual hour over the whole run.
    pub explorations_per_node_hour: f64,
    /// Of them, swaps ([`Config::exploration_swap_interval`]: at or above the trim target)
    /// per alive node per virtual hour.
    pub exploration_swaps_per_node_hour: f64,
    /// Connections closed for a swap (an exploration swap's, or the octez model's) per
    /// alive node per virtual hour.
    pub swapped_per_node_hour: f64,
}

impl SimConfig {
    /// A fault-free scenario of `nodes` nodes for `duration`, each running `policy` with
    /// the node's default config ([`Config::default`], as `peerkeeper node` runs), one
    /// bootstrap point, nodes starting together.
    pub fn new(nodes: usize, seed: u64, duration: Duration, policy: Policy) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            duration,
            node_config: Config {
                policy,
                ..Config::default()
            },
            bootstrap: 1.min(nodes),
            joins: Joins::Together,
            late_joiners: 0,
            late_at: Duration::from_secs(180),
            latency: Latency::Uniform(Duration::from_millis(10), Duration::from_millis(150)),
            dial_failure_rate: 0.0,
            message_loss: 0.0,
            nat_fraction: 0.0,
            churn_per_minute: 0.0,
            mass_departure: None,
            max_samples: 1000,
            record_actions: false,
            trace_nodes: Vec::new(),
            epochs: None,
            ledger: 0,
            eclipse: None,
            useless_fraction: 0.0,
            partition: None,
        }
    }

    /// All nodes, late joiners included.
    pub fn total_nodes(&self) -> usize {
        self.nodes + self.late_joiners
    }
}

/// One chart sample.
#[derive(Clone, Copy, Debug, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct SimReport {
    /// The keys shared with `peerkeeper demo`.
    #[serde(flatten)]
    pub network: NetworkReport,
    /// The policy run.
    pub policy: Policy,
    /// Virtual time simulated, ms.
    pub virtual_ms: u64,
    /// When the last node of the join schedule started, ms (late joiners included):
    /// `converged_at_ms` minus this is how long the last start took to converge.
    pub last_start_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages sent (handshakes and answers, closes, peer-sharing requests and points,
    /// swaps).
    pub messages: u64,
    /// Hash of the processed events ([`crate::rng::Fold`] of each one's time, kind and
    /// nodes), hex.
    pub event_log_hash: String,
    /// Alive nodes at the end.
    pub alive: usize,
    /// Alive nodes below `min_threshold` at the end.
    pub short_nodes: usize,
    /// How long the node short the longest at the end has been below `min_threshold`, ms
    /// (0 when none is): a few hundred ms is a node let go by a peer and redialing; tens
    /// of seconds is a node stuck.
    pub longest_short_ms: u64,
    /// Why some nodes are short, when they are.
    pub short_reason: Option<String>,
    /// Late joiners in the run.
    pub late_joiners: usize,
    /// Late joiners within range at the end.
    pub late_joiners_in_range: usize,
    /// Maintenance cycles per alive node per virtual hour, over the last half of the run.
    pub late_cycles_per_node_hour: f64,
    /// Dials per alive node per virtual hour, over the last half of the run.
    pub late_dials_per_node_hour: f64,
    /// Connections replaced in a swap (an exploration swap's,
    /// [`Config::exploration_swap_interval`], or the octez model's) per alive node per
    /// virtual hour, over the last half of the run.
    pub late_swaps_per_node_hour: f64,
    /// Heap bytes of node state per node, estimated from the pools' sizes.
    pub approx_bytes_per_node: usize,
    /// The epoch scenario's figures, when it ran ([`SimConfig::epochs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<EpochReport>,
    /// Per-kind figures, when the run has a ledger or a floor ([`kinds`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<KindsReport>,
    /// The eclipse experiment's figures, when it ran ([`SimConfig::eclipse`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eclipse: Option<EclipseReport>,
    /// The feedback scenario's figures, when it ran ([`SimConfig::useless_fraction`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackReport>,
    /// The partition's figures, when there was one ([`SimConfig::partition`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionReport>,
}

/// A finished run: the report and the chart samples.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SimOutcome {
    /// The report.
    pub report: SimReport,
    /// Samples over time (bounded by `max_samples`).
    pub samples: Vec<Sample>,
    /// Final connection count per node (alive or not).
    pub final_connections: Vec<usize>,
    /// Whether each node is alive at the end.
    pub alive: Vec<bool>,
    /// Every node's actions, when [`SimConfig::record_actions`] is set: (node, action).
    pub actions: Vec<(usize, TracedAction)>,
    /// The traces of the nodes of [`SimConfig::trace_nodes`], one per life, in the order
    /// the lives began.
    pub traces: Vec<NodeTrace>,
}

/// The trace of one life of a traced node ([`SimConfig::trace_nodes`]): a node that leaves
/// and comes back (churn) starts with a fresh core, hence a new trace.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeTrace {
    /// The node.
    pub node: usize,
    /// Its life: 0, then one more each time it comes back.
    pub life: u32,
    /// What a fresh core is built from.
    pub header: TraceHeader,
    /// Every input its core got, in order.
    pub inputs: Vec<Recorded>,
}

impl NodeTrace {
    /// Writes the trace as `peerkeeper node --trace` does (JSON lines: the header, then
    /// one input a line).
    ///
    /// # Errors
    ///
    /// When `out` fails.
    pub fn write(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let mut w = TraceWriter::new(std::io::BufWriter::new(out), &self.header)?;
        for r in &self.inputs {
            w.record(r)?;
        }
        w.flush()
    }
}

/// Records the inputs of the traced nodes' cores.
#[derive(Default)]
struct Tracer {
    /// Traced node -> its current life's trace in `traces`.
    current: HashMap<usize, usize>,
    traces: Vec<NodeTrace>,
}

impl Tracer {
    /// Records `input`, given to node `i`'s core at `at`, if the node is traced.
    #[inline]
    fn record(&mut self, i: usize, at: Time, input: impl FnOnce() -> Input) {
        if self.current.is_empty() {
            return;
        }
        if let Some(&k) = self.current.get(&i) {
            self.traces[k].inputs.push(Recorded { at, input: input() });
        }
    }
}

/// When a departing node comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Back {
    /// It does not.
    Never,
    /// 1 to 5 minutes later, drawn (churn).
    Drawn,
    /// After exactly this long (the eclipse scenario's restart case).
    After(Duration),
}

struct SimNode {
    peer: PeerId,
    alive: bool,
    nat: bool,
    epoch: u32,
    core: NodeCore,
    timer: Option<Time>,
    in_range: bool,
    /// Since when the node, alive, has been below `min_threshold` (`None` while it is not).
    short_since: Option<Time>,
    max_seen: usize,
    cycles_before: u64,
}

/// A message on a link.
#[derive(Clone, Debug)]
enum Msg {
    Ask,
    Points(Vec<SocketAddr>),
    SwapRequest(SocketAddr),
    SwapAck(SocketAddr),
    Close,
}

#[derive(Clone, Debug)]
enum Ev {
    Start(usize),
    Timer(usize, u32),
    DialArrive {
        from: usize,
        to: usize,
        /// The point dialed.
        point: SocketAddr,
        link: u64,
    },
    DialResult {
        at: usize,
        epoch: u32,
        to: usize,
        /// The point dialed.
        point: SocketAddr,
        link: u64,
        result: DialResult,
    },
    Msg {
        to: usize,
        link: u64,
        msg: Msg,
    },
    Leave(usize, bool),
    Join(usize),
    Sample,
    ChurnTick,
    /// Epoch scenario: a new set.
    Epoch(u64),
    /// Epoch scenario: members move (the epoch's id).
    Overwrite(u64),
    /// Epoch scenario: an outsider dials a member claiming another member's id.
    Impersonate {
        from: usize,
        to: usize,
        claim: usize,
        link: u64,
        /// Where the impersonator dials from.
        remote: SocketAddr,
    },
    /// Epoch scenario: check the pending figures.
    EpochCheck,
    /// Eclipse scenario: the attackers start dialing and flooding.
    AttackStart,
    /// Eclipse scenario: an attacker dials for this slot (honest node, group).
    AttackDial(usize),
    /// Eclipse scenario: an attacker's handshake reaches an honest node.
    AttackArrive {
        from: usize,
        to: usize,
        link: u64,
        slot: usize,
    },
    /// Eclipse scenario: every attacker floods every connection it holds.
    Flood,
    /// Eclipse scenario: the `k`-th checkpoint.
    EclipseCheck(usize),
    /// Eclipse scenario: the restart case's sample restarts.
    Restart,
    /// Eclipse scenario: the restart case's measurement.
    RestartCheck,
    /// Feedback scenario: every node reports on its peers.
    FeedbackTick,
    /// Partition scenario: the halves part.
    PartitionStart,
    /// Partition scenario: the halves meet again.
    PartitionEnd,
    /// Partition scenario: is the overlay one component again?
    MergeCheck,
}

impl Ev {
    fn code(&self) -> (u8, u64, u64) {
        match self {
            Ev::Start(i) => (1, *i as u64, 0),
            Ev::Timer(i, e) => (2, *i as u64, u64::from(*e)),
            Ev::DialArrive { from, to, .. } => (4, *from as u64, *to as u64),
            Ev::DialResult { at, result, .. } => (
                5,
                *at as u64,
                u64::from(matches!(result, DialResult::Connected { .. })),
            ),
            Ev::Msg { to, link, msg } => (
                match msg {
                    Msg::Ask => 7,
                    Msg::Points(_) => 8,
                    Msg::SwapRequest(_) => 13,
                    Msg::SwapAck(_) => 14,
                    Msg::Close => 6,
                },
                *to as u64,
                *link,
            ),
            Ev::Leave(i, _) => (9, *i as u64, 0),
            Ev::Join(i) => (10, *i as u64, 0),
            Ev::Sample => (11, 0, 0),
            Ev::ChurnTick => (12, 0, 0),
            Ev::Impersonate { from, to, .. } => (15, *from as u64, *to as u64),
            Ev::Epoch(e) => (16, *e, 0),
            Ev::Overwrite(e) => (17, *e, 0),
            Ev::EpochCheck => (18, 0, 0),
            Ev::AttackStart => (19, 0, 0),
            Ev::AttackDial(slot) => (20, *slot as u64, 0),
            Ev::AttackArrive { from, to, .. } => (21, *from as u64, *to as u64),
            Ev::Flood => (22, 0, 0),
            Ev::EclipseCheck(k) => (23, *k as u64, 0),
            Ev::Restart => (24, 0, 0),
            Ev::RestartCheck => (25, 0, 0),
            Ev::FeedbackTick => (26, 0, 0),
            Ev::PartitionStart => (27, 0, 0),
            Ev::PartitionEnd => (28, 0, 0),
            Ev::MergeCheck => (29, 0, 0),
        }
    }
}

struct Scheduled {
    t: Time,
    /// A node's timer: handled after everything else due at `t`.
    timer: bool,
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
        // Min-heap on (time, timers last, sequence): within one millisecond, what arrives
        // from the network is handled before a node's timer, as the tokio node does.
        (o.t, o.timer, o.seq).cmp(&(self.t, self.timer, self.seq))
    }
}

/// The point of node `i`.
pub fn node_addr(i: usize) -> SocketAddr {
    let i = i as u32;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

/// The node listening at `addr`, by the default numbering (see `Simulation::resolve`).
fn node_of(addr: &SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.port() == 9732 && a.ip().octets()[0] == 10 => {
            let o = a.ip().octets();
            Some((usize::from(o[1]) << 16) | (usize::from(o[2]) << 8) | usize::from(o[3]))
        }
        _ => None,
    }
}

/// The peer id of node `i` in a run seeded `seed` (also what a node restarted after churn
/// keeps).
///
/// Not a key: simulated nodes do no cryptography (a million must fit), and nothing in the
/// simulator impersonates. [`PeerId::from_u64`] of a derived number.
pub fn node_peer_id(seed: u64, i: usize) -> PeerId {
    PeerId::from_u64(derive(seed, i as u64))
}

/// The seed of node `i`'s core in its `epoch`-th life.
pub fn node_seed(seed: u64, i: usize, epoch: u32) -> u64 {
    mix(seed ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ u64::from(epoch) << 48)
}

/// The simulator. Build with [`Simulation::new`], run with [`Simulation::run`].
///
/// ```
/// use peerkeeper::sim::{SimConfig, Simulation};
/// use peerkeeper::Policy;
/// use std::time::Duration;
/// let mut cfg = SimConfig::new(50, 7, Duration::from_secs(120), Policy::Peerkeeper);
/// cfg.node_config.min_connections = 4;
/// cfg.node_config.expected_connections = 8;
/// cfg.node_config.max_connections = 12;
/// let a = Simulation::new(cfg.clone()).run(|_| {});
/// let b = Simulation::new(cfg).run(|_| {});
/// assert_eq!(a.report.event_log_hash, b.report.event_log_hash);
/// assert!(a.report.network.converged);
/// assert_eq!(a.report.network.components, 1);
/// ```
pub struct Simulation {
    cfg: SimConfig,
    config: Arc<Config>,
    bounds: Bounds,
    nodes: Vec<SimNode>,
    links: HashMap<u64, (u32, u32)>,
    /// The partition scenario: whether the halves are apart now, when they met again,
    /// and the figures so far.
    partitioned: bool,
    healed_at: Option<Time>,
    partition_report: PartitionReport,
    next_link: u64,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    now: Time,
    rng: SeededRng,
    link_seed: u64,
    hash: Fold,
    events: u64,
    messages: u64,
    retired: CoreStats,
    alive: usize,
    in_range: usize,
    converged_at: Option<Time>,
    /// When the last node of the join schedule starts (late joiners included).
    last_start: Time,
    samples: Vec<Sample>,
    sample_every: Duration,
    half_dials: u64,
    half_swaps: u64,
    half_marked: bool,
    starts: usize,
    recorded: Vec<(usize, TracedAction)>,
    tracer: Tracer,
    /// Per node, its address when it moved (epoch scenario's overwrite; empty otherwise).
    moved: Vec<Option<SocketAddr>>,
    /// Moved addresses -> their node.
    moved_to: HashMap<SocketAddr, usize>,
    /// The epoch scenario's state, when it runs.
    epochs: Option<epochs::EpochState>,
    /// The epoch scenario's own RNG (the other draws stay as without it).
    epoch_rng: SeededRng,
    /// The eclipse scenario's state, when it runs (its own RNG inside).
    eclipse: Option<eclipse::EclipseState>,
    /// The feedback scenario's state, when it runs (its own RNG inside).
    feedback: Option<feedback::FeedbackState>,
    /// The simulated ledger's relays ([`SimConfig::ledger`]).
    ledger: Vec<usize>,
    /// With `record_actions`: per link, the points its two ends (in `links` order) are
    /// known at by each other, as when it opened (a node that moves later keeps them).
    link_points: HashMap<u64, (SocketAddr, SocketAddr)>,
}

impl Simulation {
    /// Sets up the network (nothing runs yet).
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = seeded(cfg.seed);
        let config = Arc::new(match cfg.node_config.policy {
            Policy::Peerkeeper => cfg.node_config.clone(),
            Policy::Octez => octez_config(&cfg.node_config),
        });
        let bounds = config.bounds();
        let link_seed = rng.gen();
        let total = cfg.total_nodes();
        // Per-node draws come from the node's own stream, so adding late joiners (or any
        // node) leaves the others' draws as they were: runs with and without them pair.
        let draw = |i: usize, what: u64| mix(node_seed(cfg.seed, i, 0) ^ what);
        let nat: Vec<bool> = (0..total)
            .map(|i| {
                i >= cfg.bootstrap
                    && (draw(i, 0x006e_6174) as f64 / u64::MAX as f64) < cfg.nat_fraction
            })
            .collect();
        let mut sim = Simulation {
            sample_every: (cfg.duration / cfg.max_samples.max(1) as u32)
                .max(Duration::from_secs(1)),
            cfg,
            config,
            bounds,
            nodes: Vec::with_capacity(total),
            links: HashMap::new(),
            partitioned: false,
            healed_at: None,
            partition_report: PartitionReport::default(),
            next_link: 1,
            heap: BinaryHeap::new(),
            seq: 0,
            now: Time::ZERO,
            rng,
            link_seed,
            hash: Fold::new(0),
            events: 0,
            messages: 0,
            retired: CoreStats::default(),
            alive: 0,
            in_range: 0,
            converged_at: None,
            last_start: Time::ZERO,
            samples: Vec::new(),
            half_dials: 0,
            half_swaps: 0,
            half_marked: false,
            starts: 0,
            recorded: Vec::new(),
            tracer: Tracer::default(),
            moved: Vec::new(),
            moved_to: HashMap::new(),
            epochs: None,
            epoch_rng: seeded(derive(link_seed, 0x6570_6f63_6873)),
            eclipse: None,
            feedback: None,
            ledger: Vec::new(),
            link_points: HashMap::new(),
        };
        if sim.cfg.useless_fraction > 0.0 {
            let seed = sim.cfg.seed;
            let useless: Vec<bool> = (0..total)
                .map(|i| {
                    let d = mix(node_seed(seed, i, 0) ^ 0x7573_656c);
                    i >= sim.cfg.bootstrap
                        && (d as f64 / u64::MAX as f64) < sim.cfg.useless_fraction
                })
                .collect();
            sim.feedback = Some(feedback::FeedbackState::new(
                useless,
                seeded(derive(link_seed, 0x6665_6564)),
            ));
            sim.push(Time::ZERO + feedback::REPORT_INTERVAL, Ev::FeedbackTick);
        }
        if sim.cfg.ledger > 0 {
            let mut all: Vec<usize> = (0..total).collect();
            all.shuffle(&mut seeded(derive(link_seed, 0x6c65_6467_6572)));
            all.truncate(sim.cfg.ledger);
            all.sort_unstable();
            sim.ledger = all;
        }
        if let Some(e) = sim.cfg.epochs.clone() {
            let kept = sim.config.peer_sets.kept_sets;
            sim.epochs = Some(epochs::EpochState::new(e, kept));
            sim.moved = vec![None; total];
            sim.push(Time::ZERO + epochs::FIRST_EPOCH, Ev::Epoch(1));
        }
        if let Some(e) = sim.cfg.eclipse.clone() {
            sim.setup_eclipse(e, total);
        }
        let starts = sim
            .cfg
            .joins
            .starts(sim.cfg.nodes, sim.cfg.bootstrap, sim.cfg.seed);
        for (i, nat) in nat.into_iter().enumerate() {
            let node = sim.fresh_node(i, nat, 0);
            sim.nodes.push(node);
            let start = starts
                .get(i)
                .copied()
                .unwrap_or(Time::ZERO + sim.cfg.late_at);
            sim.last_start = sim.last_start.max(start);
            sim.push(start, Ev::Start(i));
        }
        sim.push(Time::ZERO, Ev::Sample);
        if sim.cfg.churn_per_minute > 0.0 {
            sim.push(Time::ZERO + Duration::from_secs(60), Ev::ChurnTick);
        }
        if let Some(p) = sim.cfg.partition {
            sim.push(Time::ZERO + p.at, Ev::PartitionStart);
            sim.push(Time::ZERO + p.at + p.length, Ev::PartitionEnd);
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

    fn fresh_node(&mut self, i: usize, nat: bool, epoch: u32) -> SimNode {
        let peer = node_peer_id(self.cfg.seed, i);
        let core = NodeCore::with_shared_config(
            self.config.clone(),
            peer,
            node_seed(self.cfg.seed, i, epoch),
        );
        if self.cfg.trace_nodes.contains(&i) {
            // `NodeCore::new` of the node's config builds this very core (with the octez
            // policy, it applies `octez_config` as `Simulation::new` did).
            let header = TraceHeader::new(
                self.cfg.node_config.clone(),
                peer,
                node_seed(self.cfg.seed, i, epoch),
            );
            let t = &mut self.tracer;
            t.current.insert(i, t.traces.len());
            t.traces.push(NodeTrace {
                node: i,
                life: epoch,
                header,
                inputs: Vec::new(),
            });
        }
        SimNode {
            peer,
            alive: false,
            nat,
            epoch,
            core,
            timer: None,
            in_range: false,
            short_since: None,
            max_seen: 0,
            cycles_before: 0,
        }
    }

    /// The current point of node `i`: [`node_addr`], unless it moved (or the eclipse
    /// scenario's address plan).
    #[inline]
    fn addr(&self, i: usize) -> SocketAddr {
        if let Some(e) = &self.eclipse {
            return e.addrs[i];
        }
        match self.moved.get(i) {
            Some(Some(a)) => *a,
            _ => node_addr(i),
        }
    }

    /// The node that answers at `addr`: a moved node at its new address only.
    #[inline]
    fn resolve(&self, addr: &SocketAddr) -> Option<usize> {
        if let Some(e) = &self.eclipse {
            return e.table.get(addr).copied();
        }
        if let Some(&j) = self.moved_to.get(addr) {
            return Some(j);
        }
        node_of(addr)
            .filter(|j| *j < self.nodes.len() && !matches!(self.moved.get(*j), Some(Some(_))))
    }

    fn push(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            t,
            timer: matches!(ev, Ev::Timer(..)),
            seq: self.seq,
            ev,
        });
    }

    fn latency(&self, a: usize, b: usize) -> Duration {
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let mut r = seeded(
            Fold::new(self.link_seed)
                .add(x as u64)
                .add(y as u64)
                .finish(),
        );
        self.cfg.latency.draw(x, y, &mut r)
    }

    fn send(&mut self, from: usize, to: usize, ev: Ev) {
        self.send_legs(from, to, 1, ev);
    }

    /// `ev` arrives after `legs` one-way trips on the link (the messages of a handshake).
    fn send_legs(&mut self, from: usize, to: usize, legs: u32, ev: Ev) {
        self.messages += 1;
        let t = self.now + self.latency(from, to) * legs;
        self.push(t, ev);
    }

    fn send_msg(&mut self, from: usize, to: usize, link: u64, msg: Msg) {
        if self.cut(from, to) {
            // Lost in the partition (the connection's end is delivered at its start).
            return;
        }
        self.send(from, to, Ev::Msg { to, link, msg });
    }

    /// The node at the other end of `link` from `i`.
    fn other(&self, link: u64, i: usize) -> Option<usize> {
        self.links.get(&link).map(|&(a, b)| {
            if a as usize == i {
                b as usize
            } else {
                a as usize
            }
        })
    }

    /// The point node `i` knows the other end of `link` at (for recorded actions).
    fn peer_point(&self, link: u64, i: usize) -> Option<SocketAddr> {
        let j = self.other(link, i)?;
        Some(match self.link_points.get(&link) {
            Some(&(a, b)) => {
                if self.links.get(&link).is_some_and(|&(x, _)| x as usize == i) {
                    b
                } else {
                    a
                }
            }
            None => self.addr(j),
        })
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
            self.hash = self
                .hash
                .add(s.t.as_millis())
                .add(u64::from(k))
                .add(a)
                .add(b);
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

    fn dials_attempted(&self) -> u64 {
        self.retired.dials.attempted
            + self
                .nodes
                .iter()
                .map(|n| n.core.stats().dials.attempted)
                .sum::<u64>()
    }

    fn mark_half(&mut self) {
        self.half_marked = true;
        self.half_dials = self.dials_attempted();
        self.half_swaps = self.retired.closed.swapped
            + self
                .nodes
                .iter()
                .map(|n| n.core.stats().closed.swapped)
                .sum::<u64>();
        for n in &mut self.nodes {
            n.cycles_before = n.core.stats().cycles;
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
                let epoch = self.nodes[i].epoch;
                let nat = self.nodes[i].nat;
                let fresh = self.fresh_node(i, nat, epoch);
                let old = std::mem::replace(&mut self.nodes[i], fresh);
                retire(&mut self.retired, &old.core.stats());
                if let Some(e) = self.eclipse.as_mut() {
                    e.retire(&old.core.stats());
                }
                self.nodes[i].max_seen = old.max_seen;
                self.start_node(i);
            }
            Ev::Timer(i, e) => {
                let n = &mut self.nodes[i];
                if !n.alive || n.epoch != e || n.timer != Some(self.now) {
                    return;
                }
                n.timer = None;
                let now = self.now;
                self.tracer.record(i, now, || Input::Timeout);
                n.core.handle_timeout(now);
                self.after(i);
            }
            Ev::DialArrive {
                from,
                to,
                point,
                link,
            } => self.dial_arrive(from, to, point, link),
            Ev::DialResult {
                at,
                epoch,
                to,
                point,
                link,
                result,
            } => self.dial_result(at, epoch, to, point, link, result),
            Ev::Msg { to, link, msg } => self.deliver(to, link, msg),
            Ev::Leave(i, comes_back) => {
                self.leave(i, if comes_back { Back::Drawn } else { Back::Never })
            }
            Ev::Sample => {
                self.sample();
                let next = self.now + self.sample_every;
                self.push(next, Ev::Sample);
            }
            Ev::ChurnTick => {
                let expected = self.cfg.churn_per_minute * self.cfg.nodes as f64;
                let n = match self.eclipse.as_mut() {
                    // Small rates in small networks: carried over from minute to minute.
                    Some(e) => e.churn_count(expected),
                    None => expected.round() as usize,
                };
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
            Ev::Epoch(e) => self.new_epoch(e),
            Ev::Overwrite(e) => self.overwrite(e),
            Ev::Impersonate {
                from,
                to,
                claim,
                link,
                remote,
            } => self.impersonate(from, to, claim, link, remote),
            Ev::EpochCheck => self.epoch_check(),
            Ev::AttackStart => self.attack_start(),
            Ev::AttackDial(slot) => self.attack_dial(slot),
            Ev::AttackArrive {
                from,
                to,
                link,
                slot,
            } => self.attack_arrive(from, to, link, slot),
            Ev::Flood => self.flood(),
            Ev::EclipseCheck(k) => self.eclipse_check(k),
            Ev::Restart => self.eclipse_restart(),
            Ev::RestartCheck => self.restart_check(),
            Ev::FeedbackTick => {
                self.feedback_tick();
                let next = self.now + feedback::REPORT_INTERVAL;
                self.push(next, Ev::FeedbackTick);
            }
            Ev::PartitionStart => self.partition_start(),
            Ev::PartitionEnd => {
                self.partitioned = false;
                self.partition_report.components_before_heal = self.current_components();
                self.healed_at = Some(self.now);
                self.push(self.now, Ev::MergeCheck);
            }
            Ev::MergeCheck => {
                if self.current_components() == 1 {
                    let healed = self.healed_at.unwrap_or(self.now);
                    self.partition_report.merged_after_ms =
                        Some(self.now.saturating_since(healed).as_millis() as u64);
                } else {
                    let next = self.now + Duration::from_secs(1);
                    self.push(next, Ev::MergeCheck);
                }
            }
        }
    }

    /// Whether a partition now separates nodes `a` and `b` (attackers excepted).
    fn cut(&self, a: usize, b: usize) -> bool {
        self.partitioned && a < self.nodes.len() && b < self.nodes.len() && a % 2 != b % 2
    }

    /// The partition starts: every connection across it ends, at both ends, as a
    /// keepalive timeout ends it.
    fn partition_start(&mut self) {
        self.partitioned = true;
        let mut across: Vec<(u64, usize, usize)> = self
            .links
            .iter()
            .map(|(&l, &(a, b))| (l, a as usize, b as usize))
            .filter(|&(_, a, b)| self.cut(a, b))
            .collect();
        across.sort_unstable();
        for (link, a, b) in across {
            let now = self.now;
            self.push(
                now,
                Ev::Msg {
                    to: a,
                    link,
                    msg: Msg::Close,
                },
            );
            self.push(
                now,
                Ev::Msg {
                    to: b,
                    link,
                    msg: Msg::Close,
                },
            );
        }
    }

    /// Components of the overlay of the alive simulated nodes now.
    fn current_components(&self) -> usize {
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive)
            .collect();
        let mut index = vec![usize::MAX; self.nodes.len()];
        for (k, i) in alive.iter().enumerate() {
            index[*i] = k;
        }
        let mut edges = Vec::new();
        for &i in &alive {
            for (a, _) in self.nodes[i].core.pool().connections() {
                if let Some(j) = self.resolve(&a) {
                    if i < j && j < self.nodes.len() && index[j] != usize::MAX {
                        edges.push((index[i], index[j]));
                    }
                }
            }
        }
        components(alive.len(), &edges)
    }

    /// A node starts as `peerkeeper node` does: it learns its own point and its
    /// bootstrap points, then starts (the same inputs, in the same order, as the tokio
    /// node's).
    fn start_node(&mut self, i: usize) {
        self.nodes[i].alive = true;
        self.alive += 1;
        let now = self.now;
        let bootstrap: Vec<SocketAddr> = (0..self.cfg.bootstrap)
            .filter(|b| *b != i)
            .map(|b| self.addr(b))
            .collect();
        let own = self.addr(i);
        let t = &mut self.tracer;
        t.record(i, now, || Input::AddOwnPoint { point: own });
        t.record(i, now, || Input::AddPoints {
            points: bootstrap.clone(),
            source: Source::Bootstrap,
        });
        let core = &mut self.nodes[i].core;
        core.add_own_point(own);
        core.add_points(&bootstrap, Source::Bootstrap, now);
        if !self.ledger.is_empty() {
            self.feed_ledger(i);
        }
        if self.eclipse.is_some() {
            // As `peerkeeper node --data-dir` after a restart: the saved pool, aged.
            self.restore_saved(i);
        }
        self.tracer.record(i, now, || Input::Start);
        self.nodes[i].core.start(now);
        self.after(i);
    }

    /// Node `i` gets the ledger's relays, as its ledger source would give them.
    fn feed_ledger(&mut self, i: usize) {
        let now = self.now;
        let points: Vec<SocketAddr> = self.ledger.iter().map(|&j| self.addr(j)).collect();
        self.tracer.record(i, now, || Input::SourcePoints {
            points: points.clone(),
            kind: Source::External,
        });
        self.nodes[i].core.handle_source_points(&points, now);
    }

    fn dial_arrive(&mut self, from: usize, to: usize, point: SocketAddr, link: u64) {
        if to >= self.nodes.len() {
            // An attacker: scripted, it accepts every connection.
            self.attacker_accepts(from, to, point, link);
            return;
        }
        let now = self.now;
        let from_addr = self.addr(from);
        let fail = self.cfg.dial_failure_rate > 0.0
            && self.rng.gen_bool(self.cfg.dial_failure_rate.min(1.0));
        let hello = Hello {
            peer: self.nodes[from].peer,
            listen_port: from_addr.port(),
        };
        let dialer_epoch = self.nodes[from].epoch;
        let n = &mut self.nodes[to];
        let result = if !n.alive {
            // Its host answers, nobody listens (not started yet, or gone): refused, as a
            // TCP connect to a closed port is.
            DialResult::Failed(DialFailure::Refused)
        } else if n.nat || fail {
            DialResult::Failed(DialFailure::Io)
        } else {
            self.tracer.record(to, now, || Input::Inbound {
                conn: ConnId(link),
                remote: from_addr,
                hello,
            });
            match n.core.handle_inbound(ConnId(link), from_addr, hello, now) {
                Admission::Accept => DialResult::Connected {
                    conn: ConnId(link),
                    peer: n.peer,
                },
                Admission::Refuse { reason, points } => DialResult::Refused { reason, points },
            }
        };
        if !matches!(result, DialResult::Connected { .. }) {
            self.links.remove(&link);
        }
        // The answer goes first: whatever the listener does next on this link (a
        // farewell, a close) follows it, as on a TCP connection.
        self.send(
            to,
            from,
            Ev::DialResult {
                at: from,
                epoch: dialer_epoch,
                to,
                point,
                link,
                result,
            },
        );
        self.after(to);
    }

    fn dial_result(
        &mut self,
        at: usize,
        epoch: u32,
        to: usize,
        point: SocketAddr,
        link: u64,
        result: DialResult,
    ) {
        let now = self.now;
        let connected = matches!(result, DialResult::Connected { .. });
        let n = &mut self.nodes[at];
        let kept = if n.alive && n.epoch == epoch {
            self.tracer.record(at, now, || Input::DialResult {
                point,
                result: result.clone(),
            });
            let verdict = n.core.handle_dial_result(point, result, now);
            self.after(at);
            verdict == DialVerdict::Keep
        } else {
            false
        };
        if connected && !kept {
            // We drop it (or left meanwhile): the other side hears of it.
            self.send_msg(at, to, link, Msg::Close);
        }
    }

    fn deliver(&mut self, to: usize, link: u64, msg: Msg) {
        let now = self.now;
        if let Msg::Close = msg {
            // The link is gone once both ends know: until then the other end may still
            // send on it (and the closer ignores what comes), as on TCP.
            self.links.remove(&link);
        }
        if to >= self.nodes.len() {
            self.attacker_gets(to, link, msg);
            return;
        }
        let n = &mut self.nodes[to];
        if !n.alive {
            return;
        }
        let conn = ConnId(link);
        self.tracer.record(to, now, || match &msg {
            Msg::Ask => Input::PointsAsked { conn },
            Msg::Points(p) => Input::Points {
                conn,
                points: p.clone(),
            },
            Msg::SwapRequest(p) => Input::SwapRequest { conn, point: *p },
            Msg::SwapAck(p) => Input::SwapAck { conn, point: *p },
            Msg::Close => Input::Closed { conn },
        });
        match msg {
            Msg::Ask => n.core.handle_points_asked(conn, now),
            Msg::Points(p) => n.core.handle_points(conn, &p, now),
            Msg::SwapRequest(p) => n.core.handle_swap_request(conn, p, now),
            Msg::SwapAck(p) => n.core.handle_swap_ack(conn, p, now),
            Msg::Close => n.core.handle_closed(conn, now),
        }
        self.after(to);
    }

    fn lost(&mut self) -> bool {
        self.cfg.message_loss > 0.0 && self.rng.gen_bool(self.cfg.message_loss.min(1.0))
    }

    /// Carries out node `i`'s actions, then updates the range accounting and its timer.
    fn after(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].core.poll_action() {
            if self.cfg.record_actions {
                let peer = a.conn().and_then(|c| self.peer_point(c.0, i));
                self.recorded.push((
                    i,
                    TracedAction {
                        at: self.now,
                        action: a.clone(),
                        peer,
                    },
                ));
            }
            match a {
                Action::Dial(p) => match self.resolve(&p) {
                    Some(j) if self.cut(i, j) => {
                        // Nothing answers across the partition: the dial times out.
                        let link = self.next_link;
                        self.next_link += 1;
                        let at = self.now + self.config.dial_timeout;
                        let epoch = self.nodes[i].epoch;
                        self.push(
                            at,
                            Ev::DialResult {
                                at: i,
                                epoch,
                                to: j,
                                point: p,
                                link,
                                result: DialResult::Failed(DialFailure::Timeout),
                            },
                        );
                    }
                    Some(j) => {
                        let link = self.next_link;
                        self.next_link += 1;
                        self.links.insert(link, (i as u32, j as u32));
                        if self.cfg.record_actions {
                            self.link_points.insert(link, (self.addr(i), p));
                        }
                        // Hello, hello back, the dialer's signature: three legs before
                        // the listener's core hears of it.
                        self.messages += 2;
                        self.send_legs(
                            i,
                            j,
                            3,
                            Ev::DialArrive {
                                from: i,
                                to: j,
                                point: p,
                                link,
                            },
                        );
                    }
                    None => {
                        // Nobody listens there: refused at once.
                        let now = self.now;
                        self.tracer.record(i, now, || Input::DialResult {
                            point: p,
                            result: DialResult::Failed(DialFailure::Io),
                        });
                        self.nodes[i].core.handle_dial_result(
                            p,
                            DialResult::Failed(DialFailure::Io),
                            now,
                        );
                    }
                },
                Action::Close { conn, .. } => {
                    if let Some(j) = self.other(conn.0, i) {
                        self.send_msg(i, j, conn.0, Msg::Close);
                    }
                }
                Action::SendPoints { conn, points } => {
                    if let Some(j) = self.other(conn.0, i) {
                        if self.lost() {
                            self.messages += 1;
                        } else {
                            self.send_msg(i, j, conn.0, Msg::Points(points));
                        }
                    }
                }
                Action::AskForPoints { conn } => {
                    if let Some(j) = self.other(conn.0, i) {
                        if self.lost() {
                            self.messages += 1;
                        } else {
                            self.send_msg(i, j, conn.0, Msg::Ask);
                        }
                    }
                }
                Action::SwapRequest { conn, point } => {
                    if let Some(j) = self.other(conn.0, i) {
                        self.send_msg(i, j, conn.0, Msg::SwapRequest(point));
                    }
                }
                Action::SwapAck { conn, point } => {
                    if let Some(j) = self.other(conn.0, i) {
                        self.send_msg(i, j, conn.0, Msg::SwapAck(point));
                    }
                }
                // The ledger, when there is one, is the simulated nodes' one source.
                Action::PollSources => {
                    if !self.ledger.is_empty() {
                        self.feed_ledger(i);
                    }
                }
                Action::Trigger(_) | Action::CycleStarted { .. } | Action::CycleEnded { .. } => {}
            }
        }
        self.account(i);
        self.reschedule(i);
    }

    fn account(&mut self, i: usize) {
        let (lo, hi) = (self.bounds.min_threshold, self.bounds.max_threshold);
        let n = &mut self.nodes[i];
        let count = n.core.connection_count();
        n.max_seen = n.max_seen.max(count);
        let in_range = n.alive && (lo..=hi).contains(&count);
        if n.alive && count < lo {
            n.short_since.get_or_insert(self.now);
        } else {
            n.short_since = None;
        }
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
            && self.starts == self.nodes.len()
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
        let deadline = n.core.next_deadline().map(|t| t.max(self.now));
        if deadline.is_some() && deadline != n.timer {
            n.timer = deadline;
            let t = deadline.unwrap_or(self.now);
            self.push(t, Ev::Timer(i, epoch));
        }
    }

    fn leave(&mut self, i: usize, back: Back) {
        if !self.nodes[i].alive {
            return;
        }
        let now = self.now;
        if back != Back::Never {
            if let Some(e) = self.eclipse.as_mut() {
                // As `peerkeeper node --data-dir` at shutdown: the pool is saved.
                e.save(i, self.nodes[i].core.snapshot(now), now);
            }
        }
        self.tracer.record(i, now, || Input::Shutdown);
        let n = &mut self.nodes[i];
        n.core.shutdown(now);
        let mut closes = Vec::new();
        while let Some(a) = n.core.poll_action() {
            if let Action::Close { conn, .. } = a {
                closes.push(conn.0);
            }
        }
        for link in closes {
            if let Some(j) = self.other(link, i) {
                self.send_msg(i, j, link, Msg::Close);
            }
        }
        let n = &mut self.nodes[i];
        n.alive = false;
        n.epoch += 1;
        n.timer = None;
        self.alive -= 1;
        if n.in_range {
            n.in_range = false;
            self.in_range -= 1;
        }
        let back = match back {
            Back::Never => return,
            Back::Drawn => self.now + Duration::from_millis(self.rng.gen_range(60_000..300_000)),
            Back::After(d) => self.now + d,
        };
        self.push(back, Ev::Join(i));
    }

    fn sample(&mut self) {
        if self.samples.len() >= self.cfg.max_samples {
            return;
        }
        let mut counts = Vec::with_capacity(self.alive);
        let mut pool_total = 0usize;
        for n in self.nodes.iter().filter(|n| n.alive) {
            counts.push(n.core.connection_count());
            pool_total += n.core.pool().len();
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
        if let Some(st) = &mut self.epochs {
            st.end();
        }
        let mut counts = Vec::new();
        let mut edges = Vec::new();
        let mut stats = self.retired;
        let mut late_cycles = 0;
        let mut max_seen = 0;
        let mut short = 0;
        let mut short_nat = 0;
        let mut longest_short = Duration::ZERO;
        let mut late_in_range = 0;
        let mut pool_points = 0usize;
        let mut by_kind = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.core.stats();
            retire(&mut stats, &s);
            max_seen = max_seen.max(n.max_seen);
            if !n.alive {
                continue;
            }
            late_cycles += s.cycles - n.cycles_before.min(s.cycles);
            let c = n.core.connection_count();
            counts.push(c);
            by_kind.push(kinds::open_by_kind(n.core.pool()));
            pool_points += n.core.pool().len();
            if i >= self.cfg.nodes && n.in_range {
                late_in_range += 1;
            }
            if c < self.bounds.min_threshold {
                short += 1;
                if let Some(t) = n.short_since {
                    longest_short = longest_short.max(self.now.saturating_since(t));
                }
                if n.nat {
                    short_nat += 1;
                }
            }
            for (a, _) in n.core.pool().connections() {
                if let Some(j) = self.resolve(&a) {
                    // (Attackers, after the simulated nodes, are not in the overlay.)
                    if i < j && j < self.nodes.len() {
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
        let components = components(alive_ids.len(), &alive_edges);
        let late_dials = stats.dials.attempted - self.half_dials;
        let half_hours = self.cfg.duration.as_secs_f64() / 2.0 / 3600.0;
        let per_node_hour = |x: u64| {
            if self.alive == 0 || half_hours == 0.0 {
                0.0
            } else {
                x as f64 / self.alive as f64 / half_hours
            }
        };
        let converged = self.alive > 0
            && short == 0
            && components == 1
            && self.starts == self.nodes.len()
            && counts.iter().all(|c| *c <= self.bounds.max_threshold);
        let short_reason = (short > 0).then(|| {
            let why = if short_nat == short {
                format!("{short} nodes below min_threshold, all behind NAT: they can only dial out, and the public nodes are full")
            } else {
                format!("{short} nodes below min_threshold ({short_nat} behind NAT)")
            };
            format!("{why}; the longest for {} ms", longest_short.as_millis())
        });
        let network = NetworkReport {
            nodes: self.nodes.len(),
            seed: self.cfg.seed,
            converged,
            converged_at_ms: self.converged_at.map(Time::as_millis),
            connections: Spread::of(&counts),
            components,
            max_observed_connections: max_seen,
            dials: stats.dials,
            points_dropped: stats.points.dropped,
            peer_sharing: SharingCounts {
                requests: stats.sharing.requests,
                points_received: stats.points.received,
            },
            maintenance_cycles: stats.cycles,
            wall_ms: 0,
        };
        let approx = if alive_ids.is_empty() {
            0
        } else {
            // Pool entries (about 110 bytes a point, see BENCHMARKS.md) plus the fixed state.
            std::mem::size_of::<SimNode>() + pool_points / alive_ids.len() * 110
        };
        let report = SimReport {
            network,
            policy: self.cfg.node_config.policy,
            virtual_ms: self.cfg.duration.as_millis() as u64,
            last_start_ms: self.last_start.as_millis(),
            events: self.events,
            messages: self.messages,
            event_log_hash: format!("{:016x}", self.hash.finish()),
            alive: alive_ids.len(),
            short_nodes: short,
            longest_short_ms: longest_short.as_millis() as u64,
            short_reason,
            late_joiners: self.cfg.late_joiners,
            late_joiners_in_range: late_in_range,
            late_cycles_per_node_hour: per_node_hour(late_cycles),
            late_dials_per_node_hour: per_node_hour(late_dials),
            late_swaps_per_node_hour: per_node_hour(stats.closed.swapped - self.half_swaps),
            approx_bytes_per_node: approx,
            epochs: self.epochs.as_ref().map(epochs::EpochState::report),
            kinds: kinds::report(&self.config, self.cfg.ledger, &by_kind),
            eclipse: self
                .eclipse
                .as_ref()
                .map(|e| e.report(self.nodes.iter().map(|n| n.core.stats()))),
            feedback: self.feedback_report(),
            partition: self.cfg.partition.map(|_| {
                let hours = self.cfg.duration.as_secs_f64() / 3600.0;
                let rate = |n: u64| {
                    if self.alive == 0 || hours == 0.0 {
                        0.0
                    } else {
                        n as f64 / self.alive as f64 / hours
                    }
                };
                PartitionReport {
                    explorations_per_node_hour: rate(stats.dials.explorations),
                    exploration_swaps_per_node_hour: rate(stats.dials.exploration_swaps),
                    swapped_per_node_hour: rate(stats.closed.swapped),
                    ..self.partition_report
                }
            }),
        };
        SimOutcome {
            report,
            samples: self.samples,
            final_connections: self
                .nodes
                .iter()
                .map(|n| n.core.connection_count())
                .collect(),
            alive: self.nodes.iter().map(|n| n.alive).collect(),
            actions: self.recorded,
            traces: self.tracer.traces,
        }
    }
}

/// Adds a core's counters to a network-wide total.
fn retire(total: &mut CoreStats, s: &CoreStats) {
    total.dials.add(&s.dials);
    total.points.dropped.add(&s.points.dropped);
    total.points.received += s.points.received;
    total.sharing.requests += s.sharing.requests;
    total.cycles += s.cycles;
    total.closed.swapped += s.closed.swapped;
}
