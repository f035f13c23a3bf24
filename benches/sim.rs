//! The simulator on a small network: 200 nodes for 2 virtual minutes, each policy; and,
//! before the timings, the heap bytes per simulated node, measured with a counting global
//! allocator (peak heap during a run, minus the heap before it, divided by the nodes).
//! Larger runs are timed with `peerkeeper simulate` (see docs/simulator.md).
//!
//! Every run uses round 1's simulated node ([`round1_config`]), not `SimConfig::new`'s
//! defaults (the node's own, 10/50/100, one bootstrap node), so that the figures compare
//! with round 1's in BENCHMARKS.md: min/expected/max 4/8/12, 4 dials at once, pools of 256
//! points (GC to 192) and 256 peers, 3 bootstrap nodes, nodes joining at random in the
//! first 5 s.
//!
//! Run: `cargo bench --bench sim` (memory only: `cargo bench --bench sim -- memory`).

use criterion::{criterion_group, Criterion};
use peerkeeper::sim::{Joins, SimConfig, Simulation};
use peerkeeper::Policy;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

#[path = "common/counting.rs"]
mod counting;
use counting::{LIVE, PEAK};

/// The scenario every run here uses: round 1's simulated node (see the module docs).
fn round1_config(nodes: usize, seed: u64, duration: Duration, policy: Policy) -> SimConfig {
    let mut cfg = SimConfig::new(nodes, seed, duration, policy);
    let c = &mut cfg.node_config;
    c.min_connections = 4;
    c.expected_connections = 8;
    c.max_connections = 12;
    c.max_known_points = 256;
    c.known_points_gc_target = 192;
    c.max_known_peers = 256;
    c.max_concurrent_dials = 4;
    c.validate().expect("round 1's node config is valid");
    cfg.bootstrap = 3.min(nodes);
    cfg.joins = Joins::Together;
    cfg
}

/// Peak heap bytes per node over a run of `nodes` nodes for `duration`, and the heap per
/// node right after set-up.
fn bytes_per_node(nodes: usize, policy: Policy, duration: Duration) -> (f64, f64) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let cfg = round1_config(nodes, 1, duration, policy);
    let sim = Simulation::new(cfg);
    let set_up = LIVE.load(Relaxed) - base;
    let out = sim.run(|_| {});
    let peak = PEAK.load(Relaxed) - base;
    assert!(out.report.alive > 0);
    (peak as f64 / nodes as f64, set_up as f64 / nodes as f64)
}

fn memory_report() {
    println!(
        "heap bytes per simulated node (counting allocator, seed 1, 10 virtual minutes, \
         round 1's node: 4/8/12, 4 dials, 256 points, 3 bootstrap nodes):"
    );
    for nodes in [1_000, 10_000] {
        for policy in [Policy::Peerkeeper, Policy::Octez] {
            let (peak, set_up) = bytes_per_node(nodes, policy, Duration::from_secs(600));
            println!(
                "  {nodes:>6} nodes  {:<10}  peak {peak:>8.0} B/node  after set-up {set_up:>6.0} B/node",
                format!("{policy:?}").to_lowercase()
            );
        }
    }
}

fn bench_sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate_200_nodes_2min");
    group.sample_size(20);
    for policy in [Policy::Peerkeeper, Policy::Octez] {
        group.bench_function(format!("{policy:?}").to_lowercase(), |b| {
            b.iter(|| {
                let cfg = round1_config(200, 1, Duration::from_secs(120), policy);
                Simulation::new(cfg).run(|_| {})
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sim);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not: no measuring there.
    if args.iter().any(|a| a == "--bench") {
        memory_report();
        if args.iter().any(|a| a == "memory") {
            return;
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
