//! Peer sets by epoch in the node core (commonware's `track`/`overwrite`), input by
//! input with explicit times: ids strictly increase (a stale id is an error that changes
//! nothing), the highest id is active, primaries are dialed and secondaries are not (but
//! are admitted), a peer leaving every kept set is disconnected (`Untracked`) only then,
//! `overwrite` severs the old connection (`AddressChanged`) and dials the new address,
//! peer-sets-only mode refuses strangers and a tracked peer from another IP, primaries
//! are never trimmed and get in at `max_connections`; and a property test over random
//! sequences of sets, overwrites, connections and closes.

#[path = "common/actions.rs"]
mod actions;

use actions::{dials, drain};
use peerkeeper::core::{
    Action, Admission, DialResult, DialVerdict, Hello, Input, NodeCore, PeerSetError, RefuseReason,
    Reply,
};
use peerkeeper::pool::{CloseReason, ConnId, PeerId};
use peerkeeper::{Config, PeerSetConfig, Time};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

/// Validator `i`'s address: its own IP.
fn v(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, i], 9000))
}

fn pid(i: u8) -> PeerId {
    PeerId::from_u64(100 + u64::from(i))
}

fn val(i: u8) -> (PeerId, SocketAddr) {
    (pid(i), v(i))
}

fn validators(config: Config) -> Config {
    Config {
        min_connections: 0,
        expected_connections: 0,
        max_connections: 20,
        maintenance_idle_time: None,
        peer_sets: PeerSetConfig {
            only: true,
            kept_sets: 2,
            ..config.peer_sets
        },
        ..config
    }
}

fn core(config: Config) -> NodeCore {
    let mut c = NodeCore::new(config, pid(0), 7);
    c.start(ms(0));
    drain(&mut c);
    c
}

fn closes(actions: &[Action]) -> Vec<(ConnId, CloseReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((*conn, *reason)),
            _ => None,
        })
        .collect()
}

/// Completes our dial to validator `i` as connection `conn`.
fn connect(core: &mut NodeCore, i: u8, conn: u64, at: Time) -> DialVerdict {
    core.handle_dial_result(
        v(i),
        DialResult::Connected {
            conn: ConnId(conn),
            peer: pid(i),
        },
        at,
    )
}

/// Validator `i` dials us from its own IP.
fn inbound(core: &mut NodeCore, i: u8, conn: u64, at: Time) -> Admission {
    let remote = SocketAddr::new(v(i).ip(), 40_000 + u16::from(i));
    core.handle_inbound(
        ConnId(conn),
        remote,
        Hello {
            peer: pid(i),
            listen_port: v(i).port(),
        },
        at,
    )
}

#[test]
fn primaries_are_dialed_secondaries_are_not_and_ourselves_never() {
    let mut c = core(validators(Config::default()));
    let changes = c
        .handle_track(1, vec![val(0), val(1), val(2)], vec![val(3)], ms(10))
        .unwrap();
    assert_eq!(changes.added, vec![pid(0), pid(1), pid(2), pid(3)]);
    let mut d = dials(&drain(&mut c));
    d.sort();
    assert_eq!(
        d,
        vec![v(1), v(2)],
        "the primaries but us, not the secondary"
    );
    assert_eq!(connect(&mut c, 1, 1, ms(20)), DialVerdict::Keep);
    // The secondary is admitted inbound.
    assert_eq!(inbound(&mut c, 3, 2, ms(30)), Admission::Accept);
    assert_eq!(c.connection_count(), 2);
    c.check_invariants();
}

#[test]
fn ids_strictly_increase_and_a_stale_id_changes_nothing() {
    let mut c = core(validators(Config::default()));
    c.handle_track(5, vec![val(1)], vec![], ms(0)).unwrap();
    drain(&mut c);
    for stale in [5, 4, 0] {
        let r = c.apply(
            ms(1),
            Input::Track {
                id: stale,
                primary: vec![val(2)],
                secondary: vec![],
            },
        );
        assert_eq!(
            r,
            Reply::PeerSets(Err(PeerSetError::StaleId {
                id: stale,
                latest: 5
            }))
        );
    }
    assert!(
        dials(&drain(&mut c)).is_empty(),
        "nothing tracked, nothing dialed"
    );
    assert!(!c.peer_sets().is_tracked(pid(2)));
    assert_eq!(c.peer_sets().active().map(|s| s.id), Some(5));
    c.handle_track(6, vec![val(2)], vec![], ms(2)).unwrap();
    assert_eq!(c.peer_sets().active().map(|s| s.id), Some(6));
    c.check_invariants();
}

#[test]
fn a_dropped_peer_is_disconnected_only_when_it_leaves_every_kept_set() {
    // Two sets kept: epoch 2 drops validator 2, which stays while epoch 1 is kept.
    let mut c = core(validators(Config::default()));
    c.handle_track(1, vec![val(1), val(2)], vec![], ms(0))
        .unwrap();
    drain(&mut c);
    connect(&mut c, 1, 1, ms(10));
    connect(&mut c, 2, 2, ms(10));
    drain(&mut c);
    c.handle_track(2, vec![val(1)], vec![], ms(100)).unwrap();
    assert!(closes(&drain(&mut c)).is_empty(), "epoch 1 is still kept");
    assert!(c.peer_sets().is_primary(pid(2)));
    let changes = c.handle_track(3, vec![val(1)], vec![], ms(200)).unwrap();
    assert_eq!(changes.untracked, vec![val(2)]);
    assert_eq!(
        closes(&drain(&mut c)),
        vec![(ConnId(2), CloseReason::Untracked)]
    );
    assert_eq!(c.stats().closed.untracked, 1);
    // And it is not admitted again.
    assert!(matches!(
        inbound(&mut c, 2, 3, ms(300)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    c.check_invariants();
}

#[test]
fn overwrite_severs_the_old_connection_and_dials_the_new_address() {
    let mut c = core(validators(Config::default()));
    c.handle_track(1, vec![val(1)], vec![], ms(0)).unwrap();
    drain(&mut c);
    connect(&mut c, 1, 1, ms(10));
    drain(&mut c);
    let moved = SocketAddr::from(([10, 0, 2, 1], 9100));
    let changes = c
        .handle_overwrite(vec![(pid(1), moved), (pid(9), v(9))], ms(100))
        .unwrap();
    assert_eq!(changes.readdressed.len(), 1);
    assert_eq!(changes.ignored, 1, "an untracked peer's address is ignored");
    let actions = drain(&mut c);
    assert_eq!(
        closes(&actions),
        vec![(ConnId(1), CloseReason::AddressChanged)]
    );
    assert_eq!(dials(&actions), vec![moved]);
    assert!(
        c.pool().get(&v(1)).is_none(),
        "the old address is forgotten"
    );
    // The allowed inbound address followed: from the old IP it is refused.
    assert!(matches!(
        inbound(&mut c, 1, 2, ms(110)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    assert_eq!(
        c.handle_dial_result(
            moved,
            DialResult::Connected {
                conn: ConnId(3),
                peer: pid(1)
            },
            ms(120)
        ),
        DialVerdict::Keep
    );
    c.check_invariants();
}

#[test]
fn a_stale_dial_to_an_old_address_is_dropped() {
    let mut c = core(validators(Config::default()));
    c.handle_track(1, vec![val(1)], vec![], ms(0)).unwrap();
    assert_eq!(dials(&drain(&mut c)), vec![v(1)]);
    let moved = SocketAddr::from(([10, 0, 2, 1], 9100));
    c.handle_overwrite(vec![(pid(1), moved)], ms(5)).unwrap();
    drain(&mut c);
    assert_eq!(
        connect(&mut c, 1, 1, ms(10)),
        DialVerdict::Drop(CloseReason::AddressChanged)
    );
    c.check_invariants();
}

#[test]
fn peer_sets_only_refuses_strangers_and_other_ips() {
    let mut c = core(validators(Config::default()));
    c.handle_track(1, vec![val(1)], vec![val(2)], ms(0))
        .unwrap();
    drain(&mut c);
    // A stranger.
    assert!(matches!(
        inbound(&mut c, 7, 1, ms(10)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    // A tracked id from another IP.
    let a = c.handle_inbound(
        ConnId(2),
        SocketAddr::from(([10, 9, 9, 9], 50_000)),
        Hello {
            peer: pid(2),
            listen_port: 9000,
        },
        ms(20),
    );
    assert!(matches!(a, Admission::Refuse { .. }));
    assert_eq!(c.stats().admission.refused_untracked, 2);
    assert_eq!(inbound(&mut c, 2, 3, ms(30)), Admission::Accept);
    c.check_invariants();
}

#[test]
fn without_peer_sets_only_a_stranger_is_admitted() {
    let mut config = validators(Config::default());
    config.peer_sets.only = false;
    let mut c = core(config);
    c.handle_track(1, vec![val(1)], vec![], ms(0)).unwrap();
    drain(&mut c);
    assert_eq!(inbound(&mut c, 7, 1, ms(10)), Admission::Accept);
}

#[test]
fn private_mode_admits_trusted_points_and_tracked_peers_only() {
    let mut config = validators(Config::default());
    config.peer_sets.only = false;
    config.private_mode = true;
    config.trusted_points = vec![v(8)];
    let mut c = core(config);
    c.handle_track(1, vec![], vec![val(2)], ms(0)).unwrap();
    drain(&mut c);
    assert!(matches!(
        inbound(&mut c, 7, 1, ms(10)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    assert_eq!(inbound(&mut c, 2, 2, ms(20)), Admission::Accept);
    assert_eq!(inbound(&mut c, 8, 3, ms(30)), Admission::Accept);
    assert_eq!(c.stats().admission.refused_private, 1);
}

#[test]
fn primaries_are_never_trimmed_and_get_in_when_full() {
    // Mixed mode, max 4: a primary arriving at max closes a stranger; a trim spares it.
    let config = Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 4,
        make_room_interval: None,
        maintenance_idle_time: None,
        peer_sets: PeerSetConfig {
            kept_sets: 2,
            ..PeerSetConfig::default()
        },
        ..Config::default()
    };
    let mut c = core(config);
    for i in 10..14 {
        assert_eq!(inbound(&mut c, i, u64::from(i), ms(10)), Admission::Accept);
    }
    drain(&mut c);
    assert_eq!(c.connection_count(), 4);
    c.handle_track(1, vec![val(1), val(2)], vec![], ms(100))
        .unwrap();
    drain(&mut c);
    assert_eq!(inbound(&mut c, 1, 1, ms(20_000)), Admission::Accept);
    let a = drain(&mut c);
    assert_eq!(closes(&a).len(), 1, "one stranger made room: {a:?}");
    assert_eq!(c.connection_count(), 4);
    assert_eq!(inbound(&mut c, 2, 2, ms(20_001)), Admission::Accept);
    drain(&mut c);
    assert!(c.pool().connected_point_of(pid(1)).is_some());
    assert!(c.pool().connected_point_of(pid(2)).is_some());
    c.check_invariants();
}

#[test]
fn a_trim_never_closes_a_primary() {
    // 1 / 1 / 7: max_threshold 5, max_target 3.
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 7,
        maintenance_idle_time: None,
        ..Config::default()
    };
    let mut c = core(config);
    c.handle_track(1, vec![val(1), val(2), val(3)], vec![], ms(0))
        .unwrap();
    drain(&mut c);
    // The primaries dial in first: old inbound connections, the first a trim would cut.
    for i in 1..=3 {
        assert_eq!(inbound(&mut c, i, u64::from(i), ms(10)), Admission::Accept);
        // Our dial to it meets the connection it made.
        c.handle_dial_result(
            v(i),
            DialResult::Refused {
                reason: RefuseReason::AlreadyConnected,
                points: vec![],
            },
            ms(11),
        );
    }
    drain(&mut c);
    let mut closed = Vec::new();
    for i in 10..13 {
        inbound(&mut c, i, u64::from(i), ms(20_000));
        closed.extend(closes(&drain(&mut c)));
    }
    // Six connections, above max_threshold: trimmed to max_target, strangers only.
    assert_eq!(c.connection_count(), 3, "{closed:?}");
    assert_eq!(closed.len(), 3);
    assert!(closed.iter().all(|(k, _)| k.0 >= 10), "{closed:?}");
    for i in 1..=3 {
        assert!(c.pool().connected_point_of(pid(i)).is_some());
    }
    c.check_invariants();
}

#[test]
fn a_primary_that_fails_is_redialed_after_its_backoff() {
    let mut c = core(validators(Config::default()));
    c.handle_track(1, vec![val(1)], vec![], ms(0)).unwrap();
    assert_eq!(dials(&drain(&mut c)), vec![v(1)]);
    c.handle_dial_result(
        v(1),
        DialResult::Failed(peerkeeper::core::DialFailure::Io),
        ms(10),
    );
    assert!(dials(&drain(&mut c)).is_empty(), "backed off");
    let due = c.next_deadline().expect("a redial is scheduled");
    assert!(due > ms(10));
    c.handle_timeout(due);
    assert_eq!(dials(&drain(&mut c)), vec![v(1)]);
    c.check_invariants();
}

#[test]
fn a_primary_target_bounds_the_primaries_dialed() {
    let mut config = validators(Config::default());
    config.peer_sets.primary_target = Some(2);
    let mut c = core(config);
    c.handle_track(1, (1..=5).map(val).collect(), vec![], ms(0))
        .unwrap();
    assert_eq!(dials(&drain(&mut c)).len(), 2);
}

#[test]
fn bounds_are_errors_not_panics() {
    let mut config = validators(Config::default());
    config.peer_sets.max_set_size = 3;
    config.peer_sets.max_overwrite = 2;
    let mut c = core(config);
    assert!(matches!(
        c.handle_track(1, (1..=4).map(val).collect(), vec![], ms(0)),
        Err(PeerSetError::TooLarge { size: 4, max: 3 })
    ));
    c.handle_track(1, vec![val(1)], vec![], ms(0)).unwrap();
    assert!(matches!(
        c.handle_overwrite((1..=3).map(val).collect(), ms(1)),
        Err(PeerSetError::TooManyAddresses { size: 3, max: 2 })
    ));
    c.shutdown(ms(2));
    assert_eq!(
        c.handle_track(2, vec![], vec![], ms(3)),
        Err(PeerSetError::Stopped)
    );
}

#[test]
fn config_validation_names_the_peer_set_fields() {
    for (config, field) in [
        (
            PeerSetConfig {
                kept_sets: 0,
                ..PeerSetConfig::default()
            },
            "peer_sets.kept_sets",
        ),
        (
            PeerSetConfig {
                max_set_size: 0,
                ..PeerSetConfig::default()
            },
            "peer_sets.max_set_size",
        ),
        (
            PeerSetConfig {
                primary_target: Some(0),
                ..PeerSetConfig::default()
            },
            "peer_sets.primary_target",
        ),
    ] {
        let c = Config {
            peer_sets: config,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    let c = Config::from_toml("[peer_sets]\nonly = true\nkept_sets = 3\n").unwrap();
    assert!(c.peer_sets.only && c.peer_sets.kept_sets == 3);
}

#[test]
fn a_trace_with_peer_sets_replays_to_the_same_actions() {
    let config = validators(Config::default());
    let inputs = vec![
        (ms(0), Input::Start),
        (
            ms(1),
            Input::Track {
                id: 1,
                primary: vec![val(1), val(2)],
                secondary: vec![val(3)],
            },
        ),
        (
            ms(2),
            Input::Overwrite {
                addresses: vec![(pid(2), v(22))],
            },
        ),
        (
            ms(3),
            Input::Track {
                id: 1,
                primary: vec![],
                secondary: vec![],
            },
        ),
    ];
    let run = |inputs: &[(Time, Input)]| {
        let mut c = NodeCore::new(config.clone(), pid(0), 7);
        let mut out = Vec::new();
        for (at, i) in inputs {
            out.push(format!("{:?}", c.apply(*at, i.clone())));
            out.extend(drain(&mut c).iter().map(|a| format!("{a:?}")));
        }
        out
    };
    // Through JSON, as a trace carries them.
    let json: Vec<String> = inputs
        .iter()
        .map(|(_, i)| serde_json::to_string(i).unwrap())
        .collect();
    let back: Vec<(Time, Input)> = inputs
        .iter()
        .zip(&json)
        .map(|((at, _), j)| (*at, serde_json::from_str(j).unwrap()))
        .collect();
    assert_eq!(run(&inputs), run(&back));
}

// ----- properties ----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Track {
        skip: u8,
        primary: Vec<(u8, u8)>,
        secondary: Vec<(u8, u8)>,
    },
    Overwrite(Vec<(u8, u8)>),
    Dial(u8),
    Inbound(u8, u8),
    Close(u8),
    Timeout(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = (0u8..12, 0u8..3);
    prop_oneof![
        (
            0u8..3,
            prop::collection::vec(peer.clone(), 0..6),
            prop::collection::vec(peer.clone(), 0..6)
        )
            .prop_map(|(skip, primary, secondary)| Op::Track {
                skip,
                primary,
                secondary
            }),
        prop::collection::vec(peer, 0..4).prop_map(Op::Overwrite),
        (0u8..12).prop_map(Op::Dial),
        (0u8..14, 0u8..3).prop_map(|(p, a)| Op::Inbound(p, a)),
        (0u8..12).prop_map(Op::Close),
        (0u16..5000).prop_map(Op::Timeout),
    ]
}

/// Peer `p` at its address number `a` (three IPs per peer).
fn at(p: u8, a: u8) -> SocketAddr {
    SocketAddr::from(([10, 1 + a, 0, p], 9000))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the sequence: the core's tables agree (peer sets, protection, dials); a
    /// peer-sets-only node is connected to tracked peers only, each at its tracked
    /// address or from its tracked IP; every primary not connected is being dialed or
    /// waits for a deadline; a stale id is refused and changes nothing; the kept sets are
    /// the last `kept_sets` accepted, and a peer is tracked iff it is in one of them.
    #[test]
    fn peer_set_rules_hold(ops in prop::collection::vec(op(), 1..60), kept in 1usize..4) {
        let mut config = validators(Config::default());
        config.peer_sets.kept_sets = kept;
        config.max_concurrent_dials = 32;
        let mut c = NodeCore::new(config, PeerId::from_u64(99), 3);
        let mut now = ms(0);
        c.start(now);
        let mut next_conn = 0;
        let mut accepted: Vec<(u64, BTreeSet<u8>)> = Vec::new();
        let mut latest: Option<u64> = None;
        for op in ops {
            now = now + std::time::Duration::from_millis(10);
            match op {
                Op::Track { skip, primary, secondary } => {
                    let id = match (latest, skip) {
                        (Some(l), 0) => l,          // repeated: stale
                        (Some(l), s) => l + u64::from(s),
                        (None, s) => u64::from(s),
                    };
                    // One address per peer per call (the first given wins).
                    let mut seen = std::collections::BTreeMap::new();
                    let mut list = |v: Vec<(u8, u8)>| -> Vec<(PeerId, SocketAddr)> {
                        v.into_iter().map(|(p, a)| {
                            let a = *seen.entry(p).or_insert(a);
                            (PeerId::from_u64(u64::from(p)), at(p, a))
                        }).collect()
                    };
                    let (pr, se) = (list(primary), list(secondary));
                    let peers: BTreeSet<u8> = pr.iter().chain(&se).map(|(p, _)| p.as_bytes()[7]).collect();
                    let before = c.peer_sets().tracked().count();
                    match c.handle_track(id, pr, se, now) {
                        Ok(_) => {
                            prop_assert!(latest.is_none_or(|l| id > l));
                            latest = Some(id);
                            accepted.push((id, peers));
                        }
                        Err(PeerSetError::StaleId { .. }) => {
                            prop_assert!(latest.is_some_and(|l| id <= l));
                            prop_assert_eq!(before, c.peer_sets().tracked().count());
                        }
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                Op::Overwrite(v) => {
                    let mut seen = std::collections::BTreeMap::new();
                    let v = v.into_iter().map(|(p, a)| {
                        let a = *seen.entry(p).or_insert(a);
                        (PeerId::from_u64(u64::from(p)), at(p, a))
                    }).collect();
                    c.handle_overwrite(v, now).unwrap();
                }
                Op::Dial(i) => {
                    // Complete a dial in flight, if any, to the peer at that address.
                    let dialing: Vec<SocketAddr> = c.pool().dialing().collect();
                    if let Some(p) = dialing.get(usize::from(i) % dialing.len().max(1)) {
                        next_conn += 1;
                        let peer = PeerId::from_u64(u64::from(p.ip().to_string().rsplit('.').next().unwrap().parse::<u8>().unwrap()));
                        c.handle_dial_result(*p, DialResult::Connected { conn: ConnId(next_conn), peer }, now);
                    }
                }
                Op::Inbound(p, a) => {
                    next_conn += 1;
                    let point = at(p, a);
                    c.handle_inbound(ConnId(next_conn), SocketAddr::new(point.ip(), 50_000),
                        Hello { peer: PeerId::from_u64(u64::from(p)), listen_port: 9000 }, now);
                }
                Op::Close(i) => {
                    let conns: Vec<ConnId> = c.pool().connections().map(|(_, k)| k.id).collect();
                    if let Some(k) = conns.get(usize::from(i) % conns.len().max(1)) {
                        c.handle_closed(*k, now);
                    }
                }
                Op::Timeout(d) => {
                    now = now + std::time::Duration::from_millis(u64::from(d));
                    c.handle_timeout(now);
                }
            }
            drain(&mut c);
            c.check_invariants();
            // The kept sets are the last `kept` accepted.
            let kept_ids: Vec<u64> = c.peer_sets().sets().map(|s| s.id).collect();
            let want: Vec<u64> = accepted.iter().rev().take(kept).rev().map(|(i, _)| *i).collect();
            prop_assert_eq!(&kept_ids, &want);
            let tracked: BTreeSet<u8> = accepted.iter().rev().take(kept)
                .flat_map(|(_, s)| s.iter().copied()).collect();
            let now_tracked: BTreeSet<u8> = c.peer_sets().tracked().map(|(p, _)| p.as_bytes()[7]).collect();
            prop_assert_eq!(&now_tracked, &tracked);
            for (point, conn) in c.pool().connections() {
                let t = c.peer_sets().get(conn.peer);
                prop_assert!(t.is_some(), "connected to untracked {}", conn.peer);
                prop_assert_eq!(t.unwrap().address.ip(), point.ip());
            }
            for (peer, addr) in c.peer_sets().primaries() {
                let connected = c.pool().connected_point_of(peer).is_some();
                let dialing = c.pool().get(&addr).is_some_and(|p| p.dialing);
                prop_assert!(connected || dialing || c.next_deadline().is_some(),
                    "primary {} neither connected, dialed nor scheduled", peer);
            }
        }
    }
}
