//! The simulator's eclipse experiment (issue 10): attackers with many addresses in few
//! network groups, accepting every connection, answering and flooding with their own
//! addresses only, holding inbound connections to every honest node; honest nodes churn
//! and restore their saved pool; a sample restarts at once (Heilman et al.'s attack).
//! Small networks (120 honest nodes at targets 4/8/12, 60 attacker addresses in 2
//! groups, 75 virtual minutes) so that a debug build runs each in a few seconds.

use peerkeeper::config::Defences;
use peerkeeper::pool::netgroup;
use peerkeeper::sim::eclipse::{attacker_addr, honest_addr, MAX_GROUPS, MAX_HONEST};
use peerkeeper::sim::{
    EclipseCheck, EclipseConfig, EclipseReport, SimConfig, SimOutcome, Simulation,
};
use peerkeeper::Policy;
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

const HONEST: usize = 120;
const MIN: u64 = 60;

fn scenario(seed: u64, policy: Policy, defences: Defences) -> SimConfig {
    let mut cfg = SimConfig::new(HONEST, seed, Duration::ZERO, policy);
    // 6 outbound connections a node (min_target), as few as Bitcoin's 8: an eclipse is
    // within reach.
    cfg.node_config.min_connections = 4;
    cfg.node_config.expected_connections = 8;
    cfg.node_config.max_connections = 12;
    cfg.node_config.defences = defences;
    cfg.node_config.validate().unwrap();
    // Each node restarts about every hour (restoring its saved pool), so that nodes
    // redial within the run.
    cfg.churn_per_minute = 1.0 / 60.0;
    let mut e = EclipseConfig::new(60, 2);
    e.attack_start = Duration::from_secs(5 * MIN);
    e.checks = vec![Duration::from_secs(30 * MIN), Duration::from_secs(60 * MIN)];
    e.restart_at = Some(e.default_restart_at());
    // Fewer addresses per flood than an attacker would send, for speed: 60 addresses
    // are all in every pool within minutes either way.
    e.flood_size = 20;
    e.check(HONEST).unwrap();
    cfg.duration = e.duration();
    cfg.eclipse = Some(e);
    cfg
}

fn run(cfg: SimConfig) -> SimOutcome {
    Simulation::new(cfg).run(|_| {})
}

fn eclipse(out: &SimOutcome) -> &EclipseReport {
    out.report.eclipse.as_ref().expect("the scenario reports")
}

fn last(out: &SimOutcome) -> &EclipseCheck {
    let e = eclipse(out);
    assert_eq!(e.checks.len(), 2, "both checkpoints reached: {e:#?}");
    &e.checks[1]
}

#[test]
fn a_seed_gives_the_same_run_and_report() {
    let a = run(scenario(3, Policy::Peerkeeper, Defences::default()));
    let b = run(scenario(3, Policy::Peerkeeper, Defences::default()));
    assert_eq!(a.report.event_log_hash, b.report.event_log_hash);
    assert_eq!(eclipse(&a), eclipse(&b));
    assert_eq!(
        serde_json::to_value(&a.report).unwrap(),
        serde_json::to_value(&b.report).unwrap()
    );
    let c = run(scenario(4, Policy::Peerkeeper, Defences::default()));
    assert_ne!(a.report.event_log_hash, c.report.event_log_hash);
}

/// The scenario without exploration swaps (`exploration_swap_interval` longer than the
/// run): a node at its trim target never replaces an outbound connection by itself.
fn without_swaps(mut cfg: SimConfig) -> SimConfig {
    cfg.node_config.exploration_swap_interval = Duration::from_secs(86_400);
    cfg
}

#[test]
fn without_defences_the_attackers_take_outbound_slots_and_diverse_dials_limits_them() {
    for seed in [1, 2] {
        // The baseline of the attack: no defence, and no exploration swaps either (they
        // rotate outbound connections out of the most represented groups, the attackers'
        // two: `swaps` below).
        let off = run(without_swaps(scenario(
            seed,
            Policy::Peerkeeper,
            Defences::off(),
        )));
        let diverse = run(without_swaps(scenario(
            seed,
            Policy::Peerkeeper,
            Defences {
                diverse_dials: true,
                ..Defences::off()
            },
        )));
        let swaps = run(scenario(seed, Policy::Peerkeeper, Defences::off()));
        let (o, d, s) = (last(&off), last(&diverse), last(&swaps));
        let what = format!("seed {seed}\noff: {o:#?}\ndiverse_dials: {d:#?}\nswaps: {s:#?}");
        // The attack works: every pool learns every attacker address, and the attackers
        // hold a large share of the outbound connections, all of some nodes'.
        assert!(o.pool_pollution > 0.25, "{what}");
        assert!(o.attacker_outbound_share > 0.3, "{what}");
        assert!(o.eclipsed > 0, "{what}");
        assert!(o.doubled_in_attacker_group > 0, "{what}");
        // Two attacker groups: with diverse_dials a node dials at most one address in
        // each while honest groups are known, so the attackers' share falls.
        assert_eq!(d.doubled_in_attacker_group, 0, "{what}");
        // (Measured: 0.31 against 0.38 and 0.26 against 0.34 for seeds 1 and 2.)
        assert!(
            d.attacker_outbound_share < o.attacker_outbound_share * 0.9,
            "{what}"
        );
        assert!(d.eclipsed <= o.eclipsed, "{what}");
        // Exploration swaps (issue 17, one per node per 10 minutes at the trim target):
        // the connection given up is chosen as a trim chooses, from the most represented
        // group first (without feedback reports), so the attackers' share falls too
        // (measured: 0.28 and 0.24, with 18 and 17 nodes holding two outbound connections
        // into one attacker group, against 44 and 38 without swaps).
        assert!(
            s.attacker_outbound_share < o.attacker_outbound_share,
            "{what}"
        );
        assert!(s.eclipsed <= o.eclipsed, "{what}");
    }
}

#[test]
fn the_restart_case_runs_and_is_measured() {
    let out = run(scenario(5, Policy::Peerkeeper, Defences::default()));
    let e = eclipse(&out);
    let r = e.restart.as_ref().expect("the restart case ran");
    assert_eq!(r.at_ms, 65 * MIN * 1000);
    // 10 % of the alive nodes (the bootstrap node excepted).
    assert!((9..=12).contains(&r.restarted), "{r:#?}");
    let c = r
        .check
        .as_ref()
        .expect("measured 10 min after they came back");
    assert_eq!(c.at_ms, (65 + 1 + 10) * MIN * 1000);
    assert!(
        c.nodes <= r.restarted && c.nodes + 2 >= r.restarted,
        "{r:#?}"
    );
    // Back with their saved pools: they know the attackers, and have dialed again.
    assert!(c.pool_pollution > 0.2, "{c:#?}");
    assert!(c.mean_outbound >= 3.0, "{c:#?}");
    assert!(e.restores as usize >= r.restarted, "{e:#?}");
}

#[test]
fn the_address_plan_gives_each_honest_node_its_own_group_and_attackers_their_groups() {
    let mut groups = HashSet::new();
    let mut addrs = HashSet::new();
    for i in 0..MAX_HONEST {
        let a = honest_addr(i);
        assert!(groups.insert(netgroup(&a)), "node {i}: {a} shares a /16");
        assert!(addrs.insert(a));
        assert_eq!(
            peerkeeper::core::intake::scope(a.ip()),
            Some(peerkeeper::core::intake::Scope::Public),
            "{a}"
        );
    }
    for (a, g) in [(300, 3), (4600, 1000), (MAX_GROUPS * 2, MAX_GROUPS)] {
        let mut attacker_groups = HashSet::new();
        for j in 0..a {
            let p = attacker_addr(j, g);
            assert!(addrs.insert(p), "{p} is used twice (or by an honest node)");
            assert!(!groups.contains(&netgroup(&p)), "{p} is in an honest group");
            assert_eq!(
                peerkeeper::core::intake::scope(p.ip()),
                Some(peerkeeper::core::intake::Scope::Public),
                "{p}"
            );
            // Address j is in group j % G: the same group as j - G.
            if j >= g {
                assert_eq!(netgroup(&p), netgroup(&attacker_addr(j - g, g)));
            }
            attacker_groups.insert(netgroup(&p));
        }
        assert_eq!(attacker_groups.len(), g);
        for j in 0..a {
            addrs.remove(&attacker_addr(j, g));
        }
    }
}

#[test]
fn attackers_are_not_counted_as_nodes() {
    let out = run(scenario(6, Policy::Peerkeeper, Defences::default()));
    let r = &out.report;
    let e = eclipse(&out);
    assert_eq!(r.network.nodes, HONEST);
    assert_eq!(out.alive.len(), HONEST);
    assert_eq!(out.final_connections.len(), HONEST);
    assert_eq!(e.honest, HONEST);
    assert!(r.alive <= HONEST);
    for c in &e.checks {
        assert!(c.nodes <= HONEST, "{c:#?}");
    }
    // The attackers did hold connections to the nodes, and floods went out.
    assert!(e.attacker_dials_admitted > 0 && e.floods > 0, "{e:#?}");
    assert!(last(&out).mean_attacker_inbound > 0.5, "{e:#?}");
}

#[test]
fn floods_faster_than_the_cores_accept_are_ignored_not_banned() {
    // The core takes one unsolicited advertisement per connection per
    // `peer_ask_interval / 4` (7.5 s by default) and ignores the rest; a message within
    // MAX_POINTS_PER_MESSAGE is no violation.
    let mut cfg = scenario(7, Policy::Peerkeeper, Defences::default());
    let e = cfg.eclipse.as_mut().unwrap();
    e.flood_interval = Duration::from_secs(5);
    e.checks = vec![Duration::from_secs(10 * MIN)];
    e.restart_at = None;
    cfg.duration = e.duration();
    let out = run(cfg);
    let e = eclipse(&out);
    assert!(e.unsolicited_ignored > 0, "{e:#?}");
    assert_eq!((e.violations, e.bans), (0, 0), "{e:#?}");
}

#[test]
fn bad_eclipse_flags_are_refused_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--attackers", "10", "--attacker-groups", "0"],
            "--attacker-groups",
        ),
        (
            &["--attackers", "10", "--attacker-groups", "11"],
            "--attacker-groups",
        ),
        (&["--attackers", "10"], "--attacker-groups"),
        (
            &[
                "--attackers",
                "10",
                "--attacker-groups",
                "2",
                "--restart-fraction",
                "2",
            ],
            "--restart-fraction",
        ),
    ];
    for (args, flag) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
            .args(["simulate", "--nodes", "20"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn the_command_prints_the_eclipse_figures_in_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
        .args([
            "simulate",
            "--nodes",
            "40",
            "--attackers",
            "20",
            "--attacker-groups",
            "4",
            "--attack-start",
            "1m",
            "--restart-at",
            "3m",
            "--duration",
            "15m",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["eclipse"];
    assert_eq!(e["attackers"], 20);
    assert_eq!(e["groups"], 4);
    assert_eq!(e["defences"]["diverse_dials"], true);
    // 1 h and 24 h after the attack: beyond this short run.
    assert_eq!(e["checks"].as_array().unwrap().len(), 0);
    assert_eq!(e["restart"]["restarted"], 4);
    assert!(
        e["restart"]["check"]["eclipsed_fraction"].is_number(),
        "{e}"
    );
}
