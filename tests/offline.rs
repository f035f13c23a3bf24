//! The offline rule, with explicit times: while every dial fails and the node has no
//! connection, the points are not backed off or forgotten for it, the node keeps dialing
//! at a bounded rate, and once anything answers every point is dialable at once.

use peerkeeper::core::{
    Action, Admission, DialFailure, DialResult, DialVerdict, Hello, NodeCore, OFFLINE_AFTER,
    OFFLINE_FIRST_PROBE, OFFLINE_PROBES, OFFLINE_RETRY,
};
use peerkeeper::pool::CONFIGURED_RETRY_CAP;
use peerkeeper::pool::{ConnId, PeerId, Source};
use peerkeeper::{Config, Time};
use std::net::SocketAddr;
use std::time::Duration;

const POINTS: u16 = 40;

fn point(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 200) as u8, (i % 200) as u8 + 1], 9000))
}

fn config() -> Config {
    Config {
        maintenance_idle_time: None,
        ..Config::default()
    }
}

/// A started node that knows `POINTS` bootstrap points.
fn node() -> NodeCore {
    let points: Vec<_> = (0..POINTS).map(point).collect();
    node_knowing(&points, Source::Bootstrap)
}

/// A started node that knows `points`, from `source`.
fn node_knowing(points: &[SocketAddr], source: Source) -> NodeCore {
    let mut core = NodeCore::new(config(), PeerId::from_u64(1), 7);
    core.add_points(points, source, Time::ZERO);
    core.start(Time::ZERO);
    core
}

/// Runs the node until `until`, every dial failing at once with `failure`; returns the
/// number of dials. Time moves from deadline to deadline (at least 1 ms per step).
fn run_failing(core: &mut NodeCore, from: Time, until: Time, failure: DialFailure) -> usize {
    dial_times(core, from, until, failure).len()
}

/// As [`run_failing`], returning every dial with its time.
fn dial_times(
    core: &mut NodeCore,
    from: Time,
    until: Time,
    failure: DialFailure,
) -> Vec<(SocketAddr, Time)> {
    let mut now = from;
    let mut dials = Vec::new();
    while now < until {
        while let Some(a) = core.poll_action() {
            if let Action::Dial(p) = a {
                dials.push((p, now));
                core.handle_dial_result(p, DialResult::Failed(failure), now);
                core.check_invariants();
            }
        }
        let next = core
            .next_deadline()
            .expect("a failing node keeps a timer: it keeps trying");
        now = next.max(now + Duration::from_millis(1)).min(until);
        core.handle_timeout(now);
    }
    dials
}

fn max_failures(core: &NodeCore) -> u32 {
    (0..POINTS)
        .filter_map(|i| core.pool().get(&point(i)))
        .map(|p| p.failures)
        .max()
        .unwrap()
}

fn waiting(core: &NodeCore, now: Time) -> usize {
    (0..POINTS)
        .filter(|i| core.pool().get(&point(*i)).unwrap().next_dial > now)
        .count()
}

#[test]
fn an_offline_node_holds_no_failure_against_its_points_and_reconnects_at_once() {
    let mut core = node();
    let hour = Time::from_millis(3_600_000);
    let dials = run_failing(&mut core, Time::ZERO, hour, DialFailure::Io);
    assert!(
        core.offline_since().is_some(),
        "the node counts itself offline"
    );
    // No point is penalised: the run that proved we were offline was taken back.
    assert_eq!(max_failures(&core), 0, "failures counted while offline");
    // Nothing forgotten.
    assert_eq!(core.pool().len(), POINTS as usize);
    let s = core.stats().dials;
    assert!(s.adds_up());
    assert_eq!(s.failed, (OFFLINE_AFTER - 1) as u64, "{}", s.summary());
    assert_eq!(s.offline as usize, dials - (OFFLINE_AFTER - 1));
    // It keeps trying, at a bounded rate: every point at least once, then about
    // OFFLINE_PROBES per OFFLINE_RETRY.
    let bound = POINTS as usize
        + (3_600 / OFFLINE_RETRY.as_secs() as usize + 1) * OFFLINE_PROBES
        + OFFLINE_PROBES;
    assert!(
        dials > POINTS as usize + 100,
        "it kept trying: {dials} dials"
    );
    assert!(
        dials <= bound,
        "{dials} dials in an hour offline (bound {bound})"
    );

    // The network is back: the next dial succeeds, and every point is dialable at once.
    let mut now = hour;
    let first = loop {
        match core.poll_action() {
            Some(Action::Dial(p)) => break p,
            Some(_) => continue,
            None => {}
        }
        now = core.next_deadline().unwrap().max(now);
        core.handle_timeout(now);
    };
    assert!(waiting(&core, now) > 0, "points wait while offline");
    let verdict = core.handle_dial_result(
        first,
        DialResult::Connected {
            conn: ConnId(1),
            peer: PeerId::from_u64(2),
        },
        now,
    );
    assert_eq!(verdict, DialVerdict::Keep);
    assert_eq!(core.offline_since(), None);
    core.check_invariants();
    let redials: Vec<_> = std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::Dial(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(
        !redials.is_empty(),
        "the node dials again at once, not after a backoff"
    );
    assert_eq!(
        waiting(&core, now),
        0,
        "every point is dialable at once (or being dialed)"
    );
}

#[test]
fn timeouts_count_as_offline_too() {
    let mut core = node();
    run_failing(
        &mut core,
        Time::ZERO,
        Time::from_millis(600_000),
        DialFailure::Timeout,
    );
    assert_eq!(max_failures(&core), 0);
    let s = core.stats().dials;
    assert_eq!(s.timed_out, (OFFLINE_AFTER - 1) as u64);
    assert!(s.offline > 0);
}

#[test]
fn with_a_connection_open_failures_count() {
    let mut core = node();
    let hello = Hello {
        peer: PeerId::from_u64(99),
        listen_port: 9000,
    };
    let remote = SocketAddr::from(([10, 9, 9, 9], 40000));
    assert_eq!(
        core.handle_inbound(ConnId(1000), remote, hello, Time::ZERO),
        Admission::Accept
    );
    run_failing(
        &mut core,
        Time::ZERO,
        Time::from_millis(600_000),
        DialFailure::Io,
    );
    assert_eq!(core.offline_since(), None);
    assert_eq!(core.stats().dials.offline, 0);
    assert!(max_failures(&core) >= 2, "failed points back off as usual");
}

#[test]
fn an_inbound_handshake_brings_the_node_back_online() {
    let mut core = node();
    let t = Time::from_millis(600_000);
    run_failing(&mut core, Time::ZERO, t, DialFailure::Io);
    assert!(core.offline_since().is_some());
    assert!(waiting(&core, t) > 0);
    let hello = Hello {
        peer: PeerId::from_u64(99),
        listen_port: 9000,
    };
    let remote = SocketAddr::from(([10, 9, 9, 9], 40000));
    assert_eq!(
        core.handle_inbound(ConnId(1000), remote, hello, t),
        Admission::Accept
    );
    assert_eq!(core.offline_since(), None);
    assert_eq!(waiting(&core, t), 0);
    core.check_invariants();
}

#[test]
fn a_few_failures_in_a_row_are_not_offline() {
    // Fewer than OFFLINE_AFTER failures, then a refusal (somebody answered): the
    // failures stand, the node never went offline.
    let mut core = node();
    let mut failed = 0;
    let now = Time::ZERO;
    let mut refused = false;
    while let Some(a) = core.poll_action() {
        let Action::Dial(p) = a else { continue };
        if failed + 1 < OFFLINE_AFTER {
            core.handle_dial_result(p, DialResult::Failed(DialFailure::Io), now);
            failed += 1;
        } else if !refused {
            core.handle_dial_result(
                p,
                DialResult::Refused {
                    reason: peerkeeper::core::RefuseReason::Full,
                    points: vec![],
                },
                now,
            );
            refused = true;
        } else {
            core.handle_dial_result(p, DialResult::Failed(DialFailure::Io), now);
            failed += 1;
            if failed > OFFLINE_AFTER {
                break;
            }
        }
        assert_eq!(core.offline_since(), None);
    }
    assert_eq!(core.stats().dials.offline, 0);
    assert!(max_failures(&core) >= 1);
}

#[test]
fn the_octez_model_has_no_offline_rule() {
    let mut core = NodeCore::new(
        Config {
            policy: peerkeeper::Policy::Octez,
            ..config()
        },
        PeerId::from_u64(1),
        7,
    );
    let points: Vec<_> = (0..POINTS).map(point).collect();
    core.add_points(&points, Source::Bootstrap, Time::ZERO);
    core.start(Time::ZERO);
    run_failing(
        &mut core,
        Time::ZERO,
        Time::from_millis(600_000),
        DialFailure::Io,
    );
    assert_eq!(core.offline_since(), None);
    assert_eq!(core.stats().dials.offline, 0);
    assert!(max_failures(&core) >= 2, "octez backs off as octez does");
}

/// A node started before its seed (issue 18): the seed's port refuses the connection at
/// once. A refusal proves the network works, so the node never counts itself offline,
/// and the seed, a configured point, is dialed again within about a second every time
/// (its backoff capped at `CONFIGURED_RETRY_CAP`), however long it has been refusing.
#[test]
fn a_refused_seed_is_retried_within_about_a_second_and_the_node_is_not_offline() {
    let mut core = node_knowing(&[point(0)], Source::Bootstrap);
    let minute = Time::from_millis(60_000);
    let dials = dial_times(&mut core, Time::ZERO, minute, DialFailure::Refused);
    assert_eq!(core.offline_since(), None, "a refusal is not offline");
    assert_eq!(core.stats().dials.offline, 0);
    let times: Vec<u64> = dials.iter().map(|(_, t)| t.as_millis()).collect();
    let cap = CONFIGURED_RETRY_CAP.as_millis() as u64;
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        widest <= cap + cap / 4,
        "the seed waited {widest} ms between two dials: {times:?}"
    );
    assert!(
        times.len() >= 40,
        "{} dials of the seed in a minute",
        times.len()
    );
}

/// A peer-shared point is not a configured one: refused, it backs off as before.
#[test]
fn a_refused_peer_shared_point_backs_off_as_usual() {
    let p = point(0);
    let mut core = node_knowing(&[p], Source::PeerSharing);
    let minute = Time::from_millis(60_000);
    let dials = dial_times(&mut core, Time::ZERO, minute, DialFailure::Refused);
    assert!(
        dials.len() <= 7,
        "1 s, x2: at most 7 dials in a minute, got {dials:?}"
    );
    assert!(core.pool().get(&p).unwrap().failures >= 5);
}

/// The offline rule's probes start fast and back off (issue 18): a node whose network
/// is gone probes again within about a second at first, several times in its first
/// seconds offline, and no more often than the probe interval once it has been offline
/// for long.
#[test]
fn offline_probes_start_fast_and_back_off() {
    let mut core = node();
    let dials = dial_times(
        &mut core,
        Time::ZERO,
        Time::from_millis(600_000),
        DialFailure::Io,
    );
    let since = core.offline_since().expect("offline").as_millis();
    let mut probes: Vec<u64> = dials
        .iter()
        .map(|(_, t)| t.as_millis())
        .filter(|t| *t > since)
        .collect();
    probes.dedup();
    let first = probes.first().copied().expect("a probe") - since;
    assert!(
        first <= 2 * OFFLINE_FIRST_PROBE.as_millis() as u64,
        "the first probe came {first} ms after going offline"
    );
    let early = probes.iter().filter(|t| **t <= since + 10_000).count();
    assert!(
        early >= 5,
        "{early} probe moments in the first 10 s offline: {probes:?}"
    );
    let gaps: Vec<u64> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    let late = &gaps[gaps.len() * 3 / 4..];
    assert!(
        late.iter().all(|g| *g >= OFFLINE_RETRY.as_millis() as u64),
        "the probes back off to the probe interval: gaps {gaps:?}"
    );
    assert_eq!(max_failures(&core), 0);
}
