//! Real nodes on 127.0.0.1: discovery through a preconfigured peer, convergence of a
//! network from one bootstrap point, surviving the bootstrap node's departure, trimming
//! under an inbound flood, and hostile peers.
//!
//! Conditions on real sockets are awaited with an overall deadline (never a fixed sleep):
//! `eventually` re-checks on a short interval and fails the test at the deadline.

mod common;

use common::{
    assert_greylisted_and_refused, closed_by_node, connected, eventually, node, raw_closed,
    raw_peer, DEADLINE,
};
use futures::{SinkExt, StreamExt};
use peerkeeper::net::demo::{self, demo_config, DemoOptions};
use peerkeeper::net::wire::{Message, RefuseReason};
use peerkeeper::net::Node;
use peerkeeper::pool::{Direction, Source};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_discovers_a_peer_through_a_preconfigured_one() {
    // Two connections wanted: C, knowing only A, must learn B from A.
    let config = Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 4,
        ..demo_config()
    };
    // B and A are content with one connection: only C looks for more.
    let content = Config {
        min_connections: 1,
        expected_connections: 1,
        ..config.clone()
    };
    let b = node(&content, 2, vec![]).await;
    let a = node(&content, 1, vec![b.local_addr()]).await;
    eventually("A connects to B", || connected(&a, &b)).await;
    let c = node(&config, 3, vec![a.local_addr()]).await;
    eventually("C connects to A and B", || {
        connected(&c, &b) && connected(&c, &a)
    })
    .await;
    let (direction, sources) = c.pool().read(|p| {
        (
            p.connection(&b.local_addr()).unwrap().direction,
            p.get(&b.local_addr()).unwrap().sources,
        )
    });
    assert_eq!(direction, Direction::Outbound, "C dialed B");
    assert!(
        sources.contains(Source::PeerSharing),
        "C learned B by peer sharing"
    );
    assert!(
        c.discovery().stats().points_new >= 1,
        "B came from peer sharing"
    );
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_from_one_seed_converge_into_one_component() {
    let opts = DemoOptions {
        timeout: DEADLINE,
        ..DemoOptions::new(20, 5)
    };
    let report = demo::run(&opts, |_| {}).await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.components, 1, "{report:?}");
    let b = opts.config.bounds();
    assert!(report.connections.min >= b.min_threshold && report.connections.max <= b.max_threshold);
    assert!(report.max_observed_connections <= opts.config.max_connections);
    assert!(report.peer_sharing.points_received > 0);
}

fn all_in_range(nodes: &[Node], lo: usize, hi: usize) -> bool {
    nodes
        .iter()
        .all(|n| (lo..=hi).contains(&n.pool().active_count()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_holds_after_the_seed_node_leaves() {
    let opts = DemoOptions::new(20, 9);
    let b = opts.config.bounds();
    let mut nodes = demo::start_nodes(&opts).await.unwrap();
    eventually("convergence", || {
        all_in_range(&nodes, b.min_threshold, b.max_threshold)
    })
    .await;
    let seed = nodes.remove(0);
    seed.shutdown().await;
    eventually("the rest back in range without the seed", || {
        all_in_range(&nodes, b.min_threshold, b.max_threshold)
            && nodes.iter().all(|n| {
                n.pool()
                    .read(|p| p.connection(&seed.local_addr()).is_none())
            })
    })
    .await;
    let report = demo::report_of(&nodes, 9, true, None, std::time::Instant::now());
    assert_eq!(report.components, 1, "{report:?}");
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_dropped_and_the_node_keeps_its_friends() {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 30,
        max_incoming_connections: 8,
        ..demo_config()
    };
    let friend = node(&config, 100, vec![]).await;
    let target = node(&config, 1, vec![friend.local_addr()]).await;
    eventually("target connects to its friend", || {
        connected(&target, &friend)
    })
    .await;
    let to = target.local_addr();

    // Garbage bytes instead of a handshake.
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(b"\x00\x00\x00\x0bhello world").await.unwrap();
    assert!(raw_closed(&mut s).await, "garbage: dropped");

    // An oversized frame (1 MiB announced).
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 4096]).await.unwrap_or(());
    assert!(raw_closed(&mut s).await, "oversized frame: dropped");

    // A wrong network name: refused with the reason.
    let (mut c, reply) = raw_peer(to, 7, 40007, "othernet").await;
    assert_eq!(
        reply,
        Message::Refused {
            reason: RefuseReason::WrongNetwork,
            points: vec![]
        }
    );
    assert!(closed_by_node(&mut c).await);

    // An advertisement of 101 points after a good handshake: dropped and greylisted.
    let (mut c, reply) = raw_peer(to, 8, 40008, "peerkeeper").await;
    assert!(matches!(reply, Message::Handshake(_)));
    let points: Vec<SocketAddr> = (0..101)
        .map(|i| SocketAddr::from(([10, 9, 0, i as u8], 9732)))
        .collect();
    c.send(Message::Advertise(points)).await.unwrap();
    assert!(closed_by_node(&mut c).await, "101 points: dropped");
    assert_greylisted_and_refused(&target, 8, 40008).await;

    // A flood of connections that never handshake: capped.
    let mut flood = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(to).await {
            flood.push(s);
        }
    }
    eventually("the flood is counted", || {
        target.transport().stats().dropped_at_accept > 0
    })
    .await;
    assert!(target.transport().stats().handshaking <= config.max_incoming_connections as u64);
    drop(flood);

    let stats = target.transport().stats();
    assert!(stats.violations >= 3, "{stats:?}");
    assert!(connected(&target, &friend), "the friend is still connected");
    assert!(target.pool().active_count() <= config.max_connections);
    // A well-behaved newcomer is still welcome once the flood is gone.
    eventually("the handshake slots free up", || {
        target.transport().stats().handshaking == 0
    })
    .await;
    let newcomer = node(&config, 200, vec![to]).await;
    eventually("a newcomer connects", || connected(&newcomer, &target)).await;
    for n in [&friend, &target, &newcomer] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_flood_above_max_threshold_is_trimmed_to_max_target() {
    // min 2 / expected 4 / max 8: max_target 6, max_threshold 7.
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 8,
        ..demo_config()
    };
    let b = config.bounds();
    assert_eq!((b.max_target, b.max_threshold), (6, 7));
    let target = node(&config, 1, vec![]).await;
    let mut peers = Vec::new();
    for i in 0..8u16 {
        let (conn, reply) = raw_peer(
            target.local_addr(),
            1000 + u64::from(i),
            41000 + i,
            "peerkeeper",
        )
        .await;
        assert!(matches!(reply, Message::Handshake(_)), "{reply:?}");
        peers.push(conn);
    }
    eventually("trimmed to max_target", || {
        target.pool().active_count() == b.max_target
    })
    .await;
    // Each peer reads what comes within a budget: the trimmed ones get points, then a close.
    let outcomes = futures::future::join_all(peers.iter_mut().map(|c| async {
        let mut got_points = false;
        let read = async {
            loop {
                match c.next().await {
                    Some(Ok(Message::Advertise(p))) => got_points |= !p.is_empty(),
                    Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => return false,
                }
            }
        };
        let closed = tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .unwrap_or(false);
        (closed, got_points)
    }))
    .await;
    let told: Vec<_> = outcomes.iter().filter(|(closed, _)| *closed).collect();
    assert_eq!(
        told.len(),
        8 - b.max_target,
        "exactly the excess is closed, with a reason"
    );
    assert!(
        told.iter().all(|(_, points)| *points),
        "a trimmed peer learns points first"
    );
    target.shutdown().await;
}
