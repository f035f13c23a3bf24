//! Join orders (issue 8): the network converges into one component whatever the order in
//! which nodes join, on the simulator, which runs the node's own config (`Config`'s
//! defaults unless a test sets targets) with one bootstrap node every other node knows.
//!
//! Round 1 wedged with tight settings where `max - expected < 3` (the bounds collapse to
//! `max_threshold == max_connections`): 10 nodes with `--min 2 --expected 4 --max 6`
//! started 1.5 s apart left the last three at 0 connections for ever, and about one run
//! in five wedged the same way when started together. Every test here runs several
//! seeds.

use peerkeeper::sim::{Joins, SimConfig, SimOutcome, Simulation};
use peerkeeper::{Config, Policy};
use std::time::Duration;

fn run(cfg: SimConfig) -> SimOutcome {
    Simulation::new(cfg).run(|_| {})
}

/// `nodes` nodes with targets `min`/`expected`/`max` on the node's default config.
fn targets(
    nodes: usize,
    seed: u64,
    duration: Duration,
    (min, expected, max): (usize, usize, usize),
) -> SimConfig {
    let mut cfg = SimConfig::new(nodes, seed, duration, Policy::Peerkeeper);
    cfg.node_config.min_connections = min;
    cfg.node_config.expected_connections = expected;
    cfg.node_config.max_connections = max;
    cfg.node_config
        .validate()
        .expect("a config validate() accepts");
    cfg
}

/// The issue's tight settings: min 2, expected 4, max 6.
const TIGHT: (usize, usize, usize) = (2, 4, 6);

/// How long a node may be short at the end of a run and count as redialing (see
/// [`assert_converged`]).
const IN_TRANSIT: Duration = Duration::from_secs(2);

/// Converged: every node (late joiners included) within range, one component, and the
/// dial outcomes add up.
///
/// A node a peer has just let go (a trim, or room made for a newcomer) is short while it
/// redials: one short for less than [`IN_TRANSIT`] when the run ends is in transit, not
/// stuck (30 nodes 3 s apart, seed 1, ends 110 ms after node 26 was let go, and is in
/// range again 1 s later).
fn assert_converged(cfg: &SimConfig, out: &SimOutcome, what: &str) {
    let r = &out.report;
    let b = cfg.node_config.bounds();
    let in_transit = r.short_nodes > 0 && r.longest_short_ms < IN_TRANSIT.as_millis() as u64;
    assert!(r.network.converged || in_transit, "{what}: {r:?}");
    assert_eq!(r.network.components, 1, "{what}");
    assert!(r.short_nodes == 0 || in_transit, "{what}: {r:?}");
    assert_eq!(r.alive, cfg.total_nodes(), "{what}");
    let transit = if in_transit { r.short_nodes } else { 0 };
    assert!(
        r.late_joiners_in_range + transit >= cfg.late_joiners,
        "{what}: {r:?}"
    );
    for (i, c) in out.final_connections.iter().enumerate() {
        assert!(
            *c <= b.max_threshold && (*c >= b.min_threshold || in_transit),
            "{what}: node {i} ends with {c} connections"
        );
    }
    assert!(r.network.dials.adds_up(), "{what}: {:?}", r.network.dials);
    // Convergence counts only once every node has joined.
    let last_join = match cfg.joins {
        _ if cfg.late_joiners > 0 => cfg.late_at,
        Joins::Stagger(d) | Joins::Shuffled(d) => d * (cfg.nodes as u32 - 1),
        Joins::Together | Joins::SeedLast(_) => Duration::ZERO,
        other => panic!("a join order this test does not know: {other:?}"),
    };
    assert!(r.last_start_ms >= last_join.as_millis() as u64, "{what}");
    let at = r.network.converged_at_ms.expect("a time of convergence");
    assert!(at >= r.last_start_ms, "{what}: converged at {at} ms");
}

/// How long after the last start the network converged, in virtual ms.
fn after_last_start(out: &SimOutcome) -> u64 {
    let r = &out.report;
    r.network.converged_at_ms.expect("converged") - r.last_start_ms
}

/// The seed last (issue 18): every other node starts first, knowing only the seed, and
/// finds nobody there (a refused connect, as a closed port on a live host answers). It
/// used to count itself offline after three such dials and wait a whole probe interval
/// (20 s), so the network converged about 40 s after the seed started; now the refusals
/// prove the network works, the seed is retried within about a second, and the network
/// converges seconds after the seed's start.
#[test]
fn with_the_seed_last_the_network_converges_seconds_after_the_seed_starts() {
    let bound = Duration::from_secs(5).as_millis() as u64;
    for (nodes, config) in [(10, Some(TIGHT)), (200, None)] {
        for seed in 1..=3 {
            for late in [Duration::from_secs(3), Duration::from_secs(30)] {
                let base = match config {
                    Some(t) => targets(nodes, seed, Duration::from_secs(90), t),
                    None => {
                        SimConfig::new(nodes, seed, Duration::from_secs(90), Policy::Peerkeeper)
                    }
                };
                let cfg = SimConfig {
                    joins: Joins::SeedLast(late),
                    ..base
                };
                let out = run(cfg.clone());
                let what = format!("{nodes} nodes, the seed {late:?} last, seed {seed}");
                assert_converged(&cfg, &out, &what);
                assert_eq!(
                    out.report.network.dials.offline, 0,
                    "{what}: nobody went offline"
                );
                let after = after_last_start(&out);
                assert!(
                    after <= bound,
                    "{what}: converged {after} ms after the seed started"
                );
            }
        }
    }
}

/// The seed last, on many seeds: "converges" means in every run, not in three. The first
/// node to reach the seed used to get an empty answer (the seed knew nobody yet) and then
/// wait `peer_ask_interval` (30 s) with one connection before asking again; 10 of 600
/// seeds converged 15 to 77 s after the seed started (seeds 27, 154 and 161 among the
/// first 200), and CI's process test failed on it. The seed now sends the first points
/// it can share to whoever asked in vain.
#[test]
fn with_the_seed_last_every_run_converges_seconds_after_the_seed_starts() {
    let bound = Duration::from_secs(5).as_millis() as u64;
    let mut slowest = (0, 0);
    for seed in 1..=200 {
        let cfg = SimConfig {
            joins: Joins::SeedLast(Duration::from_secs(3)),
            ..targets(10, seed, Duration::from_secs(40), TIGHT)
        };
        let out = run(cfg.clone());
        let what = format!("10 nodes, the seed 3 s last, seed {seed}");
        assert_converged(&cfg, &out, &what);
        slowest = slowest.max((after_last_start(&out), seed));
    }
    assert!(
        slowest.0 <= bound,
        "seed {}: converged {} ms after the seed started",
        slowest.1,
        slowest.0
    );
}

/// A random start order (issue 18): the seed anywhere in it, one node every 500 ms; the
/// nodes that start before the seed retry it until it is there.
#[test]
fn in_a_random_start_order_the_network_converges_seconds_after_the_last_start() {
    let bound = Duration::from_secs(5).as_millis() as u64;
    for seed in 1..=5 {
        let cfg = SimConfig {
            joins: Joins::Shuffled(Duration::from_millis(500)),
            ..targets(10, seed, Duration::from_secs(60), TIGHT)
        };
        let out = run(cfg.clone());
        let what = format!("a random order, seed {seed}");
        assert_converged(&cfg, &out, &what);
        let after = after_last_start(&out);
        assert!(
            after <= bound,
            "{what}: converged {after} ms after the last start"
        );
    }
}

#[test]
fn the_issue_stagger_scenario_converges_into_one_component() {
    // `simulate --stagger 1.5s --nodes 10 --min 2 --expected 4 --max 6`.
    for seed in 1..=5 {
        let cfg = SimConfig {
            joins: Joins::Stagger(Duration::from_millis(1500)),
            ..targets(10, seed, Duration::from_secs(60), TIGHT)
        };
        let b = cfg.node_config.bounds();
        assert_eq!(
            b.max_threshold, cfg.node_config.max_connections,
            "the bounds collapse, as in round 1"
        );
        let out = run(cfg.clone());
        assert_converged(&cfg, &out, &format!("seed {seed}"));
    }
}

#[test]
fn three_hundred_nodes_and_thirty_late_joiners_at_three_minutes_converge() {
    // The issue's `--nodes 2000 --late-joiners 200 --late-at 3m`, scaled down, with
    // targets 4/8/12.
    for seed in 1..=3 {
        let cfg = SimConfig {
            late_joiners: 30,
            late_at: Duration::from_secs(180),
            ..targets(300, seed, Duration::from_secs(200), (4, 8, 12))
        };
        let out = run(cfg.clone());
        assert_converged(&cfg, &out, &format!("seed {seed}"));
        assert_eq!(out.report.network.nodes, 330);
        assert_eq!(out.report.late_joiners, 30);
    }
}

#[test]
fn with_the_default_config_every_late_joiner_ends_in_range() {
    // The node's defaults (10/50/100: range 23..=84) as `peerkeeper node` runs them.
    let defaults = Config::default().bounds();
    for seed in [1, 2] {
        let cfg = SimConfig {
            late_joiners: 20,
            late_at: Duration::from_secs(60),
            ..SimConfig::new(200, seed, Duration::from_secs(80), Policy::Peerkeeper)
        };
        assert_eq!(cfg.node_config, Config::default());
        assert_eq!(cfg.bootstrap, 1);
        let out = run(cfg.clone());
        assert_converged(&cfg, &out, &format!("seed {seed}"));
        for (i, c) in out.final_connections.iter().enumerate().skip(200) {
            assert!(
                (defaults.min_threshold..=defaults.max_threshold).contains(c),
                "seed {seed}: late joiner {i} ends with {c} connections"
            );
        }
    }
}

#[test]
fn every_join_order_converges_with_tight_settings() {
    let ms = Duration::from_millis;
    let orders = [
        Joins::Together,
        Joins::Stagger(ms(100)),
        Joins::Stagger(ms(500)),
        Joins::Stagger(ms(1000)),
        Joins::Stagger(ms(1500)),
        Joins::Stagger(ms(3000)),
        Joins::Shuffled(ms(500)),
        Joins::SeedLast(ms(3000)),
    ];
    for nodes in [10, 20, 30] {
        for joins in orders {
            for seed in 1..=3 {
                let span = match joins {
                    Joins::Stagger(d) | Joins::Shuffled(d) => d * nodes as u32,
                    Joins::Together => Duration::from_secs(5),
                    Joins::SeedLast(d) => Duration::from_secs(5) + d,
                    other => panic!("a join order this test does not know: {other:?}"),
                };
                let cfg = SimConfig {
                    joins,
                    ..targets(nodes, seed, span + Duration::from_secs(60), TIGHT)
                };
                let out = run(cfg.clone());
                assert_converged(
                    &cfg,
                    &out,
                    &format!("{nodes} nodes, {joins:?}, seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn late_joiners_after_a_full_node_converge_with_tight_settings() {
    // Every node dials the bootstrap node first, so it is full (6) when the late joiners
    // arrive knowing only it; they join however the rest joined.
    let late_at = Duration::from_secs(60);
    for (nodes, late, joins) in [
        (10, 10, Joins::Together),
        (20, 10, Joins::Together),
        (30, 5, Joins::Together),
        (20, 10, Joins::Stagger(Duration::from_secs(1))),
    ] {
        for seed in 1..=3 {
            let cfg = SimConfig {
                joins,
                late_joiners: late,
                late_at,
                ..targets(nodes, seed, Duration::from_secs(120), TIGHT)
            };
            let out = run(cfg.clone());
            let what = format!("{nodes} + {late} late, {joins:?}, seed {seed}");
            let before = out
                .samples
                .iter()
                .rfind(|s| s.t_ms < late_at.as_millis() as u64)
                .expect("a sample before the late joiners");
            assert_eq!(
                before.connections.max, cfg.node_config.max_connections,
                "{what}: some node is full when they join"
            );
            assert_converged(&cfg, &out, &what);
        }
    }
}

/// Runs min = expected = max = 4: every node of the settled network is full.
/// (180 s: in a network where every node is at its maximum, a node whose connections are
/// all inbound closes one to dial for its outbound floor, and the one it closed re-dials:
/// a few such swaps can still be under way 60 s after the late joiners came.)
fn full_network(seed: u64, make_room: Option<Duration>) -> (SimConfig, SimOutcome) {
    let mut cfg = SimConfig {
        late_joiners: 5,
        late_at: Duration::from_secs(60),
        ..targets(20, seed, Duration::from_secs(180), (4, 4, 4))
    };
    cfg.node_config.make_room_interval = make_room;
    let out = run(cfg.clone());
    (cfg, out)
}

#[test]
fn making_room_lets_late_joiners_into_a_network_where_every_node_is_full() {
    // What making room buys. With min = expected = max = 4 every node of the settled
    // network is at its maximum, so a late joiner is refused by everyone (with points,
    // but every point is another full node) unless someone makes room.
    //
    // Observed over 40 seeds at 20 + 5 nodes: with the default make_room_interval (1 s)
    // all 40 converge; with `None`, 8 of 40 do: in 27 runs some late joiners stay short
    // for good, in 13 the overlay ends split (late joiners in an island of their own),
    // and the early nodes keep their connections (none ends short). With 2/4/6 it makes
    // no difference (top-ups stop at min_target, so nodes do not fill up, and refusals
    // carry the recent dialers): the join-order tests above pass either way.
    let seeds = 1..=6;
    let (mut late_in_with, mut late_in_without, mut failed_without) = (0, 0, 0);
    for seed in seeds.clone() {
        let (cfg, out) = full_network(seed, Some(Duration::from_secs(1)));
        let what = format!("seed {seed}, making room");
        let before = out
            .samples
            .iter()
            .rfind(|s| s.t_ms < cfg.late_at.as_millis() as u64)
            .expect("a sample before the late joiners");
        // Every node full, or one connection short for a moment: a node whose four
        // connections were all inbound closes one to dial for its outbound floor
        // (issue 16), and the node it closed re-dials.
        assert_eq!(
            before.connections.max, 4,
            "{what}: the nodes are full when they join"
        );
        assert!(
            before.connections.min >= 3,
            "{what}: the nodes are full when they join"
        );
        assert_converged(&cfg, &out, &what);
        late_in_with += out.report.late_joiners_in_range;

        let (cfg, out) = full_network(seed, None);
        let r = &out.report;
        let b = cfg.node_config.bounds();
        assert!(r.network.dials.adds_up());
        // The full network is unharmed: every node short at the end is a late joiner.
        for (i, c) in out.final_connections.iter().enumerate() {
            if *c < b.min_threshold {
                assert!(i >= cfg.nodes, "seed {seed}, no room: early node {i} short");
            }
        }
        late_in_without += r.late_joiners_in_range;
        failed_without += usize::from(!r.network.converged);
    }
    assert_eq!(late_in_with, 5 * seeds.clone().count());
    assert!(
        late_in_without < late_in_with && failed_without > 0,
        "without making room: {late_in_without} late joiners in range, {failed_without} runs not converged"
    );
}

#[test]
fn the_same_join_schedule_and_seed_give_the_same_run() {
    let cfg = SimConfig {
        joins: Joins::Stagger(Duration::from_millis(700)),
        late_joiners: 6,
        late_at: Duration::from_secs(40),
        ..targets(20, 9, Duration::from_secs(70), TIGHT)
    };
    let a = run(cfg.clone());
    let b = run(cfg.clone());
    assert_eq!(a.report.event_log_hash, b.report.event_log_hash);
    assert_eq!(a.final_connections, b.final_connections);
    assert_eq!(
        serde_json::to_string(&a.report).unwrap(),
        serde_json::to_string(&b.report).unwrap()
    );
    let c = run(SimConfig { seed: 10, ..cfg });
    assert_ne!(a.report.event_log_hash, c.report.event_log_hash);
}

#[test]
fn converged_is_false_when_the_overlay_splits_into_islands() {
    // The octez model with min 2 / expected 3 / max 3 on 50 nodes ends, after 5 virtual
    // minutes, split into islands whose every node is within range (observed in 9 of 10
    // seeds): round 1's `converged` called that converged; now it requires one
    // component. peerkeeper on the same networks stays in one piece (10 of 10).
    let mut islands_in_range = 0;
    for seed in 1..=6 {
        let mut cfg = targets(50, seed, Duration::from_secs(300), (2, 3, 3));
        let ours = run(cfg.clone());
        assert_converged(&cfg, &ours, &format!("peerkeeper, seed {seed}"));
        cfg.node_config.policy = Policy::Octez;
        let b = cfg.node_config.bounds();
        let r = run(cfg).report;
        let all_in_range = r.short_nodes == 0 && r.network.connections.max <= b.max_threshold;
        assert_eq!(
            r.network.converged,
            r.network.components == 1 && all_in_range,
            "octez, seed {seed}: {r:?}"
        );
        assert!(r.network.dials.adds_up(), "octez, seed {seed}");
        if all_in_range && r.network.components > 1 {
            assert!(!r.network.converged);
            islands_in_range += 1;
        }
    }
    assert!(
        islands_in_range > 0,
        "no seed split into islands within range"
    );
}

/// Late joiners change nothing before they join: every node's draws (start time, NAT)
/// come from its own stream, so a run with late joiners pairs with the run without them.
#[test]
fn late_joiners_leave_the_network_before_them_as_it_was() {
    let run = |late: usize| {
        let mut cfg = SimConfig::new(60, 9, Duration::from_secs(120), Policy::Peerkeeper);
        cfg.node_config.min_connections = 4;
        cfg.node_config.expected_connections = 8;
        cfg.node_config.max_connections = 12;
        cfg.nat_fraction = 0.2;
        cfg.late_joiners = late;
        cfg.late_at = Duration::from_secs(60);
        Simulation::new(cfg).run(|_| {}).samples
    };
    let (without, with) = (run(0), run(10));
    let before = |s: &Vec<peerkeeper::sim::Sample>| -> Vec<String> {
        s.iter()
            .filter(|x| x.t_ms < 60_000)
            .map(|x| format!("{} {:?} {} {}", x.t_ms, x.connections, x.mean_pool, x.alive))
            .collect()
    };
    assert!(before(&without).len() > 10);
    assert_eq!(before(&without), before(&with));
    assert_ne!(
        without.last().map(|x| x.alive),
        with.last().map(|x| x.alive)
    );
}
