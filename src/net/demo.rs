//! N real nodes in one process on 127.0.0.1, node 0 the only bootstrap point of all the
//! others: start them, watch them converge, report. What `peerkeeper demo` runs, and what
//! the network tests use.

use super::{NetConfig, Node, NodeError, NodeOptions};
use crate::config::{Config, RangeStatus};
use crate::report::{components, DialCounts, NetworkReport, SharingCounts, Spread};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Nodes (at least 1).
    pub nodes: usize,
    /// Seeds every node's random choices.
    pub seed: u64,
    /// Give up after this long.
    pub timeout: Duration,
    /// The config of every node (trusted points are set per node).
    pub config: Config,
    /// TCP settings of every node.
    pub net: NetConfig,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            nodes: 30,
            seed: 42,
            timeout: Duration::from_secs(45),
            config: demo_config(4, 8, 12),
            net: demo_net_config(),
        }
    }
}

/// A config with small targets and short timers, suited to a few dozen nodes on one
/// machine: loopback addresses allowed, quick retries, quick discovery rounds.
///
/// ```
/// let c = peerkeeper::net::demo::demo_config(4, 8, 12);
/// c.validate().unwrap();
/// assert!(c.discovery.allow_private_addresses);
/// ```
pub fn demo_config(min: usize, expected: usize, max: usize) -> Config {
    let mut c = Config {
        min_connections: min,
        expected_connections: expected,
        max_connections: max,
        maintenance_idle_time: Some(Duration::from_secs(2)),
        time_between_looking_for_peers: Duration::from_millis(300),
        dial_timeout: Duration::from_secs(2),
        disconnection_delay: Duration::from_secs(1),
        ..Config::default()
    };
    c.reconnection.initial = Duration::from_millis(200);
    c.reconnection.cap = Duration::from_secs(5);
    c.discovery.peer_ask_interval = Duration::from_secs(1);
    c.discovery.max_time_between_rounds = Duration::from_secs(3);
    c.discovery.allow_private_addresses = true;
    c
}

/// TCP settings for the demo and tests: short handshake and keepalive timers.
pub fn demo_net_config() -> NetConfig {
    NetConfig {
        network: "peerkeeper-demo".into(),
        handshake_timeout: Duration::from_secs(2),
        keepalive_interval: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(8),
        ..NetConfig::default()
    }
}

/// The state of the network at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections per running node.
    pub connections: Vec<usize>,
    /// Running nodes within `[min_threshold, max_threshold]`.
    pub in_range: usize,
    /// Connected components of the overlay of running nodes.
    pub components: usize,
}

impl Snapshot {
    /// Every running node within range, and one component.
    pub fn converged(&self) -> bool {
        self.in_range == self.connections.len() && self.components <= 1
    }
}

/// N running nodes. Node 0 is the bootstrap point of the others.
#[derive(Debug)]
pub struct Network {
    nodes: Vec<Option<Node>>,
    config: Config,
}

impl Network {
    /// Starts `n` nodes on 127.0.0.1 ephemeral ports; every node but node 0 has node 0 as
    /// its only trusted point.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() {
    /// use peerkeeper::net::demo::{demo_config, demo_net_config, Network};
    /// let net = Network::start(5, 1, &demo_config(1, 2, 4), &demo_net_config()).await.unwrap();
    /// println!("{:?}", net.snapshot());
    /// net.shutdown().await;
    /// # }
    /// ```
    pub async fn start(
        n: usize,
        seed: u64,
        config: &Config,
        net: &NetConfig,
    ) -> Result<Network, NodeError> {
        let localhost: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut nodes = Vec::with_capacity(n);
        let mut bootstrap = None;
        for i in 0..n {
            let mut c = config.clone();
            if let Some(b) = bootstrap {
                c.trusted_points = vec![b];
            }
            let opts = NodeOptions {
                config: c,
                net: net.clone(),
                listen: localhost,
                seed: seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(i as u64),
                peer_id: None,
                sources: Vec::new(),
            };
            let node = Node::start(opts).await?;
            if i == 0 {
                bootstrap = Some(node.listen_addr());
            }
            nodes.push(Some(node));
        }
        Ok(Network {
            nodes,
            config: config.clone(),
        })
    }

    /// The node `i`, unless stopped.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// The running nodes with their index.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Stops node `i` (waits for its tasks to end).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i).and_then(Option::take) {
            node.shutdown().await;
        }
    }

    /// The edges between running nodes (by index), each once.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let index: BTreeMap<SocketAddr, usize> =
            self.running().map(|(i, n)| (n.listen_addr(), i)).collect();
        let mut edges = Vec::new();
        for (i, n) in self.running() {
            for p in n.connected_points() {
                if let Some(&j) = index.get(&p) {
                    if i < j {
                        edges.push((i, j));
                    }
                }
            }
        }
        edges
    }

    /// The state now.
    pub fn snapshot(&self) -> Snapshot {
        let bounds = self.config.bounds();
        let connections: Vec<usize> = self.running().map(|(_, n)| n.connection_count()).collect();
        let in_range = connections
            .iter()
            .filter(|c| bounds.classify(**c) == RangeStatus::InRange)
            .count();
        // Components over running nodes only: renumber.
        let ids: BTreeMap<usize, usize> = self
            .running()
            .enumerate()
            .map(|(k, (i, _))| (i, k))
            .collect();
        let edges: Vec<(usize, usize)> = self
            .edges()
            .into_iter()
            .filter_map(|(a, b)| Some((*ids.get(&a)?, *ids.get(&b)?)))
            .collect();
        Snapshot {
            components: components(connections.len(), &edges),
            connections,
            in_range,
        }
    }

    /// The report of the network now.
    pub fn report(
        &self,
        seed: u64,
        converged_at_ms: Option<u64>,
        max_observed: usize,
        wall_ms: u64,
    ) -> NetworkReport {
        let snap = self.snapshot();
        let mut dials = DialCounts::default();
        let mut sharing = SharingCounts::default();
        let mut cycles = 0;
        for (_, n) in self.running() {
            let s = n.stats();
            dials.attempted += s.maintenance.dials;
            dials.succeeded += s.maintenance.dials_succeeded;
            dials.failed += s.maintenance.dials_failed;
            sharing.requests += s.discovery.requests;
            sharing.points_received += s.discovery.points_received;
            cycles += s.maintenance.cycles;
        }
        let max_now = snap.connections.iter().copied().max().unwrap_or(0);
        NetworkReport {
            nodes: snap.connections.len(),
            seed,
            converged: snap.in_range == snap.connections.len(),
            converged_at_ms,
            connections: Spread::of(&snap.connections),
            components: snap.components,
            max_observed_connections: max_observed.max(max_now),
            dials,
            peer_sharing: sharing,
            maintenance_cycles: cycles,
            wall_ms,
        }
    }

    /// Waits (polling every 50 ms) until `done(snapshot)` holds or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.snapshot()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node; returns when no task is left.
    pub async fn shutdown(self) {
        futures::future::join_all(self.nodes.into_iter().flatten().map(|n| async move {
            n.shutdown().await;
        }))
        .await;
    }
}

/// Progress of a demo run, reported at every poll.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Time since start.
    pub elapsed: Duration,
    /// The state now.
    pub snapshot: Snapshot,
}

/// Runs the demo: starts the nodes, waits until every node is within range in one
/// component (or the timeout), reports, stops them. `on_progress` is called at each poll
/// (every 50 ms).
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// use peerkeeper::net::demo::{run, DemoOptions};
/// let report = run(&DemoOptions { nodes: 10, ..DemoOptions::default() }, |_| {}).await.unwrap();
/// println!("{}", serde_json::to_string(&report).unwrap());
/// # }
/// ```
pub async fn run(
    opts: &DemoOptions,
    mut on_progress: impl FnMut(&Progress),
) -> Result<NetworkReport, NodeError> {
    let started = tokio::time::Instant::now();
    let network = Network::start(opts.nodes.max(1), opts.seed, &opts.config, &opts.net).await?;
    let mut converged_at = None;
    let mut max_observed = 0;
    let bounds = opts.config.bounds();
    network
        .wait_for(opts.timeout, |snap| {
            let elapsed = started.elapsed();
            max_observed = max_observed.max(snap.connections.iter().copied().max().unwrap_or(0));
            let all_in = snap
                .connections
                .iter()
                .all(|c| bounds.classify(*c) == RangeStatus::InRange);
            if all_in && converged_at.is_none() {
                converged_at = Some(elapsed.as_millis() as u64);
            }
            on_progress(&Progress {
                elapsed,
                snapshot: snap.clone(),
            });
            snap.converged()
        })
        .await;
    let report = network.report(
        opts.seed,
        converged_at,
        max_observed,
        started.elapsed().as_millis() as u64,
    );
    network.shutdown().await;
    Ok(report)
}
