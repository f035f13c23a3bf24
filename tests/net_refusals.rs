//! Handshake refusals and hostile advertisements on real sockets, beyond `tests/net.rs`:
//! a connection to oneself, a second connection of an already-connected peer id, a full
//! node's refusal carrying points (the friend it keeps, and the dialers it refused
//! before), a node that learns where to go from such a refusal, an over-cap
//! advertisement whose points never reach the pool, another network's node, and a flood
//! of unsolicited advertisements.

mod common;

use common::*;
use futures::SinkExt;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::Node;
use peerkeeper::pool::Source;
use peerkeeper::wire::{Message, RefuseCode};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;

/// A target connected to one friend.
async fn target_with_a_friend(config: &Config) -> (Node, Node) {
    target_with(config, config).await
}

/// A target (with `config`) connected to one friend (with `friend_config`).
async fn target_with(config: &Config, friend_config: &Config) -> (Node, Node) {
    let friend = tcp_node(friend_config, 100, vec![]).await;
    let target = tcp_node(config, 1, vec![friend.local_addr()]).await;
    let f = friend.local_addr();
    wait_core(
        &target,
        DEADLINE,
        "the target connects to its friend",
        move |c| c.pool().connection(&f).is_some(),
    )
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

/// Full at one connection, and never making room: every newcomer is refused.
fn full_at_one() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 1,
        make_room_interval: None,
        ..demo_config()
    }
}

fn refusal_points(m: Message) -> Vec<SocketAddr> {
    match m {
        Message::Refused {
            reason: RefuseCode::Full,
            points,
        } => points,
        other => panic!("expected a refusal with points, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneself_and_a_second_connection_of_a_connected_peer_are_refused() {
    let (target, friend) = target_with_a_friend(&small()).await;
    let to = target.local_addr();

    let (mut c, reply) = raw_peer(to, 1, 40001, "peerkeeper").await;
    assert!(refused_with(&reply, RefuseCode::Myself), "{reply:?}");
    assert!(closed_by_node(&mut c).await);

    // The friend's peer id, from another port: a second connection of a connected peer.
    let (mut c, reply) = raw_peer(to, 100, 40002, "peerkeeper").await;
    assert!(
        refused_with(&reply, RefuseCode::AlreadyConnected),
        "{reply:?}"
    );
    assert!(closed_by_node(&mut c).await);

    // Neither is misbehaviour: nothing greylisted, and the original connection stays.
    let s = target.status().stats;
    assert_eq!(s.violations, 0);
    assert_eq!(
        (s.admission.refused_myself, s.admission.refused_duplicate),
        (1, 1)
    );
    assert!(connected(&target, friend.local_addr()).await);
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_with_its_friend_and_the_dialers_it_refused_before() {
    let (target, friend) = target_with_a_friend(&full_at_one()).await;
    let (mut c, reply) = raw_peer(target.local_addr(), 77, 40003, "peerkeeper").await;
    let points = refusal_points(reply);
    assert!(points.len() <= 50);
    assert!(points.contains(&friend.local_addr()), "{points:?}");
    assert!(closed_by_node(&mut c).await);
    // The next refused dialer hears of the first: two newcomers find each other.
    let (mut c, reply) = raw_peer(target.local_addr(), 78, 40004, "peerkeeper").await;
    let points = refusal_points(reply);
    let first: SocketAddr = "127.0.0.1:40003".parse().unwrap();
    assert!(points.contains(&first), "{points:?}");
    assert!(
        !points.contains(&"127.0.0.1:40004".parse().unwrap()),
        "never itself"
    );
    assert!(closed_by_node(&mut c).await);
    assert!(connected(&target, friend.local_addr()).await);
    assert_eq!(target.status().stats.admission.refused_full, 2);
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refused_by_a_full_node_connects_where_the_refusal_points() {
    // The friend has room; the target has none.
    let (target, friend) = target_with(&full_at_one(), &small()).await;
    let wants_one = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..demo_config()
    };
    let newcomer = tcp_node(&wants_one, 50, vec![target.local_addr()]).await;
    let f = friend.local_addr();
    wait_core(
        &newcomer,
        DEADLINE,
        "the newcomer reaches the friend",
        move |c| c.pool().connection(&f).is_some(),
    )
    .await;
    let d = newcomer.status().stats.dials;
    assert!(d.refused >= 1, "{d:?}");
    assert!(learned_from(&newcomer, f, Source::PeerSharing).await);
    for n in [&newcomer, &target, &friend] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_point_of_an_over_cap_advertisement_reaches_the_pool() {
    let (target, friend) = target_with_a_friend(&Config {
        max_connections: 8,
        ..small()
    })
    .await;
    let (mut c, reply) = raw_peer(target.local_addr(), 55, 40004, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let points: Vec<SocketAddr> = (0..101u16)
        .map(|i| SocketAddr::from(([10, 7, (i >> 8) as u8, i as u8], 9732)))
        .collect();
    c.send(Message::Advertise(points.clone())).await.unwrap();
    assert!(closed_by_node(&mut c).await, "dropped");
    wait_status(&target, DEADLINE, "the violation is counted", |s| {
        s.stats.violations >= 1
    })
    .await;
    let probe = points.clone();
    let learned = query(&target, move |c| {
        probe.iter().filter(|a| c.pool().get(a).is_some()).count()
    })
    .await;
    assert_eq!(learned, 0, "the whole message is refused");

    // An advertisement of exactly 100 points is fine: no violation, and its points are
    // learned, as many as the connection's advertisement budget allows (a full answer's
    // worth at first, `defences.limit_adverts`; all of them if it answers a request).
    let (mut c, reply) = raw_peer(target.local_addr(), 56, 40005, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    c.send(Message::Advertise(points[..100].to_vec()))
        .await
        .unwrap();
    let probe: Vec<SocketAddr> = points[..100].to_vec();
    let budget = query(&target, |c| c.config().discovery.answer_size).await;
    wait_core(&target, DEADLINE, "the points are learned", move |c| {
        probe.iter().filter(|a| c.pool().get(a).is_some()).count() >= budget.min(100)
    })
    .await;
    assert_eq!(target.status().stats.violations, 1);
    assert!(connected(&target, friend.local_addr()).await);
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_network_is_told_why_and_punishes_nobody() {
    let (target, friend) = target_with_a_friend(&small()).await;
    let to = target.local_addr();
    let (mut c, reply) = raw_peer(to, 66, 40006, "another-network").await;
    assert_eq!(
        reply,
        Message::Refused {
            reason: RefuseCode::WrongNetwork,
            points: vec![]
        }
    );
    assert!(closed_by_node(&mut c).await);
    // Nothing in a hello is proven: a refusal with its reason, not a ban (the point it
    // names may be somebody else's). The same point, of our network, gets in.
    assert_eq!(target.status().stats.violations, 0);
    let (_c, reply) = raw_peer(to, 66, 40006, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    // The friend and newcomers are unaffected.
    assert!(connected(&target, friend.local_addr()).await);
    let (_c, reply) = raw_peer(to, 67, 40007, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    target.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dialer_is_remembered_only_if_its_point_is_acceptable() {
    for allow_private in [false, true] {
        let mut config = full_at_one();
        config.discovery.allow_private_addresses = allow_private;
        let (target, friend) = target_with_a_friend(&config).await;
        let (mut c, reply) = raw_peer(target.local_addr(), 88, 40010, "peerkeeper").await;
        assert!(refused_with(&reply, RefuseCode::Full), "{reply:?}");
        assert!(closed_by_node(&mut c).await);
        let refused: SocketAddr = "127.0.0.1:40010".parse().unwrap();
        // The node answers only after updating its pool: no waiting needed.
        let known = query(&target, move |c| c.pool().get(&refused).is_some()).await;
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
    // One unsolicited advertisement per peer_ask_interval / 4 = 150 s: the whole flood
    // falls inside one interval, however slow the machine.
    let mut config = small();
    config.discovery.peer_ask_interval = Duration::from_secs(600);
    let (target, friend) = target_with_a_friend(&config).await;
    let (mut c, reply) = raw_peer(target.local_addr(), 90, 40090, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let batch = |k: u8| -> Vec<SocketAddr> {
        (1..=5u8)
            .map(|i| SocketAddr::from(([127, 9, k, i], 9732)))
            .collect()
    };
    for k in 0..20u8 {
        c.send(Message::Advertise(batch(k))).await.unwrap();
    }
    wait_status(&target, DEADLINE, "the flood is counted", |s| {
        s.stats.points.unsolicited_ignored == 19
    })
    .await;
    let (first, rest): (usize, usize) = query(&target, move |p| {
        let known = |a: &SocketAddr| p.pool().get(a).is_some();
        (
            batch(0).iter().filter(|a| known(a)).count(),
            (1..20u8).flat_map(batch).filter(|a| known(a)).count(),
        )
    })
    .await;
    assert_eq!(
        (first, rest),
        (5, 0),
        "one unsolicited message per interval is read"
    );
    assert!(connected(&target, friend.local_addr()).await);
    // A flood is not a violation: the connection stays.
    assert_eq!(target.status().stats.violations, 0);
    assert!(connected(&target, "127.0.0.1:40090".parse().unwrap()).await);
    drop(c);
    target.shutdown().await;
    friend.shutdown().await;
}
