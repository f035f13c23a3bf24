//! A plugged-in [`PointSource`] over real sockets: a node that knows nobody finds a peer
//! through it, and the source's junk is dropped by validation.

mod common;

use common::eventually;
use futures::future::BoxFuture;
use futures::FutureExt;
use peerkeeper::discovery::PointSource;
use peerkeeper::net::demo::demo_config;
use peerkeeper::net::{NetConfig, Node};
use peerkeeper::pool::{Direction, Source};
use peerkeeper::{Config, PeerId};
use std::net::SocketAddr;
use std::sync::Arc;

struct Static(Vec<SocketAddr>);

impl PointSource for Static {
    fn name(&self) -> &str {
        "static"
    }
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        let points = self.0.clone();
        async move { points }.boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_no_bootstrap_finds_a_peer_through_a_point_source() {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..demo_config()
    };
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b = Node::start(
        config.clone(),
        NetConfig::default(),
        local,
        PeerId(1),
        vec![],
        vec![],
        1,
    )
    .await
    .unwrap();
    let junk: Vec<SocketAddr> = vec!["0.0.0.0:1".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
    let mut listed = junk.clone();
    listed.push(b.local_addr());
    let source: Arc<dyn PointSource> = Arc::new(Static(listed));
    let c = Node::start(
        config,
        NetConfig::default(),
        local,
        PeerId(2),
        vec![],
        vec![source],
        2,
    )
    .await
    .unwrap();
    let to_b = b.local_addr();
    eventually("C connects to B", || {
        c.pool().read(|p| p.connection(&to_b).is_some())
    })
    .await;
    let (sources, direction) = c.pool().read(|p| {
        (
            p.get(&to_b).unwrap().sources,
            p.connection(&to_b).unwrap().direction,
        )
    });
    assert!(sources.contains(Source::External), "B came from the source");
    assert_eq!(direction, Direction::Outbound);
    let known_junk = c
        .pool()
        .read(|p| junk.iter().filter(|a| p.get(a).is_some()).count());
    assert_eq!(known_junk, 0, "invalid points are dropped");
    c.shutdown().await;
    b.shutdown().await;
}
