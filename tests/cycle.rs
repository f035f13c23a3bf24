//! The sans-IO maintenance machine without tokio: determinism, the octez dead zone fixed,
//! the dial cap, a top-up that stops at `min_target`, trims, and wake-reason handling, all
//! with explicit times. The tests play the node core's part: they record each dial's
//! outcome in the pool (`end_dial`, `connection_opened`) before telling the machine.

use peerkeeper::maintenance::{Action, CycleOutcome, DialOutcome, Maintenance, WakeReason};
use peerkeeper::pool::{CloseReason, ConnId, Direction, Pool, Source};
use peerkeeper::{Config, PeerId, Time};
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 9732))
}

fn config() -> Arc<Config> {
    Arc::new(Config {
        min_connections: 10,
        expected_connections: 50,
        max_connections: 100,
        max_concurrent_dials: 8,
        ..Config::default()
    })
}

/// What the node core does when a dial ends, before it tells the machine: the dial leaves
/// the pool's in-flight set (failed: backed off), and a success registers the connection.
fn finish_dial<R: Rng>(
    pool: &mut Pool,
    p: SocketAddr,
    connected_to: Option<PeerId>,
    now: Time,
    rng: &mut R,
) -> DialOutcome {
    assert!(
        pool.end_dial(p, connected_to.is_none(), now, rng),
        "{p} was not being dialed"
    );
    match connected_to {
        Some(peer) => {
            pool.connection_opened(
                ConnId(u64::from_be_bytes(peer.as_bytes()[..8].try_into().unwrap())),
                p,
                peer,
                Direction::Outbound,
                now,
            )
            .unwrap();
            DialOutcome::Succeeded
        }
        None => DialOutcome::Failed,
    }
}

/// Drives a machine to the end of its cycle: every dial to an even point succeeds, to an
/// odd one fails, completing in order, 10 ms each. Returns every action.
fn drive(seed: u64) -> Vec<Action> {
    let config = config();
    let mut pool = Pool::new(&config);
    for i in 0..200 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let mut m = Maintenance::new(config);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = Vec::new();
    let mut out = Vec::new();
    let mut now = Time::ZERO;
    m.wake(WakeReason::Activation, now, &mut pool, &mut rng, &mut out);
    let mut queue: std::collections::VecDeque<SocketAddr> = Default::default();
    loop {
        for a in out.drain(..) {
            if let Action::Dial(p) = a {
                queue.push_back(p);
            }
            log.push(a);
        }
        let Some(p) = queue.pop_front() else { break };
        now = now + Duration::from_millis(10);
        let octet = p
            .ip()
            .to_string()
            .rsplit('.')
            .next()
            .unwrap()
            .parse::<u32>()
            .unwrap();
        let peer = (octet % 2 == 0).then_some(PeerId::from_u64(octet as u64));
        let outcome = finish_dial(&mut pool, p, peer, now, &mut rng);
        m.dial_finished(outcome, now, &mut pool, &mut rng, &mut out);
        assert!(pool.dialing_count() <= 8, "dial cap exceeded");
        assert!(
            pool.active_count() + pool.dialing_count() <= 36,
            "a top-up dials past min_target"
        );
    }
    log
}

#[test]
fn one_seed_one_outcome() {
    assert_eq!(drive(42), drive(42));
}

#[test]
fn a_top_up_reaches_min_target_through_failures_within_the_cap() {
    let log = drive(1);
    let Some(Action::CycleEnded(report)) = log
        .iter()
        .rev()
        .find(|a| matches!(a, Action::CycleEnded(_)))
    else {
        panic!("no cycle end");
    };
    assert_eq!(report.outcome, CycleOutcome::ToppedUp);
    // A top-up stops at min_target (36 for 10/50/100): the rest, up to max_connections,
    // is left to the nodes that dial us.
    assert_eq!(report.connections_after, 36);
    assert!(report.failed > 0 && report.succeeded == report.connections_after);
    assert_eq!(report.dialed, report.succeeded + report.failed);
}

#[test]
fn a_top_up_dials_no_further_than_min_target() {
    // 4/8/12: min_threshold 5, min_target 6, max_target 10. Four connections: two dials,
    // though eight may be in flight and max_target is four away.
    let config = Arc::new(Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        max_concurrent_dials: 8,
        ..Config::default()
    });
    let b = config.bounds();
    assert_eq!((b.min_threshold, b.min_target, b.max_target), (5, 6, 10));
    let mut pool = Pool::new(&config);
    for i in 0..4 {
        pool.connection_opened(
            ConnId(i.into()),
            addr(500 + i),
            PeerId::from_u64(i.into()),
            Direction::Outbound,
            Time::ZERO,
        )
        .unwrap();
    }
    for i in 0..20 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let mut m = Maintenance::new(config);
    let mut rng = StdRng::seed_from_u64(8);
    let mut out = Vec::new();
    m.wake(
        WakeReason::TooFewConnections,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    let dials: Vec<SocketAddr> = out
        .iter()
        .filter_map(|a| match a {
            Action::Dial(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 2);
    assert_eq!(pool.dialing_count(), 2);
    // One fails: one more dial replaces it, never two.
    out.clear();
    let t = Time::from_millis(10);
    let outcome = finish_dial(&mut pool, dials[0], None, t, &mut rng);
    m.dial_finished(outcome, t, &mut pool, &mut rng, &mut out);
    assert_eq!(
        out.iter().filter(|a| matches!(a, Action::Dial(_))).count(),
        1
    );
    assert_eq!(pool.dialing_count(), 2);
}

#[test]
fn a_too_many_wake_closes_down_to_max_target_naming_each_connection() {
    let config = config();
    let b = config.bounds();
    let mut pool = Pool::new(&config);
    let n = b.max_threshold + 5;
    for i in 0..n as u32 {
        let dir = if i % 2 == 0 {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        pool.connection_opened(
            ConnId(1000 + u64::from(i)),
            addr(i),
            PeerId::from_u64(i.into()),
            dir,
            Time::ZERO,
        )
        .unwrap();
    }
    let ids: std::collections::BTreeMap<SocketAddr, ConnId> =
        pool.connections().map(|(a, c)| (a, c.id)).collect();
    let mut m = Maintenance::new(config);
    let mut out = Vec::new();
    let now = Time::from_millis(60_000);
    m.wake(
        WakeReason::TooManyConnections,
        now,
        &mut pool,
        &mut StdRng::seed_from_u64(9),
        &mut out,
    );
    let closes: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Close(p, id, reason) => Some((*p, *id, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), n - b.max_target);
    assert_eq!(pool.active_count(), b.max_target);
    for (p, id, reason) in closes {
        assert_eq!(reason, CloseReason::TooManyConnections);
        assert_eq!(
            ids.get(&p),
            Some(&id),
            "the close names the connection at {p}"
        );
        assert!(
            pool.connection(&p).is_none(),
            "{p} is already out of the pool"
        );
    }
    let Some(Action::CycleEnded(report)) = out.last() else {
        panic!("the trim ends its cycle: {out:?}");
    };
    assert_eq!(report.outcome, CycleOutcome::Trimmed);
    assert_eq!(report.closed, n - b.max_target);
}

#[test]
fn trusted_candidates_are_dialed_first() {
    let config = Arc::new(Config {
        trusted_points: vec![addr(900), addr(901)],
        ..(*config()).clone()
    });
    let mut pool = Pool::new(&config);
    for i in 0..50 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let mut m = Maintenance::new(config);
    let mut out = Vec::new();
    m.wake(
        WakeReason::Activation,
        Time::ZERO,
        &mut pool,
        &mut StdRng::seed_from_u64(1),
        &mut out,
    );
    let dials: Vec<SocketAddr> = out
        .iter()
        .filter_map(|a| {
            if let Action::Dial(p) = a {
                Some(*p)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(&dials[..2], &[addr(900), addr(901)]);
}

#[test]
fn between_min_and_min_threshold_the_worker_acts() {
    // octez fires too-few below min (10) but acts below min_threshold (23): at 15 nothing
    // happens until its 120 s timer. Here 15 is below min_threshold, so the too-few trigger
    // fires and the cycle dials.
    let config = config();
    let bounds = config.bounds();
    let before = 24;
    let after = 15;
    assert_eq!(
        peerkeeper::trigger::count_trigger(before, after, &bounds),
        Some(peerkeeper::trigger::TriggerKind::TooFewConnections)
    );
    let mut pool = Pool::new(&config);
    for i in 0..100 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    for i in 0..after as u32 {
        pool.connection_opened(
            ConnId(i.into()),
            addr(500 + i),
            PeerId::from_u64(i.into()),
            Direction::Outbound,
            Time::ZERO,
        )
        .unwrap();
    }
    let mut m = Maintenance::new(config);
    let mut out = Vec::new();
    m.wake(
        WakeReason::TooFewConnections,
        Time::ZERO,
        &mut pool,
        &mut StdRng::seed_from_u64(3),
        &mut out,
    );
    assert_eq!(
        out.iter().filter(|a| matches!(a, Action::Dial(_))).count(),
        8
    );
}

#[test]
fn new_points_do_not_wake_a_satisfied_machine() {
    let config = config();
    let mut pool = Pool::new(&config);
    for i in 0..30 {
        pool.connection_opened(
            ConnId(i.into()),
            addr(i),
            PeerId::from_u64(i.into()),
            Direction::Outbound,
            Time::ZERO,
        )
        .unwrap();
    }
    let mut m = Maintenance::new(config);
    let mut rng = StdRng::seed_from_u64(4);
    let mut out = Vec::new();
    m.wake(
        WakeReason::Activation,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    assert_eq!(m.cycles(), 1);
    out.clear();
    pool.add_point(addr(999), Source::PeerSharing, Time::ZERO);
    m.wake(
        WakeReason::NewPoints,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(m.cycles(), 1);
    // The idle deadline is the only timer.
    assert_eq!(
        m.next_deadline(&pool),
        Some(Time::ZERO + Duration::from_secs(120))
    );
}

#[test]
fn a_hint_during_a_cycle_runs_one_more_cycle_after_it() {
    // A long backoff: the failed point stays out of reach for the whole wait for points.
    let mut c = (*config()).clone();
    c.reconnection.initial = Duration::from_secs(600);
    let config = Arc::new(c);
    let mut pool = Pool::new(&config);
    pool.add_point(addr(1), Source::PeerSharing, Time::ZERO);
    let mut m = Maintenance::new(config);
    let mut rng = StdRng::seed_from_u64(5);
    let mut out = Vec::new();
    m.wake(
        WakeReason::Activation,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    assert!(m.is_running());
    for _ in 0..10 {
        m.wake(
            WakeReason::Maintain,
            Time::ZERO,
            &mut pool,
            &mut rng,
            &mut out,
        );
    }
    assert_eq!(m.cycles(), 1, "hints during a cycle wait for it to end");
    let t = Time::from_millis(10);
    let outcome = finish_dial(&mut pool, addr(1), None, t, &mut rng);
    m.dial_finished(outcome, t, &mut pool, &mut rng, &mut out);
    // The activation cycle now waits for points; let the wait time out.
    let deadline = m.next_deadline(&pool).unwrap();
    m.handle_timeout(deadline, &mut pool, &mut rng, &mut out);
    assert_eq!(
        m.cycles(),
        2,
        "ten hints, one extra cycle, started right after"
    );
    let started: Vec<_> = out
        .iter()
        .filter_map(|a| {
            if let Action::CycleStarted { reasons, cycle: 2 } = a {
                Some(*reasons)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(started.len(), 1);
    assert!(started[0].contains(WakeReason::Maintain));
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::CycleEnded(r) if r.cycle == 1)));
}

#[test]
fn a_point_leaving_its_backoff_during_the_wait_for_points_is_dialed() {
    // Found by the simulator: a top-up that waits for points must also wake when a
    // backed-off point becomes dialable, or it ends the cycle with a candidate undialed.
    let config = config();
    let mut pool = Pool::new(&config);
    pool.add_point(addr(1), Source::PeerSharing, Time::ZERO);
    let mut m = Maintenance::new(config);
    let mut rng = StdRng::seed_from_u64(6);
    let mut out = Vec::new();
    m.wake(
        WakeReason::Activation,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    let t = Time::from_millis(10);
    let outcome = finish_dial(&mut pool, addr(1), None, t, &mut rng);
    m.dial_finished(outcome, t, &mut pool, &mut rng, &mut out);
    let ready_at = pool.get(&addr(1)).unwrap().next_dial;
    let deadline = m.next_deadline(&pool).unwrap();
    assert_eq!(
        deadline, ready_at,
        "the wait wakes when the backoff ends, before its own end"
    );
    out.clear();
    m.handle_timeout(deadline, &mut pool, &mut rng, &mut out);
    assert_eq!(out, vec![Action::Dial(addr(1))]);
    assert_eq!(m.cycles(), 1, "still the same cycle");
}
