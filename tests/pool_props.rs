//! The pool and the planner as pure functions: property tests over random pools and
//! configs, plus the backoff, GC and private-mode rules, all with explicit times.

use peerkeeper::maintenance::plan;
use peerkeeper::pool::{Direction, PeerId, PointState, Pool, Source};
use peerkeeper::{BackoffConfig, Config, Time};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

/// One random operation on a pool.
#[derive(Clone, Debug)]
enum Op {
    Add(u32, bool),
    Dial(u32),
    Fail(u32),
    Open(u32, bool),
    Close(u32),
    Greylist(u32),
    Advance(u64),
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u32..60;
    prop_oneof![
        4 => (p.clone(), any::<bool>()).prop_map(|(i, t)| Op::Add(i, t)),
        2 => p.clone().prop_map(Op::Dial),
        2 => p.clone().prop_map(Op::Fail),
        2 => (p.clone(), any::<bool>()).prop_map(|(i, d)| Op::Open(i, d)),
        1 => p.clone().prop_map(Op::Close),
        1 => p.clone().prop_map(Op::Greylist),
        2 => (0u64..20_000).prop_map(Op::Advance),
        1 => Just(Op::Gc),
    ]
}

fn config_strategy() -> impl Strategy<Value = Config> {
    (0usize..12, 0usize..12, 1usize..12, 1usize..6, any::<bool>()).prop_map(
        |(min, extra_exp, extra_max, dials, private)| Config {
            min_connections: min,
            expected_connections: min + extra_exp,
            max_connections: min + extra_exp + extra_max,
            max_concurrent_dials: dials,
            private_mode: private,
            trusted_points: vec![addr(0), addr(1), addr(2)],
            max_known_points: 40,
            known_points_gc_target: 30,
            ..Config::default()
        },
    )
}

/// Applies `ops` at increasing times; returns the pool and the time reached.
fn build(config: &Config, ops: &[Op], seed: u64) -> (Pool, Time) {
    let mut pool = Pool::new(config);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = Time::ZERO;
    for op in ops {
        match *op {
            Op::Add(i, trusted) => {
                let source = if trusted {
                    Source::Trusted
                } else {
                    Source::PeerSharing
                };
                pool.add_point(addr(i), source, now);
            }
            Op::Dial(i) => {
                pool.begin_dial(addr(i), now);
            }
            Op::Fail(i) => {
                if pool
                    .get(&addr(i))
                    .is_some_and(|p| p.state == PointState::Dialing)
                {
                    pool.dial_failed(addr(i), now, &mut rng);
                }
            }
            Op::Open(i, inbound) => {
                let dir = if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let _ = pool.connection_opened(addr(i), PeerId(i.into()), dir, now);
            }
            Op::Close(i) => {
                pool.connection_closed(addr(i), now);
            }
            Op::Greylist(i) => {
                pool.greylist(addr(i), now);
            }
            Op::Advance(ms) => {
                now = now + Duration::from_millis(ms);
                pool.advance(now);
            }
            Op::Gc => pool.gc(),
        }
    }
    pool.advance(now);
    (pool, now)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_pool_indexes_stay_consistent(ops in prop::collection::vec(op(), 0..200), seed in any::<u64>()) {
        let (pool, _) = build(&Config { max_known_points: 40, known_points_gc_target: 30, ..Config::default() }, &ops, seed);
        pool.check_invariants();
        prop_assert!(pool.len() <= 40);
    }

    #[test]
    fn plans_respect_every_bound(config in config_strategy(), ops in prop::collection::vec(op(), 0..150), seed in any::<u64>()) {
        let (pool, now) = build(&config, &ops, seed);
        let b = config.bounds();
        let p = plan(&pool, &config, now, &mut StdRng::seed_from_u64(seed));
        let active = pool.active_count();
        let inflight = pool.dialing_count();
        // Never above max_target, counting what is in flight.
        if !p.dial.is_empty() {
            prop_assert!(active + inflight + p.dial.len() <= b.max_target);
            prop_assert!(inflight + p.dial.len() <= config.max_concurrent_dials);
            prop_assert!(active < b.min_threshold);
        }
        // Only candidates: disconnected, not backed off or greylisted, trusted in private mode.
        let dialed: BTreeSet<_> = p.dial.iter().collect();
        prop_assert_eq!(dialed.len(), p.dial.len(), "no point twice");
        for a in &p.dial {
            let info = pool.get(a).unwrap();
            prop_assert_eq!(info.state, PointState::Disconnected);
            prop_assert!(info.next_dial <= now);
            if config.private_mode {
                prop_assert!(info.is_trusted());
            }
        }
        // Closes: only above max_threshold, never trusted, down to exactly max_target when
        // enough untrusted connections exist.
        if !p.close.is_empty() {
            prop_assert!(active > b.max_threshold);
            let untrusted = pool.connections().filter(|(a, _)| !pool.is_trusted(a)).count();
            prop_assert_eq!(p.close.len(), (active - b.max_target).min(untrusted));
            for a in &p.close {
                prop_assert!(!pool.is_trusted(a));
                prop_assert!(pool.connection(a).is_some());
            }
        } else if active > b.max_threshold {
            prop_assert!(pool.connections().all(|(a, _)| pool.is_trusted(&a)));
        }
        // One seed, one plan.
        let again = plan(&pool, &config, now, &mut StdRng::seed_from_u64(seed));
        prop_assert_eq!(p, again);
    }
}

#[test]
fn backoff_grows_caps_and_resets_after_a_success() {
    let config = Config {
        reconnection: BackoffConfig {
            initial: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(30),
            jitter: 0.0,
        },
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    let a = addr(5);
    pool.add_point(a, Source::PeerSharing, Time::ZERO);
    let mut now = Time::ZERO;
    let mut delays = Vec::new();
    for _ in 0..8 {
        pool.advance(now);
        assert!(pool.begin_dial(a, now), "dialable once the backoff ends");
        pool.dial_failed(a, now, &mut rng);
        let next = pool.get(&a).unwrap().next_dial;
        delays.push(next.saturating_since(now).as_secs());
        // Not a candidate a millisecond before the end of its backoff.
        let just_before = next - Duration::from_millis(1);
        pool.advance(just_before);
        assert!(!pool.candidates(false).any(|c| c == a));
        assert!(!pool.begin_dial(a, just_before));
        now = next;
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    // A success resets the count: the next failure backs off by the initial delay again.
    pool.advance(now);
    assert!(pool.begin_dial(a, now));
    pool.connection_opened(a, PeerId(5), Direction::Outbound, now)
        .unwrap();
    assert_eq!(pool.get(&a).unwrap().failures, 0);
    pool.connection_closed(a, now);
    let later = now + config.disconnection_delay;
    pool.advance(later);
    assert!(pool.begin_dial(a, later));
    pool.dial_failed(a, later, &mut rng);
    assert_eq!(
        pool.get(&a).unwrap().next_dial.saturating_since(later),
        Duration::from_secs(1)
    );
}

#[test]
fn ten_times_the_maximum_keeps_the_pool_bounded_and_every_trusted_point() {
    let trusted: Vec<SocketAddr> = (0..20).map(|i| addr(1_000_000 + i)).collect();
    let config = Config {
        max_known_points: 100,
        known_points_gc_target: 75,
        trusted_points: trusted.clone(),
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(2);
    for i in 0..1000u32 {
        let now = Time::from_millis(u64::from(i));
        pool.add_point(addr(i), Source::PeerSharing, now);
        // Some fail: GC drops the most failed first.
        if i % 7 == 0 && pool.begin_dial(addr(i), now) {
            pool.dial_failed(addr(i), now, &mut rng);
        }
        assert!(pool.len() <= 100);
    }
    pool.check_invariants();
    for t in &trusted {
        assert!(
            pool.get(t).is_some_and(|p| p.is_trusted()),
            "trusted {t} dropped"
        );
    }
    assert!(pool.stats().gc_runs > 0);
    // The newest points survived, the old failed ones went first.
    assert!(pool.get(&addr(999)).is_some());
    assert!(pool.get(&addr(7)).is_none());
}

#[test]
fn connected_and_dialing_points_survive_gc() {
    let config = Config {
        max_known_points: 10,
        known_points_gc_target: 5,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    pool.add_point(addr(1), Source::PeerSharing, Time::ZERO);
    pool.add_point(addr(2), Source::PeerSharing, Time::ZERO);
    pool.begin_dial(addr(1), Time::ZERO);
    pool.connection_opened(addr(2), PeerId(2), Direction::Outbound, Time::ZERO)
        .unwrap();
    for i in 3..100 {
        pool.add_point(
            addr(i),
            Source::PeerSharing,
            Time::from_millis(u64::from(i)),
        );
    }
    assert!(pool.get(&addr(1)).is_some() && pool.get(&addr(2)).is_some());
    pool.check_invariants();
}

#[test]
fn candidates_come_trusted_first_then_never_failed_then_oldest_failure() {
    let config = Config {
        trusted_points: vec![addr(100)],
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(3);
    for i in 1..=6 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    // 1 fails at t=10 s, 2 at t=5 s: once both are out of backoff, 2 comes before 1.
    for (i, t) in [(1, 10_000), (2, 5_000)] {
        let now = Time::from_millis(t);
        pool.advance(now);
        pool.begin_dial(addr(i), now);
        pool.dial_failed(addr(i), now, &mut rng);
    }
    pool.advance(Time::from_millis(3_600_000));
    let order: Vec<SocketAddr> = pool.candidates(false).collect();
    assert_eq!(order[0], addr(100));
    let never_failed: BTreeSet<_> = order[1..5].iter().copied().collect();
    assert_eq!(never_failed, (3..=6).map(addr).collect());
    assert_eq!(&order[5..], &[addr(2), addr(1)]);
    // Private mode: only the trusted one.
    assert_eq!(pool.candidates(true).collect::<Vec<_>>(), vec![addr(100)]);
}

#[test]
fn a_greylisted_point_is_refused_until_the_greylist_ends() {
    let config = Config::default();
    let mut pool = Pool::new(&config);
    let a: SocketAddr = "8.8.8.8:9732".parse().unwrap();
    pool.connection_opened(a, PeerId(1), Direction::Inbound, Time::ZERO)
        .unwrap();
    assert!(
        pool.greylist(a, Time::ZERO).is_some(),
        "its connection is handed back to close"
    );
    let end = Time::ZERO + config.greylist_duration;
    let before = end - Duration::from_millis(1);
    pool.advance(before);
    assert!(pool.candidates(false).next().is_none());
    assert!(pool
        .connection_opened(a, PeerId(1), Direction::Inbound, before)
        .is_err());
    assert!(pool.is_ip_greylisted(a.ip(), before));
    pool.advance(end);
    assert_eq!(pool.candidates(false).next(), Some(a));
    assert!(!pool.is_ip_greylisted(a.ip(), end));
}
