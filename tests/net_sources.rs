//! A plugged-in [`PointSource`] over real sockets: a node that knows nobody finds a peer
//! through it, and the source's junk is dropped by the intake rule, counted by reason.

mod common;

use common::*;
use futures::future::BoxFuture;
use futures::FutureExt;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::{Node, PointSource};
use peerkeeper::pool::{Direction, Source};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::Config;
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
    let b = tcp_node(&config, 1, vec![]).await;
    let junk: Vec<SocketAddr> = vec![
        "0.0.0.0:1".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        "224.0.0.1:9732".parse().unwrap(),
    ];
    let mut listed = junk.clone();
    listed.push(b.local_addr());
    let c = Node::builder(config, TcpTransport::bind(local()).await.unwrap())
        .identity(peerkeeper::identity::Keypair::from_seed(2))
        .seed(2)
        .source(Arc::new(Static(listed)))
        .start()
        .unwrap();
    let to_b = b.local_addr();
    wait_core(&c, DEADLINE, "C connects to B", move |c| {
        c.pool().connection(&to_b).is_some()
    })
    .await;
    let (direction, known_junk) = {
        let junk = junk.clone();
        query(&c, move |c| {
            (
                c.pool().connection(&to_b).unwrap().direction,
                junk.iter().filter(|a| c.pool().get(a).is_some()).count(),
            )
        })
        .await
    };
    assert!(
        learned_from(&c, to_b, Source::External).await,
        "B came from the source"
    );
    assert_eq!(direction, Direction::Outbound);
    assert_eq!(known_junk, 0, "invalid points are dropped");
    let dropped = c.status().stats.points.dropped;
    assert!(
        dropped.port_zero >= 1 && dropped.not_unicast >= 2,
        "{dropped:?}"
    );
    c.shutdown().await;
    b.shutdown().await;
}
