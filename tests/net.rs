//! Real nodes on 127.0.0.1: discovery through a preconfigured peer, convergence of a
//! network from one bootstrap point, surviving the bootstrap node's departure, trimming
//! under an inbound flood, and hostile peers (garbage, an oversized frame, another
//! network, an over-cap advertisement, a second handshake, a flood of silent
//! connections).
//!
//! Conditions on real sockets are awaited on the nodes' status watches, bounded by an
//! overall deadline (never a fixed sleep).

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use peerkeeper::node::demo::{self, demo_config, DemoOptions};
use peerkeeper::node::Node;
use peerkeeper::pool::{Direction, Source};
use peerkeeper::wire::{Message, RefuseCode};
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
    // B and A are content with one connection, in either direction: only C looks for
    // more (with an outbound floor, B would dial C too once A passes C's point on to it,
    // the answer A owes B since B asked when A knew nobody else).
    let content = Config {
        min_connections: 1,
        expected_connections: 1,
        min_outbound: Some(0),
        ..config.clone()
    };
    let b = tcp_node(&content, 2, vec![]).await;
    let a = tcp_node(&content, 1, vec![b.local_addr()]).await;
    let (pa, pb) = (a.local_addr(), b.local_addr());
    wait_core(&a, DEADLINE, "A connects to B", move |c| {
        c.pool().connection(&pb).is_some()
    })
    .await;
    let c = tcp_node(&config, 3, vec![pa]).await;
    wait_core(&c, DEADLINE, "C connects to A and B", move |c| {
        c.pool().connection(&pa).is_some() && c.pool().connection(&pb).is_some()
    })
    .await;
    let direction = query(&c, move |c| c.pool().connection(&pb).unwrap().direction).await;
    assert_eq!(direction, Direction::Outbound, "C dialed B");
    assert!(
        learned_from(&c, pb, Source::PeerSharing).await,
        "C learned B by peer sharing"
    );
    assert!(!learned_from(&c, pb, Source::Bootstrap).await);
    let s = c.status().stats;
    assert!(s.sharing.requests >= 1 && s.points.new >= 1, "{s:?}");
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
    assert!(
        report.connections.min >= b.min_threshold && report.connections.max <= b.max_threshold,
        "{report:?}"
    );
    assert!(report.max_observed_connections <= opts.config.max_connections + 1);
    assert!(report.peer_sharing.points_received > 0);
    assert!(report.dials.adds_up(), "{:?}", report.dials);
}

/// Waits until every node is within `[lo, hi]` at the same time.
async fn wait_all_in_range(nodes: &[Node], lo: usize, hi: usize) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        for n in nodes {
            let left = give_up.saturating_duration_since(tokio::time::Instant::now());
            wait_status(n, left, "in range", |s| (lo..=hi).contains(&s.connections)).await;
        }
        if nodes
            .iter()
            .all(|n| (lo..=hi).contains(&n.status().connections))
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_holds_after_the_seed_node_leaves() {
    let opts = DemoOptions::new(20, 9);
    let b = opts.config.bounds();
    let mut nodes = demo::start_nodes(&opts).await.unwrap();
    wait_all_in_range(&nodes, b.min_threshold, b.max_threshold).await;
    let seed = nodes.remove(0);
    let gone = seed.local_addr();
    seed.shutdown().await;
    for n in &nodes {
        wait_core(n, DEADLINE, "the seed's connection ends", move |c| {
            c.pool().connection(&gone).is_none()
        })
        .await;
    }
    wait_all_in_range(&nodes, b.min_threshold, b.max_threshold).await;
    let report = demo::report_of(&nodes, 9, None, std::time::Instant::now()).await;
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
    let friend = tcp_node(&config, 100, vec![]).await;
    let target = tcp_node(&config, 1, vec![friend.local_addr()]).await;
    let pf = friend.local_addr();
    wait_core(
        &target,
        DEADLINE,
        "target connects to its friend",
        move |c| c.pool().connection(&pf).is_some(),
    )
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

    // A wrong network name: refused with the reason (not a violation: nothing in a
    // hello is proven).
    let (mut c, reply) = raw_peer(to, 7, 40007, "othernet").await;
    assert_eq!(
        reply,
        Message::Refused {
            reason: RefuseCode::WrongNetwork,
            points: vec![]
        }
    );
    assert!(closed_by_node(&mut c).await);

    // An advertisement of 101 points after a good handshake: dropped and greylisted.
    let (mut c, reply) = raw_peer(to, 8, 40008, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let points: Vec<SocketAddr> = (0..101)
        .map(|i| SocketAddr::from(([10, 9, 0, i as u8], 9732)))
        .collect();
    c.send(Message::Advertise(points)).await.unwrap();
    assert!(closed_by_node(&mut c).await, "101 points: dropped");
    assert_greylisted_and_refused(&target, 8, 40008).await;

    // A second handshake on an open connection: dropped and greylisted.
    let (mut c, reply) = raw_peer(to, 9, 40009, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    c.send(hello(9, 40009, "peerkeeper")).await.unwrap();
    assert!(
        closed_by_node(&mut c).await,
        "handshake after handshake: dropped"
    );
    assert_greylisted_and_refused(&target, 9, 40009).await;

    // A flood of connections that never handshake: capped. (The count shows at the
    // node's next input, here its 10 s idle timer: see the ignored test below.)
    let mut flood = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(to).await {
            flood.push(s);
        }
    }
    wait_status(&target, DEADLINE, "the flood is counted", |s| {
        s.dropped_at_accept > 0
    })
    .await;
    drop(flood);

    let s = target.status();
    assert!(s.stats.violations >= 4, "{:?}", s.stats);
    assert!(
        connected(&target, pf).await,
        "the friend is still connected"
    );
    assert!(s.connections <= config.max_connections);
    // A well-behaved newcomer is still welcome once the flood is gone.
    let newcomer = tcp_node(&config, 200, vec![to]).await;
    wait_core(&newcomer, DEADLINE, "a newcomer connects", move |c| {
        c.pool().connection(&to).is_some()
    })
    .await;
    for n in [&friend, &target, &newcomer] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_dropped_at_accept_show_in_the_status_without_another_input() {
    // No timer and no peer: nothing else will make the node publish its status.
    let config = Config {
        min_connections: 0,
        expected_connections: 0,
        max_connections: 4,
        max_incoming_connections: 1,
        maintenance_idle_time: None,
        ..demo_config()
    };
    let target = tcp_node(&config, 1, vec![]).await;
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(target.local_addr()).await.unwrap());
    }
    let mut watch = target.status_watch();
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        watch.wait_for(|s| s.dropped_at_accept > 0),
    )
    .await
    .is_ok();
    // Any input makes the node publish: the links were dropped indeed.
    query(&target, |_| ()).await;
    assert!(target.status().dropped_at_accept > 0);
    assert!(seen, "the drops showed only after another input");
    drop(flood);
    target.shutdown().await;
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
    let target = tcp_node(&config, 1, vec![]).await;
    let mut peers = Vec::new();
    for i in 0..8u16 {
        let (conn, reply) = raw_peer(
            target.local_addr(),
            1000 + u64::from(i),
            41000 + i,
            "peerkeeper",
        )
        .await;
        assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
        peers.push(conn);
    }
    let s = wait_status(&target, DEADLINE, "trimmed", |s| s.stats.closed.trimmed > 0).await;
    assert_eq!(s.connections, b.max_target, "{s:?}");
    assert_eq!(s.stats.closed.trimmed as usize, 8 - b.max_target);
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
