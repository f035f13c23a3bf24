//! Properties of the pure planner (`maintenance::plan`, `top_up_dials`, `trim`) over
//! random pools and configs: what a user relies on when the maintainer dials and closes
//! for them.

use peerkeeper::maintenance::{plan, top_up_dials, trim, Plan};
use peerkeeper::pool::{netgroup, ConnId, Direction, PointState, Pool, Source};
use peerkeeper::{Config, PeerId, Time};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// What the generator decides about one point.
#[derive(Clone, Debug)]
struct PointSpec {
    trusted: bool,
    failures: u8,
    fail_at_s: u16,
    /// 0..=3 disconnected, 4 dialing, 5 outbound, 6 inbound, 7 greylisted, 8 inbound
    /// while a dial to it is in flight.
    state: u8,
    group: u8,
    /// How long before `now` its connection opened, if it has one.
    age_s: u16,
}

#[derive(Clone, Debug)]
struct Scenario {
    min: usize,
    expected: usize,
    max: usize,
    dials: usize,
    private: bool,
    points: Vec<PointSpec>,
    now_s: u16,
}

fn point_spec() -> impl Strategy<Value = PointSpec> {
    (any::<bool>(), 0u8..4, 0u16..600, 0u8..9, 0u8..4, 0u16..40).prop_map(
        |(trusted, failures, fail_at_s, state, group, age_s)| PointSpec {
            trusted,
            failures,
            fail_at_s,
            state,
            group,
            age_s,
        },
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0usize..10,
        0usize..30,
        0usize..30,
        1usize..10,
        any::<bool>(),
        prop::collection::vec(point_spec(), 1..80),
        0u16..1200,
    )
        .prop_map(|(min, e, m, dials, private, points, now_s)| Scenario {
            min,
            expected: min + e,
            max: (min + e + m).max(1),
            dials,
            private,
            points,
            now_s,
        })
}

/// Point `i` of /16 group `g`: one IP per point, so greylisting one point's IP touches no
/// other point.
fn addr(i: usize, g: u8) -> SocketAddr {
    SocketAddr::from(([10, g, (i / 250) as u8, (i % 250) as u8 + 1], 9732))
}

fn build(s: &Scenario) -> (Config, Pool, Time) {
    let mut trusted: Vec<SocketAddr> = s
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.trusted)
        .map(|(i, p)| addr(i, p.group))
        .collect();
    if s.private && trusted.is_empty() {
        trusted.push(addr(0, s.points[0].group));
    }
    let config = Config {
        min_connections: s.min,
        expected_connections: s.expected,
        max_connections: s.max,
        max_concurrent_dials: s.dials,
        private_mode: s.private,
        trusted_points: trusted,
        max_known_points: 1000,
        known_points_gc_target: 900,
        ..Config::default()
    };
    config
        .validate()
        .expect("the generator makes valid configs");
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(99);
    let now = Time::from_millis(u64::from(s.now_s) * 1000);
    for (i, p) in s.points.iter().enumerate() {
        let a = addr(i, p.group);
        pool.add_point(a, Source::PeerSharing, Time::ZERO);
        for f in 0..p.failures {
            // Each failure is a dial started once the point was due, failing at once.
            let t = Time::from_millis((u64::from(p.fail_at_s) + u64::from(f)) * 1000);
            let due = pool.get(&a).unwrap().next_dial.max(t);
            if due > now {
                break;
            }
            assert!(pool.begin_dial(a, due));
            pool.end_dial(a, true, due, &mut rng);
        }
        let opened = now - Duration::from_secs(u64::from(p.age_s));
        match p.state {
            4 | 8 => {
                // Dialing regardless of backoff: a dial started once it was due.
                let due = pool.get(&a).unwrap().next_dial;
                assert!(pool.begin_dial(a, due));
                if p.state == 8 {
                    // It dialed us meanwhile: connected, and the dial still in flight.
                    pool.connection_opened(
                        ConnId(i as u64),
                        a,
                        PeerId::from_u64(i as u64),
                        Direction::Inbound,
                        opened,
                    )
                    .unwrap();
                }
            }
            5 | 6 => {
                let dir = if p.state == 5 {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                pool.connection_opened(
                    ConnId(i as u64),
                    a,
                    PeerId::from_u64(i as u64),
                    dir,
                    opened,
                )
                .unwrap();
            }
            7 => {
                pool.greylist(a, now);
            }
            _ => {}
        }
    }
    pool.advance(now);
    pool.check_invariants();
    (config, pool, now)
}

fn run_plan(config: &Config, pool: &Pool, now: Time, seed: u64) -> Plan {
    plan(pool, config, now, &mut StdRng::seed_from_u64(seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A top-up never past min_target, only candidates dialed, no trusted connection
    /// closed, a trim lands exactly on max_target, and one seed gives one plan.
    #[test]
    fn plans_respect_bounds_and_candidates(s in scenario(), seed in any::<u64>()) {
        let (config, pool, now) = build(&s);
        let b = config.bounds();
        let active = pool.active_count();
        let inflight = pool.dialing_count();
        let p = run_plan(&config, &pool, now, seed);

        // Bounds (past min_target only for the outbound floor).
        let floor = peerkeeper::maintenance::outbound_need(&pool, &config);
        prop_assert!(p.dial.is_empty() || active + inflight + p.dial.len() <= b.min_target.max(active + inflight + floor),
            "active {active} + in flight {inflight} + dials {} > min_target {}",
            p.dial.len(), b.min_target);
        prop_assert!(inflight + p.dial.len() <= config.max_concurrent_dials || p.dial.is_empty());
        prop_assert!(p.dial.is_empty() || p.close.is_empty());

        // Every dial is a candidate.
        let distinct: BTreeSet<SocketAddr> = p.dial.iter().copied().collect();
        prop_assert_eq!(distinct.len(), p.dial.len(), "a point dialed twice");
        for a in &p.dial {
            let info = pool.get(a).expect("dials a known point");
            prop_assert_eq!(info.state, PointState::Disconnected, "{} is not disconnected", a);
            prop_assert!(!info.dialing, "{} is being dialed already", a);
            prop_assert!(info.next_dial <= now, "{} is backed off until {}", a, info.next_dial);
            prop_assert!(pool.connection(a).is_none());
            prop_assert!(!pool.is_ip_greylisted(a.ip(), now));
            prop_assert!(!pool.last_peer_connected(a), "{} is the point of a connected peer", a);
            if config.private_mode {
                prop_assert!(pool.is_trusted(a), "private mode dials untrusted {}", a);
            }
        }
        if config.private_mode {
            prop_assert!(!p.ask_for_points);
        }

        // Closes.
        for a in &p.close {
            prop_assert!(pool.connection(a).is_some(), "closes {} which is not connected", a);
            prop_assert!(!pool.is_trusted(a), "closes trusted {}", a);
        }
        // A trim never cuts a protected (trusted) connection, nor outbound ones below the
        // outbound floor.
        let unprotected = |d: Direction| pool
            .connections()
            .filter(|(a, c)| c.direction == d && !pool.is_protected(a))
            .count();
        let cuttable = unprotected(Direction::Inbound)
            + unprotected(Direction::Outbound).saturating_sub(config.outbound_floor());
        if active > b.max_threshold {
            prop_assert_eq!(p.close.len(), (active - b.max_target).min(cuttable));
            let distinct: BTreeSet<SocketAddr> = p.close.iter().copied().collect();
            prop_assert_eq!(distinct.len(), p.close.len());
        } else {
            prop_assert!(p.close.is_empty());
        }

        // A top-up below min_threshold dials as many as the slots allow.
        if active < b.min_threshold && active < b.min_target {
            let room = config.max_connections.saturating_sub(active + inflight);
            let out_room = config.outbound_budget().saturating_sub(pool.outbound_count() + inflight);
            let slots = config.max_concurrent_dials.saturating_sub(inflight)
                .min(b.min_target.saturating_sub(active + inflight).max(floor.min(room)))
                .min(out_room);
            let available = pool.candidates(config.private_mode).count();
            prop_assert_eq!(p.dial.len(), slots.min(available));
        }

        // Determinism: same inputs and seed, same plan; a rebuilt pool too.
        prop_assert_eq!(&p, &run_plan(&config, &pool, now, seed));
        let (config2, pool2, now2) = build(&s);
        prop_assert_eq!(&p, &run_plan(&config2, &pool2, now2, seed));
    }

    /// Private mode: neither candidates nor plans ever name an untrusted point.
    #[test]
    fn private_mode_dials_only_trusted(mut s in scenario(), seed in any::<u64>()) {
        s.private = true;
        s.min = s.min.max(1);
        s.expected = s.expected.max(s.min);
        s.max = s.max.max(s.expected);
        let (config, pool, now) = build(&s);
        for a in pool.candidates(true) {
            prop_assert!(pool.is_trusted(&a));
        }
        let p = run_plan(&config, &pool, now, seed);
        for a in &p.dial {
            prop_assert!(pool.is_trusted(a));
        }
        prop_assert!(!p.ask_for_points);
    }
}

fn connected_pool(conns: &[(SocketAddr, Direction, bool)]) -> Pool {
    let trusted = conns.iter().filter(|c| c.2).map(|c| c.0).collect();
    let config = Config {
        trusted_points: trusted,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    for (i, (a, d, _)) in conns.iter().enumerate() {
        pool.connection_opened(
            ConnId(i as u64),
            *a,
            PeerId::from_u64(i as u64),
            *d,
            Time::ZERO,
        )
        .unwrap();
    }
    pool
}

fn groups_of(closed: &[SocketAddr]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for a in closed {
        *m.entry(netgroup(a)).or_default() += 1;
    }
    m
}

#[test]
fn trim_takes_from_the_most_represented_group_first() {
    let a = |g: u8, i: u8| SocketAddr::from(([10, g, 0, i], 9732));
    let mut conns = Vec::new();
    for i in 1..=6 {
        conns.push((a(1, i), Direction::Outbound, false));
    }
    for i in 1..=2 {
        conns.push((a(2, i), Direction::Outbound, false));
    }
    conns.push((a(3, 1), Direction::Outbound, false));
    let pool = connected_pool(&conns);
    for seed in 0..20 {
        let closed = trim(&pool, 4, Time::ZERO, &mut StdRng::seed_from_u64(seed));
        // 6,2,1 -> the crowded group goes down to 2 before anyone else loses a connection.
        assert_eq!(
            groups_of(&closed),
            BTreeMap::from([(netgroup(&a(1, 1)), 4)])
        );
        let closed = trim(&pool, 7, Time::ZERO, &mut StdRng::seed_from_u64(seed));
        // Then the groups shrink together: 6,2,1 -> 1,1,0 or 1,0,1 ... never one group left
        // with more than one more than another.
        let g = groups_of(&closed);
        let left =
            |grp: u8, total: usize| total - g.get(&netgroup(&a(grp, 1))).copied().unwrap_or(0);
        let lefts = [left(1, 6), left(2, 2), left(3, 1)];
        assert_eq!(lefts.iter().sum::<usize>(), 2);
        assert!(lefts.iter().all(|n| *n <= 1), "{lefts:?}");
    }
}

#[test]
fn trim_prefers_inbound_within_a_group_and_spares_trusted() {
    let a = |i: u8| SocketAddr::from(([10, 7, 0, i], 9732));
    let conns = vec![
        (a(1), Direction::Outbound, false),
        (a(2), Direction::Outbound, false),
        (a(3), Direction::Inbound, false),
        (a(4), Direction::Inbound, false),
        (a(5), Direction::Inbound, true),
        (a(6), Direction::Outbound, true),
    ];
    let pool = connected_pool(&conns);
    for seed in 0..20 {
        let closed: BTreeSet<_> = trim(&pool, 2, Time::ZERO, &mut StdRng::seed_from_u64(seed))
            .into_iter()
            .collect();
        assert_eq!(
            closed,
            BTreeSet::from([a(3), a(4)]),
            "inbound untrusted first"
        );
        let closed = trim(&pool, 10, Time::ZERO, &mut StdRng::seed_from_u64(seed));
        assert_eq!(closed.len(), 4, "trusted connections are never closed");
        assert!(!closed.contains(&a(5)) && !closed.contains(&a(6)));
    }
}

#[test]
fn plan_above_max_threshold_closes_down_to_max_target() {
    let config = Config {
        min_connections: 2,
        expected_connections: 5,
        max_connections: 8,
        ..Config::default()
    };
    let b = config.bounds();
    let mut pool = Pool::new(&config);
    for i in 0..b.max_threshold + 3 {
        let a = SocketAddr::from(([10, (i % 3) as u8, 0, i as u8 + 1], 1));
        pool.connection_opened(
            ConnId(i as u64),
            a,
            PeerId::from_u64(i as u64),
            Direction::Inbound,
            Time::ZERO,
        )
        .unwrap();
    }
    let p = plan(&pool, &config, Time::ZERO, &mut StdRng::seed_from_u64(1));
    assert!(p.dial.is_empty());
    assert_eq!(pool.active_count() - p.close.len(), b.max_target);
}

#[test]
fn a_greylisted_address_is_not_dialed_on_another_port() {
    let config = Config::default();
    let mut pool = Pool::new(&config);
    let bad = SocketAddr::from(([10, 0, 0, 1], 1));
    let same_ip = SocketAddr::from(([10, 0, 0, 1], 2));
    pool.add_point(bad, Source::PeerSharing, Time::ZERO);
    pool.add_point(same_ip, Source::PeerSharing, Time::ZERO);
    // One violation greylists the point only (its address may be a NAT's, shared with
    // honest nodes): the other port stays dialable.
    pool.greylist(bad, Time::ZERO);
    pool.advance(Time::from_millis(1));
    let p = plan(
        &pool,
        &config,
        Time::from_millis(1),
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(p.dial, vec![same_ip]);
    // Repeated violations from distinct sources greylist the address itself.
    for port in 40_001..=40_003 {
        pool.strike(SocketAddr::from(([10, 0, 0, 1], port)), Time::ZERO);
    }
    let p = plan(
        &pool,
        &config,
        Time::from_millis(1),
        &mut StdRng::seed_from_u64(1),
    );
    assert!(
        p.dial.is_empty(),
        "dials {:?} while its IP is greylisted",
        p.dial
    );
    // Once the greylisting ends, both points are dialable again.
    let later = Time::ZERO + config.greylist_duration;
    pool.advance(later);
    let p = plan(&pool, &config, later, &mut StdRng::seed_from_u64(1));
    assert_eq!(p.dial.len(), 2);
}

#[test]
fn trim_takes_old_inbound_then_young_inbound_then_outbound_within_a_group() {
    let a = |i: u8| SocketAddr::from(([10, 7, 0, i], 9732));
    let config = Config::default();
    let mut pool = Pool::new(&config);
    // Opened at 0 s (old), 50 s and 55 s (young once the cut is at 45 s); outbound at 0 s.
    let conns = [
        (a(1), Direction::Outbound, 0),
        (a(2), Direction::Outbound, 0),
        (a(3), Direction::Inbound, 50),
        (a(4), Direction::Inbound, 55),
        (a(5), Direction::Inbound, 0),
        (a(6), Direction::Inbound, 0),
    ];
    for (i, (p, d, at)) in conns.iter().enumerate() {
        pool.connection_opened(
            ConnId(i as u64),
            *p,
            PeerId::from_u64(i as u64),
            *d,
            Time::from_millis(at * 1000),
        )
        .unwrap();
    }
    let young_after = Time::from_millis(45_000);
    for seed in 0..20 {
        let picked = |n| -> BTreeSet<SocketAddr> {
            trim(&pool, n, young_after, &mut StdRng::seed_from_u64(seed))
                .into_iter()
                .collect()
        };
        assert_eq!(picked(2), BTreeSet::from([a(5), a(6)]), "old inbound first");
        assert_eq!(
            picked(4),
            BTreeSet::from([a(3), a(4), a(5), a(6)]),
            "then young inbound"
        );
        assert_eq!(picked(6).len(), 6, "outbound last");
        // With the cut at 60 s every inbound is old: they all go before any outbound.
        let all_old: BTreeSet<_> = trim(
            &pool,
            4,
            Time::from_millis(60_000),
            &mut StdRng::seed_from_u64(seed),
        )
        .into_iter()
        .collect();
        assert_eq!(all_old, BTreeSet::from([a(3), a(4), a(5), a(6)]));
    }
}

/// What happens to a pool between two top-ups.
#[derive(Clone, Debug)]
enum Event {
    /// The dial at this index (of those in flight) ends: connected or failed.
    DialEnds(usize, bool),
    /// The point at this index (of those being dialed) dials us meanwhile.
    InboundFromDialing(usize),
    /// An unknown node dials us.
    InboundNew,
    /// The connection at this index closes.
    Closes(usize),
    /// Time passes.
    Advance(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Event::DialEnds(i, ok)),
        2 => any::<usize>().prop_map(Event::InboundFromDialing),
        1 => Just(Event::InboundNew),
        2 => any::<usize>().prop_map(Event::Closes),
        2 => (0u16..5_000).prop_map(Event::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// However dials end and inbound connections arrive (also from points being dialed),
    /// the dials a top-up starts never take active + in flight past min_target, and never
    /// take the dials in flight past max_concurrent_dials.
    #[test]
    fn top_ups_stay_within_min_target_and_the_dial_cap(
        s in scenario(),
        events in prop::collection::vec(event(), 0..60),
        seed in any::<u64>(),
    ) {
        let (config, mut pool, mut now) = build(&s);
        let b = config.bounds();
        let mut rng = StdRng::seed_from_u64(seed);
        // The dials really in flight, as the driver knows them: begun and not ended.
        let mut in_flight: BTreeSet<SocketAddr> = pool.dialing().collect();
        // The generator may start with more in flight than the cap (a config change);
        // from there, only top-ups start dials.
        let mut cap = in_flight.len().max(config.max_concurrent_dials);
        let mut next = 10_000u64;
        for ev in events.iter().map(Some).chain([None]) {
            let active = pool.active_count();
            let inflight = pool.dialing_count();
            let dials = top_up_dials(&pool, &config, now);
            // Past min_target only for the outbound floor.
            let floor = peerkeeper::maintenance::outbound_need(&pool, &config);
            if !dials.is_empty() {
                prop_assert!(active + inflight + dials.len() <= b.min_target.max(active + inflight + floor),
                    "active {} + in flight {} + {} dials > min_target {}",
                    active, inflight, dials.len(), b.min_target);
                prop_assert!(inflight + dials.len() <= config.max_concurrent_dials,
                    "in flight {} + {} dials > cap {}", inflight, dials.len(), config.max_concurrent_dials);
                prop_assert!(active < b.min_target || floor > 0);
                cap = config.max_concurrent_dials;
            }
            for a in &dials {
                prop_assert!(pool.begin_dial(*a, now), "{} is not dialable", a);
                in_flight.insert(*a);
            }
            prop_assert_eq!(pool.dialing_count(), in_flight.len(), "the pool lost count of its dials");
            prop_assert!(in_flight.len() <= cap, "{} dials in flight, cap {}", in_flight.len(), cap);
            let Some(ev) = ev else { break };
            let dialing: Vec<SocketAddr> = in_flight.iter().copied().collect();
            match ev {
                Event::DialEnds(i, ok) if !dialing.is_empty() => {
                    let a = dialing[i % dialing.len()];
                    let connectable = pool.connection(&a).is_none()
                        && !pool.last_peer_connected(&a);
                    prop_assert!(pool.end_dial(a, !ok, now, &mut rng));
                    in_flight.remove(&a);
                    if *ok && connectable {
                        next += 1;
                        let _ = pool.connection_opened(ConnId(next), a, PeerId::from_u64(next), Direction::Outbound, now);
                    }
                }
                Event::InboundFromDialing(i) if !dialing.is_empty() => {
                    let a = dialing[i % dialing.len()];
                    next += 1;
                    let _ = pool.connection_opened(ConnId(next), a, PeerId::from_u64(next), Direction::Inbound, now);
                    prop_assert_eq!(pool.dialing_count(), dialing.len(), "an inbound connection is not a dial");
                }
                Event::InboundNew => {
                    next += 1;
                    let a = SocketAddr::from(([10, 200, (next >> 8) as u8, next as u8], 1));
                    let _ = pool.connection_opened(ConnId(next), a, PeerId::from_u64(next), Direction::Inbound, now);
                }
                Event::Closes(i) => {
                    let conns: Vec<SocketAddr> = pool.connections().map(|(a, _)| a).collect();
                    if !conns.is_empty() {
                        pool.connection_closed(conns[i % conns.len()], now);
                    }
                }
                Event::Advance(ms) => {
                    now = now + Duration::from_millis(u64::from(*ms));
                    pool.advance(now);
                }
                _ => {}
            }
            pool.check_invariants();
        }
    }

    /// A trim never picks a trusted connection nor one twice, picks exactly as many as
    /// asked (or every untrusted one), takes inbound connections before any outbound one,
    /// within a direction takes a connection from an address group only while that group
    /// is among the largest, and within a group takes inbound connections opened at or
    /// before `young_after` first, then younger inbound ones, then outbound ones.
    #[test]
    fn trim_spares_trusted_and_orders_within_a_group(
        s in scenario(),
        count in 0usize..40,
        grace_s in 0u64..40,
        seed in any::<u64>(),
    ) {
        let (_, pool, now) = build(&s);
        let young_after = now - Duration::from_secs(grace_s);
        let picked = trim(&pool, count, young_after, &mut StdRng::seed_from_u64(seed));
        let set: BTreeSet<SocketAddr> = picked.iter().copied().collect();
        prop_assert_eq!(set.len(), picked.len(), "picked twice");
        let untrusted: Vec<(SocketAddr, u8)> = pool
            .connections()
            .filter(|(a, _)| !pool.is_trusted(a))
            .map(|(a, c)| {
                let class = match c.direction {
                    Direction::Inbound if c.since <= young_after => 0,
                    Direction::Inbound => 1,
                    Direction::Outbound => 2,
                };
                (a, class)
            })
            .collect();
        prop_assert_eq!(picked.len(), count.min(untrusted.len()));
        for a in &picked {
            prop_assert!(pool.connection(a).is_some(), "{} is not connected", a);
            prop_assert!(!pool.is_trusted(a), "{} is trusted", a);
        }
        // Inbound connections go before any outbound one; within a direction, a
        // connection is taken from a group only while that group is among the largest.
        let outbound_picked = untrusted.iter().any(|(a, c)| *c == 2 && set.contains(a));
        if outbound_picked {
            for (a, c) in &untrusted {
                prop_assert!(*c == 2 || set.contains(a), "outbound taken before inbound {}", a);
            }
        }
        let dir = |class: u8| u8::from(class == 2);
        let mut remaining: BTreeMap<(u8, u64), usize> = BTreeMap::new();
        for (a, class) in &untrusted {
            let e = remaining.entry((dir(*class), netgroup(a))).or_default();
            if !set.contains(a) {
                *e += 1;
            }
        }
        for (a, class) in &untrusted {
            if !set.contains(a) {
                continue;
            }
            let d = dir(*class);
            let g = netgroup(a);
            let largest = remaining
                .iter()
                .filter(|((dd, _), _)| *dd == d)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0);
            // When it lost this one, its group was at least as large as any other now.
            prop_assert!(remaining[&(d, g)] + 1 >= largest,
                "{} taken from a group of {} while another keeps {}", a, remaining[&(d, g)] + 1, largest);
            for (b, other) in &untrusted {
                if netgroup(b) == g && other < class {
                    prop_assert!(set.contains(b), "{} (class {}) taken before {} (class {})", a, class, b, other);
                }
            }
        }
        // One seed, one trim.
        prop_assert_eq!(picked, trim(&pool, count, young_after, &mut StdRng::seed_from_u64(seed)));
    }
}

#[test]
fn a_node_in_range_does_not_fill_its_outbound_floor_from_one_group() {
    // The netns testnet's seed: every honest peer dialed it (10 inbound connections, in
    // 10 groups), and the only candidates are 30 sybils in one /16. Its outbound floor
    // dials for diversity: at most two into that group.
    let config = Config::default();
    let b = config.bounds();
    let mut pool = Pool::new(&config);
    let inbound = b.min_threshold.max(10);
    for i in 0..inbound {
        let honest = SocketAddr::from(([11 + i as u8, 5, 0, 1], 9732));
        pool.add_point(honest, Source::Incoming, Time::ZERO);
        pool.connection_opened(
            ConnId(i as u64 + 1),
            honest,
            PeerId::from_u64(i as u64 + 1),
            Direction::Inbound,
            Time::ZERO,
        )
        .unwrap();
    }
    for i in 0..30u8 {
        let sybil = SocketAddr::from(([66, 66, i / 8, 1 + i % 8], 9732));
        pool.add_point(sybil, Source::PeerSharing, Time::ZERO);
    }
    pool.advance(Time::ZERO);
    assert!(pool.active_count() >= b.min_threshold, "in range");
    let dials = top_up_dials(&pool, &config, Time::ZERO);
    let into_sybils = dials
        .iter()
        .filter(|a| netgroup(a) == netgroup(&SocketAddr::from(([66, 66, 0, 1], 9732))))
        .count();
    assert!(into_sybils <= 2, "{dials:?}");
    // Without diverse dials (the defence off), the floor takes them all.
    let off = Config {
        defences: peerkeeper::config::Defences {
            diverse_dials: false,
            ..Default::default()
        },
        ..Config::default()
    };
    assert!(top_up_dials(&pool, &off, Time::ZERO).len() > 2);
}
