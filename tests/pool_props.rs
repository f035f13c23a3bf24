//! Properties of the point pool: backoff, bounds, rank order, and its internal indexes
//! under random operation sequences.

use peerkeeper::pool::{Direction, PointState, Pool, Source};
use peerkeeper::{BackoffConfig, Config, PeerId, Time};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

fn no_jitter() -> Config {
    Config {
        reconnection: BackoffConfig {
            initial: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.0,
        },
        disconnection_delay: Duration::from_secs(5),
        ..Config::default()
    }
}

fn is_candidate(pool: &Pool, a: SocketAddr) -> bool {
    pool.candidates(false).any(|c| c == a)
}

#[test]
fn a_failed_point_waits_out_its_backoff_which_grows_caps_and_resets() {
    let config = no_jitter();
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    let a = addr(1);
    pool.add_point(a, Source::PeerSharing, Time::ZERO);
    let mut now = Time::ZERO;
    let mut delays = Vec::new();
    for _ in 0..6 {
        pool.advance(now);
        assert!(pool.begin_dial(a, now));
        pool.dial_failed(a, now, &mut rng);
        let until = pool.get(&a).unwrap().next_dial;
        let delay = until.saturating_since(now);
        delays.push(delay.as_secs());
        // Not a candidate one millisecond before the backoff ends, nor dialable.
        pool.advance(until - Duration::from_millis(1));
        assert!(!is_candidate(&pool, a));
        assert!(!pool.begin_dial(a, until - Duration::from_millis(1)));
        // A candidate once it ends.
        pool.advance(until);
        assert!(is_candidate(&pool, a));
        now = until;
    }
    assert_eq!(
        delays,
        vec![1, 2, 4, 8, 10, 10],
        "grows by the factor, caps at `cap`"
    );

    // A success resets it: after the disconnection delay, one failure waits `initial`.
    pool.begin_dial(a, now);
    pool.connection_opened(a, PeerId(1), Direction::Outbound, now)
        .unwrap();
    assert_eq!(pool.get(&a).unwrap().failures, 0);
    pool.connection_closed(a, now);
    assert!(
        !is_candidate(&pool, a),
        "not redialed before the disconnection delay"
    );
    now = now + config.disconnection_delay;
    pool.advance(now);
    assert!(is_candidate(&pool, a));
    pool.begin_dial(a, now);
    pool.dial_failed(a, now, &mut rng);
    assert_eq!(
        pool.get(&a).unwrap().next_dial,
        now + config.reconnection.initial
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// With jitter, the delay never goes above the cap, and the un-jittered delay never
    /// shrinks as failures pile up.
    #[test]
    fn backoff_is_monotone_and_capped(
        initial_ms in 1u64..5_000,
        factor in 1.0f64..4.0,
        cap_extra_ms in 0u64..600_000,
        jitter in 0.0f64..0.99,
        seed in any::<u64>(),
    ) {
        let b = BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            factor,
            cap: Duration::from_millis(initial_ms + cap_extra_ms),
            jitter,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut prev = Duration::ZERO;
        for n in 1..80 {
            let base = b.base_delay(n);
            prop_assert!(base >= prev);
            prop_assert!(base <= b.cap);
            prop_assert!(b.delay(n, &mut rng) <= b.cap);
            prev = base;
        }
        if factor >= 1.1 {
            prop_assert_eq!(b.base_delay(200), b.cap);
        }
    }

    /// Ten times the maximum of points: the pool stays bounded and keeps every trusted
    /// point.
    #[test]
    fn the_pool_stays_bounded_and_keeps_trusted_points(
        max in 10usize..200,
        trusted_n in 0usize..8,
        seed in any::<u64>(),
    ) {
        let trusted: Vec<SocketAddr> = (0..trusted_n as u32).map(|i| addr(100_000 + i)).collect();
        let config = Config {
            max_known_points: max,
            known_points_gc_target: max * 3 / 4,
            trusted_points: trusted.clone(),
            ..Config::default()
        };
        config.validate().unwrap();
        let mut pool = Pool::new(&config);
        let mut rng = StdRng::seed_from_u64(seed);
        for i in 0..(max * 10) as u32 {
            let now = Time::from_millis(u64::from(i));
            pool.add_point(addr(i), Source::PeerSharing, now);
            if i % 3 == 0 {
                pool.dial_failed(addr(i), now, &mut rng);
            }
            prop_assert!(pool.len() <= max, "{} points > {}", pool.len(), max);
        }
        for t in &trusted {
            prop_assert!(pool.is_trusted(t), "lost trusted {}", t);
        }
        prop_assert!(pool.stats().gc_runs > 0);
        pool.check_invariants();
    }
}

#[test]
fn a_full_pool_of_connected_points_refuses_new_untrusted_points() {
    let config = Config {
        max_known_points: 4,
        known_points_gc_target: 2,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    for i in 0..4 {
        pool.connection_opened(addr(i), PeerId(i.into()), Direction::Inbound, Time::ZERO)
            .unwrap();
    }
    use peerkeeper::pool::Added;
    assert_eq!(
        pool.add_point(addr(9), Source::PeerSharing, Time::ZERO),
        Added::Full
    );
    assert_eq!(pool.len(), 4);
    assert_eq!(
        pool.add_point(addr(10), Source::Trusted, Time::ZERO),
        Added::New
    );
}

#[test]
fn candidates_come_trusted_then_never_failed_then_oldest_failure() {
    let config = no_jitter();
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    let t = Time::ZERO;
    // Insert in the wrong order on purpose.
    let failed_late = addr(1);
    let failed_early = addr(2);
    let fresh = addr(3);
    let trusted_failed = addr(4);
    let trusted = addr(5);
    for a in [failed_late, failed_early, fresh] {
        pool.add_point(a, Source::PeerSharing, t);
    }
    pool.add_point(trusted_failed, Source::Trusted, t);
    pool.add_point(trusted, Source::Bootstrap, t);
    pool.add_point(trusted, Source::Trusted, t); // a later source makes it trusted
    pool.dial_failed(failed_early, Time::from_millis(1_000), &mut rng);
    pool.dial_failed(failed_late, Time::from_millis(2_000), &mut rng);
    pool.dial_failed(trusted_failed, Time::from_millis(500), &mut rng);
    pool.advance(Time::from_millis(60_000));
    let order: Vec<SocketAddr> = pool.candidates(false).collect();
    assert_eq!(
        order,
        vec![trusted, trusted_failed, fresh, failed_early, failed_late]
    );
    let private: Vec<SocketAddr> = pool.candidates(true).collect();
    assert_eq!(private, vec![trusted, trusted_failed]);
}

#[test]
fn a_point_whose_peer_is_connected_elsewhere_is_not_a_candidate() {
    let mut pool = Pool::new(&Config::default());
    let a = addr(1);
    let b = addr(2);
    pool.connection_opened(a, PeerId(7), Direction::Outbound, Time::ZERO)
        .unwrap();
    pool.connection_closed(a, Time::ZERO);
    pool.connection_opened(b, PeerId(7), Direction::Inbound, Time::ZERO)
        .unwrap();
    pool.advance(Time::from_millis(3_600_000));
    assert!(!is_candidate(&pool, a));
    pool.connection_closed(b, Time::from_millis(3_600_000));
    assert!(is_candidate(&pool, a));
}

/// One step of a random operation sequence.
#[derive(Clone, Debug)]
enum Op {
    Add(u32, u8),
    BeginDial(u32),
    DialFailed(u32),
    DialCancelled(u32),
    Opened(u32, u64, bool),
    Closed(u32),
    Greylist(u32),
    Forget(u32),
    Advance(u64),
    Gc,
}

/// 40 points over 10 IPs (so IP greylisting touches neighbours), 12 peer ids.
fn op_addr(i: u32) -> SocketAddr {
    SocketAddr::from((
        [10, 0, (i % 3) as u8, (i % 10) as u8],
        9000 + (i / 10) as u16,
    ))
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u32..40;
    prop_oneof![
        3 => (p.clone(), 0u8..5).prop_map(|(a, s)| Op::Add(a, s)),
        2 => p.clone().prop_map(Op::BeginDial),
        2 => p.clone().prop_map(Op::DialFailed),
        1 => p.clone().prop_map(Op::DialCancelled),
        2 => (p.clone(), 0u64..12, any::<bool>()).prop_map(|(a, peer, i)| Op::Opened(a, peer, i)),
        2 => p.clone().prop_map(Op::Closed),
        1 => p.clone().prop_map(Op::Greylist),
        1 => p.prop_map(Op::Forget),
        2 => (0u64..40_000).prop_map(Op::Advance),
        1 => Just(Op::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// After any sequence of operations the indexes agree with the tables, the pool stays
    /// bounded, candidates are dialable and distinct, and trusted points are never lost.
    #[test]
    fn invariants_hold_after_random_operations(
        ops in prop::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        let config = Config {
            max_known_points: 24,
            known_points_gc_target: 16,
            max_known_peers: 8,
            trusted_points: vec![op_addr(0), op_addr(1)],
            reconnection: BackoffConfig {
                initial: Duration::from_secs(1),
                factor: 2.0,
                cap: Duration::from_secs(20),
                jitter: 0.3,
            },
            disconnection_delay: Duration::from_secs(2),
            greylist_duration: Duration::from_secs(15),
            ..Config::default()
        };
        let mut pool = Pool::new(&config);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut now = Time::ZERO;
        for op in ops {
            match op {
                Op::Add(a, s) => {
                    pool.add_point(op_addr(a), Source::ALL[s as usize], now);
                }
                Op::BeginDial(a) => {
                    let was_candidate = pool.get(&op_addr(a)).is_some_and(|p| {
                        p.state == PointState::Disconnected && p.next_dial <= now
                    });
                    prop_assert_eq!(pool.begin_dial(op_addr(a), now), was_candidate);
                }
                Op::DialFailed(a) => pool.dial_failed(op_addr(a), now, &mut rng),
                Op::DialCancelled(a) => pool.dial_cancelled(op_addr(a)),
                Op::Opened(a, peer, inbound) => {
                    let dir = if inbound { Direction::Inbound } else { Direction::Outbound };
                    let _ = pool.connection_opened(op_addr(a), PeerId(peer), dir, now);
                }
                Op::Closed(a) => {
                    pool.connection_closed(op_addr(a), now);
                }
                Op::Greylist(a) => {
                    pool.greylist(op_addr(a), now);
                }
                Op::Forget(a) => {
                    pool.forget(op_addr(a));
                }
                Op::Advance(ms) => {
                    now = now + Duration::from_millis(ms);
                    pool.advance(now);
                }
                Op::Gc => pool.gc(),
            }
            pool.check_invariants();
            prop_assert!(pool.len() <= config.max_known_points);
            prop_assert!(pool.is_trusted(&op_addr(0)) && pool.is_trusted(&op_addr(1)));
            prop_assert!(pool.peer_count() <= config.max_known_peers.max(pool.active_count() + 1));
            let cands: Vec<SocketAddr> = pool.candidates(false).collect();
            let distinct: BTreeSet<_> = cands.iter().collect();
            prop_assert_eq!(distinct.len(), cands.len());
            for c in &cands {
                let p = pool.get(c).unwrap();
                prop_assert_eq!(p.state, PointState::Disconnected);
                prop_assert!(p.next_dial <= pool.clock());
                prop_assert!(!pool.is_ip_greylisted(c.ip(), pool.clock()));
            }
            let conns = pool.connections().count();
            prop_assert_eq!(conns, pool.active_count());
            for (a, c) in pool.connections() {
                prop_assert_eq!(pool.connected_point_of(c.peer), Some(a));
                prop_assert_eq!(pool.get(&a).unwrap().state, PointState::Connected);
            }
        }
    }
}
