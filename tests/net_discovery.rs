//! Discovery over real TCP on 127.0.0.1: peer sharing, point sources, a twenty-node
//! network from one seed, and the network without its seed.

use futures::future::BoxFuture;
use futures::FutureExt;
use peerkeeper::discovery::PointSource;
use peerkeeper::net::demo::{demo_config, demo_net_config, Network};
use peerkeeper::net::{Node, NodeOptions};
use peerkeeper::pool::{Direction, Source};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `cond` every 50 ms until it holds; fails after a generous [`TIMEOUT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(min: usize, expected: usize, max: usize, trusted: Vec<SocketAddr>) -> Config {
    Config {
        trusted_points: trusted,
        ..demo_config(min, expected, max)
    }
}

async fn node(config: Config, seed: u64) -> Node {
    let opts = NodeOptions {
        net: demo_net_config(),
        seed,
        ..NodeOptions::new(config, "127.0.0.1:0".parse().unwrap())
    };
    Node::start(opts).await.expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_learns_b_from_a_and_connects() {
    // B wants nothing; A knows B; C knows only A and wants two connections.
    let b = node(config(0, 0, 4, vec![]), 1).await;
    let a = node(config(1, 2, 4, vec![b.listen_addr()]), 2).await;
    wait_until("A connected to B", || {
        a.connected_points().contains(&b.listen_addr())
    })
    .await;
    let c = node(config(2, 2, 4, vec![a.listen_addr()]), 3).await;
    let (b_addr, a_addr) = (b.listen_addr(), a.listen_addr());
    wait_until("C connected to A and B", || {
        let pts = c.connected_points();
        pts.contains(&a_addr) && pts.contains(&b_addr)
    })
    .await;
    let (sources, direction) = c.pool().read(|p| {
        (
            p.get(&b_addr).unwrap().sources,
            p.connection(&b_addr).unwrap().direction,
        )
    });
    assert!(
        sources.contains(Source::PeerSharing),
        "B came from peer sharing"
    );
    assert!(!sources.contains(Source::Trusted));
    assert_eq!(direction, Direction::Outbound, "C dialed B");
    assert!(c.stats().discovery.requests >= 1);
    assert!(a.stats().net.requests_answered >= 1);
    for n in [c, a, b] {
        n.shutdown().await;
    }
}

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
async fn a_point_source_is_polled_when_points_are_wanted() {
    let b = node(config(0, 0, 4, vec![]), 11).await;
    // C knows nobody; its only source of points is a plugged-in source naming B (plus
    // junk that validation drops).
    let opts = NodeOptions {
        net: demo_net_config(),
        seed: 12,
        sources: vec![Arc::new(Static(vec![
            b.listen_addr(),
            "0.0.0.0:1".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ]))],
        ..NodeOptions::new(config(1, 1, 4, vec![]), "127.0.0.1:0".parse().unwrap())
    };
    let c = Node::start(opts).await.unwrap();
    let b_addr = b.listen_addr();
    wait_until("C connected to B", || {
        c.connected_points().contains(&b_addr)
    })
    .await;
    let sources = c.pool().read(|p| p.get(&b_addr).unwrap().sources);
    assert!(sources.contains(Source::External));
    assert!(
        c.stats().discovery.points_rejected >= 2,
        "junk points dropped"
    );
    c.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_converge_from_one_seed_and_survive_its_loss() {
    let config = demo_config(4, 8, 12);
    let bounds = config.bounds();
    let mut net = Network::start(20, 5, &config, &demo_net_config())
        .await
        .unwrap();
    let converged = net.wait_for(TIMEOUT, |s| s.converged()).await;
    let snap = net.snapshot();
    assert!(converged, "not converged: {snap:?}");
    for c in &snap.connections {
        assert!(
            (bounds.min_threshold..=bounds.max_threshold).contains(c),
            "{snap:?}"
        );
    }
    assert_eq!(snap.components, 1);

    // The seed goes away: the others stay (or come back) within range, still one
    // component, without it.
    let seed = net.node(0).unwrap().listen_addr();
    let had_seed = net
        .running()
        .filter(|(_, n)| n.connected_points().contains(&seed))
        .count();
    assert!(had_seed > 0);
    net.stop(0).await;
    assert!(net.node(0).is_none());
    // Every node has seen the seed's connection end...
    wait_until("the seed's connections closed", || {
        net.running()
            .all(|(_, n)| !n.connected_points().contains(&seed))
    })
    .await;
    // ...and the network is (still, or again) within range.
    let seed_gone = net.wait_for(TIMEOUT, |s| s.converged()).await;
    let snap = net.snapshot();
    assert!(seed_gone, "not back in range without the seed: {snap:?}");
    assert_eq!(snap.connections.len(), 19);
    assert_eq!(snap.components, 1);
    let report = net.report(5, None, 0, 0);
    assert!(report.converged);
    assert!(report.max_observed_connections <= config.max_connections);
    net.shutdown().await;
}
