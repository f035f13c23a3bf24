//! Pool changes fire the matching triggers, at exactly the thresholds maintenance acts
//! on; the node core reacts to them; switched-off triggers stay silent and change nothing;
//! and the tokio node's trigger observer sees what its core fires.

use peerkeeper::core::{Action, Admission, Hello, NodeCore};
use peerkeeper::node::Node;
use peerkeeper::pool::{ConnId, Source};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::trigger::{count_trigger, TriggerKind, Triggers};
use peerkeeper::{Config, PeerId, Time};
use std::net::SocketAddr;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1))
}

/// The triggers among the actions queued so far (the rest is drained).
fn fired(core: &mut NodeCore) -> Vec<TriggerKind> {
    std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::Trigger(k) => Some(k),
            _ => None,
        })
        .collect()
}

/// Accepts an inbound connection from the node at `addr(i)` (peer id `i`).
fn dial_in(core: &mut NodeCore, i: u32, now: Time) {
    let hello = Hello {
        peer: PeerId::from_u64(i.into()),
        listen_port: 1,
    };
    let remote = SocketAddr::new(addr(i).ip(), 50_000);
    assert_eq!(
        core.handle_inbound(ConnId(i.into()), remote, hello, now),
        Admission::Accept,
        "inbound {i}"
    );
}

fn core(config: Config) -> NodeCore {
    NodeCore::new(config, PeerId::from_u64(u64::MAX), 1)
}

#[test]
fn registering_points_peers_and_connections_fires_their_triggers() {
    let mut c = core(Config::default());
    let t = Time::ZERO;
    c.add_points(&[addr(1)], Source::PeerSharing, t);
    assert_eq!(fired(&mut c), vec![TriggerKind::NewPoint]);
    c.add_points(&[addr(1)], Source::PeerSharing, t);
    assert_eq!(fired(&mut c), vec![], "a known point is not new");
    // A peer dials in from the known point: a new peer and a new connection, no new point.
    dial_in(&mut c, 1, t);
    let f = fired(&mut c);
    assert!(f.contains(&TriggerKind::NewPeer), "{f:?}");
    assert!(f.contains(&TriggerKind::NewConnection), "{f:?}");
    assert!(!f.contains(&TriggerKind::NewPoint), "{f:?}");
    // A peer from an unknown point: its point is new too.
    dial_in(&mut c, 2, t);
    let f = fired(&mut c);
    for k in [
        TriggerKind::NewPoint,
        TriggerKind::NewPeer,
        TriggerKind::NewConnection,
    ] {
        assert!(f.contains(&k), "{k:?} not in {f:?}");
    }
}

#[test]
fn count_triggers_fire_exactly_at_the_thresholds() {
    let config = Config {
        min_connections: 10,
        expected_connections: 50,
        max_connections: 100,
        ..Config::default()
    };
    let b = config.bounds();
    let mut c = core(config);
    let t = Time::ZERO;
    // Rising: too-many first fires at max_threshold + 1, and the core trims to max_target.
    for i in 0..=b.max_threshold as u32 {
        dial_in(&mut c, i, t);
        let count = i as usize + 1;
        let f = fired(&mut c);
        assert_eq!(
            f.contains(&TriggerKind::TooManyConnections),
            count > b.max_threshold,
            "at {count}: {f:?}"
        );
        assert!(!f.contains(&TriggerKind::TooFewConnections), "at {count}");
    }
    assert_eq!(c.connection_count(), b.max_target, "the too-many reaction");
    // Falling: every fall below min_threshold fires too-few, none above it. Between min
    // (10) and min_threshold (23) is octez's dead zone, where its trigger stays silent.
    let conns: Vec<ConnId> = c.pool().connections().map(|(_, k)| k.id).collect();
    for (n, id) in conns.into_iter().enumerate() {
        c.handle_closed(id, t);
        let count = b.max_target - n - 1;
        assert_eq!(c.connection_count(), count);
        let f = fired(&mut c);
        assert_eq!(
            f.contains(&TriggerKind::TooFewConnections),
            count < b.min_threshold,
            "at {count}: {f:?}"
        );
        assert!(
            !f.contains(&TriggerKind::TooManyConnections),
            "falling at {count}"
        );
    }
    // The pure rule behind it agrees.
    for before in 0..=101usize {
        for after in [before.saturating_sub(1), before + 1] {
            let expected = if after < before && after < b.min_threshold {
                Some(TriggerKind::TooFewConnections)
            } else if after > before && after > b.max_threshold {
                Some(TriggerKind::TooManyConnections)
            } else {
                None
            };
            assert_eq!(
                count_trigger(before, after, &b),
                expected,
                "{before} -> {after}"
            );
        }
    }
}

#[test]
fn switched_off_triggers_do_not_fire_and_switch_back_on() {
    let mut c = core(Config::default());
    for kind in TriggerKind::ALL {
        c.set_trigger(kind, false);
        assert!(!c.trigger_enabled(kind));
    }
    c.add_points(&[addr(1)], Source::PeerSharing, Time::ZERO);
    dial_in(&mut c, 2, Time::ZERO);
    assert_eq!(fired(&mut c), vec![]);
    c.set_trigger(TriggerKind::NewPoint, true);
    assert!(c.trigger_enabled(TriggerKind::NewPoint));
    c.add_points(&[addr(3)], Source::PeerSharing, Time::ZERO);
    assert_eq!(fired(&mut c), vec![TriggerKind::NewPoint]);
}

#[test]
fn a_switched_off_too_many_trigger_does_not_trim() {
    let config = Config {
        min_connections: 2,
        expected_connections: 5,
        max_connections: 11,
        ..Config::default()
    };
    let b = config.bounds();
    assert!(
        b.max_threshold + 2 <= 11,
        "room for one more after the switch"
    );
    let mut c = core(config);
    c.set_trigger(TriggerKind::TooManyConnections, false);
    for i in 0..=b.max_threshold as u32 {
        dial_in(&mut c, i, Time::ZERO);
    }
    assert!(!fired(&mut c).contains(&TriggerKind::TooManyConnections));
    assert_eq!(c.connection_count(), b.max_threshold + 1, "nothing trimmed");
    // Switched back on, the next rise fires and the core trims.
    c.set_trigger(TriggerKind::TooManyConnections, true);
    dial_in(&mut c, 100, Time::ZERO);
    assert!(fired(&mut c).contains(&TriggerKind::TooManyConnections));
    assert_eq!(c.connection_count(), b.max_target);
}

#[tokio::test]
async fn the_trigger_observer_remembers_fires_and_obeys_its_switch() {
    let t = Triggers::new();
    let mut point = t.subscribe(TriggerKind::NewPoint);
    t.fire(TriggerKind::NewPoint);
    t.fire(TriggerKind::NewPoint);
    assert!(point.has_fired());
    point.wait().await; // returns at once, the fires coalesced
    assert!(!point.has_fired());
    t.set_enabled(TriggerKind::NewPoint, false);
    t.fire(TriggerKind::NewPoint);
    assert!(!point.has_fired());
    t.set_enabled(TriggerKind::NewPoint, true);
    t.fire(TriggerKind::NewPoint);
    assert!(point.has_fired());
}

#[tokio::test(start_paused = true)]
async fn a_node_shows_its_cores_triggers_and_switches() {
    let net = MemoryNetwork::new();
    let config = Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 3,
        ..Config::default()
    };
    let a = Node::builder(config.clone(), net.bind(addr(1)).unwrap())
        .identity(peerkeeper::identity::Keypair::from_seed(1))
        .seed(1)
        .start()
        .unwrap();
    let mut conn = a.triggers().subscribe(TriggerKind::NewConnection);
    let mut peer = a.triggers().subscribe(TriggerKind::NewPeer);
    let b = Node::builder(config, net.bind(addr(2)).unwrap())
        .identity(peerkeeper::identity::Keypair::from_seed(2))
        .seed(2)
        .bootstrap(vec![a.local_addr()])
        .start()
        .unwrap();
    conn.wait().await;
    peer.wait().await;
    a.status_watch()
        .wait_for(|s| s.connections == 1)
        .await
        .unwrap();
    // A switch goes to the core and to the observer.
    a.set_trigger(TriggerKind::NewPoint, false).await.unwrap();
    let in_core = a
        .inspect(|c| c.trigger_enabled(TriggerKind::NewPoint))
        .await
        .unwrap();
    assert!(!in_core);
    assert!(!a.triggers().is_enabled(TriggerKind::NewPoint));
    let point = a.triggers().subscribe(TriggerKind::NewPoint);
    a.add_points(vec![addr(7)], Source::PeerSharing)
        .await
        .unwrap();
    let known = a
        .inspect(|c| c.pool().get(&addr(7)).is_some())
        .await
        .unwrap();
    assert!(known, "the point is learned");
    assert!(!point.has_fired(), "but its trigger stays silent");
    b.shutdown().await;
    a.shutdown().await;
}
