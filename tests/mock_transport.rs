//! The worker against a mockall transport: exactly which calls it makes.

use futures::future::{self, BoxFuture, FutureExt};
use mockall::mock;
use mockall::predicate::{always, eq, function};
use peerkeeper::pool::{Direction, Source};
use peerkeeper::transport::{CloseReason, DialError, Transport};
use peerkeeper::{Config, Maintainer, PeerId, PoolHandle};
use std::net::SocketAddr;
use std::sync::Arc;

mock! {
    Net {}
    impl Transport for Net {
        fn dial(&self, point: SocketAddr) -> BoxFuture<'static, Result<PeerId, DialError>>;
        fn close(&self, point: SocketAddr, reason: CloseReason);
        fn request_points(&self, point: SocketAddr);
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 9732))
}

#[tokio::test(start_paused = true)]
async fn private_mode_never_dials_an_untrusted_point_nor_asks_for_points() {
    let trusted = addr(1);
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        private_mode: true,
        trusted_points: vec![trusted],
        ..Config::default()
    };
    let pool = PoolHandle::new(&config);
    for i in 2..20 {
        pool.add_point(addr(i), Source::PeerSharing);
    }
    let mut net = MockNet::new();
    let registry = pool.clone();
    net.expect_dial()
        .with(eq(trusted))
        .times(1)
        .returning(move |p| {
            // A transport registers the connection it opens.
            registry
                .connection_opened(p, PeerId(1), Direction::Outbound)
                .unwrap();
            future::ready(Ok(PeerId(1))).boxed()
        });
    net.expect_close().never();
    net.expect_request_points().never();
    let m = Maintainer::start(config, pool.clone(), Arc::new(net), 1);
    let r = m.maintain().await;
    assert_eq!(pool.active_count(), 1);
    assert!(!r.asked_for_points);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn trim_closes_only_untrusted_connections_with_the_too_many_reason() {
    let trusted = [addr(1), addr(2)];
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        trusted_points: trusted.to_vec(),
        maintenance_idle_time: None,
        ..Config::default()
    };
    let bounds = config.bounds();
    let pool = PoolHandle::new(&config);
    for (i, t) in trusted.iter().enumerate() {
        pool.connection_opened(*t, PeerId(i as u64), Direction::Inbound)
            .unwrap();
    }
    for i in 10..16 {
        pool.connection_opened(addr(i), PeerId(i.into()), Direction::Inbound)
            .unwrap();
    }
    let excess = pool.active_count() - bounds.max_target;
    let mut net = MockNet::new();
    net.expect_dial().never();
    net.expect_close()
        .with(
            function(move |p: &SocketAddr| !trusted.contains(p)),
            eq(CloseReason::TooManyConnections),
        )
        .times(excess)
        .return_const(());
    net.expect_request_points().with(always()).never();
    let m = Maintainer::start(config, pool.clone(), Arc::new(net), 2);
    let r = m.wait_for_cycle(0).await;
    assert_eq!(r.closed, excess);
    assert_eq!(pool.active_count(), bounds.max_target);
    m.shutdown().await;
}
