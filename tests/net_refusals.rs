//! Handshake refusals and hostile advertisements on real sockets, beyond `tests/net.rs`:
//! a connection to oneself, a second connection of an already-connected peer id, a full
//! node's refusal carrying points (octez's Nack), and an over-cap advertisement whose
//! points never reach the pool.

mod common;

use common::{
    assert_greylisted_and_refused, closed_by_node, connected, eventually, node, raw_peer,
};
use futures::{SinkExt, StreamExt};
use peerkeeper::net::demo::demo_config;
use peerkeeper::net::wire::{Handshake, Message, RefuseReason, WireCodec, PROTOCOL_VERSION};
use peerkeeper::net::Node;
use peerkeeper::{Config, PeerId};
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A target connected to one friend.
async fn target_with_a_friend(config: &Config) -> (Node, Node) {
    let friend = node(config, 100, vec![]).await;
    let target = node(config, 1, vec![friend.local_addr()]).await;
    eventually("the target connects to its friend", || {
        connected(&target, &friend)
    })
    .await;
    (target, friend)
}

fn small() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..demo_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneself_and_a_second_connection_of_a_connected_peer_are_refused() {
    let (target, friend) = target_with_a_friend(&small()).await;
    let to = target.local_addr();

    let (mut c, reply) = raw_peer(to, target.peer_id().0, 40001, "peerkeeper").await;
    assert!(
        matches!(
            reply,
            Message::Refused {
                reason: RefuseReason::Myself,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(closed_by_node(&mut c).await);

    // The friend's peer id, from another port: a second connection of a connected peer.
    let (mut c, reply) = raw_peer(to, friend.peer_id().0, 40002, "peerkeeper").await;
    assert!(
        matches!(
            reply,
            Message::Refused {
                reason: RefuseReason::AlreadyConnected,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(closed_by_node(&mut c).await);

    // Neither is misbehaviour: nothing greylisted, and the original connection stays.
    assert_eq!(target.transport().stats().violations, 0);
    assert!(connected(&target, &friend));
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_with_points_to_try_instead() {
    // max_connections 1, already used by the friend.
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 1,
        ..demo_config()
    };
    let (target, friend) = target_with_a_friend(&config).await;
    eventually("the target sees the friend as good", || {
        target
            .pool()
            .read(|p| p.get(&friend.local_addr()).is_some_and(|i| i.is_good()))
    })
    .await;
    let (mut c, reply) = raw_peer(target.local_addr(), 77, 40003, "peerkeeper").await;
    match reply {
        Message::Refused {
            reason: RefuseReason::Full,
            points,
        } => {
            assert!(points.len() <= 50);
            assert!(points.contains(&friend.local_addr()), "{points:?}");
        }
        other => panic!("expected a refusal with points, got {other:?}"),
    }
    assert!(closed_by_node(&mut c).await);
    assert!(connected(&target, &friend));
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_point_of_an_over_cap_advertisement_reaches_the_pool() {
    let (target, friend) = target_with_a_friend(&Config {
        max_connections: 8,
        ..small()
    })
    .await;
    let (mut c, reply) = raw_peer(target.local_addr(), 55, 40004, "peerkeeper").await;
    assert!(matches!(reply, Message::Handshake(_)), "{reply:?}");
    let points: Vec<SocketAddr> = (0..101u16)
        .map(|i| SocketAddr::from(([10, 7, (i >> 8) as u8, i as u8], 9732)))
        .collect();
    c.send(Message::Advertise(points.clone())).await.unwrap();
    assert!(closed_by_node(&mut c).await, "dropped");
    eventually("the violation is counted", || {
        target.transport().stats().violations >= 1
    })
    .await;
    let learned = target
        .pool()
        .read(|p| points.iter().filter(|a| p.get(a).is_some()).count());
    assert_eq!(learned, 0, "the whole message is refused");

    // An advertisement of exactly 100 points is fine, and its points are learned.
    let (mut c, reply) = raw_peer(target.local_addr(), 56, 40005, "peerkeeper").await;
    assert!(matches!(reply, Message::Handshake(_)), "{reply:?}");
    c.send(Message::Advertise(points[..100].to_vec()))
        .await
        .unwrap();
    eventually("the 100 points are learned", || {
        target
            .pool()
            .read(|p| points[..100].iter().all(|a| p.get(a).is_some()))
    })
    .await;
    assert_eq!(target.transport().stats().violations, 1);
    assert!(connected(&target, &friend));
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_network_is_told_why_then_greylisted() {
    let (target, friend) = target_with_a_friend(&small()).await;
    let to = target.local_addr();
    let stream = TcpStream::connect(to).await.unwrap();
    let mut c = Framed::new(stream, WireCodec::default());
    c.send(Message::Handshake(Handshake {
        network: "another-network".into(),
        version: PROTOCOL_VERSION,
        peer_id: PeerId(66),
        listen_port: 40006,
    }))
    .await
    .unwrap();
    let reply = c.next().await.unwrap().unwrap();
    assert_eq!(
        reply,
        Message::Refused {
            reason: RefuseReason::WrongNetwork,
            points: vec![]
        }
    );
    assert!(closed_by_node(&mut c).await);
    assert_greylisted_and_refused(&target, 66, 40006).await;
    // Loopback is shared by every local process: the friend and newcomers are unaffected.
    assert!(connected(&target, &friend));
    let (_c, reply) = raw_peer(to, 67, 40007, "peerkeeper").await;
    assert!(matches!(reply, Message::Handshake(_)), "{reply:?}");
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dialer_is_remembered_only_if_its_point_is_dialable() {
    for allow_private in [false, true] {
        let mut config = Config {
            min_connections: 1,
            expected_connections: 1,
            max_connections: 1,
            ..demo_config()
        };
        config.discovery.allow_private_addresses = allow_private;
        let (target, friend) = target_with_a_friend(&config).await;
        let (mut c, reply) = raw_peer(target.local_addr(), 88, 40010, "peerkeeper").await;
        assert!(
            matches!(
                reply,
                Message::Refused {
                    reason: RefuseReason::Full,
                    ..
                }
            ),
            "{reply:?}"
        );
        assert!(closed_by_node(&mut c).await);
        let refused: SocketAddr = "127.0.0.1:40010".parse().unwrap();
        // The node closes the connection only after updating its pool: no waiting needed.
        let known = target.pool().read(|p| p.get(&refused).is_some());
        assert_eq!(
            known, allow_private,
            "allow_private_addresses = {allow_private}"
        );
        target.shutdown().await;
        friend.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsolicited_advertisements_is_dropped_unread() {
    let (target, friend) = target_with_a_friend(&small()).await;
    let (mut c, reply) = raw_peer(target.local_addr(), 90, 40090, "peerkeeper").await;
    assert!(matches!(reply, Message::Handshake(_)), "{reply:?}");
    let batch = |k: u8| -> Vec<SocketAddr> {
        (1..=5u8)
            .map(|i| SocketAddr::from(([127, 9, k, i], 9732)))
            .collect()
    };
    for k in 0..20u8 {
        c.send(Message::Advertise(batch(k))).await.unwrap();
    }
    eventually("the flood is counted", || {
        target.transport().stats().unsolicited_dropped == 19
    })
    .await;
    let (first, rest): (usize, usize) = target.pool().read(|p| {
        (
            batch(0).iter().filter(|a| p.get(a).is_some()).count(),
            (1..20u8)
                .flat_map(batch)
                .filter(|a| p.get(a).is_some())
                .count(),
        )
    });
    assert_eq!(
        (first, rest),
        (5, 0),
        "one unsolicited message per interval is read"
    );
    assert!(connected(&target, &friend));
    target.shutdown().await;
    friend.shutdown().await;
}
