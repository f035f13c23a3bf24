//! Inbound eviction that a flood cannot game, and the outbound floor (issue 16, part 4),
//! rule by rule on one node core with explicit times.
//!
//! The observations: on loopback one host opening a connection with a fresh key
//! every 1.2 s evicted all 3 honest long-lived inbound peers of a node in 10.8 s; in a
//! testnet, room-making closed honest inbound connections older than the grace period for
//! younger sybils, and a node kept in range by sybil inbound connections never dialed.

#[path = "common/actions.rs"]
mod actions;

use actions::{dials, drain};
use peerkeeper::core::{Action, Admission, DialResult, Hello, NodeCore, RefuseReason, Report};
use peerkeeper::pool::{CloseReason, ConnId, PeerId, Source};
use peerkeeper::{Config, Time};
use std::net::SocketAddr;
use std::time::Duration;

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// 2 / 4 / 6, inbound may take every slot, no outbound floor (the floor has tests of its
/// own below).
fn config() -> Config {
    Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        max_inbound: Some(6),
        min_outbound: Some(0),
        maintenance_idle_time: None,
        ..Config::default()
    }
}

fn hello(id: u64, port: u16) -> Hello {
    Hello {
        peer: PeerId::from_u64(id),
        listen_port: port,
    }
}

/// Admits one inbound connection; panics if refused.
fn admit(core: &mut NodeCore, conn: u64, remote: SocketAddr, t: Time) {
    let a = core.handle_inbound(ConnId(conn), remote, hello(conn, remote.port()), t);
    assert_eq!(a, Admission::Accept, "{remote}");
    drain(core);
}

/// A flood: a fresh key (and port) every 1.2 s from `host(k)`, for two minutes, starting
/// at `start`. Returns how many were admitted.
fn flood(core: &mut NodeCore, start: u64, host: impl Fn(u64) -> SocketAddr) -> usize {
    let mut admitted = 0;
    for k in 0..100u64 {
        let t = ms(start + 1_200 * k);
        let remote = host(k);
        let a = core.handle_inbound(
            ConnId(1_000 + k),
            remote,
            hello(1_000 + k, remote.port()),
            t,
        );
        admitted += usize::from(a == Admission::Accept);
        drain(core);
        core.check_invariants();
    }
    admitted
}

#[test]
fn a_flood_of_fresh_keys_from_one_group_never_evicts_long_lived_inbound_peers() {
    let mut config = config();
    config.max_inbound_per_group = Some(6); // the per-group cap has a test of its own
    let mut core = NodeCore::new(config, PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    let honest = [
        addr("45.1.0.7:9732"),
        addr("77.2.0.9:9732"),
        addr("88.3.1.1:9732"),
    ];
    for (i, h) in honest.iter().enumerate() {
        admit(&mut core, i as u64 + 1, *h, ms(0));
    }
    // One /16, a fresh key every 1.2 s, on as many addresses as the per-address cap needs.
    let admitted = flood(&mut core, 60_000, |k| {
        SocketAddr::from(([23, 1, (k / 4) as u8, 1], 40_000 + k as u16))
    });
    for h in honest {
        assert!(core.conn_at(&h).is_some(), "{h} was evicted");
    }
    // The flood got in (room is made from its own connections once they are past their
    // grace), so room-making still works: it is the flood that churns.
    assert!(admitted > 3, "{admitted}");
    assert!(core.stats().admission.made_room > 0);
    assert!(core.stats().admission.no_room_protected > 0);
}

#[test]
fn on_one_host_measured_round_trip_times_protect_the_long_lived_peers() {
    // The loopback case: everyone is 127.0.0.1, so groups say nothing; the shell
    // has measured a round-trip time on the honest peers' keep-alives, and a fresh
    // connection has none yet.
    let mut core = NodeCore::new(config(), PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    let honest: Vec<SocketAddr> = (1..=3)
        .map(|i| addr(&format!("127.0.0.1:{}", 9000 + i)))
        .collect();
    for (i, h) in honest.iter().enumerate() {
        admit(&mut core, i as u64 + 1, *h, ms(0));
        core.handle_rtt(ConnId(i as u64 + 1), Duration::from_millis(2), ms(30_000));
    }
    let admitted = flood(&mut core, 60_000, |k| {
        SocketAddr::from(([127, 0, 0, 1], 20_000 + k as u16))
    });
    for h in &honest {
        assert!(core.conn_at(h).is_some(), "{h} was evicted");
    }
    assert!(admitted > 3, "{admitted}");
}

/// Six inbound LAN connections opened one second apart (one group: no group protection).
fn six_inbound() -> NodeCore {
    let mut core = NodeCore::new(config(), PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    for i in 1..=6u64 {
        admit(&mut core, i, lan(i), ms(1_000 * i));
    }
    core
}

fn lan(i: u64) -> SocketAddr {
    SocketAddr::from(([192, 168, 0, i as u8], 9000))
}

/// The connection a newcomer at 60 s makes room by closing.
fn victim(core: &mut NodeCore) -> ConnId {
    let a = core.handle_inbound(ConnId(99), lan(99), hello(99, 9000), ms(60_000));
    assert_eq!(a, Admission::Accept);
    let closed: Vec<ConnId> = drain(core)
        .into_iter()
        .filter_map(|a| match a {
            Action::Close {
                conn,
                reason: CloseReason::TooManyConnections,
            } => Some(conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1);
    closed[0]
}

#[test]
fn room_is_made_from_the_youngest_unprotected_inbound_connection() {
    // The three oldest are the longest-connected half; of the rest, the youngest goes.
    assert_eq!(victim(&mut six_inbound()), ConnId(6));
}

#[test]
fn the_lowest_round_trip_times_are_protected() {
    let mut core = six_inbound();
    core.handle_rtt(ConnId(6), Duration::from_millis(40), ms(30_000));
    assert_eq!(core.rtt(ConnId(6)), Some(Duration::from_millis(40)));
    assert_eq!(victim(&mut core), ConnId(5));
}

#[test]
fn peers_reported_useful_are_protected() {
    let mut core = six_inbound();
    core.handle_report(PeerId::from_u64(6), Report::Useful, ms(30_000));
    assert_eq!(victim(&mut core), ConnId(5));
}

#[test]
fn every_inbound_connection_protected_means_the_newcomer_is_refused() {
    let mut core = NodeCore::new(config(), PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    for i in 1..=6u64 {
        admit(&mut core, i, lan(i), ms(0));
        core.handle_report(PeerId::from_u64(i), Report::Useful, ms(1_000));
        core.handle_rtt(ConnId(i), Duration::from_millis(10 * i), ms(1_000));
    }
    let a = core.handle_inbound(ConnId(99), lan(99), hello(99, 9000), ms(60_000));
    assert!(matches!(
        a,
        Admission::Refuse {
            reason: RefuseReason::Full,
            ..
        }
    ));
    assert_eq!(core.stats().admission.no_room_protected, 1);
    assert_eq!(core.connection_count(), 6);
}

#[test]
fn the_inbound_connections_of_one_group_are_capped() {
    let mut config = config();
    config.max_inbound_per_group = Some(2);
    let mut core = NodeCore::new(config, PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    admit(&mut core, 1, addr("23.1.0.1:9732"), ms(0));
    admit(&mut core, 2, addr("23.1.7.2:9732"), ms(0));
    let a = core.handle_inbound(ConnId(3), addr("23.1.9.3:9732"), hello(3, 9732), ms(0));
    assert!(matches!(
        a,
        Admission::Refuse {
            reason: RefuseReason::Full,
            ..
        }
    ));
    assert_eq!(core.stats().admission.refused_per_group, 1);
    // Another group is welcome; loopback and LAN addresses are exempt, as from the
    // per-address cap.
    admit(&mut core, 4, addr("45.1.0.1:9732"), ms(0));
    admit(&mut core, 5, addr("192.168.0.1:9000"), ms(0));
    admit(&mut core, 6, addr("192.168.0.2:9000"), ms(0));
    assert_eq!(core.stats().admission.refused_per_group, 1);
}

#[test]
fn the_outbound_floor_dials_while_in_range_on_inbound_connections_alone() {
    let config = Config {
        min_outbound: Some(2),
        ..config()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    // Four inbound connections: in range (2..=6), and nothing to dial yet.
    for i in 1..=4u64 {
        admit(&mut core, i, lan(i), ms(0));
    }
    assert_eq!(core.connection_count(), 4);
    // Points arrive: the floor wakes a cycle, which dials two although the count is in
    // range.
    let points: Vec<SocketAddr> = (10..14)
        .map(|i| addr(&format!("10.0.0.{i}:9732")))
        .collect();
    core.add_points(&points, Source::Bootstrap, ms(100));
    let d = dials(&drain(&mut core));
    assert_eq!(d.len(), 2, "{d:?}");
    for (k, p) in d.iter().enumerate() {
        core.handle_dial_result(
            *p,
            DialResult::Connected {
                conn: ConnId(50 + k as u64),
                peer: PeerId::from_u64(50 + k as u64),
            },
            ms(200),
        );
    }
    drain(&mut core);
    assert_eq!(core.pool().outbound_count(), 2);
    // An outbound peer leaves: the floor lacks one while the total (5) is in range; the
    // node dials again at once.
    core.handle_closed(ConnId(50), ms(1_000));
    let d = dials(&drain(&mut core));
    assert_eq!(d.len(), 1, "{d:?}");
    core.check_invariants();
}

#[test]
fn at_max_connections_the_outbound_floor_takes_an_inbound_slot() {
    let config = Config {
        min_outbound: Some(1),
        ..config()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1_000_000), 7);
    core.start(ms(0));
    drain(&mut core);
    for i in 1..=6u64 {
        admit(&mut core, i, lan(i), ms(0));
    }
    // Full of inbound connections; a point to dial arrives once they are past their grace.
    core.add_points(&[addr("10.0.0.9:9732")], Source::Bootstrap, ms(20_000));
    let actions = drain(&mut core);
    let closed = actions
        .iter()
        .filter(|a| matches!(a, Action::Close { .. }))
        .count();
    assert_eq!(closed, 1, "{actions:?}");
    assert_eq!(dials(&actions), vec![addr("10.0.0.9:9732")]);
}

#[test]
fn a_trim_never_cuts_outbound_connections_below_the_floor() {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        max_inbound: Some(4),
        min_outbound: Some(2),
        maintenance_idle_time: None,
        ..Config::default()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1_000_000), 7);
    let points: Vec<SocketAddr> = (10..12)
        .map(|i| addr(&format!("10.0.0.{i}:9732")))
        .collect();
    core.add_points(&points, Source::Bootstrap, ms(0));
    core.start(ms(0));
    let d = dials(&drain(&mut core));
    assert_eq!(d.len(), 2);
    for (k, p) in d.iter().enumerate() {
        core.handle_dial_result(
            *p,
            DialResult::Connected {
                conn: ConnId(50 + k as u64),
                peer: PeerId::from_u64(50 + k as u64),
            },
            ms(10),
        );
    }
    drain(&mut core);
    // Two inbound: 4 > max_threshold (3): the trim goes down to max_target (2), cutting
    // inbound connections and never the two outbound ones of the floor.
    admit(&mut core, 1, lan(1), ms(20_000));
    let a = core.handle_inbound(ConnId(2), lan(2), hello(2, 9000), ms(20_000));
    assert_eq!(a, Admission::Accept);
    drain(&mut core);
    core.maintain(ms(20_001));
    drain(&mut core);
    assert_eq!(core.pool().outbound_count(), 2);
    assert_eq!(core.connection_count(), 2);
}
