//! Prometheus metrics of a running [`Node`], and an endpoint serving them.
//!
//! [`Metrics::new`] registers peerkeeper's metrics (every name starts with `peerkeeper_`)
//! in a [`prometheus_client`] [`Registry`]: the embedding node's own registry, next to its
//! own metrics, or a new one. [`Metrics::attach`] (or [`Metrics::follow`]) then keeps them
//! up to date from a node until it stops. Serving them is the embedding node's choice: its
//! own HTTP server encodes the registry with
//! [`prometheus_client::encoding::text::encode`], or [`serve`] runs a small hardened one
//! (`peerkeeper node --metrics ADDR` does).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use peerkeeper::{metrics::Metrics, node::Node, transport::memory::MemoryNetwork, Config};
//! use prometheus_client::registry::Registry;
//! use std::sync::Arc;
//! let net = MemoryNetwork::new();
//! let node = Arc::new(Node::builder(Config::default(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
//!     .seed(1).start().unwrap());
//! let mut registry = Registry::default();
//! let metrics = Metrics::new(&mut registry);
//! let task = metrics.attach(&node); // ends when the node stops
//! node.maintain().await.unwrap();
//! node.shutdown().await;
//! task.await.unwrap();
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("peerkeeper_cycles_total{"));
//! # }
//! ```
//!
//! # Where the values come from
//!
//! * Counters the node core keeps ([`CoreStats`]: dials by
//!   outcome, connections opened, points received and dropped, requests for points, ...)
//!   are copied from the node's status ([`Node::status_watch`]) as it changes: exact,
//!   whatever happens to the event stream.
//! * Gauges by state and kind (connections by direction and kind, points by state and
//!   kind) are counted in the node ([`Node::inspect`]) when its counts change, at most
//!   four times a second (less often when a count waits long for the node's actor, which
//!   then spends at most a twentieth of its time on them), and at least every five
//!   seconds. A scrape never reaches the node: scrapes cost it nothing, whoever sends them.
//! * What only events tell ([`Node::subscribe`]): the direction of a closed connection,
//!   cycles by wake reason and outcome, their duration, bans. The subscription is read
//!   at once; should it lag all the same (`RecvError::Lagged`), the events lost are
//!   counted (`peerkeeper_events_missed_total`), and closed connections stay exact by
//!   reason: those whose event was lost are counted with `direction="unknown"`.
//!
//! `docs/metrics.md` lists every metric with its labels, and sample queries.
//!
//! One [`Metrics`] follows one node. For several nodes in one process, give each its own,
//! registered in a sub-registry with a label of its own
//! ([`Registry::sub_registry_with_label`]).

mod process;
mod serve;

pub use process::{register_process_metrics, ProcessStats};
pub use serve::{serve, serve_with, MetricsServer, ServeConfig, OPENMETRICS_CONTENT_TYPE};

use crate::config::Bounds;
use crate::core::{CloseStats, CoreStats, DialEnd, Ended, Event, NodeCore, Report};
use crate::maintenance::{CycleReport, WakeReason, WakeReasons};
use crate::node::{Node, NodeStatus};
use crate::pool::{CloseReason, ConnId, Direction, PointState, PoolStats, Sources};
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// The shortest time between two counts of connections and points by kind.
pub const REFRESH_MIN_GAP: Duration = Duration::from_millis(250);
/// The longest: points become dialable as time passes, without any other change.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(5);

/// Upper bounds of the cycle duration histogram, in seconds: a cycle with nothing to do
/// takes no time; a top-up waits for dials (`dial_timeout`, 10 s by default) and for
/// points (`time_between_looking_for_peers`, 5 s, maybe several times).
pub const CYCLE_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The kinds of points and connections, by the point's sources: the first of trusted,
/// bootstrap, external (a [`PointSource`](crate::node::PointSource)), peer-shared,
/// incoming that the point has.
pub const KINDS: [&str; 5] = [
    "trusted",
    "bootstrap",
    "external",
    "peer_sharing",
    "incoming",
];

/// The states of points counted by `peerkeeper_points`: connected; with a dial in flight
/// (and not connected); dialable now. The rest of `peerkeeper_points_known` waits: backed
/// off after failures, greylisted, just disconnected, or its peer connected at another
/// point.
pub const POINT_STATES: [&str; 3] = ["connected", "dialing", "dialable"];

const DIRECTIONS: [&str; 2] = ["outbound", "inbound"];
const UNKNOWN: &str = "unknown";

/// Close reasons (`peerkeeper_connections_closed_total{reason}`): ours
/// ([`CloseReason`]), then `by_peer` (the peer closed it, or the network lost it).
const CLOSE_REASONS: [&str; 10] = [
    "too_many_connections",
    "protocol_violation",
    "duplicate",
    "shutdown",
    "address_changed",
    "swapped",
    "timeout",
    "lost",
    "untracked",
    "by_peer",
];
const BY_PEER: usize = 9;

type CloseCount = fn(&CloseStats) -> u64;

/// The close reasons [`CoreStats`] counts (index in [`CLOSE_REASONS`], and the count).
const EXACT_CLOSES: [(usize, CloseCount); 5] = [
    (0, |c| c.trimmed),
    (1, |c| c.violation),
    (2, |c| c.duplicate),
    (5, |c| c.swapped),
    (BY_PEER, |c| c.lost),
];

/// Points dropped at intake, by reason (the fields of
/// [`PointsDropped`](crate::core::intake::PointsDropped)).
const DROP_REASONS: [&str; 8] = [
    "port_zero",
    "not_unicast",
    "loopback_from_remote",
    "private_from_public",
    "private_refused",
    "myself",
    "pool_full",
    "collision",
];

/// Inbound handshakes refused, by reason (the fields of
/// [`AdmissionStats`](crate::core::AdmissionStats)).
const REFUSE_REASONS: [&str; 9] = [
    "full",
    "greylisted",
    "duplicate",
    "myself",
    "private",
    "untracked",
    "wrong_peer",
    "per_address",
    "per_group",
];

const BOUNDS: [&str; 7] = [
    "min_threshold",
    "min_target",
    "max_target",
    "max_threshold",
    "max_connections",
    "max_outbound",
    "max_inbound",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionKind {
    direction: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateKind {
    state: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionReason {
    direction: &'static str,
    reason: &'static str,
}

/// The reasons of `peerkeeper_handshake_budget_total`.
const HANDSHAKE_OUTCOMES: [&str; 8] = [
    "evicted",
    "throttled",
    "busy",
    "full",
    "failed",
    "refused_network",
    "refused_version",
    "refused_address",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    reasons: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabel {
    bound: &'static str,
}

/// peerkeeper's metrics, registered in a [`Registry`]; see the [module docs](self).
/// Cheap to clone (the clones share the values).
#[derive(Clone, Debug)]
pub struct Metrics {
    m: Arc<Families>,
}

#[derive(Debug)]
struct Families {
    connections: Family<DirectionKind, Gauge>,
    connection_bounds: Family<BoundLabel, Gauge>,
    points: Family<StateKind, Gauge>,
    points_known: Gauge,
    dials_in_flight: Gauge,
    wants_points: Gauge,
    dial_attempts: Counter,
    dials: Family<OutcomeLabel, Counter>,
    opened: Family<DirectionLabel, Counter>,
    closed: Family<DirectionReason, Counter>,
    inbound_refused: Family<ReasonLabel, Counter>,
    inbound_dropped: Counter,
    handshakes: Family<ReasonLabel, Counter>,
    made_room: Counter,
    cycles: Family<CycleLabels, Counter>,
    cycle_duration: Histogram,
    discovery_rounds: Counter,
    discovery_requests: Counter,
    points_received: Counter,
    points_new: Counter,
    points_dropped: Family<ReasonLabel, Counter>,
    points_evicted: Counter,
    book_points: Family<SideLabel, Gauge>,
    book_tests: Counter,
    book_tried_evicted: Counter,
    book_tried_kept: Counter,
    answers: Counter,
    deferred_answers: Counter,
    asks_ignored: Counter,
    adverts_ignored: Counter,
    violations: Counter,
    bans: Counter,
    swaps: Counter,
    events_missed: Counter,
    no_room: Counter,
    feedback_reports: Family<ReportLabel, Counter>,
    feedback_disconnects: Counter,
    feedback_bans: Counter,
    info: Family<InfoLabels, Gauge>,
}

/// `peerkeeper_info`'s labels: what runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    peer_id: String,
    network: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabel {
    report: &'static str,
}

impl Metrics {
    /// Registers peerkeeper's metrics in `registry` (names prefixed `peerkeeper_`), every
    /// labelled series that is known in advance already at zero.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Families {
            connections: Family::default(),
            connection_bounds: Family::default(),
            points: Family::default(),
            points_known: Gauge::default(),
            dials_in_flight: Gauge::default(),
            wants_points: Gauge::default(),
            dial_attempts: Counter::default(),
            dials: Family::default(),
            opened: Family::default(),
            closed: Family::default(),
            inbound_refused: Family::default(),
            inbound_dropped: Counter::default(),
            handshakes: Family::default(),
            made_room: Counter::default(),
            cycles: Family::default(),
            cycle_duration: Histogram::new(CYCLE_BUCKETS),
            discovery_rounds: Counter::default(),
            discovery_requests: Counter::default(),
            points_received: Counter::default(),
            points_new: Counter::default(),
            points_dropped: Family::default(),
            points_evicted: Counter::default(),
            book_points: Family::default(),
            book_tests: Counter::default(),
            book_tried_evicted: Counter::default(),
            book_tried_kept: Counter::default(),
            answers: Counter::default(),
            deferred_answers: Counter::default(),
            asks_ignored: Counter::default(),
            adverts_ignored: Counter::default(),
            violations: Counter::default(),
            bans: Counter::default(),
            swaps: Counter::default(),
            events_missed: Counter::default(),
            no_room: Counter::default(),
            feedback_reports: Family::default(),
            feedback_disconnects: Counter::default(),
            feedback_bans: Counter::default(),
            info: Family::default(),
        };
        for report in Report::ALL {
            let _ = m.feedback_reports.get_or_create(&ReportLabel {
                report: report.name(),
            });
        }
        for direction in DIRECTIONS {
            let _ = m.opened.get_or_create(&DirectionLabel { direction });
            for kind in KINDS {
                let _ = m
                    .connections
                    .get_or_create(&DirectionKind { direction, kind });
            }
            // The reasons the node core counts; the others appear when they happen.
            for (r, _) in EXACT_CLOSES {
                let reason = CLOSE_REASONS[r];
                let _ = m
                    .closed
                    .get_or_create(&DirectionReason { direction, reason });
            }
        }
        for state in POINT_STATES {
            for kind in KINDS {
                let _ = m.points.get_or_create(&StateKind { state, kind });
            }
        }
        for outcome in DialEnd::ALL {
            let _ = m.dials.get_or_create(&OutcomeLabel {
                outcome: outcome.name(),
            });
        }
        for reason in DROP_REASONS {
            let _ = m.points_dropped.get_or_create(&ReasonLabel { reason });
        }
        for reason in REFUSE_REASONS {
            let _ = m.inbound_refused.get_or_create(&ReasonLabel { reason });
        }
        for reason in HANDSHAKE_OUTCOMES {
            let _ = m.handshakes.get_or_create(&ReasonLabel { reason });
        }
        for bound in BOUNDS {
            let _ = m.connection_bounds.get_or_create(&BoundLabel { bound });
        }

        let r = registry.sub_registry_with_prefix("peerkeeper");
        r.register(
            "info",
            "1, labelled with what runs: the build's version, the node's peer id, its network name and policy (set when a node is followed)",
            m.info.clone(),
        );
        r.register(
            "connections",
            "Open connections, by who dialed (direction) and the kind of the peer's point",
            m.connections.clone(),
        );
        r.register(
            "connection_bounds",
            "The node's connection bounds: below min_threshold it dials up to min_target; above max_threshold it trims down to max_target; max_connections is the hard cap; max_outbound and max_inbound the budgets by direction",
            m.connection_bounds.clone(),
        );
        r.register(
            "points",
            "Known points by state (connected; dialing; dialable now) and kind; the rest of peerkeeper_points_known waits (backed off, greylisted, just disconnected)",
            m.points.clone(),
        );
        r.register("points_known", "Points in the pool", m.points_known.clone());
        r.register(
            "dials_in_flight",
            "Dials started and not ended yet",
            m.dials_in_flight.clone(),
        );
        r.register(
            "discovery_wants_points",
            "1 while discovery looks for more points (connections short and no candidate left), else 0",
            m.wants_points.clone(),
        );
        r.register(
            "dial_attempts",
            "Dials started; every one ends in exactly one outcome of peerkeeper_dials_total, or is still in flight",
            m.dial_attempts.clone(),
        );
        r.register("dials", "Dials ended, by outcome", m.dials.clone());
        r.register(
            "connections_opened",
            "Connections opened (kept after the handshake), by who dialed",
            m.opened.clone(),
        );
        r.register(
            "connections_closed",
            "Connections closed, by who dialed (unknown: its event was missed) and why (by_peer: the peer closed it or the network lost it)",
            m.closed.clone(),
        );
        r.register(
            "inbound_refused",
            "Inbound handshakes refused, by reason",
            m.inbound_refused.clone(),
        );
        r.register(
            "inbound_dropped",
            "Incoming links dropped before their handshake (by the handshake budget)",
            m.inbound_dropped.clone(),
        );
        r.register(
            "handshake_budget",
            "The handshake budget's decisions before the core hears of a socket, by reason: evicted (an idle handshake made room), throttled, busy (its address or subnet at its cap), full, failed (silent, garbage, unproven, evicted), refused_network, refused_version, refused_address",
            m.handshakes.clone(),
        );
        r.register(
            "inbound_made_room",
            "Inbound connections admitted at max_connections by closing an older inbound one",
            m.made_room.clone(),
        );
        r.register(
            "inbound_no_room",
            "Newcomers refused at max_connections because every inbound connection is protected from eviction or too young",
            m.no_room.clone(),
        );
        r.register(
            "feedback_reports",
            "Reports on peers from the application, by kind (useful, slow, misbehaved_SEVERITY)",
            m.feedback_reports.clone(),
        );
        r.register(
            "feedback_disconnects",
            "Connections closed because their peer's feedback score fell to feedback.disconnect_below",
            m.feedback_disconnects.clone(),
        );
        r.register(
            "feedback_bans",
            "Peers banned because their feedback score fell to feedback.ban_below, or for a fatal report",
            m.feedback_bans.clone(),
        );
        r.register(
            "cycles",
            "Maintenance cycles ended, by wake reasons (the set, joined with +) and outcome",
            m.cycles.clone(),
        );
        r.register_with_unit(
            "cycle_duration",
            "Time a maintenance cycle took, from its start to its end",
            Unit::Seconds,
            m.cycle_duration.clone(),
        );
        r.register(
            "discovery_rounds",
            "Discovery rounds (requests for points to peers, and the node's own point sources)",
            m.discovery_rounds.clone(),
        );
        r.register(
            "discovery_requests",
            "Requests for points sent to peers",
            m.discovery_requests.clone(),
        );
        r.register(
            "discovery_points_received",
            "Points received: answers, advertisements, refusals, point sources",
            m.points_received.clone(),
        );
        r.register(
            "discovery_points_new",
            "Points received that were new to the pool",
            m.points_new.clone(),
        );
        r.register(
            "points_dropped",
            "Points received and dropped at intake, by reason",
            m.points_dropped.clone(),
        );
        r.register(
            "points_evicted",
            "Points dropped from a full pool by its garbage collection",
            m.points_evicted.clone(),
        );
        r.register(
            "book_points",
            "Points in the address book by side: new (heard of) and tried (worked when dialed); see pool::book",
            m.book_points.clone(),
        );
        r.register(
            "book_tests",
            "Dials that test a tried point before evicting it (test-before-evict)",
            m.book_tests.clone(),
        );
        r.register(
            "book_tried_evicted",
            "Tried points evicted after failing their test or not answering in time",
            m.book_tried_evicted.clone(),
        );
        r.register(
            "book_tried_kept",
            "Tried points kept because they answered their test or had worked recently",
            m.book_tried_kept.clone(),
        );
        r.register(
            "discovery_answers",
            "Requests for points from peers that the node answered",
            m.answers.clone(),
        );
        r.register(
            "discovery_deferred_answers",
            "Answers sent late: a peer asked when the node had no point to share, and got the first ones it had (also in discovery_answers)",
            m.deferred_answers.clone(),
        );
        r.register(
            "discovery_asks_ignored",
            "Requests for points from peers that the node ignored (over the rate, or private mode)",
            m.asks_ignored.clone(),
        );
        r.register(
            "discovery_adverts_ignored",
            "Unsolicited advertisements of points ignored (over the rate)",
            m.adverts_ignored.clone(),
        );
        r.register(
            "protocol_violations",
            "Protocol violations by peers",
            m.violations.clone(),
        );
        r.register(
            "bans",
            "Bans: points greylisted for a violation, and addresses greylisted after repeated violations from distinct sources",
            m.bans.clone(),
        );
        r.register(
            "swaps",
            "Swap requests sent and accepted (octez policy)",
            m.swaps.clone(),
        );
        r.register(
            "events_missed",
            "Node events these metrics missed because they fell behind (the event-derived metrics undercount by as many)",
            m.events_missed.clone(),
        );
        Metrics { m: Arc::new(m) }
    }

    /// Keeps these metrics up to date from `node`, in a task of the current tokio runtime,
    /// until the node stops (shut down, dropped, or cancelled). The task holds no strong
    /// reference: dropping the last [`Arc`] still stops the node. Events are subscribed to
    /// at once, so none is missed between this call and the task's start.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn attach(&self, node: &Arc<Node>) -> tokio::task::JoinHandle<()> {
        self.set_info(node);
        let events = node.subscribe();
        let status = node.status_watch();
        let weak = Arc::downgrade(node);
        let me = self.clone();
        tokio::spawn(async move {
            me.drive(events, status, move || {
                let weak = weak.clone();
                Box::pin(async move {
                    let node = weak.upgrade()?;
                    node.inspect(breakdown).await.ok()
                })
            })
            .await
        })
    }

    /// As [`attach`](Self::attach), without a task: the returned future keeps these
    /// metrics up to date from `node` while it is polled, and ends when the node stops.
    /// Subscribes at once (when called, not when first polled). For a node the caller owns
    /// directly: `tokio::join!(metrics.follow(&node), run_my_node(&node))`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the updates and loses nothing the node keeps: a later
    /// `follow` or `attach` catches up on every counter taken from the node's status (the
    /// event-derived ones miss what happened in between).
    pub fn follow<'a>(&'a self, node: &'a Node) -> impl Future<Output = ()> + Send + 'a {
        self.set_info(node);
        let events = node.subscribe();
        let status = node.status_watch();
        self.drive(events, status, move || {
            Box::pin(async move { node.inspect(breakdown).await.ok() })
        })
    }

    /// `peerkeeper_info{version,peer_id,network,policy} 1` for `node` (the only series).
    fn set_info(&self, node: &Node) {
        self.m.info.clear();
        self.m
            .info
            .get_or_create(&InfoLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                peer_id: node.peer_id().to_string(),
                network: node.network().to_string(),
                policy: node.policy().to_string(),
            })
            .set(1);
    }

    async fn drive<'a, F>(
        &self,
        mut events: broadcast::Receiver<Event>,
        mut status: watch::Receiver<NodeStatus>,
        inspect: F,
    ) where
        F: Fn() -> BoxFuture<'a, Option<Breakdown>> + Send + 'a,
    {
        let mut f = Follower::new(self.m.clone());
        let mut pending: Option<(BoxFuture<'a, Option<Breakdown>>, u64, Instant)> = None;
        let mut last_refresh: Option<Instant> = None;
        let mut gap = REFRESH_MIN_GAP;
        let first = status.borrow_and_update().clone();
        f.drain(&mut events);
        f.on_status(&first);
        loop {
            let due = match last_refresh {
                None => Instant::now(),
                Some(t) if f.dirty() => t + gap,
                Some(t) => t + REFRESH_PERIOD,
            };
            tokio::select! {
                r = events.recv() => match r {
                    Ok(e) => f.on_event(e),
                    Err(RecvError::Lagged(n)) => f.missed(n),
                    Err(RecvError::Closed) => break,
                },
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // The status first, then the events: every event the status counts has
                    // been sent before it was published, so it is read (or was lost).
                    let s = status.borrow_and_update().clone();
                    f.drain(&mut events);
                    f.on_status(&s);
                }
                b = async { (&mut pending.as_mut().expect("pending").0).await }, if pending.is_some() => {
                    let (_, seq, started) = pending.take().expect("pending");
                    // Every event that happened before the count is in the channel now.
                    f.drain(&mut events);
                    match b {
                        Some(b) => f.on_breakdown(b, seq),
                        None => break,
                    }
                    let now = Instant::now();
                    gap = ((now - started) * 20).clamp(REFRESH_MIN_GAP, REFRESH_PERIOD);
                    last_refresh = Some(now);
                }
                _ = tokio::time::sleep_until(due), if pending.is_none() => {
                    let seq = f.begin_count();
                    pending = Some((inspect(), seq, Instant::now()));
                }
            }
        }
        // The node stopped: what it said last (closes at shutdown, the final counters).
        let last = status.borrow().clone();
        f.drain(&mut events);
        f.on_status(&last);
    }
}

/// Connections and points by kind, counted in the node.
struct Breakdown {
    connections: [[i64; KINDS.len()]; 2],
    points: [[i64; KINDS.len()]; POINT_STATES.len()],
    known: i64,
    dialing: usize,
    conns: Vec<(ConnId, Direction)>,
    pool: PoolStats,
    bounds: Bounds,
    max_connections: usize,
    budgets: (usize, usize),
}

fn kind_of(sources: Sources) -> usize {
    // KINDS is in rank order.
    usize::from(sources.kind().rank())
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

fn breakdown(core: &NodeCore) -> Breakdown {
    let pool = core.pool();
    let kind = |a: &std::net::SocketAddr| pool.get(a).map_or(4, |p| kind_of(p.sources));
    let mut b = Breakdown {
        connections: Default::default(),
        points: Default::default(),
        known: pool.len() as i64,
        dialing: core.dials_in_flight(),
        conns: Vec::with_capacity(pool.active_count()),
        pool: pool.stats(),
        bounds: core.bounds(),
        max_connections: core.config().max_connections,
        budgets: (
            core.config().outbound_budget(),
            core.config().inbound_budget(),
        ),
    };
    for (addr, c) in pool.connections() {
        let k = kind(&addr);
        b.connections[dir_index(c.direction)][k] += 1;
        b.points[0][k] += 1;
        b.conns.push((c.id, c.direction));
    }
    for addr in pool.dialing() {
        if let Some(p) = pool.get(&addr) {
            if p.state != PointState::Connected {
                b.points[1][kind_of(p.sources)] += 1;
            }
        }
    }
    for addr in pool.candidates(core.config().private_mode) {
        b.points[2][kind(&addr)] += 1;
    }
    b
}

/// The state of one follow: what was copied already, and what the events add.
struct Follower {
    m: Arc<Families>,
    last: CoreStats,
    dropped_at_accept: u64,
    handshakes: crate::node::gate::HandshakeStats,
    pool: PoolStats,
    /// Counts (connections, dialing, known points) of the last breakdown, and in the
    /// last status.
    counted: Option<(usize, usize, usize)>,
    status_counts: (usize, usize, usize),
    /// The direction of each open connection (from `Connected` events and the counts),
    /// with the sequence number it was learned at.
    directions: HashMap<ConnId, (Direction, u64)>,
    seq: u64,
    /// Closes seen as events, by reason.
    closes_seen: [u64; CLOSE_REASONS.len()],
    /// Closes counted with `direction="unknown"` because their event was missed.
    closes_unseen: [u64; CLOSE_REASONS.len()],
}

impl Follower {
    fn new(m: Arc<Families>) -> Follower {
        Follower {
            m,
            last: CoreStats::default(),
            dropped_at_accept: 0,
            handshakes: Default::default(),
            pool: PoolStats::default(),
            counted: None,
            status_counts: (0, 0, 0),
            directions: HashMap::new(),
            seq: 0,
            closes_seen: [0; CLOSE_REASONS.len()],
            closes_unseen: [0; CLOSE_REASONS.len()],
        }
    }

    fn missed(&mut self, n: u64) {
        self.m.events_missed.inc_by(n);
    }

    /// Reads every event already sent.
    fn drain(&mut self, events: &mut broadcast::Receiver<Event>) {
        loop {
            match events.try_recv() {
                Ok(e) => self.on_event(e),
                Err(TryRecvError::Lagged(n)) => self.missed(n),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected {
                conn, direction, ..
            } => {
                self.directions.insert(conn, (direction, self.seq));
                self.seq += 1;
            }
            Event::Disconnected { conn, ended, .. } => {
                let direction = match self.directions.remove(&conn) {
                    Some((d, _)) => DIRECTIONS[dir_index(d)],
                    None => UNKNOWN,
                };
                let r = close_reason(ended);
                self.closes_seen[r] += 1;
                self.m
                    .closed
                    .get_or_create(&DirectionReason {
                        direction,
                        reason: CLOSE_REASONS[r],
                    })
                    .inc();
            }
            Event::CycleEnded { report, .. } => self.on_cycle(&report),
            Event::Banned { .. } => {
                self.m.bans.inc();
            }
            // Counted exactly from the status.
            Event::DialEnded { .. } | Event::PointsLearned { .. } | Event::Scored { .. } => {}
        }
    }

    fn on_cycle(&mut self, report: &CycleReport) {
        self.m
            .cycles
            .get_or_create(&CycleLabels {
                reasons: reasons_label(report.reasons),
                outcome: report.outcome.name(),
            })
            .inc();
        let took = report.ended.saturating_since(report.started);
        self.m.cycle_duration.observe(took.as_secs_f64());
    }

    /// Whether the counts by kind are out of date.
    fn dirty(&self) -> bool {
        self.counted != Some(self.status_counts)
    }

    fn on_status(&mut self, s: &NodeStatus) {
        self.status_counts = (s.connections, s.dialing, s.known_points);
        let m = &self.m;
        let (new, old) = (&s.stats, &self.last);
        m.points_known.set(s.known_points as i64);
        m.dials_in_flight.set(new.dials.in_flight as i64);
        m.wants_points.set(i64::from(s.wants_points));
        for (side, v) in [("new", new.book.new), ("tried", new.book.tried)] {
            m.book_points
                .get_or_create(&SideLabel { side })
                .set(v as i64);
        }
        bump(&m.book_tests, new.dials.tests, old.dials.tests);
        bump(
            &m.book_tried_evicted,
            new.book.tried_evicted,
            old.book.tried_evicted,
        );
        bump(&m.book_tried_kept, new.book.tried_kept, old.book.tried_kept);
        bump(&m.dial_attempts, new.dials.attempted, old.dials.attempted);
        for outcome in DialEnd::ALL {
            bump(
                &m.dials.get_or_create(&OutcomeLabel {
                    outcome: outcome.name(),
                }),
                new.dials.count(outcome),
                old.dials.count(outcome),
            );
        }
        let opened = [
            (new.dials.succeeded, old.dials.succeeded),
            (new.admission.accepted, old.admission.accepted),
        ];
        for (direction, (n, o)) in DIRECTIONS.into_iter().zip(opened) {
            bump(&m.opened.get_or_create(&DirectionLabel { direction }), n, o);
        }
        let (na, oa) = (&new.admission, &old.admission);
        let refused = [
            (na.refused_full, oa.refused_full),
            (na.refused_greylisted, oa.refused_greylisted),
            (na.refused_duplicate, oa.refused_duplicate),
            (na.refused_myself, oa.refused_myself),
            (na.refused_private, oa.refused_private),
            (na.refused_untracked, oa.refused_untracked),
            (na.refused_wrong_peer, oa.refused_wrong_peer),
            (na.refused_per_address, oa.refused_per_address),
            (na.refused_per_group, oa.refused_per_group),
        ];
        for (reason, (n, o)) in REFUSE_REASONS.into_iter().zip(refused) {
            bump(
                &m.inbound_refused.get_or_create(&ReasonLabel { reason }),
                n,
                o,
            );
        }
        bump(&m.made_room, na.made_room, oa.made_room);
        bump(&m.no_room, na.no_room_protected, oa.no_room_protected);
        let (nf, of) = (&new.feedback, &old.feedback);
        for report in Report::ALL {
            let i = report.index();
            bump(
                &m.feedback_reports.get_or_create(&ReportLabel {
                    report: report.name(),
                }),
                nf.reports[i],
                of.reports[i],
            );
        }
        bump(&m.feedback_disconnects, nf.disconnects, of.disconnects);
        bump(&m.feedback_bans, nf.bans, of.bans);
        bump(
            &m.inbound_dropped,
            s.dropped_at_accept,
            self.dropped_at_accept,
        );
        let (np, op) = (&new.points, &old.points);
        bump(&m.points_received, np.received, op.received);
        bump(&m.points_new, np.new, op.new);
        bump(
            &m.adverts_ignored,
            np.unsolicited_ignored,
            op.unsolicited_ignored,
        );
        let (nd, od) = (&np.dropped, &op.dropped);
        let dropped = [
            (nd.port_zero, od.port_zero),
            (nd.not_unicast, od.not_unicast),
            (nd.loopback_from_remote, od.loopback_from_remote),
            (nd.private_from_public, od.private_from_public),
            (nd.private_refused, od.private_refused),
            (nd.myself, od.myself),
            (nd.pool_full, od.pool_full),
            (nd.collision, od.collision),
        ];
        for (reason, (n, o)) in DROP_REASONS.into_iter().zip(dropped) {
            bump(
                &m.points_dropped.get_or_create(&ReasonLabel { reason }),
                n,
                o,
            );
        }
        let (ns, os) = (&new.sharing, &old.sharing);
        bump(&m.discovery_requests, ns.requests, os.requests);
        bump(&m.discovery_rounds, ns.rounds, os.rounds);
        bump(&m.answers, ns.answers, os.answers);
        bump(
            &m.deferred_answers,
            ns.deferred_answers,
            os.deferred_answers,
        );
        bump(&m.asks_ignored, ns.asks_ignored, os.asks_ignored);
        bump(&m.violations, new.violations, old.violations);
        bump(&m.swaps, new.swaps, old.swaps);
        let (h, oh) = (&s.handshakes, &self.handshakes);
        for (reason, n, o) in [
            ("evicted", h.evicted, oh.evicted),
            ("throttled", h.throttled, oh.throttled),
            ("busy", h.busy, oh.busy),
            ("full", h.full, oh.full),
            ("failed", h.failed, oh.failed),
            ("refused_network", h.refused_network, oh.refused_network),
            ("refused_version", h.refused_version, oh.refused_version),
            ("refused_address", h.refused_address, oh.refused_address),
        ] {
            bump(&m.handshakes.get_or_create(&ReasonLabel { reason }), n, o);
        }
        self.handshakes = s.handshakes;
        self.dropped_at_accept = s.dropped_at_accept;
        self.last = s.stats;
        self.reconcile_closes();
    }

    /// Closes the core counts by reason but whose event was missed: counted with
    /// `direction="unknown"`, so that every reason's total stays exact. Called after the
    /// events sent before the status were read, so that the events seen cover at least
    /// what the status counts (minus the lost ones): the shortfall is never more than the
    /// events lost, and it is only ever raised.
    fn reconcile_closes(&mut self) {
        for (r, count) in EXACT_CLOSES {
            let total = count(&self.last.closed);
            let shortfall = total.saturating_sub(self.closes_seen[r]);
            if shortfall > self.closes_unseen[r] {
                self.m
                    .closed
                    .get_or_create(&DirectionReason {
                        direction: UNKNOWN,
                        reason: CLOSE_REASONS[r],
                    })
                    .inc_by(shortfall - self.closes_unseen[r]);
                self.closes_unseen[r] = shortfall;
            }
        }
    }

    /// A count by kind is about to be asked for: returns its sequence number.
    fn begin_count(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    fn on_breakdown(&mut self, b: Breakdown, seq: u64) {
        let m = &self.m;
        for (d, direction) in DIRECTIONS.into_iter().enumerate() {
            for (k, kind) in KINDS.into_iter().enumerate() {
                m.connections
                    .get_or_create(&DirectionKind { direction, kind })
                    .set(b.connections[d][k]);
            }
        }
        for (s, state) in POINT_STATES.into_iter().enumerate() {
            for (k, kind) in KINDS.into_iter().enumerate() {
                m.points
                    .get_or_create(&StateKind { state, kind })
                    .set(b.points[s][k]);
            }
        }
        let bounds = [
            b.bounds.min_threshold,
            b.bounds.min_target,
            b.bounds.max_target,
            b.bounds.max_threshold,
            b.max_connections,
            b.budgets.0,
            b.budgets.1,
        ];
        for (bound, v) in BOUNDS.into_iter().zip(bounds) {
            m.connection_bounds
                .get_or_create(&BoundLabel { bound })
                .set(v as i64);
        }
        bump(
            &m.points_evicted,
            b.pool.points_dropped,
            self.pool.points_dropped,
        );
        self.pool = b.pool;
        let open: HashMap<ConnId, Direction> = b.conns.into_iter().collect();
        // A connection learned before the count was asked for and absent from it closed
        // before the count; its event, if not lost, has been read already.
        self.directions
            .retain(|id, (_, learned)| open.contains_key(id) || *learned > seq);
        for (id, d) in open {
            self.directions.entry(id).or_insert((d, seq));
        }
        let n: i64 = b.connections.iter().flatten().sum();
        self.counted = Some((n as usize, b.dialing, b.known as usize));
    }
}

fn bump(counter: &Counter, now: u64, before: u64) {
    if now > before {
        counter.inc_by(now - before);
    }
}

fn close_reason(ended: Ended) -> usize {
    match ended {
        Ended::ByPeer => BY_PEER,
        Ended::ByUs(r) => match r {
            CloseReason::TooManyConnections => 0,
            CloseReason::ProtocolViolation => 1,
            CloseReason::Duplicate => 2,
            CloseReason::Shutdown => 3,
            CloseReason::AddressChanged => 4,
            CloseReason::Swapped => 5,
            CloseReason::Timeout => 6,
            CloseReason::Lost => 7,
            CloseReason::Untracked => 8,
        },
    }
}

fn reasons_label(reasons: WakeReasons) -> String {
    if reasons.is_empty() {
        return "none".into();
    }
    reasons
        .iter()
        .map(WakeReason::name)
        .collect::<Vec<_>>()
        .join("+")
}
