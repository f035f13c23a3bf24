//! Kinds and targets, inbound and outbound budgets, private mode (issue 9, items 1 and 3),
//! at the level of the pure planner and the node core: floors are dialed first and kept,
//! weights share the rest, caps hold, trims cut the kind furthest over its share and never
//! a trusted or protected peer, `validate()` names the field of targets that cannot add
//! up, an inbound flood never takes the place of the peers we dialed, and a private node
//! admits only trusted (or admitted) peers and shares nothing.

#[path = "common/actions.rs"]
mod actions;

use actions::drain;
use peerkeeper::config::{KindTarget, KindTargets};
use peerkeeper::core::{Action, Admission, Hello, NodeCore, RefuseReason};
use peerkeeper::maintenance::{floors_short, plan, top_up_dials, trim_for};
use peerkeeper::pool::{CloseReason, ConnId, Direction, PeerId, Pool, Source};
use peerkeeper::{Config, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

/// A point per kind: 10.<kind>.0.<i>:9000.
fn pt(kind: Source, i: u8) -> SocketAddr {
    SocketAddr::from(([10, kind.rank() + 1, 0, i], 9000))
}

/// 4 / 8 / 12: min_threshold 5, min_target 6, max_target 10, max_threshold 11.
fn base() -> Config {
    Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        max_concurrent_dials: 12,
        maintenance_idle_time: None,
        ..Config::default()
    }
}

fn pool_with(config: &Config, kinds: &[(Source, u8)]) -> Pool {
    let mut pool = Pool::new(config);
    for (k, n) in kinds {
        for i in 1..=*n {
            pool.add_point(pt(*k, i), *k, Time::ZERO);
        }
    }
    pool.advance(Time::ZERO);
    pool
}

fn count_kind(pool: &Pool, dials: &[SocketAddr], k: Source) -> usize {
    dials.iter().filter(|a| pool.kind_of(a) == k).count()
}

/// Opens connections to `n` points of kind `k` (already in the pool), numbering the
/// connections and peers from `from`.
fn connect(pool: &mut Pool, k: Source, n: u8, dir: Direction, from: u64) {
    for i in 1..=n {
        let id = from + u64::from(i);
        pool.connection_opened(ConnId(id), pt(k, i), PeerId::from_u64(id), dir, Time::ZERO)
            .unwrap();
    }
}

#[test]
fn the_kind_of_a_point_is_its_best_source() {
    let config = base();
    let mut pool = Pool::new(&config);
    let a = pt(Source::Incoming, 1);
    pool.add_point(a, Source::Incoming, ms(0));
    assert_eq!(pool.kind_of(&a), Source::Incoming);
    pool.add_point(a, Source::PeerSharing, ms(1));
    assert_eq!(pool.kind_of(&a), Source::PeerSharing);
    pool.add_point(a, Source::External, ms(2));
    assert_eq!(pool.kind_of(&a), Source::External);
    pool.add_point(a, Source::Bootstrap, ms(3));
    assert_eq!(pool.kind_of(&a), Source::Bootstrap);
    pool.add_point(a, Source::Trusted, ms(4));
    assert_eq!(pool.kind_of(&a), Source::Trusted);
}

#[test]
fn default_targets_are_the_kind_blind_planner() {
    let config = base();
    assert!(config.targets.is_neutral());
    let pool = pool_with(
        &config,
        &[
            (Source::PeerSharing, 20),
            (Source::External, 5),
            (Source::Incoming, 5),
        ],
    );
    let dials = top_up_dials(&pool, &config, ms(0));
    let best: Vec<SocketAddr> = pool.candidates(false).take(6).collect();
    assert_eq!(
        dials, best,
        "the best min_target candidates, whatever their kind"
    );
}

#[test]
fn floors_are_dialed_first_even_when_worse_candidates() {
    let mut config = base();
    config.targets.external.floor = 3;
    config.validate().unwrap();
    // Many peer-shared candidates, three external ones.
    let pool = pool_with(&config, &[(Source::PeerSharing, 30), (Source::External, 3)]);
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 6);
    assert_eq!(count_kind(&pool, &dials, Source::External), 3);
    // With a concurrency of 2 the floor still goes first.
    config.max_concurrent_dials = 2;
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(count_kind(&pool, &dials, Source::External), 2);
}

#[test]
fn weights_share_the_rest_and_a_kind_without_candidates_spills() {
    let mut config = base();
    config.targets.external.weight = 1;
    config.targets.peer_sharing.weight = 2;
    config.validate().unwrap();
    // min_target 6: external 2, peer-shared 4.
    assert_eq!(
        config.targets.quotas(6)[Source::External.index()],
        2,
        "{:?}",
        config.targets.quotas(6)
    );
    let pool = pool_with(
        &config,
        &[
            (Source::PeerSharing, 20),
            (Source::External, 20),
            (Source::Incoming, 20),
        ],
    );
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 6);
    assert_eq!(count_kind(&pool, &dials, Source::External), 2);
    assert_eq!(count_kind(&pool, &dials, Source::PeerSharing), 4);
    assert_eq!(count_kind(&pool, &dials, Source::Incoming), 0);
    // Only one external candidate: its share spills to the others.
    let pool = pool_with(
        &config,
        &[
            (Source::PeerSharing, 20),
            (Source::External, 1),
            (Source::Incoming, 20),
        ],
    );
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 6);
    assert_eq!(count_kind(&pool, &dials, Source::External), 1);
}

#[test]
fn a_cap_is_never_exceeded_by_a_top_up() {
    let mut config = base();
    config.targets.peer_sharing.cap = Some(2);
    config.validate().unwrap();
    let pool = pool_with(
        &config,
        &[(Source::PeerSharing, 20), (Source::Incoming, 20)],
    );
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 6);
    assert_eq!(count_kind(&pool, &dials, Source::PeerSharing), 2);
    // Connections of the kind count, in either direction.
    let mut pool = pool;
    connect(&mut pool, Source::PeerSharing, 2, Direction::Inbound, 0);
    pool.advance(ms(0));
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(count_kind(&pool, &dials, Source::PeerSharing), 0);
    assert_eq!(dials.len(), 4);
}

#[test]
fn a_floor_is_dialed_for_while_in_range_within_the_outbound_budget() {
    let mut config = base();
    config.targets.external.floor = 2;
    config.validate().unwrap();
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 8), (Source::External, 4)]);
    // In range with peer-shared connections only (6 = min_target, half inbound).
    connect(&mut pool, Source::PeerSharing, 3, Direction::Outbound, 0);
    for i in 4..=6u8 {
        pool.connection_opened(
            ConnId(u64::from(i)),
            pt(Source::PeerSharing, i),
            PeerId::from_u64(u64::from(i)),
            Direction::Inbound,
            ms(0),
        )
        .unwrap();
    }
    pool.advance(ms(0));
    assert!(floors_short(&pool, &config));
    let p = plan(&pool, &config, ms(0), &mut StdRng::seed_from_u64(1));
    assert_eq!(p.dial.len(), 2, "exactly the floor's shortfall: {p:?}");
    assert_eq!(count_kind(&pool, &p.dial, Source::External), 2);
    assert!(!p.ask_for_points);
    // With the outbound budget spent, no floor dial.
    config.max_outbound = Some(6);
    connect(&mut pool, Source::External, 0, Direction::Outbound, 100);
    let mut full = pool.clone();
    for i in 7..=8u8 {
        full.connection_opened(
            ConnId(u64::from(i)),
            pt(Source::PeerSharing, i),
            PeerId::from_u64(u64::from(i)),
            Direction::Outbound,
            ms(0),
        )
        .unwrap();
    }
    // 5 outbound + 3 inbound = 8 connections; budget 6 leaves room for 1.
    full.advance(ms(0));
    let dials = top_up_dials(&full, &config, ms(0));
    assert_eq!(dials.len(), 1);
    assert_eq!(count_kind(&full, &dials, Source::External), 1);
}

#[test]
fn a_trim_cuts_the_kind_furthest_over_its_share_and_never_below_a_floor() {
    let mut config = base();
    // Every connection here is outbound: no outbound floor, which a trim never cuts below
    // either (tests/eviction.rs).
    config.min_outbound = Some(0);
    config.targets.external.floor = 2;
    config.targets.external.weight = 1;
    config.targets.peer_sharing.weight = 1;
    config.trusted_points = vec![pt(Source::Trusted, 1)];
    config.validate().unwrap();
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 9), (Source::External, 3)]);
    // 13 connections: 1 trusted, 3 external, 9 peer-shared. Quotas of max_target (10):
    // external 2 + 4 = 6, peer-shared 4.
    connect(&mut pool, Source::Trusted, 1, Direction::Outbound, 0);
    connect(&mut pool, Source::External, 3, Direction::Outbound, 10);
    connect(&mut pool, Source::PeerSharing, 9, Direction::Outbound, 20);
    let mut rng = StdRng::seed_from_u64(3);
    let cut = trim_for(&pool, &config, 3, ms(0), |_, _| true, &mut rng);
    assert_eq!(cut.len(), 3);
    assert_eq!(count_kind(&pool, &cut, Source::PeerSharing), 3);
    // Asked for more than the untrusted connections above the floors: the trusted one and
    // the external floor stay.
    let cut = trim_for(&pool, &config, 13, ms(0), |_, _| true, &mut rng);
    assert_eq!(cut.len(), 10, "9 peer-shared + 1 external above the floor");
    assert!(!cut.contains(&pt(Source::Trusted, 1)));
    assert_eq!(count_kind(&pool, &cut, Source::External), 1);
}

#[test]
fn a_kind_over_its_cap_is_trimmed_first() {
    let mut config = base();
    config.targets.incoming.cap = Some(1);
    config.targets.peer_sharing.weight = 1;
    config.validate().unwrap();
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 10), (Source::Incoming, 3)]);
    connect(&mut pool, Source::PeerSharing, 10, Direction::Outbound, 0);
    connect(&mut pool, Source::Incoming, 3, Direction::Inbound, 100);
    let cut = trim_for(
        &pool,
        &config,
        2,
        ms(0),
        |_, _| true,
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(count_kind(&pool, &cut, Source::Incoming), 2, "{cut:?}");
}

#[test]
fn a_protected_peer_is_never_trimmed() {
    for targets in [KindTargets::default(), {
        let mut t = KindTargets::default();
        t.peer_sharing.weight = 1;
        t
    }] {
        let config = Config { targets, ..base() };
        let mut pool = pool_with(&config, &[(Source::PeerSharing, 6)]);
        connect(&mut pool, Source::PeerSharing, 6, Direction::Inbound, 0);
        for i in 1..=3 {
            assert!(pool.protect(pt(Source::PeerSharing, i), true));
        }
        let cut = trim_for(
            &pool,
            &config,
            6,
            ms(0),
            |_, _| true,
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(cut.len(), 3);
        for i in 1..=3 {
            assert!(!cut.contains(&pt(Source::PeerSharing, i)));
        }
    }
}

// ----- validation ---------------------------------------------------------------------

fn field_of(c: Config) -> Option<&'static str> {
    c.validate().err().and_then(|e| e.field())
}

#[test]
fn targets_that_cannot_add_up_are_refused_naming_the_field() {
    let mut c = base();
    c.targets.external = KindTarget {
        floor: 3,
        weight: 1,
        cap: Some(2),
    };
    assert_eq!(field_of(c), Some("targets.external.cap"));

    let mut c = base();
    c.targets.external.floor = 7;
    c.targets.bootstrap.floor = 6;
    assert_eq!(
        field_of(c.clone()),
        Some("targets"),
        "13 floors > 12 connections"
    );
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("max_connections"), "{e}");

    let mut c = base();
    c.max_outbound = Some(6);
    c.targets.external.floor = 4;
    c.targets.bootstrap.floor = 3;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("outbound"), "{e}");

    let mut c = base();
    c.targets.trusted.floor = 1;
    assert_eq!(
        field_of(c),
        Some("targets.trusted.floor"),
        "no trusted point"
    );

    let mut c = base();
    c.private_mode = true;
    c.trusted_points = vec![pt(Source::Trusted, 1)];
    c.targets.external.floor = 1;
    assert_eq!(field_of(c), Some("targets.external.floor"), "private mode");

    let mut c = base();
    for k in Source::ALL {
        match k {
            Source::Trusted => c.targets.trusted.cap = Some(1),
            Source::Bootstrap => c.targets.bootstrap.cap = Some(1),
            Source::External => c.targets.external.cap = Some(1),
            Source::PeerSharing => c.targets.peer_sharing.cap = Some(1),
            _ => c.targets.incoming.cap = Some(1),
        }
    }
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("min_target"), "5 caps of 1 < min_target 6: {e}");

    let mut c = base();
    c.targets.external = KindTarget {
        floor: 1,
        weight: 2,
        cap: Some(1),
    };
    assert_eq!(field_of(c), Some("targets"), "weights that share nothing");

    let c = Config {
        max_outbound: Some(13),
        ..base()
    };
    assert_eq!(field_of(c), Some("max_outbound"));
    let c = Config {
        max_outbound: Some(5),
        ..base()
    };
    assert_eq!(field_of(c), Some("max_outbound"), "below min_target");
    let c = Config {
        max_inbound: Some(13),
        ..base()
    };
    assert_eq!(field_of(c), Some("max_inbound"));
}

#[test]
fn targets_and_budgets_load_from_toml_and_survive_a_round_trip() {
    let c = Config::from_toml(
        r#"
        min_connections = 4
        expected_connections = 8
        max_connections = 12
        max_outbound = 8
        max_inbound = 6
        [targets.trusted]
        floor = 0
        [targets.external]
        floor = 2
        weight = 3
        [targets.peer_sharing]
        weight = 1
        cap = 6
        "#,
    )
    .unwrap();
    assert_eq!(c.outbound_budget(), 8);
    assert_eq!(c.inbound_budget(), 6);
    assert_eq!(
        c.targets.external,
        KindTarget {
            floor: 2,
            weight: 3,
            cap: None
        }
    );
    assert_eq!(c.targets.peer_sharing.cap, Some(6));
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::from_toml(&text).unwrap(), c);
    // A typo names the key.
    let e = Config::from_toml("[targets.external]\nflor = 2\n").unwrap_err();
    assert!(e.to_string().contains("flor"), "{e}");
    // The defaults: no preference; budgets derived (and printed nowhere).
    let d = Config::default();
    assert!(d.targets.is_neutral());
    assert_eq!((d.outbound_budget(), d.inbound_budget()), (36, 100));
    let text = toml::to_string(&d).unwrap();
    assert!(!text.contains("max_outbound"), "{text}");
    // min = expected = max: every slot may be dialed, every slot may be taken inbound.
    let k = Config {
        min_connections: 4,
        expected_connections: 4,
        max_connections: 4,
        ..Config::default()
    };
    assert_eq!((k.outbound_budget(), k.inbound_budget()), (4, 4));
}

// ----- budgets in the core ---------------------------------------------------------------

fn stranger(i: u16) -> (SocketAddr, Hello) {
    (
        SocketAddr::from(([172, 16, (i / 200) as u8, (i % 200) as u8 + 1], 40000)),
        Hello {
            peer: PeerId::from_u64(10_000 + u64::from(i)),
            listen_port: 9000,
        },
    )
}

/// A node with `out` outbound connections (dialed at its start) at 10.x points.
fn node_with_outbound(config: Config, out: u8) -> NodeCore {
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 9);
    let points: Vec<SocketAddr> = (1..=out).map(|i| pt(Source::Bootstrap, i)).collect();
    core.add_points(&points, Source::Bootstrap, ms(0));
    core.start(ms(0));
    let dials: Vec<SocketAddr> = drain(&mut core)
        .into_iter()
        .filter_map(|a| match a {
            Action::Dial(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), usize::from(out));
    for (i, p) in dials.into_iter().enumerate() {
        let v = core.handle_dial_result(
            p,
            peerkeeper::core::DialResult::Connected {
                conn: ConnId(i as u64 + 1),
                peer: PeerId::from_u64(500 + i as u64),
            },
            ms(10),
        );
        assert_eq!(v, peerkeeper::core::DialVerdict::Keep);
    }
    drain(&mut core);
    core
}

#[test]
fn an_inbound_flood_never_takes_the_place_of_the_peers_we_dialed() {
    // 4 / 8 / 12: min_target 6 outbound. Without an inbound budget (the default) the
    // strangers may take the 6 other slots; with one (4, Bitcoin-style), 4 of them.
    for (max_inbound, most_inbound) in [(None, 6), (Some(4), 4)] {
        let config = Config {
            max_inbound,
            ..base()
        };
        config.validate().unwrap();
        let mut core = node_with_outbound(config, 6);
        let ours: Vec<SocketAddr> = core.pool().connections().map(|(a, _)| a).collect();
        assert_eq!(core.pool().outbound_count(), 6);
        let mut closed_ours = 0;
        // 300 strangers, one every 100 ms over 30 s (room is made once a second, for
        // those older than the 10 s grace).
        for i in 0..300u16 {
            let (remote, hello) = stranger(i);
            let at = ms(100 + 100 * u64::from(i));
            let _ = core.handle_inbound(ConnId(1000 + u64::from(i)), remote, hello, at);
            for a in drain(&mut core) {
                if let Action::Close { conn, reason } = a {
                    assert_eq!(reason, CloseReason::TooManyConnections);
                    // Room making and the too-many trim: never one of ours.
                    if conn.0 <= 6 {
                        closed_ours += 1;
                    }
                }
            }
            assert!(core.pool().inbound_count() <= most_inbound);
            assert!(core.connection_count() <= 12);
            core.check_invariants();
        }
        assert_eq!(
            closed_ours, 0,
            "an inbound newcomer never evicts an outbound connection"
        );
        for a in &ours {
            assert_eq!(
                core.pool().connection(a).map(|c| c.direction),
                Some(Direction::Outbound),
                "{a} kept"
            );
        }
        assert_eq!(core.pool().outbound_count(), 6);
        let closed = core.stats().closed.trimmed;
        match max_inbound {
            // Reaching 12 (above max_threshold 11) trims back to max_target (10): inbound
            // ones only, so every stranger got in, at the expense of another stranger.
            None => assert!(closed >= 290, "{:?}", core.stats().closed),
            // The budget stops strangers before the trim: room is made (at most once a
            // second, only from the youngest unprotected stranger, once it is past its
            // grace: so about once per grace period, 10 s), the rest refused.
            Some(_) => {
                let s = core.stats().admission;
                assert!(s.made_room >= 2 && s.refused_full > 200, "{s:?}");
            }
        }
    }
}

#[test]
fn a_trusted_peer_is_admitted_beyond_the_inbound_budget_and_never_evicted() {
    let mut config = Config {
        max_inbound: Some(6),
        ..base()
    };
    let trusted = SocketAddr::from(([172, 31, 0, 1], 9000));
    config.trusted_points = vec![trusted];
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 9);
    core.start(ms(0));
    // Its dial to the trusted point fails (it is behind a NAT, say).
    assert!(drain(&mut core).contains(&Action::Dial(trusted)));
    core.handle_dial_result(
        trusted,
        peerkeeper::core::DialResult::Failed(peerkeeper::core::DialFailure::Io),
        ms(0),
    );
    drain(&mut core);
    for i in 0..6u16 {
        let (remote, hello) = stranger(i);
        assert_eq!(
            core.handle_inbound(ConnId(100 + u64::from(i)), remote, hello, ms(0)),
            Admission::Accept
        );
    }
    assert_eq!(core.pool().inbound_count(), 6);
    // The seventh stranger, within the grace period: refused (nothing old enough to go).
    let (remote, hello) = stranger(6);
    assert!(matches!(
        core.handle_inbound(ConnId(106), remote, hello, ms(1)),
        Admission::Refuse {
            reason: RefuseReason::Full,
            ..
        }
    ));
    // The trusted peer: admitted past the budget.
    let hello = Hello {
        peer: PeerId::from_u64(77),
        listen_port: 9000,
    };
    let remote = SocketAddr::from(([172, 31, 0, 1], 50_000));
    assert_eq!(
        core.handle_inbound(ConnId(200), remote, hello, ms(2)),
        Admission::Accept
    );
    assert_eq!(core.pool().inbound_count(), 7);
    // Strangers later: room is made among the strangers, never the trusted one.
    for i in 10..40u16 {
        let (remote, hello) = stranger(i);
        let _ = core.handle_inbound(
            ConnId(300 + u64::from(i)),
            remote,
            hello,
            ms(20_000 + 1_000 * u64::from(i)),
        );
        assert!(core.conn_at(&trusted).is_some(), "the trusted peer stays");
        drain(&mut core);
    }
    core.check_invariants();
}

#[test]
fn a_protected_peer_is_admitted_beyond_the_inbound_budget() {
    let config = Config {
        max_inbound: Some(6),
        ..base()
    };
    let mut core = node_with_outbound(config, 0);
    for i in 0..6u16 {
        let (remote, hello) = stranger(i);
        assert_eq!(
            core.handle_inbound(ConnId(100 + u64::from(i)), remote, hello, ms(0)),
            Admission::Accept
        );
    }
    let (remote, hello) = stranger(50);
    let point = SocketAddr::new(remote.ip(), hello.listen_port);
    assert_eq!(core.set_protected(&[point], true), 0);
    assert_eq!(
        core.handle_inbound(ConnId(150), remote, hello, ms(1)),
        Admission::Accept
    );
}

// ----- private mode ----------------------------------------------------------------------

fn private_core() -> (NodeCore, SocketAddr) {
    let trusted = SocketAddr::from(([192, 168, 1, 1], 9000));
    let config = Config {
        private_mode: true,
        trusted_points: vec![trusted],
        ..base()
    };
    config.validate().unwrap();
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 5);
    core.start(ms(0));
    drain(&mut core);
    (core, trusted)
}

#[test]
fn a_private_node_refuses_strangers_and_shares_nothing() {
    let (mut core, trusted) = private_core();
    // A stranger, even on the trusted point's host with another port, is refused.
    for (remote, port) in [
        (SocketAddr::from(([8, 8, 8, 8], 40000)), 9000),
        (SocketAddr::from(([192, 168, 1, 1], 40001)), 9001),
    ] {
        let hello = Hello {
            peer: PeerId::from_u64(66),
            listen_port: port,
        };
        assert_eq!(
            core.handle_inbound(ConnId(9), remote, hello, ms(1)),
            Admission::Refuse {
                reason: RefuseReason::PrivateMode,
                points: vec![]
            }
        );
    }
    assert_eq!(core.connection_count(), 0);
    assert_eq!(core.stats().admission.refused_private, 2);
    // The trusted peer is admitted.
    let hello = Hello {
        peer: PeerId::from_u64(2),
        listen_port: 9000,
    };
    assert_eq!(
        core.handle_inbound(
            ConnId(1),
            SocketAddr::from(([192, 168, 1, 1], 50000)),
            hello,
            ms(2)
        ),
        Admission::Accept
    );
    assert!(core.conn_at(&trusted).is_some());
    drain(&mut core);
    // It never answers a request for points, never learns points from peers.
    core.handle_points_asked(ConnId(1), ms(100_000));
    let offered = [SocketAddr::from(([192, 168, 1, 7], 9000))];
    core.handle_points(ConnId(1), &offered, ms(100_001));
    let actions = drain(&mut core);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SendPoints { .. } | Action::AskForPoints { .. })),
        "{actions:?}"
    );
    assert!(
        core.pool().get(&offered[0]).is_none(),
        "nothing learned from a peer"
    );
    assert_eq!(core.stats().sharing.answers, 0);
}

#[test]
fn a_private_node_admits_the_points_a_peer_set_admits() {
    let (mut core, _) = private_core();
    let member = SocketAddr::from(([192, 168, 1, 2], 9000));
    let hello = Hello {
        peer: PeerId::from_u64(3),
        listen_port: 9000,
    };
    let remote = SocketAddr::from(([192, 168, 1, 2], 50000));
    assert!(matches!(
        core.handle_inbound(ConnId(3), remote, hello, ms(1)),
        Admission::Refuse {
            reason: RefuseReason::PrivateMode,
            ..
        }
    ));
    assert_eq!(core.set_admitted(&[member], true), 0);
    assert_eq!(
        core.handle_inbound(ConnId(4), remote, hello, ms(2)),
        Admission::Accept
    );
    assert_eq!(core.set_admitted(&[member], false), 0);
    assert!(!core.pool().is_admitted(&member));
}

#[test]
fn a_full_private_node_refuses_without_points() {
    let trusted: Vec<SocketAddr> = (1..=13)
        .map(|i| SocketAddr::from(([192, 168, 1, i], 9000)))
        .collect();
    let config = Config {
        private_mode: true,
        trusted_points: trusted.clone(),
        make_room_interval: None,
        ..base()
    };
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 5);
    core.start(ms(0));
    drain(&mut core);
    for (i, t) in trusted.iter().enumerate().take(12) {
        let hello = Hello {
            peer: PeerId::from_u64(100 + i as u64),
            listen_port: 9000,
        };
        assert_eq!(
            core.handle_inbound(
                ConnId(i as u64 + 1),
                SocketAddr::new(t.ip(), 50000),
                hello,
                ms(1)
            ),
            Admission::Accept
        );
    }
    let hello = Hello {
        peer: PeerId::from_u64(200),
        listen_port: 9000,
    };
    assert_eq!(
        core.handle_inbound(
            ConnId(50),
            SocketAddr::new(trusted[12].ip(), 50000),
            hello,
            ms(2)
        ),
        Admission::Refuse {
            reason: RefuseReason::Full,
            points: vec![]
        }
    );
}

#[test]
fn the_readme_example_of_targets_is_a_valid_config() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```toml\nmin_connections = 8")
        .expect("the example in the README");
    let text = &readme[start + "```toml\n".len()..];
    let text = &text[..text.find("```").unwrap()];
    let c = Config::from_toml(text).unwrap();
    assert_eq!(c.bounds().min_target, 16);
    assert_eq!(c.targets.floor_sum(), 5);
    // 16 - 5 = 11 shared 3 : 6 (largest remainder), peer-shared capped at 12.
    let q = c.targets.quotas(16);
    assert_eq!(q[Source::External.index()], 3 + 4);
    assert_eq!(q[Source::PeerSharing.index()], 7);
}

#[test]
fn room_is_made_for_a_floor_only_for_candidates_that_have_not_failed() {
    use peerkeeper::maintenance::floor_evictions;
    let mut config = base();
    config.targets.external.floor = 1;
    config.validate().unwrap();
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 6), (Source::External, 1)]);
    connect(&mut pool, Source::PeerSharing, 6, Direction::Outbound, 0);
    pool.advance(ms(0));
    // The outbound budget (6) is spent on peer-shared peers: one makes room.
    let mut rng = StdRng::seed_from_u64(1);
    let cut = floor_evictions(&pool, &config, ms(0), &mut rng);
    assert_eq!(cut.len(), 1);
    assert_eq!(pool.kind_of(&cut[0]), Source::PeerSharing);
    // The ledger relay fails once: after its backoff it is a candidate again, but no
    // connection is given up for it.
    let relay = pt(Source::External, 1);
    assert!(pool.begin_dial(relay, ms(0)));
    pool.end_dial(relay, true, ms(0), &mut rng);
    pool.advance(ms(3_600_000));
    assert!(pool.candidates(false).any(|a| a == relay));
    assert!(floor_evictions(&pool, &config, ms(3_600_000), &mut rng).is_empty());
}

#[test]
fn kinds_and_hooks_are_trace_inputs_and_old_traces_still_read() {
    use peerkeeper::core::Input;
    let p = pt(Source::External, 1);
    for input in [
        Input::SourcePoints {
            points: vec![p],
            kind: Source::Trusted,
        },
        Input::SetProtected {
            points: vec![p],
            on: true,
        },
        Input::SetAdmitted {
            points: vec![p],
            on: false,
        },
    ] {
        let line = serde_json::to_string(&input).unwrap();
        assert_eq!(
            serde_json::from_str::<Input>(&line).unwrap(),
            input,
            "{line}"
        );
    }
    // A trace written before kinds: a source's points are external.
    let old = r#"{"input":"source_points","points":["10.3.0.1:9000"]}"#;
    assert_eq!(
        serde_json::from_str::<Input>(old).unwrap(),
        Input::SourcePoints {
            points: vec![p],
            kind: Source::External
        }
    );
    // And an external source's line is written as before.
    assert_eq!(
        serde_json::to_string(&Input::SourcePoints {
            points: vec![p],
            kind: Source::External
        })
        .unwrap(),
        old
    );
    // Replayed, the hooks act.
    let mut core = NodeCore::new(base(), PeerId::from_u64(1), 1);
    core.apply(
        ms(0),
        Input::SetProtected {
            points: vec![p],
            on: true,
        },
    );
    assert!(core.pool().is_protected(&p));
    core.apply(
        ms(0),
        Input::SourcePoints {
            points: vec![p],
            kind: Source::Bootstrap,
        },
    );
    assert_eq!(core.pool().kind_of(&p), Source::Bootstrap);
}

#[test]
fn a_top_up_for_a_floor_dials_nothing_else_past_min_target() {
    let mut config = base();
    config.targets.external.floor = 3;
    config.validate().unwrap();
    // 5 connections (min_target 6): one more is needed; the floor lacks 3 but has a
    // single candidate: 1 external dial, and no peer-shared one past min_target.
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 12), (Source::External, 1)]);
    connect(&mut pool, Source::PeerSharing, 5, Direction::Outbound, 0);
    pool.advance(ms(0));
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials, vec![pt(Source::External, 1)]);
    // Without the external candidate, the one dial min_target needs is peer-shared.
    let mut pool = pool_with(&config, &[(Source::PeerSharing, 12)]);
    connect(&mut pool, Source::PeerSharing, 5, Direction::Outbound, 0);
    pool.advance(ms(0));
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 1);
}

#[test]
fn with_targets_each_step_prefers_network_groups_not_dialed_yet() {
    use std::collections::BTreeSet;
    let mut config = base();
    config.targets.external.floor = 2;
    config.targets.peer_sharing.weight = 1;
    config.validate().unwrap();
    let at = |a: u8, b: u8, i: u8| SocketAddr::from(([a, b, 0, i], 9000));
    let mut pool = Pool::new(&config);
    // External: five in one /16, one in another. Peer-shared: twenty in one /16, one in
    // each of three others.
    for i in 1..=5 {
        pool.add_point(at(44, 1, i), Source::External, ms(0));
    }
    pool.add_point(at(44, 2, 1), Source::External, ms(0));
    for i in 1..=20 {
        pool.add_point(at(45, 1, i), Source::PeerSharing, ms(0));
    }
    for g in 2..=4 {
        pool.add_point(at(45, g, 1), Source::PeerSharing, ms(0));
    }
    pool.advance(ms(0));
    let groups = |dials: &[SocketAddr]| -> BTreeSet<u64> {
        dials.iter().map(peerkeeper::pool::netgroup).collect()
    };
    let dials = top_up_dials(&pool, &config, ms(0));
    assert_eq!(dials.len(), 6);
    let external: Vec<SocketAddr> = dials
        .iter()
        .copied()
        .filter(|a| pool.kind_of(a) == Source::External)
        .collect();
    assert_eq!(external.len(), 2, "the floor");
    assert_eq!(
        groups(&external).len(),
        2,
        "the floor spread over both groups"
    );
    assert_eq!(
        groups(&dials).len(),
        6,
        "six dials in six groups: {dials:?}"
    );
    // Off: the best candidates of each kind, whatever their group.
    config.defences.diverse_dials = false;
    let flat = top_up_dials(&pool, &config, ms(0));
    assert_eq!(flat.len(), 6);
    assert!(groups(&flat).len() < 6, "{flat:?}");
}

#[test]
fn one_host_holds_at_most_a_few_inbound_slots_whatever_keys_and_ports_it_claims() {
    use peerkeeper::core::MAX_INBOUND_PER_ADDRESS;
    let mut config = base();
    config.max_connections = 40;
    config.expected_connections = 20;
    let mut core = NodeCore::new(config, PeerId::from_u64(1), 3);
    core.start(ms(0));
    let hello = |i: u64, port: u16| Hello {
        peer: PeerId::from_u64(1000 + i),
        listen_port: port,
    };
    let admitted = |core: &mut NodeCore, remote: SocketAddr, i: u64| {
        matches!(
            core.handle_inbound(ConnId(i), remote, hello(i, 9000 + i as u16), ms(i)),
            Admission::Accept
        )
    };
    // Ten keys from one IPv6 /64 (ten addresses in it), then ten from one IPv4 address.
    let v6 = (0..10u64)
        .filter(|i| {
            let ip: std::net::Ipv6Addr = format!("2a01:4f8:1:2::{:x}", i + 1).parse().unwrap();
            admitted(&mut core, SocketAddr::from((ip, 40_000)), *i)
        })
        .count();
    let v4 = (10..20u64)
        .filter(|i| admitted(&mut core, SocketAddr::from(([45, 1, 2, 3], 40_000)), *i))
        .count();
    assert_eq!((v6, v4), (MAX_INBOUND_PER_ADDRESS, MAX_INBOUND_PER_ADDRESS));
    assert_eq!(core.stats().admission.refused_per_address, 12);
    // Another /64 of the same provider, another IPv4 address, and loopback: not limited.
    assert!(admitted(
        &mut core,
        "[2a01:4f8:1:3::1]:1".parse().unwrap(),
        30
    ));
    assert!(admitted(
        &mut core,
        SocketAddr::from(([45, 1, 2, 4], 1)),
        31
    ));
    let local = (40..50u64)
        .filter(|i| admitted(&mut core, SocketAddr::from(([127, 0, 0, 1], 1)), *i))
        .count();
    assert_eq!(local, 10, "every process of this machine shares 127.0.0.1");
}
