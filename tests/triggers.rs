//! Pool changes fire the matching triggers, at exactly the thresholds the worker acts on,
//! and switched-off triggers stay silent.

use peerkeeper::pool::{Direction, Source};
use peerkeeper::trigger::TriggerKind;
use peerkeeper::{Config, PeerId, PoolHandle};
use std::net::SocketAddr;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1))
}

#[tokio::test]
async fn registering_points_peers_and_connections_fires_their_triggers() {
    let pool = PoolHandle::new(&Config::default());
    let t = pool.triggers();
    let mut point = t.subscribe(TriggerKind::NewPoint);
    let mut peer = t.subscribe(TriggerKind::NewPeer);
    let mut conn = t.subscribe(TriggerKind::NewConnection);
    pool.add_point(addr(1), Source::PeerSharing);
    assert!(point.has_fired() && !peer.has_fired() && !conn.has_fired());
    point.clear();
    pool.add_point(addr(1), Source::PeerSharing);
    assert!(!point.has_fired(), "a known point is not new");
    pool.connection_opened(addr(1), PeerId(7), Direction::Outbound)
        .unwrap();
    assert!(peer.has_fired() && conn.has_fired());
    peer.wait().await;
    conn.wait().await;
}

#[tokio::test]
async fn count_triggers_fire_exactly_at_the_thresholds() {
    let config = Config {
        min_connections: 10,
        expected_connections: 50,
        max_connections: 100,
        ..Config::default()
    };
    let b = config.bounds();
    let pool = PoolHandle::new(&config);
    let t = pool.triggers();
    let mut few = t.subscribe(TriggerKind::TooFewConnections);
    let mut many = t.subscribe(TriggerKind::TooManyConnections);
    for i in 0..=b.max_threshold as u32 {
        pool.connection_opened(addr(i), PeerId(i.into()), Direction::Inbound)
            .unwrap();
        let count = i as usize + 1;
        assert_eq!(many.has_fired(), count > b.max_threshold, "at {count}");
    }
    many.clear();
    for i in (0..=b.max_threshold as u32).rev() {
        pool.connection_closed(addr(i));
        let count = i as usize;
        assert_eq!(few.has_fired(), count < b.min_threshold, "at {count}");
        // Between min (10) and min_threshold (23) is octez's dead zone, where its too-few
        // trigger stays silent; here every fall below 23 fires.
        few.clear();
    }
    assert!(!many.has_fired(), "falling never fires too-many");
}

#[tokio::test]
async fn switched_off_triggers_do_not_fire_and_switch_back_on() {
    let pool = PoolHandle::new(&Config::default());
    let t = pool.triggers();
    for kind in TriggerKind::ALL {
        t.set_enabled(kind, false);
        assert!(!t.is_enabled(kind));
    }
    let point = t.subscribe(TriggerKind::NewPoint);
    pool.add_point(addr(1), Source::PeerSharing);
    assert!(!point.has_fired());
    t.set_enabled(TriggerKind::NewPoint, true);
    pool.add_point(addr(2), Source::PeerSharing);
    assert!(point.has_fired());
}
