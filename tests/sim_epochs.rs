//! The simulator's epoch-rotation scenario (issue 9): a validator set rotated every epoch
//! through `track`, some members moving (`overwrite`), outsiders claiming members' ids.
//! Small networks (300 nodes, 30 validators, one-minute epochs) so that a debug build
//! runs each in a second or two. And per-kind targets with a simulated ledger source.

use peerkeeper::sim::{EpochConfig, EpochReport, SimConfig, SimOutcome, Simulation};
use peerkeeper::Policy;
use std::time::Duration;

const BOUND_MS: u64 = 10_000;

fn scenario(seed: u64, kept_sets: usize, overwrite: usize) -> SimConfig {
    let mut cfg = SimConfig::new(300, seed, Duration::from_secs(365), Policy::Peerkeeper);
    let mut e = EpochConfig::new(30, Duration::from_secs(60));
    e.overwrite = overwrite;
    e.impersonations = 6;
    cfg.node_config.peer_sets.kept_sets = kept_sets;
    e.prepare(&mut cfg.node_config);
    cfg.node_config.validate().unwrap();
    cfg.epochs = Some(e);
    cfg
}

fn run(cfg: SimConfig) -> SimOutcome {
    Simulation::new(cfg).run(|_| {})
}

fn epochs(out: &SimOutcome) -> &EpochReport {
    out.report
        .epochs
        .as_ref()
        .expect("the scenario reports epochs")
}

#[test]
fn every_new_set_meshes_and_dropped_members_go_within_bounds() {
    for seed in [1, 2] {
        for kept in [1, 4] {
            let out = run(scenario(seed, kept, 3));
            let e = epochs(&out);
            let what = format!("seed {seed}, kept_sets {kept}");
            // Epochs at 10 s, 70 s, ..., 310 s.
            assert_eq!(e.epochs.len(), 6, "{what}");
            assert_eq!(e.incomplete_epochs, 0, "{what}: {:#?}", e.epochs);
            for r in &e.epochs {
                assert!(r.mesh_ms.unwrap() <= BOUND_MS, "{what}: {r:?}");
                assert!(r.dropped_ms.unwrap() <= BOUND_MS, "{what}: {r:?}");
                assert_eq!(r.overwritten, 3, "{what}: {r:?}");
                assert!(r.overwrite_ms.unwrap() <= BOUND_MS, "{what}: {r:?}");
                assert_eq!(r.joined, if r.id == 1 { 30 } else { 6 }, "{what}");
            }
            // With k sets kept, members start being dropped at epoch k + 1: 6 each time
            // in the steady state (fewer when a replaced member came back meanwhile).
            let dropping: Vec<u64> = e
                .epochs
                .iter()
                .filter(|r| r.dropped > 0)
                .map(|r| r.id)
                .collect();
            assert_eq!(dropping.first(), Some(&(kept as u64 + 1)), "{what}");
            assert!(e.dropped.count >= 2, "{what}: {:?}", e.dropped);
        }
    }
}

#[test]
fn impersonators_are_refused() {
    // 6 outsiders per epoch claiming a member's id, and after each overwrite one dial per
    // mover from its old address claiming its id: the allowed address follows the move.
    let out = run(scenario(3, 4, 3));
    let e = epochs(&out);
    assert_eq!(e.old_address_attempts, 6 * 3);
    assert_eq!(e.impersonation_attempts, 6 * 6 + 6 * 3);
    assert_eq!(e.impersonations_admitted, 0);
}

#[test]
fn without_the_ip_check_an_impersonator_gets_in() {
    // The test above can fail: with `check_ip` off (commonware's `bypass_ip_check`), a
    // hello claiming a member's id is taken at its word.
    let mut cfg = scenario(3, 4, 0);
    cfg.node_config.peer_sets.check_ip = false;
    let out = run(cfg);
    let e = epochs(&out);
    assert!(e.impersonations_admitted > 0, "{e:?}");
}

#[test]
fn the_scenario_is_deterministic_by_seed() {
    let a = run(scenario(5, 2, 2));
    let b = run(scenario(5, 2, 2));
    let json = |o: &SimOutcome| {
        let mut r = o.report.clone();
        r.network.wall_ms = 0;
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(json(&a), json(&b));
    let c = run(scenario(6, 2, 2));
    assert_ne!(a.report.event_log_hash, c.report.event_log_hash);
    assert_ne!(epochs(&a).epochs, epochs(&c).epochs);
}

#[test]
fn members_end_connected_to_their_set_and_outsiders_alone() {
    // At the end (kept_sets 1), every member holds a connection to every other member;
    // a node that was never a member, nor tracked, has no connection.
    let out = run(scenario(7, 1, 0));
    let members = out.final_connections.iter().filter(|c| **c >= 29).count();
    assert!(members >= 30, "{members}: {:?}", out.final_connections);
    assert!(out.final_connections.iter().all(|c| *c <= 30 + 6));
}

/// 150 nodes with the default targets, a ledger of 30 relays, and `floor` external
/// connections.
fn ledger_run(seed: u64, floor: usize) -> SimOutcome {
    let mut cfg = SimConfig::new(150, seed, Duration::from_secs(240), Policy::Peerkeeper);
    cfg.node_config.targets.external.floor = floor;
    cfg.node_config.validate().unwrap();
    cfg.ledger = 30;
    run(cfg)
}

fn external(out: &SimOutcome) -> peerkeeper::sim::KindFigures {
    let k = out
        .report
        .kinds
        .as_ref()
        .expect("a ledger run reports kinds");
    assert_eq!(k.ledger_relays, 30);
    k.kinds
        .iter()
        .find(|f| f.kind == "external")
        .unwrap()
        .clone()
}

#[test]
fn a_ledger_source_keeps_the_external_floor() {
    // Not every node: a relay's own point is one of the 30, and a node whose relays
    // refused it while full may be one short at the end (see docs/simulator.md). Since
    // issue 17's exploration dials, which also land on relays and fill them a little
    // more: 142 of 150 nodes at the floor (0.947) for seed 1.
    for seed in [1, 2] {
        let out = ledger_run(seed, 3);
        let ext = external(&out);
        assert_eq!(ext.floor, 3);
        assert!(ext.fraction_at_floor >= 0.93, "seed {seed}: {ext:?}");
        assert!(ext.connections.min >= 2, "seed {seed}: {ext:?}");
        assert!(out.report.network.converged, "seed {seed}");
    }
}

#[test]
fn without_a_floor_the_ledger_is_one_source_among_others() {
    // The floor is what keeps the external connections (the test above can fail).
    let with = external(&ledger_run(1, 3));
    let without = external(&ledger_run(1, 0));
    assert_eq!(without.floor, 0);
    // (The median: room-making now follows the eviction order, which protects inbound
    // peers whatever their kind, so the fewest external connections are not raised.)
    assert!(
        without.connections.median < with.connections.median,
        "{without:?} {with:?}"
    );
}
