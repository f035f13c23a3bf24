//! Whole-network properties with every fault on at once, for both policies, over several
//! seeds: the harness's guarantees (never above `max_connections`, one seed one outcome)
//! must hold for the octez model too, or the comparison is unfair; and on the same
//! network peerkeeper reaches the range first.

use peerkeeper::sim::{sim_node_config, Policy, SimConfig, Simulation};
use std::time::Duration;

const SEEDS: [u64; 3] = [11, 12, 13];

fn faulty(seed: u64, policy: Policy) -> SimConfig {
    SimConfig {
        dial_failure_rate: 0.2,
        message_loss: 0.05,
        nat_fraction: 0.3,
        churn_per_minute: 0.03,
        ..SimConfig::new(200, seed, Duration::from_secs(240), policy)
    }
}

#[test]
fn no_node_ever_exceeds_max_connections_with_every_fault_on() {
    let max = sim_node_config().max_connections;
    for seed in SEEDS {
        for policy in [Policy::Peerkeeper, Policy::Octez] {
            let out = Simulation::new(faulty(seed, policy)).run(|_| {});
            let r = &out.report.network;
            assert!(
                r.max_observed_connections <= max,
                "seed {seed} {policy:?}: {} > {max}",
                r.max_observed_connections
            );
            assert!(out.final_connections.iter().all(|c| *c <= max));
            // Departed nodes hold no connection.
            for (c, alive) in out.final_connections.iter().zip(&out.alive) {
                if !alive {
                    assert_eq!(*c, 0, "seed {seed} {policy:?}: a departed node kept links");
                }
            }
            assert!(r.dials.failed > 0 && r.dials.attempted >= r.dials.succeeded);
        }
    }
}

#[test]
fn the_same_faulty_run_twice_gives_the_same_samples() {
    for seed in SEEDS {
        let a = Simulation::new(faulty(seed, Policy::Peerkeeper)).run(|_| {});
        let b = Simulation::new(faulty(seed, Policy::Peerkeeper)).run(|_| {});
        assert_eq!(a.report.event_log_hash, b.report.event_log_hash);
        assert_eq!(a.final_connections, b.final_connections);
        assert_eq!(a.samples.len(), b.samples.len());
        for (x, y) in a.samples.iter().zip(&b.samples) {
            assert_eq!(
                (x.t_ms, x.connections, x.alive),
                (y.t_ms, y.connections, y.alive)
            );
        }
    }
}

#[test]
fn peerkeeper_reaches_the_range_before_the_octez_model() {
    for seed in SEEDS {
        let cfg = |policy| SimConfig::new(300, seed, Duration::from_secs(300), policy);
        let ours = Simulation::new(cfg(Policy::Peerkeeper)).run(|_| {}).report;
        let octez = Simulation::new(cfg(Policy::Octez)).run(|_| {}).report;
        let ours_at = ours.network.converged_at_ms.expect("peerkeeper converges");
        if let Some(theirs) = octez.network.converged_at_ms {
            assert!(ours_at < theirs, "seed {seed}: {ours_at} vs {theirs} ms");
        }
        assert!(
            ours.network.maintenance_cycles < octez.network.maintenance_cycles,
            "seed {seed}"
        );
    }
}

#[test]
fn a_long_tailed_latency_still_converges_into_one_component() {
    use peerkeeper::sim::Latency;
    for seed in SEEDS {
        let cfg = SimConfig {
            latency: Latency::Exponential(Duration::from_millis(20), Duration::from_secs(2)),
            ..SimConfig::new(200, seed, Duration::from_secs(300), Policy::Peerkeeper)
        };
        let r = Simulation::new(cfg).run(|_| {}).report;
        assert!(r.network.converged, "seed {seed}: {r:?}");
        assert_eq!(r.network.components, 1, "seed {seed}");
    }
}
