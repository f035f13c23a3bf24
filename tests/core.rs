//! The node core's rules, input by input, with explicit times: admission (making room,
//! refusals with points, duplicates, private mode), point intake (the relay rule), dial
//! outcome accounting, the farewell, rate limits, shutdown, triggers, tickets, the octez
//! policy's admission and swap, and determinism.

#[path = "common/actions.rs"]
mod actions;

use actions::{dials, drain};
use peerkeeper::core::{
    Action, Admission, DialFailure, DialResult, DialVerdict, Hello, NodeCore, Offender,
    RefuseReason,
};
use peerkeeper::maintenance::CycleOutcome;
use peerkeeper::pool::{CloseReason, ConnId, Direction, PeerId, PointState, Source};
use peerkeeper::trigger::TriggerKind;
use peerkeeper::{Config, Policy, Time};
use std::net::SocketAddr;
use std::time::Duration;

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// 2 / 4 / 6: min_threshold 2, min_target 2, max_target 6, max_threshold 6 (the collapsed
/// bounds where round 1 wedged).
fn tight() -> Config {
    Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        maintenance_idle_time: None,
        ..Config::default()
    }
}

/// [`tight`] where inbound connections may fill every slot (`max_inbound = max_connections`;
/// the default inbound budget keeps room for the outbound ones) and no outbound floor: the
/// room-making tests fill a node with inbound connections (with a floor, the refused
/// dialers, once known, would be dialed for it: `tests/eviction.rs`).
fn all_inbound() -> Config {
    Config {
        max_inbound: Some(6),
        min_outbound: Some(0),
        ..tight()
    }
}

/// Node `i`'s point on a LAN.
fn lan(i: u16) -> SocketAddr {
    SocketAddr::from(([192, 168, 0, (i % 250) as u8 + 1], 9000 + i))
}

fn hello(i: u16) -> Hello {
    Hello {
        peer: PeerId::from_u64(1000 + u64::from(i)),
        listen_port: 9000 + i,
    }
}

/// Admits `n` inbound connections from nodes 1..=n at time `t`, connection ids 1..=n.
fn fill_inbound(core: &mut NodeCore, n: u16, t: Time) {
    for i in 1..=n {
        let a = core.handle_inbound(ConnId(i.into()), lan(i), hello(i), t);
        assert_eq!(a, Admission::Accept, "node {i}");
    }
    drain(core);
}

fn refused_points(a: Admission) -> Vec<SocketAddr> {
    match a {
        Admission::Refuse {
            reason: RefuseReason::Full,
            points,
        } => points,
        other => panic!("expected a refusal for being full, got {other:?}"),
    }
}

#[test]
fn a_full_node_makes_room_for_a_newcomer_sending_the_leaver_points_first() {
    let mut core = NodeCore::new(all_inbound(), PeerId::from_u64(1), 7);
    core.start(ms(0));
    fill_inbound(&mut core, 6, ms(0));
    assert_eq!(core.connection_count(), 6);
    // After the grace period, a seventh dialer is admitted: one older inbound connection
    // goes (points first), the count stays at the maximum.
    let t = ms(11_000);
    let a = core.handle_inbound(ConnId(7), lan(7), hello(7), t);
    assert_eq!(a, Admission::Accept);
    assert_eq!(core.connection_count(), 6);
    let actions = drain(&mut core);
    let closed: Vec<(usize, ConnId)> = actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Action::Close {
                conn,
                reason: CloseReason::TooManyConnections,
            } => Some((i, *conn)),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{actions:?}");
    let (at, victim) = closed[0];
    assert_ne!(victim, ConnId(7), "the newcomer is not the one to go");
    let farewell = actions[..at].iter().any(|a| {
        matches!(a, Action::SendPoints { conn, points } if *conn == victim && points.contains(&lan(7)))
    });
    assert!(
        farewell,
        "the leaver is told about the newcomer first: {actions:?}"
    );
    assert_eq!(core.stats().admission.made_room, 1);
    core.check_invariants();
}

#[test]
fn room_is_made_at_most_once_per_interval_and_never_from_young_connections() {
    let mut core = NodeCore::new(all_inbound(), PeerId::from_u64(1), 7);
    core.start(ms(0));
    fill_inbound(&mut core, 6, ms(0));
    // Within the grace period every connection is young: refused, with points.
    let a = core.handle_inbound(ConnId(7), lan(7), hello(7), ms(5_000));
    assert!(!refused_points(a).is_empty());
    // After it, room once (the youngest of the most represented group goes: here, one of
    // the six, all as old); a second newcomer in the same second is refused.
    let a = core.handle_inbound(ConnId(8), lan(8), hello(8), ms(11_000));
    assert_eq!(a, Admission::Accept);
    let a = core.handle_inbound(ConnId(9), lan(9), hello(9), ms(11_500));
    let points = refused_points(a);
    // ... and its refusal names the dialers refused or admitted just before it.
    assert!(points.contains(&lan(7)), "{points:?}");
    assert!(points.contains(&lan(8)), "{points:?}");
    assert!(!points.contains(&lan(9)), "never the requester itself");
    // The next interval: the connection eviction would now pick is the youngest, the
    // newcomer admitted at 11 s, still within its grace: refused (a stream of fresh
    // connections never pushes out the older ones).
    let a = core.handle_inbound(ConnId(10), lan(10), hello(10), ms(12_600));
    assert!(!refused_points(a).is_empty());
    assert!(core.conn_at(&lan(8)).is_some());
    // Once it is past its grace, it is the one to go.
    let a = core.handle_inbound(ConnId(11), lan(11), hello(11), ms(21_500));
    assert_eq!(a, Admission::Accept, "room again, from the youngest");
    assert!(core.conn_at(&lan(8)).is_none());
    assert_eq!(core.connection_count(), 6);
    core.check_invariants();
}

#[test]
fn room_is_never_taken_from_outbound_or_trusted_peers() {
    let mut config = tight();
    config.trusted_points = vec![lan(1)];
    config.max_concurrent_dials = 6;
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
    let outbound: Vec<SocketAddr> = (2..=6).map(lan).collect();
    core.add_points(&outbound, Source::PeerSharing, ms(0));
    core.start(ms(0));
    let dialed = dials(&drain(&mut core));
    // A top-up stops at min_target (2): the trusted point first, then one more.
    assert_eq!(dialed.len(), 2);
    assert_eq!(dialed[0], lan(1));
    for (k, p) in dialed.iter().enumerate() {
        let i = p.port() - 9000;
        let v = core.handle_dial_result(
            *p,
            DialResult::Connected {
                conn: ConnId(100 + k as u64),
                peer: hello(i).peer,
            },
            ms(10),
        );
        assert_eq!(v, DialVerdict::Keep);
    }
    drain(&mut core);
    // Inbound fills the rest, then ages.
    for i in 10..14 {
        assert_eq!(
            core.handle_inbound(ConnId(i.into()), lan(i), hello(i), ms(20)),
            Admission::Accept
        );
    }
    drain(&mut core);
    assert_eq!(core.connection_count(), 6);
    // Four newcomers, each past the previous one's grace: only inbound connections can make
    // room.
    for (k, i) in (20..24).enumerate() {
        let t = ms(20_000 + 11_000 * k as u64);
        assert_eq!(
            core.handle_inbound(ConnId(i.into()), lan(i), hello(i), t),
            Admission::Accept,
            "newcomer {i}"
        );
        drain(&mut core);
    }
    // The trusted and outbound ones stayed.
    let t = ms(70_000);
    let a = core.handle_inbound(ConnId(30), lan(30), hello(30), t);
    // Only the newcomers (all inbound, now old enough) can go now.
    assert_eq!(a, Admission::Accept);
    for p in &dialed {
        let c = core
            .pool()
            .connection(p)
            .expect("outbound and trusted kept");
        assert_eq!(c.direction, Direction::Outbound);
    }
    core.check_invariants();
}

#[test]
fn without_room_making_a_full_node_refuses_with_the_refused_dialers_points() {
    let mut config = all_inbound();
    config.make_room_interval = None;
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
    core.start(ms(0));
    fill_inbound(&mut core, 6, ms(0));
    // Late joiners 20, 21, 22 each dial the full node: each refusal names the previous
    // ones (they have room: they are looking for peers), so they find each other.
    let mut seen = Vec::new();
    for i in 20..23 {
        let points = refused_points(core.handle_inbound(
            ConnId(i.into()),
            lan(i),
            hello(i),
            ms(60_000 + u64::from(i)),
        ));
        for j in &seen {
            assert!(points.contains(j), "{i} is told of {j}: {points:?}");
        }
        seen.push(lan(i));
        // Refused dialers are known points now (octez registers them too).
        assert!(core.pool().get(&lan(i)).is_some());
    }
    assert_eq!(core.stats().admission.refused_full, 3);
}

#[test]
fn private_mode_admits_only_trusted_peers_inbound() {
    let mut config = tight();
    config.private_mode = true;
    config.trusted_points = vec![lan(1)];
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
    core.start(ms(0));
    drain(&mut core);
    let a = core.handle_inbound(ConnId(2), lan(2), hello(2), ms(1));
    assert_eq!(
        a,
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            points: vec![]
        }
    );
    assert_eq!(
        core.handle_inbound(ConnId(1), lan(1), hello(1), ms(1)),
        Admission::Accept
    );
    // It never shares points either.
    core.handle_points_asked(ConnId(1), ms(2));
    assert!(!drain(&mut core)
        .iter()
        .any(|a| matches!(a, Action::SendPoints { .. })));
}

/// Two cores that dial each other at once keep the same one of the two connections.
#[test]
fn simultaneous_dials_leave_one_connection_both_sides_agree_on() {
    for (ida, idb) in [(1, 2), (2, 1)] {
        let (pa, pb) = (lan(1), lan(2));
        let mut a = NodeCore::new(tight(), PeerId::from_u64(ida), 1);
        let mut b = NodeCore::new(tight(), PeerId::from_u64(idb), 2);
        a.add_points(&[pb], Source::Bootstrap, ms(0));
        b.add_points(&[pa], Source::Bootstrap, ms(0));
        a.start(ms(0));
        b.start(ms(0));
        assert_eq!(dials(&drain(&mut a)), vec![pb]);
        assert_eq!(dials(&drain(&mut b)), vec![pa]);
        // Link 10 is a's dial, link 20 is b's. Each side first admits the other's dial.
        let hello_a = Hello {
            peer: PeerId::from_u64(ida),
            listen_port: pa.port(),
        };
        let hello_b = Hello {
            peer: PeerId::from_u64(idb),
            listen_port: pb.port(),
        };
        assert_eq!(
            b.handle_inbound(ConnId(10), pa, hello_a, ms(5)),
            Admission::Accept
        );
        assert_eq!(
            a.handle_inbound(ConnId(20), pb, hello_b, ms(5)),
            Admission::Accept
        );
        let va = a.handle_dial_result(
            pb,
            DialResult::Connected {
                conn: ConnId(10),
                peer: PeerId::from_u64(idb),
            },
            ms(10),
        );
        let vb = b.handle_dial_result(
            pa,
            DialResult::Connected {
                conn: ConnId(20),
                peer: PeerId::from_u64(ida),
            },
            ms(10),
        );
        let closes = |core: &mut NodeCore| -> Vec<ConnId> {
            drain(core)
                .into_iter()
                .filter_map(|x| match x {
                    Action::Close { conn, .. } => Some(conn),
                    _ => None,
                })
                .collect()
        };
        let (ca, cb) = (closes(&mut a), closes(&mut b));
        // Links a side keeps: its dial if kept, the other's if not closed.
        let kept_a: Vec<u64> = [
            (10, va == DialVerdict::Keep),
            (20, !ca.contains(&ConnId(20))),
        ]
        .into_iter()
        .filter(|(_, k)| *k)
        .map(|(l, _)| l)
        .collect();
        let kept_b: Vec<u64> = [
            (20, vb == DialVerdict::Keep),
            (10, !cb.contains(&ConnId(10))),
        ]
        .into_iter()
        .filter(|(_, k)| *k)
        .map(|(l, _)| l)
        .collect();
        assert_eq!(kept_a.len(), 1, "a keeps one: {kept_a:?}");
        assert_eq!(kept_a, kept_b, "both keep the same link");
        // The one dialed by the smaller id.
        assert_eq!(kept_a[0], if ida < idb { 10 } else { 20 });
        assert_eq!(a.connection_count(), 1);
        assert_eq!(b.connection_count(), 1);
        a.check_invariants();
        b.check_invariants();
    }
}

#[test]
fn every_dial_ends_in_exactly_one_named_outcome() {
    let mut config = tight();
    config.max_concurrent_dials = 8;
    config.expected_connections = 30;
    config.max_connections = 40;
    config.min_connections = 20;
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 3);
    let points: Vec<SocketAddr> = (1..=8).map(lan).collect();
    core.add_points(&points, Source::PeerSharing, ms(0));
    core.start(ms(0));
    let d = dials(&drain(&mut core));
    assert_eq!(d.len(), 8);
    let results = [
        DialResult::Connected {
            conn: ConnId(1),
            peer: hello(1).peer,
        },
        DialResult::Refused {
            reason: RefuseReason::Full,
            points: vec![],
        },
        DialResult::Failed(DialFailure::Timeout),
        DialResult::Failed(DialFailure::Io),
        DialResult::Failed(DialFailure::Protocol),
        DialResult::Refused {
            reason: RefuseReason::AlreadyConnected,
            points: vec![],
        },
        DialResult::Refused {
            reason: RefuseReason::Myself,
            points: vec![],
        },
    ];
    for (p, r) in d.iter().zip(results) {
        core.handle_dial_result(*p, r, ms(100));
        core.check_invariants();
    }
    let s = core.stats().dials;
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(
        (
            s.succeeded,
            s.refused,
            s.timed_out,
            s.failed,
            s.protocol,
            s.already_connected,
            s.myself
        ),
        (1, 1, 1, 1, 1, 1, 1)
    );
    // The eighth is still in flight, then shutdown cancels it: nothing is left dialing.
    assert!(s.in_flight >= 1);
    core.shutdown(ms(200));
    let s = core.stats().dials;
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.in_flight, 0);
    assert!(s.cancelled >= 1);
    assert_eq!(core.dials_in_flight(), 0);
    assert!(core
        .pool()
        .get(&d[7])
        .is_some_and(|p| !p.dialing && p.failures == 0));
    core.check_invariants();
}

#[test]
fn our_own_address_is_forgotten_without_a_penalty_and_never_learned_again() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    let me_elsewhere = addr("127.0.0.1:9732");
    let healthy = lan(1);
    core.add_points(&[me_elsewhere, healthy], Source::Bootstrap, ms(0));
    core.start(ms(0));
    let d = dials(&drain(&mut core));
    assert!(d.contains(&me_elsewhere));
    // The listener (ourselves) refused with Myself; or we reached ourselves.
    core.handle_dial_result(
        me_elsewhere,
        DialResult::Refused {
            reason: RefuseReason::Myself,
            points: vec![],
        },
        ms(5),
    );
    assert!(core.pool().get(&me_elsewhere).is_none(), "forgotten");
    assert_eq!(core.stats().dials.myself, 1);
    assert!(core.own_points().contains(&me_elsewhere));
    // A peer telling us our own address: dropped, counted.
    core.handle_dial_result(
        healthy,
        DialResult::Connected {
            conn: ConnId(1),
            peer: PeerId::from_u64(9),
        },
        ms(6),
    );
    core.handle_points(ConnId(1), &[me_elsewhere], ms(7));
    assert!(core.pool().get(&me_elsewhere).is_none());
    assert_eq!(core.stats().points.dropped.myself, 1);
    // An inbound connection claiming our own id is refused, and it is not a healthy peer's
    // failure.
    let a = core.handle_inbound(
        ConnId(2),
        addr("127.0.0.1:50000"),
        Hello {
            peer: PeerId::from_u64(1),
            listen_port: 9732,
        },
        ms(8),
    );
    assert_eq!(
        a,
        Admission::Refuse {
            reason: RefuseReason::Myself,
            points: vec![]
        }
    );
    assert_eq!(core.pool().get(&healthy).map(|p| p.failures), Some(0));
    core.check_invariants();
}

#[test]
fn an_inbound_connection_from_a_point_being_dialed_changes_no_dial_count() {
    let mut config = tight();
    config.max_concurrent_dials = 1;
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 3);
    core.add_points(&[lan(1), lan(2)], Source::PeerSharing, ms(0));
    core.start(ms(0));
    let d = dials(&drain(&mut core));
    assert_eq!(d.len(), 1);
    let target = d[0];
    let i = target.port() - 9000;
    // While we dial it, it dials us: admitted; still one dial in flight, none more started.
    assert_eq!(
        core.handle_inbound(ConnId(5), target, hello(i), ms(3)),
        Admission::Accept
    );
    assert_eq!(core.dials_in_flight(), 1);
    assert!(
        dials(&drain(&mut core)).is_empty(),
        "the cap of one dial holds"
    );
    // Our dial then fails: the connected point is not backed off.
    core.handle_dial_result(target, DialResult::Failed(DialFailure::Io), ms(8));
    let info = core.pool().get(&target).unwrap();
    assert!(!info.dialing);
    assert_eq!((info.state, info.failures), (PointState::Connected, 0));
    core.check_invariants();
}

#[test]
fn peer_shared_points_follow_the_relay_rule_and_drops_are_counted() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    let lan_peer = lan(1);
    let public_peer = addr("8.8.8.8:9732");
    assert_eq!(
        core.handle_inbound(ConnId(1), lan_peer, hello(1), ms(1)),
        Admission::Accept
    );
    let h = Hello {
        peer: PeerId::from_u64(77),
        listen_port: 9732,
    };
    assert_eq!(
        core.handle_inbound(ConnId(2), public_peer, h, ms(1)),
        Admission::Accept
    );
    drain(&mut core);
    let offered = [
        addr("127.0.0.1:9000"), // loopback
        addr("10.1.2.3:9000"),  // private
        addr("1.1.1.1:9000"),   // public
        addr("224.0.0.1:9000"), // multicast
        addr("192.0.2.1:9000"), // documentation
        addr("1.1.1.2:0"),      // port 0
    ];
    core.handle_points(ConnId(1), &offered, ms(2));
    core.handle_points(ConnId(2), &offered, ms(2));
    let known = |p: &str| core.pool().get(&addr(p)).is_some();
    assert!(known("10.1.2.3:9000"), "private from a LAN peer");
    assert!(known("1.1.1.1:9000"));
    assert!(!known("127.0.0.1:9000"), "loopback only from loopback");
    assert!(!known("224.0.0.1:9000") && !known("192.0.2.1:9000") && !known("1.1.1.2:0"));
    let d = core.stats().points.dropped;
    assert_eq!(d.loopback_from_remote, 2);
    assert_eq!(d.private_from_public, 1);
    assert_eq!(d.not_unicast, 4);
    assert_eq!(d.port_zero, 2);
    // A public node that refuses private addresses drops them from anyone.
    let mut config = tight();
    config.discovery.allow_private_addresses = false;
    let mut public = NodeCore::new(config, PeerId::from_u64(2), 3);
    public.start(ms(0));
    assert_eq!(
        public.handle_inbound(ConnId(1), lan_peer, hello(1), ms(1)),
        Admission::Accept
    );
    public.handle_points(ConnId(1), &offered, ms(2));
    assert!(public.pool().get(&addr("10.1.2.3:9000")).is_none());
    assert_eq!(public.stats().points.dropped.private_refused, 2);
}

#[test]
fn answers_are_rate_limited_and_never_tell_a_public_peer_about_private_points() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    for i in 1..=3 {
        assert_eq!(
            core.handle_inbound(ConnId(i.into()), lan(i), hello(i), ms(1)),
            Admission::Accept
        );
    }
    let public_peer = addr("8.8.8.8:9732");
    let h = Hello {
        peer: PeerId::from_u64(77),
        listen_port: 9732,
    };
    assert_eq!(
        core.handle_inbound(ConnId(9), public_peer, h, ms(1)),
        Admission::Accept
    );
    core.add_points(&[addr("1.1.1.1:9000")], Source::External, ms(1));
    drain(&mut core);
    let answer = |core: &mut NodeCore, conn: u64, t: u64| -> Option<Vec<SocketAddr>> {
        core.handle_points_asked(ConnId(conn), ms(t));
        drain(core).into_iter().find_map(|a| match a {
            Action::SendPoints { points, .. } => Some(points),
            _ => None,
        })
    };
    let to_lan = answer(&mut core, 1, 10).expect("answered");
    assert!(to_lan.contains(&lan(2)) && to_lan.contains(&lan(3)));
    assert!(!to_lan.contains(&lan(1)), "never the requester");
    let to_public = answer(&mut core, 9, 10).expect("answered");
    assert!(to_public
        .iter()
        .all(|p| !p.ip().is_loopback() && p.ip().to_string() != "192.168.0.2"));
    assert!(to_public
        .iter()
        .all(|p| matches!(p.ip(), std::net::IpAddr::V4(v) if !v.is_private())));
    // Asked again too soon: ignored (peer_ask_interval / 4 = 7.5 s by default).
    assert_eq!(answer(&mut core, 1, 5_000), None);
    assert!(answer(&mut core, 1, 8_000).is_some());
    assert_eq!(core.stats().sharing.asks_ignored, 1);
}

#[test]
fn unsolicited_advertisements_are_rate_limited() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    assert_eq!(
        core.handle_inbound(ConnId(1), lan(1), hello(1), ms(1)),
        Admission::Accept
    );
    // Short of connections, the node asks its new peer at once: one answer is welcome.
    let asked = drain(&mut core).contains(&Action::AskForPoints { conn: ConnId(1) });
    assert!(asked);
    core.handle_points(ConnId(1), &[lan(49)], ms(2));
    assert!(core.pool().get(&lan(49)).is_some());
    // Then one unsolicited advertisement per interval.
    core.handle_points(ConnId(1), &[lan(50)], ms(2));
    core.handle_points(ConnId(1), &[lan(51)], ms(3));
    assert!(core.pool().get(&lan(50)).is_some());
    assert!(
        core.pool().get(&lan(51)).is_none(),
        "a second one within the interval is ignored"
    );
    assert_eq!(core.stats().points.unsolicited_ignored, 1);
    core.handle_points(ConnId(1), &[lan(52)], ms(3 + 7_500));
    assert!(core.pool().get(&lan(52)).is_some());
}

#[test]
fn a_message_over_the_wire_cap_is_a_violation_that_greylists_the_sender() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    assert_eq!(
        core.handle_inbound(ConnId(1), lan(1), hello(1), ms(1)),
        Admission::Accept
    );
    drain(&mut core);
    let flood: Vec<SocketAddr> = (0..=peerkeeper::MAX_POINTS_PER_MESSAGE as u16)
        .map(|i| lan(100 + i))
        .collect();
    core.handle_points(ConnId(1), &flood, ms(2));
    let actions = drain(&mut core);
    assert!(actions.contains(&Action::Close {
        conn: ConnId(1),
        reason: CloseReason::ProtocolViolation
    }));
    assert_eq!(
        core.pool().get(&lan(1)).map(|p| p.state),
        Some(PointState::Greylisted)
    );
    // It comes back: refused.
    let a = core.handle_inbound(ConnId(2), lan(1), hello(1), ms(3));
    assert_eq!(
        a,
        Admission::Refuse {
            reason: RefuseReason::Greylisted,
            points: vec![]
        }
    );
    // Garbage from an unauthenticated connection punishes that connection only: one bad
    // frame from a shared address (a NAT, a LAN) bans nobody behind it.
    core.handle_violation(Offender::Remote(addr("8.8.8.8:40001")), ms(4));
    assert!(!core.pool().is_ip_greylisted(addr("8.8.8.8:1").ip(), ms(5)));
    // The same connection reported twice is one source.
    core.handle_violation(Offender::Remote(addr("8.8.8.8:40001")), ms(4));
    core.handle_violation(Offender::Remote(addr("8.8.8.8:40002")), ms(4));
    assert!(!core.pool().is_ip_greylisted(addr("8.8.8.8:1").ip(), ms(5)));
    // Repeated abuse from several of its sockets greylists the address itself.
    core.handle_violation(Offender::Remote(addr("8.8.8.8:40003")), ms(4));
    assert!(core.pool().is_ip_greylisted(addr("8.8.8.8:1").ip(), ms(5)));
    // More garbage from the banned address is counted, not banned again.
    let bans = core.stats().bans;
    for port in 40_004..40_010 {
        core.handle_violation(
            Offender::Remote(SocketAddr::new(addr("8.8.8.8:1").ip(), port)),
            ms(6),
        );
    }
    assert_eq!(core.stats().bans, bans);
    // Never loopback: every local process shares it.
    for port in 1..10 {
        core.handle_violation(
            Offender::Remote(SocketAddr::new(addr("127.0.0.1:1").ip(), port)),
            ms(4),
        );
    }
    assert!(!core
        .pool()
        .is_ip_greylisted(addr("127.0.0.1:1").ip(), ms(5)));
}

#[test]
fn a_node_with_no_connection_polls_its_sources_every_round() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    let mut polls = 0;
    let mut t = 0;
    while t < 60_000 {
        core.handle_timeout(ms(t));
        polls += drain(&mut core)
            .iter()
            .filter(|a| matches!(a, Action::PollSources))
            .count();
        t = core
            .next_deadline()
            .map_or(60_000, |d| d.as_millis().max(t + 1));
    }
    assert!(polls >= 2, "rounds poll the sources: {polls}");
    // What a source returns is dialed at once.
    core.handle_source_points(&[lan(5)], ms(60_000));
    assert_eq!(dials(&drain(&mut core)), vec![lan(5)]);
}

#[test]
fn a_maintain_ticket_is_answered_by_a_cycle_that_began_after_it() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    drain(&mut core);
    let t1 = core.maintain(ms(10));
    let ended: Vec<(u64, CycleOutcome)> = drain(&mut core)
        .into_iter()
        .filter_map(|a| match a {
            Action::CycleEnded { report, covers } => Some((covers, report.outcome)),
            _ => None,
        })
        .collect();
    // Nobody to dial: the cycle asks for points and waits; it ends at a timeout.
    assert!(ended.iter().all(|(c, _)| *c < t1));
    let t2 = core.maintain(ms(20)); // during the running cycle: coalesced into the next
    let mut covered = Vec::new();
    let mut t = 20;
    while covered.iter().all(|c| *c < t2) && t < 100_000 {
        t = core
            .next_deadline()
            .map_or(t + 1000, |d| d.as_millis().max(t));
        core.handle_timeout(ms(t));
        for a in drain(&mut core) {
            if let Action::CycleEnded { covers, .. } = a {
                covered.push(covers);
            }
        }
    }
    assert!(covered.iter().any(|c| *c >= t1), "{covered:?}");
    assert!(covered.iter().any(|c| *c >= t2), "{covered:?}");
    assert!(covered.len() <= 2, "hints coalesce: {covered:?}");
}

#[test]
fn a_switched_off_trigger_wakes_nothing() {
    let mut config = tight();
    // No outbound floor: it would wake a cycle on its own (tests/eviction.rs).
    config.min_outbound = Some(0);
    config.min_connections = 3;
    config.expected_connections = 3;
    config.max_connections = 6;
    let run = |on: bool| {
        let mut core = NodeCore::new(config.clone(), PeerId::from_u64(1), 3);
        core.set_trigger(TriggerKind::TooFewConnections, on);
        core.start(ms(0));
        for i in 1..=3 {
            core.handle_inbound(ConnId(i.into()), lan(i), hello(i), ms(1));
        }
        core.add_points(&[lan(40)], Source::PeerSharing, ms(1));
        drain(&mut core);
        core.handle_closed(ConnId(1), ms(2)); // 2 < min_threshold 3
        drain(&mut core)
    };
    let on = run(true);
    assert!(on.contains(&Action::Trigger(TriggerKind::TooFewConnections)));
    assert!(dials(&on).contains(&lan(40)));
    let off = run(false);
    assert!(!off
        .iter()
        .any(|a| matches!(a, Action::Trigger(TriggerKind::TooFewConnections))));
    assert!(
        !off.iter().any(|a| matches!(a, Action::CycleStarted { .. })),
        "{off:?}"
    );
}

#[test]
fn the_octez_policy_admits_one_random_extra_and_trims_back() {
    let mut config = tight();
    config.policy = Policy::Octez;
    let mut extra = 0;
    for seed in 0..20 {
        let mut core = NodeCore::new(config.clone(), PeerId::from_u64(1), seed);
        core.start(ms(0));
        fill_inbound(&mut core, 6, ms(0));
        let a = core.handle_inbound(ConnId(7), lan(7), hello(7), ms(1));
        if a == Admission::Accept {
            extra += 1;
            // octez's too-many trigger fires at max and trims back (uniformly) to max_target.
            assert!(core.connection_count() <= 6);
        } else {
            // octez refuses with 30 best + 20 random known points.
            assert!(!refused_points(a).is_empty());
        }
    }
    assert!(
        extra > 0 && extra < 20,
        "a random extra slot: {extra} of 20"
    );
}

#[test]
fn octez_swaps_exchange_one_connection_each() {
    let mut config = tight();
    config.policy = Policy::Octez;
    config.maintenance_idle_time = Some(Duration::from_secs(120));
    // a has peers b and c; a proposes to b a swap with c.
    let mut a = NodeCore::new(config.clone(), PeerId::from_u64(1), 1);
    let mut b = NodeCore::new(config.clone(), PeerId::from_u64(2), 2);
    a.start(ms(0));
    b.start(ms(0));
    assert_eq!(
        a.handle_inbound(
            ConnId(1),
            lan(2),
            Hello {
                peer: PeerId::from_u64(2),
                listen_port: lan(2).port()
            },
            ms(1)
        ),
        Admission::Accept
    );
    assert_eq!(
        a.handle_inbound(
            ConnId(2),
            lan(3),
            Hello {
                peer: PeerId::from_u64(3),
                listen_port: lan(3).port()
            },
            ms(1)
        ),
        Admission::Accept
    );
    assert_eq!(
        a.handle_inbound(
            ConnId(3),
            lan(4),
            Hello {
                peer: PeerId::from_u64(4),
                listen_port: lan(4).port()
            },
            ms(1)
        ),
        Admission::Accept
    );
    b.add_points(&[lan(1)], Source::Bootstrap, ms(0));
    drain(&mut b);
    drain(&mut a);
    // In range, a maintain() proposes a swap.
    a.maintain(ms(10));
    let req = drain(&mut a).into_iter().find_map(|x| match x {
        Action::SwapRequest { conn, point } => Some((conn, point)),
        _ => None,
    });
    let (to, proposed) = req.expect("a swap request in range");
    assert_ne!(a.point_of(to), Some(proposed));
    assert_eq!(a.stats().swaps, 1);
    // The peerkeeper policy ignores swaps.
    let mut ours = NodeCore::new(tight(), PeerId::from_u64(9), 9);
    ours.start(ms(0));
    ours.handle_inbound(
        ConnId(1),
        lan(1),
        Hello {
            peer: PeerId::from_u64(1),
            listen_port: lan(1).port(),
        },
        ms(1),
    );
    drain(&mut ours);
    ours.handle_swap_request(ConnId(1), lan(5), ms(2));
    assert!(drain(&mut ours).is_empty());
}

#[test]
fn one_seed_one_outcome() {
    let run = || {
        let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 42);
        let points: Vec<SocketAddr> = (1..=30).map(lan).collect();
        core.add_points(&points, Source::PeerSharing, ms(0));
        core.start(ms(0));
        let mut log = Vec::new();
        for t in 0..50u64 {
            for a in drain(&mut core) {
                if let Action::Dial(p) = &a {
                    let r = if t % 3 == 0 {
                        DialResult::Failed(DialFailure::Io)
                    } else {
                        DialResult::Connected {
                            conn: ConnId(t),
                            peer: PeerId::from_u64(5000 + t),
                        }
                    };
                    core.handle_dial_result(*p, r, ms(t * 100));
                }
                log.push(format!("{a:?}"));
            }
            if t % 7 == 0 {
                core.handle_closed(ConnId(t.saturating_sub(3)), ms(t * 100));
            }
            core.handle_timeout(ms(t * 100));
        }
        log
    };
    assert_eq!(run(), run());
}

#[test]
fn hearsay_is_not_passed_on_until_verified() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    core.start(ms(0));
    assert_eq!(
        core.handle_inbound(ConnId(1), lan(1), hello(1), ms(1)),
        Admission::Accept
    );
    assert_eq!(
        core.handle_inbound(ConnId(2), lan(2), hello(2), ms(1)),
        Admission::Accept
    );
    drain(&mut core);
    // Peer 1 tells us of a point nobody has verified; another dialer is refused later.
    let invented = lan(77);
    core.handle_points(ConnId(1), &[invented], ms(2));
    assert!(core.pool().get(&invented).is_some(), "we know of it");
    core.handle_points_asked(ConnId(2), ms(3));
    let answer: Vec<SocketAddr> = drain(&mut core)
        .into_iter()
        .find_map(|a| match a {
            Action::SendPoints { points, .. } => Some(points),
            _ => None,
        })
        .expect("answered");
    assert!(
        answer.contains(&lan(1)),
        "a connected peer is passed on: {answer:?}"
    );
    assert!(!answer.contains(&invented), "hearsay is not: {answer:?}");
    // Once it connects (verified), it is.
    assert_eq!(
        core.handle_inbound(ConnId(3), invented, hello(77), ms(4)),
        Admission::Accept
    );
    core.handle_points_asked(ConnId(2), ms(10_000));
    let answer: Vec<SocketAddr> = drain(&mut core)
        .into_iter()
        .find_map(|a| match a {
            Action::SendPoints { points, .. } => Some(points),
            _ => None,
        })
        .expect("answered");
    assert!(answer.contains(&invented), "{answer:?}");
}

#[test]
fn a_configured_point_proving_another_peer_id_is_a_failed_dial_not_a_violation() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 7);
    let seed = lan(2);
    assert!(core.expect_peer(seed, PeerId::from_u64(2)));
    core.add_points(&[seed], Source::Bootstrap, ms(0));
    core.start(ms(0));
    let dials = drain(&mut core);
    assert!(dials.contains(&Action::Dial(seed)), "{dials:?}");
    let v = core.handle_dial_result(
        seed,
        DialResult::Connected {
            conn: ConnId(1),
            peer: PeerId::from_u64(3),
        },
        ms(100),
    );
    assert!(matches!(v, DialVerdict::Drop(_)), "{v:?}");
    let s = core.stats();
    assert_eq!((s.dials.wrong_peer, s.dials.succeeded), (1, 0));
    assert!(s.dials.adds_up());
    assert_eq!(s.violations, 0);
    let p = core.pool().get(&seed).unwrap();
    assert_eq!(p.state, PointState::Disconnected, "not greylisted");
    assert!(p.next_dial > ms(100), "backed off as after a failed dial");
    assert_eq!(core.connection_count(), 0);
    core.check_invariants();
    // The expected id: kept.
    let t = p.next_dial;
    core.handle_timeout(t);
    assert!(drain(&mut core).contains(&Action::Dial(seed)));
    let v = core.handle_dial_result(
        seed,
        DialResult::Connected {
            conn: ConnId(2),
            peer: PeerId::from_u64(2),
        },
        t + Duration::from_millis(100),
    );
    assert_eq!(v, DialVerdict::Keep);
    assert_eq!(core.connection_count(), 1);
}

#[test]
fn an_inbound_impersonator_of_a_configured_point_is_refused_even_a_trusted_one_in_private_mode() {
    // A private node trusts one point, with its key (`--trusted KEY@HOST:PORT`).
    let trusted = lan(2);
    let config = Config {
        private_mode: true,
        trusted_points: vec![trusted],
        ..tight()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
    assert!(core.expect_peer(trusted, PeerId::from_u64(2)));
    core.start(ms(0));
    drain(&mut core);
    // Another key, from the trusted host and claiming its port: refused.
    let remote = SocketAddr::new(trusted.ip(), 40_000);
    let impostor = Hello {
        peer: PeerId::from_u64(66),
        listen_port: trusted.port(),
    };
    assert_eq!(
        core.handle_inbound(ConnId(1), remote, impostor, ms(10)),
        Admission::Refuse {
            reason: RefuseReason::BadAuth,
            points: vec![]
        }
    );
    assert_eq!(core.stats().admission.refused_wrong_peer, 1);
    assert_eq!(core.connection_count(), 0);
    // A stranger elsewhere: refused by private mode.
    assert!(matches!(
        core.handle_inbound(ConnId(2), lan(3), hello(3), ms(20)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    // The trusted peer itself, proving its key: admitted.
    let real = Hello {
        peer: PeerId::from_u64(2),
        listen_port: trusted.port(),
    };
    assert_eq!(
        core.handle_inbound(ConnId(3), remote, real, ms(30)),
        Admission::Accept
    );
    core.check_invariants();
}

#[test]
fn expected_peer_ids_are_bounded() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 7);
    let max = peerkeeper::core::MAX_EXPECTED_PEERS;
    for i in 0..max {
        let p = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 9732));
        assert!(core.expect_peer(p, PeerId::from_u64(i as u64)));
    }
    assert!(!core.expect_peer(lan(1), PeerId::from_u64(9)));
    assert_eq!(core.expected_peer(&lan(1)), None);
    // Changing one already expected is fine.
    let first = SocketAddr::from(([10, 1, 0, 0], 9732));
    assert!(core.expect_peer(first, PeerId::from_u64(5)));
    assert_eq!(core.expected_peer(&first), Some(PeerId::from_u64(5)));
}

#[test]
fn repeated_ipv6_offenders_greylist_their_whole_slash_64() {
    let mut core = NodeCore::new(tight(), PeerId::from_u64(1), 7);
    core.start(ms(0));
    drain(&mut core);
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    // One bad frame: nobody else in the prefix is refused.
    core.handle_violation(
        Offender::Remote("[2001:db8:0:7::1]:40000".parse().unwrap()),
        ms(10),
    );
    assert!(!core.pool().is_ip_greylisted(ip("2001:db8:0:7::2"), ms(20)));
    // Repeated abuse from several addresses of the prefix: the whole /64.
    core.handle_violation(
        Offender::Remote("[2001:db8:0:7::2]:40000".parse().unwrap()),
        ms(10),
    );
    core.handle_violation(
        Offender::Remote("[2001:db8:0:7::3]:40000".parse().unwrap()),
        ms(10),
    );
    let pool = core.pool();
    // The same /64: another address of the same host or customer.
    assert!(pool.is_ip_greylisted(ip("2001:db8:0:7::1"), ms(20)));
    assert!(pool.is_ip_greylisted(ip("2001:db8:0:7:ffff::9"), ms(20)));
    // Another /64, and IPv4 addresses: untouched.
    assert!(!pool.is_ip_greylisted(ip("2001:db8:0:8::1"), ms(20)));
    assert!(!pool.is_ip_greylisted(ip("192.0.2.1"), ms(20)));
    // An inbound handshake from the prefix is refused.
    let hello = Hello {
        peer: PeerId::from_u64(9),
        listen_port: 9732,
    };
    let remote: SocketAddr = "[2001:db8:0:7::abcd]:40000".parse().unwrap();
    assert!(matches!(
        core.handle_inbound(ConnId(1), remote, hello, ms(30)),
        Admission::Refuse {
            reason: RefuseReason::Greylisted,
            ..
        }
    ));
}

#[test]
fn dials_go_to_one_address_per_network_group_while_others_are_known() {
    // An attacker holds 30 addresses in one /16; three honest nodes are elsewhere.
    let config = Config {
        min_connections: 4,
        expected_connections: 4,
        max_connections: 8,
        max_concurrent_dials: 8,
        ..tight()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 7);
    let attacker: Vec<SocketAddr> = (1..=30)
        .map(|i| SocketAddr::from(([23, 1, 0, i], 9732)))
        .collect();
    let honest = [
        addr("45.2.0.7:9732"),
        addr("77.3.0.9:9732"),
        addr("88.4.1.1:9732"),
    ];
    core.add_points(&attacker, Source::Bootstrap, ms(0));
    core.add_points(&honest, Source::Bootstrap, ms(0));
    core.start(ms(0));
    let first = dials(&drain(&mut core));
    assert_eq!(first.len(), 4, "{first:?}");
    // Every honest group, and the attacker's range once.
    for h in honest {
        assert!(first.contains(&h), "{h} not dialed: {first:?}");
    }
    assert_eq!(first.iter().filter(|a| attacker.contains(a)).count(), 1);
}

/// The seed that starts last (issue 17's CI failure): the first node to reach it asks for
/// points when the seed knows nobody, and got an empty answer; it then waited
/// `peer_ask_interval` (30 s) with one connection before asking again (`simulate --nodes
/// 10 --min 2 --expected 4 --max 6 --seed-last 3s --seed 597` converged 76 s after the
/// seed started). Now the seed owes it an answer and sends the first points it can share,
/// once, as soon as it has them; the asker takes them as that answer.
#[test]
fn a_node_with_nothing_to_share_sends_the_first_points_it_learns_to_whoever_asked() {
    let mut seed = NodeCore::new(tight(), PeerId::from_u64(1), 3);
    seed.start(ms(0));
    drain(&mut seed);
    assert_eq!(
        seed.handle_inbound(ConnId(1), lan(1), hello(1), ms(1)),
        Admission::Accept
    );
    drain(&mut seed);
    seed.handle_points_asked(ConnId(1), ms(2));
    let sent = |actions: Vec<Action>| -> Vec<(ConnId, Vec<SocketAddr>)> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::SendPoints { conn, points } => Some((conn, points)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        sent(drain(&mut seed)),
        vec![(ConnId(1), vec![])],
        "nothing to share yet"
    );
    // A second node connects: its point goes to the first, unasked, once.
    assert_eq!(
        seed.handle_inbound(ConnId(2), lan(2), hello(2), ms(3)),
        Admission::Accept
    );
    assert_eq!(sent(drain(&mut seed)), vec![(ConnId(1), vec![lan(2)])]);
    assert_eq!(
        seed.handle_inbound(ConnId(3), lan(3), hello(3), ms(4)),
        Admission::Accept
    );
    assert_eq!(sent(drain(&mut seed)), vec![], "the debt is paid once");
    assert_eq!(seed.stats().sharing.deferred_answers, 1);

    // The asker's side: the empty answer leaves its request open, so the late answer is
    // taken as the answer (not rate-limited as an advertisement), and its points dialed.
    let mut asker = NodeCore::new(tight(), PeerId::from_u64(1001), 4);
    asker.add_points(&[lan(100)], Source::Bootstrap, ms(0));
    asker.start(ms(0));
    drain(&mut asker);
    assert_eq!(
        asker.handle_dial_result(
            lan(100),
            DialResult::Connected {
                conn: ConnId(7),
                peer: PeerId::from_u64(100),
            },
            ms(1),
        ),
        DialVerdict::Keep
    );
    let asked = drain(&mut asker)
        .iter()
        .any(|a| matches!(a, Action::AskForPoints { conn } if *conn == ConnId(7)));
    assert!(asked, "a node short of peers asks its first peer");
    asker.handle_points(ConnId(7), &[], ms(2));
    asker.handle_points(ConnId(7), &[lan(5)], ms(3));
    assert_eq!(
        dials(&drain(&mut asker)),
        vec![lan(5)],
        "the late answer's point is dialed"
    );
}
