//! The demo: N real nodes in one process on 127.0.0.1, node 0 the only bootstrap point of
//! all the others, watched until every node is within `[min_threshold, max_threshold]`.

use super::Node;
use crate::config::Config;
use crate::core::intake::PointsDropped;
use crate::core::DialStats;
use crate::identity::Keypair;
use crate::report::{components, NetworkReport, SharingCounts, Spread};
use crate::transport::tcp::TcpTransport;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Give up after this long.
    pub timeout: Duration,
    /// The nodes' config.
    pub config: Config,
    /// How long every node must stay in range before the run ends.
    pub hold: Duration,
}

impl DemoOptions {
    /// The defaults for `nodes` nodes: targets min 4, expected 8, max 12, and timers short
    /// enough for a demo (1 s between looks for peers, 10 s idle time).
    pub fn new(nodes: usize, seed: u64) -> DemoOptions {
        DemoOptions {
            nodes,
            seed,
            timeout: Duration::from_secs(60),
            config: demo_config(),
            hold: Duration::from_secs(1),
        }
    }
}

/// A node config for demos and tests on loopback: small targets and quick timers.
pub fn demo_config() -> Config {
    let mut c = Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        maintenance_idle_time: Some(Duration::from_secs(10)),
        time_between_looking_for_peers: Duration::from_millis(500),
        max_concurrent_dials: 4,
        dial_timeout: Duration::from_secs(3),
        disconnection_delay: Duration::from_secs(2),
        ..Config::default()
    };
    c.reconnection.initial = Duration::from_millis(500);
    c.reconnection.cap = Duration::from_secs(10);
    c.discovery.peer_ask_interval = Duration::from_secs(2);
    c.discovery.max_time_between_rounds = Duration::from_secs(8);
    c
}

/// Progress while converging.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress {
    /// Nodes within range now.
    pub in_range: usize,
    /// All nodes.
    pub nodes: usize,
    /// Time since start.
    pub elapsed: Duration,
}

/// Starts `opts.nodes` nodes, waits until every node has been in range for `opts.hold`
/// (or the timeout), reports, and shuts them all down. Not cancel-safe: dropped midway, the
/// nodes it started stop without being waited for (they are dropped). `progress` is called about ten
/// times a second.
pub async fn run(
    opts: &DemoOptions,
    mut progress: impl FnMut(Progress),
) -> std::io::Result<NetworkReport> {
    let started = Instant::now();
    let nodes = start_nodes(opts).await?;
    let bounds = opts.config.bounds();
    let mut converged_at: Option<Duration> = None;
    let mut in_range_since: Option<Instant> = None;
    let mut converged = false;
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| n.status().connections).collect();
        let in_range = counts
            .iter()
            .filter(|c| (bounds.min_threshold..=bounds.max_threshold).contains(*c))
            .count();
        progress(Progress {
            in_range,
            nodes: nodes.len(),
            elapsed: started.elapsed(),
        });
        if in_range == nodes.len() {
            converged_at.get_or_insert(started.elapsed());
            let since = *in_range_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= opts.hold {
                converged = true;
                break;
            }
        } else {
            in_range_since = None;
        }
        if started.elapsed() >= opts.timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut report = report_of(&nodes, opts.seed, converged_at, started).await;
    report.converged = converged && report.components == 1;
    for n in &nodes {
        n.shutdown().await;
    }
    Ok(report)
}

/// Starts the nodes: node 0 first, then every other node with node 0 as its only
/// bootstrap point. Cancel-safe (nodes started so far are dropped, which stops them).
pub async fn start_nodes(opts: &DemoOptions) -> std::io::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(opts.nodes);
    for i in 0..opts.nodes {
        let transport = TcpTransport::bind("127.0.0.1:0").await?;
        let bootstrap = nodes
            .first()
            .map(|n| vec![n.local_addr()])
            .unwrap_or_default();
        let node = Node::builder(opts.config.clone(), transport)
            .identity(Keypair::from_seed(peer_id(opts.seed, i)))
            .seed(opts.seed.wrapping_add(i as u64))
            .bootstrap(bootstrap)
            .start()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        nodes.push(node);
    }
    Ok(nodes)
}

fn peer_id(seed: u64, i: usize) -> u64 {
    // Distinct, well spread ids.
    crate::rng::derive(seed, i as u64)
}

/// The report of a set of running nodes (`converged` is left false: the caller knows).
/// Cancel-safe (it only reads).
pub async fn report_of(
    nodes: &[Node],
    seed: u64,
    converged_at: Option<Duration>,
    started: Instant,
) -> NetworkReport {
    let index: BTreeMap<SocketAddr, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.local_addr(), i))
        .collect();
    let mut edges = Vec::new();
    let mut counts = Vec::new();
    let mut report = NetworkReport {
        nodes: nodes.len(),
        seed,
        converged: false,
        converged_at_ms: converged_at.map(|d| d.as_millis() as u64),
        ..NetworkReport::default()
    };
    let mut dials = DialStats::default();
    let mut dropped = PointsDropped::default();
    let mut sharing = SharingCounts::default();
    for (i, n) in nodes.iter().enumerate() {
        let points: Vec<SocketAddr> = n
            .inspect(|c| c.pool().connections().map(|(a, _)| a).collect())
            .await
            .unwrap_or_default();
        counts.push(points.len());
        for p in points {
            if let Some(&j) = index.get(&p) {
                edges.push((i, j));
            }
        }
        let s = n.status().stats;
        dials.add(&s.dials);
        dropped.add(&s.points.dropped);
        report.maintenance_cycles += s.cycles;
        sharing.requests += s.sharing.requests;
        sharing.points_received += s.points.received;
        report.max_observed_connections = report
            .max_observed_connections
            .max(s.max_connections_seen as usize);
    }
    report.connections = Spread::of(&counts);
    report.components = components(nodes.len(), &edges);
    report.dials = dials;
    report.points_dropped = dropped;
    report.peer_sharing = sharing;
    report.wall_ms = started.elapsed().as_millis() as u64;
    report
}
