//! The simulator on a small network: 200 nodes for 2 virtual minutes, each policy.
//! Larger runs are timed with `peerkeeper simulate` (see BENCHMARKS.md).
//!
//! Run: `cargo bench --bench sim`.

use criterion::{criterion_group, criterion_main, Criterion};
use peerkeeper::sim::{Policy, SimConfig, Simulation};
use std::time::Duration;

fn bench_sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate_200_nodes_2min");
    group.sample_size(20);
    for policy in [Policy::Peerkeeper, Policy::Octez] {
        group.bench_function(format!("{policy:?}").to_lowercase(), |b| {
            b.iter(|| {
                let cfg = SimConfig::new(200, 1, Duration::from_secs(120), policy);
                Simulation::new(cfg).run(|_| {})
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sim);
criterion_main!(benches);
