//! One script through both shells: the same small network, with the same start times,
//! link latencies, seeds and peer ids, run by the tokio node (memory transport, paused
//! clock) and by the simulator. Both drive the same `NodeCore`, so every node must
//! produce the same actions at the same virtual times, in the same order. If a decision
//! lived in one shell only, or the shells fed the core differently, the traces would part.

use peerkeeper::core::{Action, TracedAction};
use peerkeeper::identity::Identity;
use peerkeeper::node::Node;
use peerkeeper::sim::{node_addr, node_peer_id, node_seed, Joins, Latency, SimConfig, Simulation};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::{Config, PeerId, Policy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The simulator's peer ids on the tokio shell: an [`Identity`] that claims a given id and
/// "signs" with it. Simulated nodes do no cryptography, and both shells must see the same
/// ids (the duplicate rule orders them); this is also the smallest identity of one's own.
/// Not secure: anybody can sign as anybody.
#[derive(Debug)]
struct Claimed(PeerId);

impl Identity for Claimed {
    fn peer_id(&self) -> PeerId {
        self.0
    }
    fn sign(&self, _transcript: &[u8]) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }
    fn verify(&self, peer: &PeerId, _transcript: &[u8], signature: &[u8]) -> bool {
        signature == peer.as_bytes()
    }
}

/// (nodes, seed) of the scripts run.
const SCRIPTS: [(usize, u64); 3] = [(6, 11), (10, 3), (16, 5)];
const STAGGER: Duration = Duration::from_millis(1_013);
const RUN: Duration = Duration::from_secs(90);

/// Distinct latencies per link, so that no two messages to one node arrive in the same
/// millisecond by coincidence.
fn latency(a: usize, b: usize) -> Duration {
    let (x, y) = (a.min(b) as u64, a.max(b) as u64);
    Duration::from_millis(7 + 11 * x + 17 * y)
}

fn config(policy: Policy) -> Config {
    let mut c = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 4,
        policy,
        ..Config::default()
    };
    c.maintenance_idle_time = Some(Duration::from_secs(20));
    c
}

fn index_of(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(a) => usize::from(a.ip().octets()[3]),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    }
}

/// A trace without the shells' own names for connections: an action on a connection is
/// identified by its peer. (Connection ids are each driver's own numbering.)
fn normalise(t: &TracedAction) -> String {
    let a = match &t.action {
        Action::Close { reason, .. } => format!("Close({reason:?})"),
        Action::SendPoints { points, .. } => {
            let mut p: Vec<usize> = points.iter().map(|p| index_of(*p)).collect();
            p.sort_unstable();
            format!("SendPoints({p:?})")
        }
        Action::AskForPoints { .. } => "AskForPoints".into(),
        Action::SwapRequest { point, .. } => format!("SwapRequest({})", index_of(*point)),
        Action::SwapAck { point, .. } => format!("SwapAck({})", index_of(*point)),
        Action::Dial(p) => format!("Dial({})", index_of(*p)),
        Action::CycleEnded { report, covers } => {
            // The report's times and counts, not its internal layout.
            format!(
                "CycleEnded(#{} {} {}..{} {}->{} d{} ok{} f{} c{} {:?} covers {covers})",
                report.cycle,
                report.reasons,
                report.started,
                report.ended,
                report.connections_before,
                report.connections_after,
                report.dialed,
                report.succeeded,
                report.failed,
                report.closed,
                report.outcome
            )
        }
        other => format!("{other:?}"),
    };
    let peer = t
        .peer
        .map(|p| format!(" to {}", index_of(p)))
        .unwrap_or_default();
    format!("{} {a}{peer}", t.at)
}

fn sim_traces(policy: Policy, nodes: usize, seed: u64) -> BTreeMap<usize, Vec<String>> {
    let mut cfg = SimConfig::new(nodes, seed, RUN, policy);
    cfg.node_config = config(policy);
    cfg.joins = Joins::Stagger(STAGGER);
    cfg.latency = Latency::PerLink(latency);
    cfg.record_actions = true;
    let out = Simulation::new(cfg).run(|_| {});
    let mut traces: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, t) in &out.actions {
        traces.entry(*i).or_default().push(normalise(t));
    }
    traces
}

async fn tokio_traces(policy: Policy, n: usize, seed: u64) -> BTreeMap<usize, Vec<String>> {
    let net = MemoryNetwork::with_latency(|a, b| latency(index_of(a), index_of(b)));
    let origin = tokio::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, TracedAction)>(100_000);
    let mut nodes = Vec::new();
    for i in 0..n {
        tokio::time::sleep_until(origin + STAGGER * i as u32).await;
        let (tap, mut taps) = tokio::sync::mpsc::channel::<TracedAction>(10_000);
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(t) = taps.recv().await {
                let _ = forward.send((i, t)).await;
            }
        });
        let transport = net.bind(node_addr(i)).unwrap();
        let bootstrap = if i == 0 { vec![] } else { vec![node_addr(0)] };
        // The simulator does not model pings, so no round trip is measured here either
        // (a measured round trip protects an inbound peer from eviction, a decision the
        // simulator would not make the same way): pings once an hour, far past RUN.
        let net_config = peerkeeper::node::NetConfig {
            keepalive_interval: Duration::from_secs(3600),
            keepalive_timeout: Duration::from_secs(7200),
            ..Default::default()
        };
        let node = Node::builder(config(policy), transport)
            .net(net_config)
            .identity(Claimed(node_peer_id(seed, i)))
            .seed(node_seed(seed, i, 0))
            .bootstrap(bootstrap)
            .origin(origin)
            .action_tap(tap)
            .start()
            .unwrap();
        nodes.push(node);
    }
    tokio::time::sleep_until(origin + RUN).await;
    // Whatever happens at the very end of the run is on both sides or neither: stop
    // reading at RUN exactly, before shutting down (shutdown adds its own closes).
    drop(tx);
    let mut traces: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    while let Ok((i, t)) = rx.try_recv() {
        if t.at.as_duration() <= RUN {
            traces.entry(i).or_default().push(normalise(&t));
        }
    }
    for n in &nodes {
        n.shutdown().await;
    }
    traces
}

async fn compare(policy: Policy, nodes: usize, seed: u64) {
    let sim = sim_traces(policy, nodes, seed);
    let real = tokio_traces(policy, nodes, seed).await;
    assert_eq!(sim.len(), nodes, "every node acted in the simulator");
    // The first divergence in time, whichever node it is at (later ones follow from it).
    let mut first: Option<(String, usize, usize)> = None;
    let mut total = 0;
    for i in 0..nodes {
        let (s, r) = (&sim[&i], &real[&i]);
        total += s.len();
        let k = s
            .iter()
            .zip(r.iter())
            .position(|(a, b)| a != b)
            .or((s.len() != r.len()).then(|| s.len().min(r.len())));
        if let Some(k) = k {
            let at = s.get(k).or(r.get(k)).cloned().unwrap_or_default();
            let at = at.split(' ').next().unwrap_or_default().to_string();
            let t: f64 = at.trim_end_matches('s').parse().unwrap_or(f64::MAX);
            let best: f64 = first.as_ref().map_or(f64::MAX, |(a, _, _)| {
                a.trim_end_matches('s').parse().unwrap_or(f64::MAX)
            });
            if t < best {
                first = Some((at, i, k));
            }
        }
    }
    if let Some((at, i, k)) = first {
        let (s, r) = (&sim[&i], &real[&i]);
        let from = k.saturating_sub(3);
        panic!(
            "{policy} script ({nodes} nodes, seed {seed}): node {i}: the shells part at action {k} ({at})\n simulator: {:#?}\n tokio:     {:#?}",
            &s[from..(k + 3).min(s.len())],
            &r[from..(k + 3).min(r.len())]
        );
    }
    // The script did something worth comparing: dials, refusals, answers, closes.
    assert!(total > 100, "only {total} actions");
    let all: Vec<&String> = sim.values().flatten().collect();
    for needle in ["Dial(", "SendPoints(", "AskForPoints", "CycleEnded("] {
        assert!(
            all.iter().any(|a| a.contains(needle)),
            "no {needle} in the script"
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_simulator_and_the_tokio_node_take_the_same_decisions() {
    for (nodes, seed) in SCRIPTS {
        compare(Policy::Peerkeeper, nodes, seed).await;
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_octez_policy_is_the_same_program_in_both_shells() {
    for (nodes, seed) in SCRIPTS {
        compare(Policy::Octez, nodes, seed).await;
    }
}
