//! The saved pool (`pool::snapshot`, `store`, `NodeCore::snapshot`/`restore`,
//! `NodeBuilder::persist`): a snapshot survives the file round trip and a restore; a
//! truncated, bit-flipped or random file is an error that names the damage, never a
//! panic; bans and backoffs keep their wall-clock end across a restart; the config's
//! trusted points stay trusted whatever the file says; anchors are dialed before any
//! other candidate; and a node restarted on its data dir, without a bootstrap point,
//! reconnects from what it saved (memory transport, paused clock).

mod common;

use common::*;
use peerkeeper::core::Action;
use peerkeeper::pool::snapshot::{SavedPoint, MAX_ANCHORS};
use peerkeeper::pool::{
    ConnId, Direction, PeerId, PointState, Pool, Snapshot, SnapshotError, Source,
};
use peerkeeper::store::{Loaded, PoolStore};
use peerkeeper::{Config, NodeCore, Time};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32, u8),
    Fail(u32),
    Open(u32, bool),
    Close(u32),
    Greylist(u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u32..50;
    prop_oneof![
        4 => (p.clone(), 0u8..5).prop_map(|(i, s)| Op::Add(i, s)),
        2 => p.clone().prop_map(Op::Fail),
        2 => (p.clone(), any::<bool>()).prop_map(|(i, d)| Op::Open(i, d)),
        1 => p.clone().prop_map(Op::Close),
        1 => p.clone().prop_map(Op::Greylist),
        2 => (0u64..600_000).prop_map(Op::Advance),
    ]
}

fn config() -> Config {
    Config {
        trusted_points: vec![addr(0)],
        max_known_points: 40,
        known_points_gc_target: 30,
        ..Config::default()
    }
}

fn build(ops: &[Op], seed: u64) -> (Pool, Time) {
    let mut pool = Pool::new(&config());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = Time::ZERO;
    for op in ops {
        match *op {
            Op::Add(i, s) => {
                pool.add_point(addr(i), Source::ALL[usize::from(s)], now);
            }
            Op::Fail(i) => {
                if pool.begin_dial(addr(i), now) {
                    pool.end_dial(addr(i), true, now, &mut rng);
                }
            }
            Op::Open(i, inbound) => {
                let dir = if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let _ = pool.connection_opened(
                    ConnId(i.into()),
                    addr(i),
                    PeerId::from_u64(i.into()),
                    dir,
                    now,
                );
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
        }
    }
    (pool, now)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Encode, decode, restore into a fresh pool: the same points, kinds (trusted only
    /// where the config says), failures, bans; a consistent pool within its bound.
    #[test]
    fn a_snapshot_survives_the_file_and_a_restore(
        ops in prop::collection::vec(op(), 0..150),
        seed in any::<u64>(),
        saved_at in any::<u64>(),
    ) {
        let (pool, now) = build(&ops, seed);
        let snap = pool.snapshot(now);
        let (back, at) = Snapshot::decode(&snap.encode(saved_at)).unwrap();
        prop_assert_eq!(at, saved_at);
        prop_assert_eq!(&back, &snap);
        prop_assert!(snap.anchors.len() <= MAX_ANCHORS);

        let mut fresh = Pool::new(&config());
        fresh.restore(&back, Time::ZERO);
        fresh.check_invariants();
        prop_assert_eq!(fresh.len(), pool.len());
        prop_assert_eq!(fresh.trusted_count(), 1);
        for s in &snap.points {
            let old = pool.get(&s.addr).unwrap();
            let new = fresh.get(&s.addr).unwrap();
            if !old.is_trusted() {
                prop_assert_eq!(new.kind(), old.kind(), "{}", s.addr);
                prop_assert_eq!(new.failures, old.failures);
                prop_assert_eq!(new.last_success().is_some(), old.last_success().is_some() || old.state == PointState::Connected);
            }
            // The config's trusted point is the config's: a fresh start, merged sources.
            let banned = old.state == PointState::Greylisted && old.next_dial > now && s.addr != addr(0);
            prop_assert_eq!(new.state == PointState::Greylisted, banned, "{}", s.addr);
        }
        // A second snapshot of the restored pool has the same points (no anchors: nothing
        // is connected after a restart).
        let again = fresh.snapshot(Time::ZERO);
        prop_assert_eq!(again.points.len(), snap.points.len());
        prop_assert!(again.anchors.is_empty());
    }

    /// Whatever the bytes, decode returns (never panics), and only a checked file decodes.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Snapshot::decode(&bytes);
        let mut with_magic = b"PKPOOL\r\n".to_vec();
        with_magic.extend_from_slice(&bytes);
        prop_assert!(Snapshot::decode(&with_magic).is_err());
    }
}

fn sample_file() -> (Snapshot, Vec<u8>) {
    let ops: Vec<Op> = (1..30)
        .map(|i| Op::Add(i, (i % 5) as u8))
        .chain([Op::Open(3, false), Op::Fail(4), Op::Greylist(5)])
        .collect();
    let (pool, now) = build(&ops, 1);
    let snap = pool.snapshot(now);
    let bytes = snap.encode(1_700_000_000_000);
    (snap, bytes)
}

#[test]
fn every_truncation_and_every_bit_flip_is_an_error_that_names_it() {
    let (_, bytes) = sample_file();
    assert!(Snapshot::decode(&bytes).is_ok());
    for len in 0..bytes.len() {
        let err = Snapshot::decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Truncated { .. } | SnapshotError::BadMagic
            ),
            "{len}: {err}"
        );
    }
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let err = Snapshot::decode(&b).unwrap_err();
        // The magic, the version, the length, or the checksum catches it.
        assert!(!err.to_string().is_empty());
        if bit / 8 >= 28 {
            assert!(
                matches!(err, SnapshotError::Checksum),
                "a flip in the payload or the checksum is a checksum error: {err}"
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Snapshot::decode(&longer),
        Err(SnapshotError::BadSize(_))
    ));
    let mut v3 = bytes;
    v3[8] = 3;
    assert_eq!(
        Snapshot::decode(&v3).unwrap_err().to_string(),
        "unsupported version 3 (this build reads version 2)"
    );
}

#[test]
fn bans_and_backoffs_keep_their_wall_clock_end_across_a_restart() {
    let config = config();
    let mut pool = Pool::new(&config);
    let (a, b) = (addr(7), addr(8));
    pool.add_point(a, Source::PeerSharing, Time::ZERO);
    pool.add_point(b, Source::PeerSharing, Time::ZERO);
    pool.greylist(a, Time::ZERO);
    let ban = config.greylist_duration;
    // Its address too, as after repeated violations from distinct sources.
    pool.greylist_ip(a.ip(), Time::ZERO + ban);
    let snap = pool.snapshot(Time::ZERO);
    assert_eq!(snap.banned_ips.len(), 1);

    // Restarted a third of the ban later: banned for the two thirds left.
    let mut fresh = Pool::new(&config);
    fresh.restore(&snap.clone().aged(ban / 3), Time::ZERO);
    let p = fresh.get(&a).unwrap();
    assert_eq!(p.state, PointState::Greylisted);
    assert_eq!(p.next_dial, Time::ZERO + (ban - ban / 3));
    assert!(fresh.is_ip_greylisted(a.ip(), Time::ZERO));
    assert!(fresh.candidates(false).all(|c| c != a));
    // Restarted after the ban: dialable, the IP free.
    let mut later = Pool::new(&config);
    later.restore(&snap.aged(ban * 2), Time::ZERO);
    later.advance(Time::ZERO);
    assert_eq!(later.get(&a).unwrap().state, PointState::Disconnected);
    assert!(!later.is_ip_greylisted(a.ip(), Time::ZERO));
    assert!(later.candidates(false).any(|c| c == a));
}

#[test]
fn the_config_decides_what_is_trusted_and_a_hostile_file_is_bounded() {
    // The file claims a point is trusted and names a million points; the config trusts
    // another one.
    let mut snap = Snapshot::default();
    let mut p = sample_file().0.points[0].clone();
    p.sources = 0xff;
    p.wait = Duration::from_secs(u64::MAX / 2);
    p.banned = true;
    snap.points.push(p.clone());
    for i in 100..2_000 {
        let mut q: SavedPoint = p.clone();
        q.addr = addr(i);
        q.banned = false;
        q.wait = Duration::ZERO;
        snap.points.push(q);
    }
    let (back, _) = Snapshot::decode(&snap.encode(0)).unwrap();
    let config = Config {
        trusted_points: vec![addr(9999)],
        ..config()
    };
    let mut core = NodeCore::new(config.clone(), PeerId::from_u64(1), 1);
    let (restored, _) = core.restore(&back, Time::ZERO);
    core.check_invariants();
    assert!(
        core.pool().is_trusted(&addr(9999)),
        "the config's trusted point"
    );
    assert!(
        !core.pool().is_trusted(&p.addr),
        "not trusted by the file's say-so"
    );
    assert_eq!(core.pool().trusted_count(), 1);
    assert!(core.pool().len() <= config.max_known_points + 1);
    assert!(restored.skipped > 0);
    // A century-long ban is held to a day.
    let banned = core.pool().get(&p.addr).unwrap();
    assert!(banned.next_dial <= Time::ZERO + Duration::from_secs(86_400));
}

#[test]
fn anchors_are_dialed_before_any_other_candidate() {
    let config = Config {
        trusted_points: vec![addr(9999)],
        max_concurrent_dials: 8,
        ..Config::default()
    };
    // The old run: many points, two outbound peers (the anchors) and one inbound.
    let mut old = NodeCore::new(config.clone(), PeerId::from_u64(1), 1);
    let points: Vec<SocketAddr> = (1..40).map(addr).collect();
    old.add_points(&points, Source::External, Time::ZERO);
    let mut pool = old.pool().clone();
    pool.connection_opened(
        ConnId(1),
        addr(30),
        PeerId::from_u64(30),
        Direction::Outbound,
        Time::ZERO,
    )
    .unwrap();
    pool.connection_opened(
        ConnId(2),
        addr(31),
        PeerId::from_u64(31),
        Direction::Inbound,
        Time::ZERO,
    )
    .unwrap();
    pool.connection_opened(
        ConnId(3),
        addr(32),
        PeerId::from_u64(32),
        Direction::Outbound,
        Time::from_millis(5),
    )
    .unwrap();
    let snap = pool.snapshot(Time::from_millis(10));
    let anchors: Vec<SocketAddr> = snap.anchors.iter().map(|a| a.addr).collect();
    assert_eq!(
        anchors,
        vec![addr(30), addr(32)],
        "outbound only, oldest first"
    );

    let mut core = NodeCore::new(config, PeerId::from_u64(1), 1);
    let (_, dialed) = core.restore(&snap, Time::ZERO);
    assert_eq!(dialed, 2);
    core.start(Time::ZERO);
    let dials: Vec<SocketAddr> = std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::Dial(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(dials[..2], [addr(30), addr(32)], "{dials:?}");
    assert!(
        dials[2..].contains(&addr(9999)),
        "then the trusted point: {dials:?}"
    );
    core.check_invariants();
}

#[test]
fn a_store_saves_crash_safe_and_moves_a_damaged_file_aside() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = PoolStore::in_dir(dir.join("sub")).unwrap();
    assert!(matches!(store.load(), Loaded::Missing));
    let (snap, _) = sample_file();
    store.save(&snap).unwrap();
    store.save(&snap).unwrap();
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["pool.dat".to_string()]);
    match store.load() {
        // Aged by the wall-clock time since the save: the same points and sources.
        Loaded::Found { snapshot, .. } => assert_eq!(
            snapshot
                .points
                .iter()
                .map(|p| (p.addr, p.sources))
                .collect::<Vec<_>>(),
            snap.points
                .iter()
                .map(|p| (p.addr, p.sources))
                .collect::<Vec<_>>()
        ),
        other => panic!("{other:?}"),
    }
    // Truncated by a crash of something else: moved aside, reported, then a fresh start.
    let bytes = std::fs::read(store.path()).unwrap();
    std::fs::write(store.path(), &bytes[..bytes.len() / 2]).unwrap();
    match store.load() {
        Loaded::Corrupt {
            error: SnapshotError::Truncated { .. },
            moved_to: Some(aside),
            ..
        } => assert!(aside.exists()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(store.load(), Loaded::Missing));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_node_restarted_on_its_data_dir_reconnects_without_a_bootstrap_point() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let lab = Lab::new();
    let config = Config::default();
    let a_at = ip4(0, 0, 1);
    let a = lab.passive(a_at, 1);
    let store = || {
        PoolStore::in_dir(&dir)
            .unwrap()
            .save_interval(Duration::from_secs(60))
    };
    let b = lab
        .builder(config.clone(), ip4(0, 0, 2), 2)
        .bootstrap(vec![a_at])
        .persist(store())
        .start()
        .unwrap();
    wait_status(&b, VIRTUAL_DEADLINE, "B connects to A", |s| {
        s.connections == 1
    })
    .await;
    b.shutdown().await;
    wait_status(&a, VIRTUAL_DEADLINE, "A sees B go", |s| s.connections == 0).await;
    let Loaded::Found { snapshot, .. } = store().load() else {
        panic!("saved at shutdown")
    };
    assert_eq!(snapshot.anchors.len(), 1);
    assert_eq!(snapshot.anchors[0].addr, a_at);

    // Restarted elsewhere, no bootstrap point: the saved anchor leads back to A.
    let b = lab
        .builder(config, ip4(0, 0, 3), 2)
        .persist(store())
        .start()
        .unwrap();
    wait_status(&b, VIRTUAL_DEADLINE, "B reconnects to A", |s| {
        s.connections == 1
    })
    .await;
    assert!(connected(&b, a_at).await);
    let Loaded::Found { snapshot, .. } = store().load() else {
        panic!("rewritten")
    };
    assert!(snapshot.anchors.is_empty(), "consumed at load");
    b.shutdown().await;
    a.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_restore_is_an_input_a_trace_records_and_a_replay_repeats() {
    use peerkeeper::core::Input;
    let (mut snap, _) = sample_file();
    snap.anchors.push(peerkeeper::pool::Anchor {
        addr: addr(3),
        peer: PeerId::from_u64(3),
    });
    let input = Input::Restore {
        snapshot: Box::new(snap),
    };
    let line = serde_json::to_string(&input).unwrap();
    let back: Input = serde_json::from_str(&line).unwrap();
    assert_eq!(back, input);
    let run = |input: Input| {
        let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
        core.apply(Time::ZERO, input);
        core.apply(Time::ZERO, Input::Start);
        std::iter::from_fn(|| core.poll_action()).collect::<Vec<_>>()
    };
    let (a, b) = (run(input), run(back));
    assert_eq!(a, b);
    assert_eq!(
        a.iter().find(|x| matches!(x, Action::Dial(_))),
        Some(&Action::Dial(addr(3)))
    );
}

/// A pool file that cannot be read (here a link to a file whose every read fails with an
/// I/O error: as root, permissions cannot make one) is left in place: the load says so,
/// and no save replaces it, until it can be read again.
#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_pool_file_is_never_overwritten() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-unreadable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = PoolStore::in_dir(&dir).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", store.path()).unwrap();
    assert!(
        matches!(store.load(), Loaded::Unreadable(_)),
        "{:?}",
        store.load()
    );
    let (snap, _) = sample_file();
    let e = store.save(&snap).unwrap_err();
    assert!(e.to_string().contains("not overwritten"), "{e}");
    assert_eq!(
        std::fs::read_link(store.path()).unwrap(),
        std::path::PathBuf::from("/proc/self/mem"),
        "the unreadable file is where it was"
    );
    // The operator moved it away: saves resume.
    std::fs::remove_file(store.path()).unwrap();
    store.save(&snap).unwrap();
    assert!(matches!(store.load(), Loaded::Found { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The saved pool (issue 18): the core says when a material change is due a save (the
/// first connections, a new anchor, many new points), debounced, and nothing before.
#[test]
fn the_core_asks_for_a_save_soon_after_a_material_change_and_not_more_often() {
    use peerkeeper::core::{DialResult, SAVE_AFTER_NEW_POINTS, SAVE_DELAY, SAVE_MIN_INTERVAL};
    let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 1);
    let points: Vec<SocketAddr> = (1..=8).map(addr).collect();
    core.add_points(&points, Source::Bootstrap, Time::ZERO);
    core.start(Time::ZERO);
    assert_eq!(core.save_due(), None, "nothing learned yet");
    let t = |ms: u64| Time::from_millis(ms);
    let dials: Vec<SocketAddr> = std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::Dial(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(dials.len() >= 2);
    // Dial `i` connects, as connection `i + 1`.
    let connect = |core: &mut NodeCore, i: usize, at: Time| {
        let (conn, peer) = (ConnId(i as u64 + 1), PeerId::from_u64(100 + i as u64));
        core.handle_dial_result(dials[i], DialResult::Connected { conn, peer }, at);
    };
    // The first connection: a save SAVE_DELAY later.
    connect(&mut core, 0, t(100));
    assert_eq!(core.save_due(), Some(t(100) + SAVE_DELAY));
    core.saved(t(1100));
    assert_eq!(core.save_due(), None, "saved");
    // Another connection soon after: due, but not before SAVE_MIN_INTERVAL since the save.
    connect(&mut core, 1, t(1500));
    assert_eq!(core.save_due(), Some(t(1100) + SAVE_MIN_INTERVAL));
    core.saved(t(11_100));
    // Many new points from the peers: due again.
    let many: Vec<SocketAddr> = (1000..1000 + SAVE_AFTER_NEW_POINTS as u32)
        .map(addr)
        .collect();
    let (one, two) = many.split_at(many.len() / 2);
    core.handle_points(ConnId(1), one, t(30_000));
    assert_eq!(
        core.save_due(),
        None,
        "a few new points are not worth a save"
    );
    core.handle_points(ConnId(2), two, t(30_000));
    assert!(
        core.stats().points.new >= SAVE_AFTER_NEW_POINTS,
        "{:?}",
        core.stats().points
    );
    assert_eq!(core.save_due(), Some(t(30_000) + SAVE_DELAY));
}
