//! The partitioned address book (`pool::book`, issue 10): one source cannot fill the pool
//! or push out what others taught us; a point that worked moves to the tried side and is
//! evicted from there only after a test that it is dead; tried points are dialed first;
//! positions survive a restart. And the advertisement budget: unsolicited points per
//! connection are rate-limited.

#[path = "common/actions.rs"]
mod actions;

use actions::{dials, drain};
use peerkeeper::core::{DialResult, Input};
use peerkeeper::pool::{Added, ConnId, Direction, PeerId, Pool, Source};
use peerkeeper::{Config, Defences, NodeCore, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Public addresses: honest point `i` in its own /16 (45.x/16 .. 60.x/16).
fn honest(i: u32) -> SocketAddr {
    SocketAddr::from(([45 + (i / 256) as u8, i as u8, 7, 1], 9732))
}

/// Attacker addresses, `n` of them per /16, in 150.x/16 and up.
fn attacker(i: u32, groups: u32) -> SocketAddr {
    let g = i % groups;
    let k = i / groups;
    SocketAddr::from((
        [150 + (g / 256) as u8, g as u8, (k >> 8) as u8, k as u8],
        9732,
    ))
}

fn ip(a: SocketAddr) -> IpAddr {
    a.ip()
}

fn config(buckets: bool) -> Config {
    Config {
        defences: Defences {
            address_buckets: buckets,
            ..Defences::default()
        },
        ..Config::default()
    }
}

fn pool(buckets: bool) -> Pool {
    let mut p = Pool::new(&config(buckets));
    p.set_salt(42);
    p
}

/// 1,000 honest points from 100 senders in 100 groups, then a flood of 60,000 attacker
/// addresses over `groups` groups sent from `senders` attacker addresses. Returns (honest
/// points kept, attacker points in the pool).
fn flood(buckets: bool, groups: u32, senders: u32) -> (usize, usize, usize, Pool) {
    let mut p = pool(buckets);
    let mut known = Vec::new();
    for i in 0..1000 {
        let sender = honest(1000 + i % 100);
        if p.add_point_from(honest(i), Source::PeerSharing, ip(sender), Time::ZERO) == Added::New {
            known.push(honest(i));
        }
    }
    let t = Time::ZERO + Duration::from_secs(60);
    for i in 0..60_000 {
        let sender = attacker(i % senders, groups);
        p.add_point_from(attacker(i, groups), Source::PeerSharing, ip(sender), t);
    }
    p.check_invariants();
    let kept = known.iter().filter(|a| p.get(a).is_some()).count();
    let bad = (0..60_000)
        .filter(|i| p.get(&attacker(*i, groups)).is_some())
        .count();
    // 1,000 points on 2,048 positions: about a fifth collide.
    assert!(
        known.len() > 700,
        "honest points mostly placed: {}",
        known.len()
    );
    (known.len(), kept, bad, p)
}

#[test]
fn a_flood_from_one_source_group_pushes_out_nothing_and_gets_a_sixteenth() {
    let (known, kept, bad, p) = flood(true, 3, 3);
    let (new, _) = p.book_counts();
    assert_eq!(kept, known, "every honest point kept");
    assert_eq!(kept + bad, new);
    // Three sender groups (the flooders' /16s) reach at most 3 x 2 buckets of 64, of 32.
    assert!(bad <= 3 * 2 * 64, "{bad}");
    assert!(p.stats().points_collided > 50_000);
}

#[test]
fn a_botnet_in_many_groups_takes_free_positions_only() {
    let (known, kept, bad, p) = flood(true, 1000, 1000);
    let (new, _) = p.book_counts();
    assert_eq!(kept + bad, new);
    // It fills what is free, never what honest sources taught: every honest point stays.
    assert_eq!(kept, known);
    assert!(bad > 1000, "{bad}");
    assert!(new <= 32 * 64);
}

#[test]
fn without_the_book_a_flood_replaces_what_others_taught_us() {
    let (_, kept, bad, _) = flood(false, 3, 3);
    assert!(
        kept < 100,
        "flat pool: honest points garbage-collected, {kept} kept"
    );
    assert!(bad > 2500, "{bad}");
}

/// Connects to `a` (dialed) at `now`, then closes: the point worked once.
fn worked(p: &mut Pool, a: SocketAddr, id: u64, now: Time) {
    assert!(p.begin_dial(a, now), "{a} dialable");
    p.connection_opened(
        ConnId(id),
        a,
        PeerId::from_u64(id),
        Direction::Outbound,
        now,
    )
    .unwrap();
    p.end_dial(a, false, now, &mut StdRng::seed_from_u64(id));
    p.connection_closed(a, now);
}

/// A small pool (one tried bucket of 64 positions) with points that worked at 0; then,
/// 5 h later, more points that work until one collides with an occupant. Returns the pool,
/// the newcomer, the occupant to test and the time.
fn collided() -> (Pool, SocketAddr, SocketAddr, Time) {
    let c = Config {
        max_known_points: 200,
        known_points_gc_target: 150,
        ..config(true)
    };
    let mut p = Pool::new(&c);
    p.set_salt(7);
    let sender = ip(honest(4000));
    for i in 0..20 {
        p.add_point_from(honest(i), Source::PeerSharing, sender, Time::ZERO);
    }
    p.advance(Time::ZERO);
    for i in 0..20 {
        if p.get(&honest(i)).is_some() {
            worked(&mut p, honest(i), u64::from(i) + 1, Time::ZERO);
        }
    }
    // Collisions among the first ones: their occupants just worked, so they are kept.
    assert!(p.collision_tests(Time::ZERO).is_empty());
    assert_eq!(p.collisions_pending(), 0);
    let t = Time::ZERO + Duration::from_secs(5 * 3600);
    p.advance(t);
    for i in 100..200 {
        let a = honest(i);
        if p.add_point_from(a, Source::PeerSharing, sender, t) != Added::New {
            continue;
        }
        worked(&mut p, a, u64::from(i) + 1, t);
        if p.collisions_pending() > 0 {
            let tests = p.collision_tests(t);
            assert_eq!(tests.len(), 1, "the occupant is due for its test");
            assert!(
                !p.get(&a).unwrap().is_tried(),
                "the newcomer waits on the new side"
            );
            assert!(p.get(&tests[0]).unwrap().is_tried());
            return (p, a, tests[0], t);
        }
    }
    panic!("no tried collision in 100 points on 64 positions");
}

#[test]
fn a_point_that_worked_moves_to_the_tried_side() {
    let mut p = pool(true);
    let a = honest(1);
    p.add_point_from(a, Source::PeerSharing, ip(honest(2)), Time::ZERO);
    assert!(!p.get(&a).unwrap().is_tried());
    assert_eq!(p.book_counts(), (1, 0));
    worked(&mut p, a, 1, Time::ZERO);
    assert!(p.get(&a).unwrap().is_tried());
    assert_eq!(p.book_counts(), (0, 1));
    // A connection *to us* proves nothing about who controls the address.
    let b = honest(3);
    p.connection_opened(
        ConnId(2),
        b,
        PeerId::from_u64(2),
        Direction::Inbound,
        Time::ZERO,
    )
    .unwrap();
    assert!(!p.get(&b).unwrap().is_tried());
    p.check_invariants();
}

#[test]
fn an_occupant_that_answers_its_test_keeps_its_place() {
    let (mut p, newcomer, occupant, t) = collided();
    let kept = p.stats().tried_kept;
    assert!(p.begin_dial(occupant, t));
    p.connection_opened(
        ConnId(999),
        occupant,
        PeerId::from_u64(999),
        Direction::Outbound,
        t,
    )
    .unwrap();
    assert!(p.collision_tests(t).is_empty());
    assert_eq!(p.collisions_pending(), 0);
    assert!(p.get(&occupant).unwrap().is_tried());
    assert!(!p.get(&newcomer).unwrap().is_tried());
    assert_eq!(p.stats().tried_kept, kept + 1);
    p.check_invariants();
}

#[test]
fn an_occupant_that_fails_its_test_is_evicted_and_the_newcomer_takes_its_place() {
    let (mut p, newcomer, occupant, t) = collided();
    let mut rng = StdRng::seed_from_u64(1);
    assert!(p.begin_dial(occupant, t));
    p.end_dial(occupant, true, t, &mut rng);
    assert!(p.collision_tests(t).is_empty());
    assert!(p.get(&newcomer).unwrap().is_tried());
    assert!(p.get(&occupant).is_none_or(|o| !o.is_tried()));
    assert_eq!(p.stats().tried_evicted, 1);
    p.check_invariants();
}

#[test]
fn an_occupant_that_cannot_be_tested_within_forty_minutes_is_evicted() {
    let (mut p, newcomer, occupant, t) = collided();
    let later = t + Duration::from_secs(39 * 60);
    assert_eq!(
        p.collision_tests(later),
        vec![occupant],
        "still due, not evicted"
    );
    let later = t + Duration::from_secs(40 * 60);
    assert!(p.collision_tests(later).is_empty());
    assert!(p.get(&newcomer).unwrap().is_tried());
    p.check_invariants();
}

#[test]
fn tried_points_are_dialed_before_points_only_heard_of() {
    let mut p = pool(true);
    let sender = ip(honest(999));
    for i in 0..50 {
        p.add_point_from(honest(i), Source::PeerSharing, sender, Time::ZERO);
    }
    p.advance(Time::ZERO);
    for i in [3, 17, 41] {
        worked(&mut p, honest(i), u64::from(i) + 1, Time::ZERO);
    }
    let t = Time::ZERO + Duration::from_secs(60);
    p.advance(t);
    let first: Vec<SocketAddr> = p.candidates(false).take(3).collect();
    let mut want = vec![honest(3), honest(17), honest(41)];
    let mut got = first.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{first:?}");
}

#[test]
fn positions_and_the_key_survive_a_snapshot() {
    let (_, _, _, mut p) = flood(true, 1000, 1000);
    for i in 0..30 {
        let a = honest(i);
        if p.get(&a).is_some() {
            p.advance(Time::ZERO + Duration::from_secs(120));
            worked(
                &mut p,
                a,
                u64::from(i) + 1,
                Time::ZERO + Duration::from_secs(120),
            );
        }
    }
    let snap = p.snapshot(Time::ZERO + Duration::from_secs(200));
    let mut fresh = Pool::new(&config(true));
    fresh.set_salt(99); // another seed: the saved key wins
    fresh.restore(&snap, Time::ZERO);
    fresh.check_invariants();
    assert_eq!(fresh.book_key(), p.book_key());
    assert_eq!(fresh.book_counts(), p.book_counts());
    for s in &snap.points {
        assert_eq!(
            fresh.get(&s.addr).map(|x| x.is_tried()),
            p.get(&s.addr).map(|x| x.is_tried()),
            "{}",
            s.addr
        );
    }
}

/// A core whose pool holds only a tried occupant (worked 5 h ago, backed off for 10 more
/// minutes) and a newcomer on the new side whose tried position is the occupant's. The
/// newcomer is dialed and connects: a collision. Returns the core, the two points and the
/// time.
fn core_with_collision() -> (NodeCore, SocketAddr, SocketAddr, Time) {
    let (p, newcomer, occupant, t) = collided();
    let mut snap = p.snapshot(t);
    snap.points
        .retain(|s| s.addr == newcomer || s.addr == occupant);
    for s in &mut snap.points {
        if s.addr == occupant {
            s.failures = 1;
            s.failed_ago = Some(Duration::from_secs(60));
            s.wait = Duration::from_secs(600);
        } else {
            s.succeeded_ago = None;
            s.wait = Duration::ZERO;
        }
    }
    let c = Config {
        max_known_points: 200,
        known_points_gc_target: 150,
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..config(true)
    };
    let mut core = NodeCore::new(c, PeerId::from_u64(1), 5);
    let t0 = Time::ZERO + Duration::from_secs(10 * 3600);
    core.restore(&snap, t0);
    assert!(core.pool().get(&occupant).unwrap().is_tried());
    assert!(!core.pool().get(&newcomer).unwrap().is_tried());
    core.apply(t0, Input::Start);
    assert_eq!(
        dials(&drain(&mut core)),
        vec![newcomer],
        "only the newcomer is dialable"
    );
    core.apply(
        t0,
        Input::DialResult {
            point: newcomer,
            result: DialResult::Connected {
                conn: ConnId(7),
                peer: PeerId::from_u64(7),
            },
        },
    );
    assert_eq!(core.pool().collisions_pending(), 1);
    assert!(
        dials(&drain(&mut core)).is_empty(),
        "the occupant is backed off: no test yet"
    );
    (core, newcomer, occupant, t0)
}

#[test]
fn the_core_tests_an_occupant_once_it_may_be_dialed_and_keeps_it_when_it_answers() {
    let (mut core, newcomer, occupant, t0) = core_with_collision();
    let t = t0 + Duration::from_secs(11 * 60);
    core.apply(t, Input::Timeout);
    assert_eq!(dials(&drain(&mut core)), vec![occupant], "the test dial");
    assert_eq!(core.stats().dials.tests, 1);
    core.apply(
        t,
        Input::DialResult {
            point: occupant,
            result: DialResult::Connected {
                conn: ConnId(8),
                peer: PeerId::from_u64(8),
            },
        },
    );
    assert_eq!(core.pool().collisions_pending(), 0);
    assert!(core.pool().get(&occupant).unwrap().is_tried());
    assert!(!core.pool().get(&newcomer).unwrap().is_tried());
    core.check_invariants();
}

#[test]
fn the_core_evicts_an_occupant_that_fails_its_test() {
    let (mut core, newcomer, occupant, t0) = core_with_collision();
    let t = t0 + Duration::from_secs(11 * 60);
    core.apply(t, Input::Timeout);
    assert_eq!(dials(&drain(&mut core)), vec![occupant]);
    core.apply(
        t,
        Input::DialResult {
            point: occupant,
            result: DialResult::Failed(peerkeeper::core::DialFailure::Io),
        },
    );
    assert!(core.pool().get(&newcomer).unwrap().is_tried());
    assert!(core.pool().get(&occupant).is_none_or(|o| !o.is_tried()));
    core.check_invariants();
}

/// Unsolicited advertisements on one connection at `times` (seconds), 100 points each:
/// how many points the core took from each.
fn adverts_taken(limit: bool, times: &[u64]) -> Vec<u64> {
    let c = Config {
        defences: Defences {
            limit_adverts: limit,
            ..Defences::default()
        },
        ..Config::default()
    };
    let mut core = NodeCore::new(c, PeerId::from_u64(1), 5);
    core.apply(Time::ZERO, Input::Start);
    let hello = peerkeeper::core::Hello {
        peer: PeerId::from_u64(9),
        listen_port: 9732,
    };
    let remote = SocketAddr::from(([45, 9, 9, 9], 40_000));
    assert_eq!(
        core.handle_inbound(ConnId(1), remote, hello, Time::ZERO),
        peerkeeper::core::Admission::Accept
    );
    let mut out = Vec::new();
    for (k, t) in times.iter().enumerate() {
        let points: Vec<SocketAddr> = (0..100u32)
            .map(|i| attacker(k as u32 * 100 + i, 1000))
            .collect();
        let before = core.stats().points.received;
        core.handle_points(ConnId(1), &points, Time::ZERO + Duration::from_secs(*t));
        out.push(core.stats().points.received - before);
    }
    out
}

#[test]
fn unsolicited_advertisements_draw_on_a_per_connection_budget() {
    let answer = Config::default().discovery.answer_size as u64;
    // The node, alone, asked the newcomer for points: the first message is its answer,
    // taken whole. Then a first advertisement takes a full answer's worth; 10 s later,
    // one point (six a minute); 10 min later, a full answer again (the budget is capped).
    let limited = adverts_taken(true, &[1, 11, 21, 621]);
    assert_eq!(limited, vec![100, answer, 1, answer]);
    // Without the limit every advertisement past the one-per-7.5 s rule is taken whole.
    assert_eq!(adverts_taken(false, &[1, 11, 21, 621]), vec![100; 4]);
}
