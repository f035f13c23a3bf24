//! A node's life as its owner sees it: stopping (shutdown, drop, a parent token) ends
//! every task and answers every caller at once; `maintain()` is cancel-safe; shutdown
//! cancels dials in flight without a verdict on their points; a dial that reaches the
//! node itself is recognised as such; bad network settings are refused with the field
//! named; and dial outcomes always add up to the dials made.
//!
//! Memory network and paused clock, except where the socket matters (our own address
//! behind an alias, a dropped node's listener).

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use peerkeeper::core::DialStats;
use peerkeeper::maintenance::WakeReason;
use peerkeeper::node::{NetConfig, Node, NodeError};
use peerkeeper::pool::Source;
use peerkeeper::transport::memory::{MemoryNetwork, MemoryTransport};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::transport::Transport;
use peerkeeper::wire::{CloseCode, Message};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);

fn small_config() -> Config {
    Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        max_concurrent_dials: 4,
        ..Config::default()
    }
}

/// Asserts that every call on a stopped node fails with `Stopped` at once: no virtual
/// time passes (a hang would show as the 1 s bound expiring).
async fn assert_stopped(node: &Node) {
    let t = Instant::now();
    let at_once = Duration::from_secs(1);
    let r = tokio::time::timeout(at_once, node.maintain()).await;
    assert!(matches!(r, Ok(Err(NodeError::Stopped))), "{r:?}");
    let r = tokio::time::timeout(
        at_once,
        node.set_trigger(peerkeeper::trigger::TriggerKind::NewPoint, false),
    )
    .await;
    assert!(matches!(r, Ok(Err(NodeError::Stopped))), "{r:?}");
    let r = tokio::time::timeout(
        at_once,
        node.add_points(vec![ip4(9, 0, 1)], Source::PeerSharing),
    )
    .await;
    assert!(matches!(r, Ok(Err(NodeError::Stopped))), "{r:?}");
    let r = tokio::time::timeout(at_once, node.inspect(|c| c.connection_count())).await;
    assert!(matches!(r, Ok(Err(NodeError::Stopped))), "{r:?}");
    assert_eq!(Instant::now(), t, "answered at once");
    assert!(node.is_stopped());
}

/// A raw peer connected to the node at `ME`.
async fn connected_raw_peer(lab: &Lab, i: u8) -> MemPeer {
    let (p, reply) = mem_peer(lab, ip4(3, 0, i), 3000 + u64::from(i), ME).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    p
}

/// Whether the node told the raw peer it shuts down, then ended the link.
async fn told_shutdown(p: &mut MemPeer) -> bool {
    let (msgs, closed) = read_until_closed(&mut p.link, Duration::from_secs(5)).await;
    closed
        && msgs.last() == Some(&Message::Close(CloseCode::Shutdown))
        && p.link.next().await.is_none()
}

#[tokio::test(start_paused = true)]
async fn every_call_after_shutdown_fails_at_once() {
    let lab = Lab::new();
    let node = lab.node(&small_config(), ME, 1, vec![]);
    node.maintain().await.unwrap();
    node.shutdown().await;
    assert_stopped(&node).await;
    // Twice is harmless.
    node.shutdown().await;
    assert_stopped(&node).await;
}

#[tokio::test(start_paused = true)]
async fn a_maintain_call_waiting_for_its_cycle_fails_when_the_node_stops() {
    // The first cycle dials points that never answer: it cannot end before dial_timeout.
    let lab = Lab::new();
    let silent: Vec<MemoryTransport> = (1..=4).map(|i| lab.bind(ip4(9, 0, i))).collect();
    let node = lab.node(
        &small_config(),
        ME,
        2,
        silent.iter().map(|t| t.local_addr()).collect(),
    );
    let (waited, ()) = tokio::join!(node.maintain(), async {
        wait_status(&node, VIRTUAL_DEADLINE, "dials in flight", |s| {
            s.dialing == 4
        })
        .await;
        node.shutdown().await;
    });
    assert!(matches!(waited, Err(NodeError::Stopped)), "{waited:?}");
    assert!(lab.now() < peerkeeper::Time::ZERO + Duration::from_secs(10));
    assert_stopped(&node).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_node_stops_its_tasks_and_tells_its_peers() {
    let lab = Lab::new();
    let node = lab.node(&small_config(), ME, 3, vec![]);
    let mut p = connected_raw_peer(&lab, 1).await;
    wait_status(&node, VIRTUAL_DEADLINE, "the peer is admitted", |s| {
        s.connections == 1
    })
    .await;
    drop(node);
    assert!(told_shutdown(&mut p).await, "the peer is told and let go");
    // The listener is gone: nobody accepts at the node's address any more.
    assert!(lab.net.bind(ME).is_ok(), "the node's transport was dropped");
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 0, "no task outlives the node");
}

#[tokio::test]
async fn a_dropped_tcp_node_stops_listening_and_closes_its_connections() {
    let node = tcp_node(&small_config(), 4, vec![]).await;
    let to = node.local_addr();
    let (mut c, reply) = raw_peer(to, 40, 40040, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    wait_status(&node, DEADLINE, "the peer is admitted", |s| {
        s.connections == 1
    })
    .await;
    drop(node);
    let (msgs, closed) = read_until_closed(&mut c, DEADLINE).await;
    assert!(closed, "the connection ends");
    assert_eq!(msgs.last(), Some(&Message::Close(CloseCode::Shutdown)));
    let refused = tokio::net::TcpStream::connect(to).await;
    assert!(refused.is_err(), "the listener is closed: {refused:?}");
}

#[tokio::test(start_paused = true)]
async fn a_node_stops_with_its_parent_token_and_never_cancels_it() {
    let lab = Lab::new();
    // Cancelling the parent stops the node.
    let parent = CancellationToken::new();
    let node = lab
        .builder(small_config(), ME, 5)
        .cancel_token(parent.clone())
        .start()
        .unwrap();
    let mut p = connected_raw_peer(&lab, 1).await;
    wait_status(&node, VIRTUAL_DEADLINE, "the peer is admitted", |s| {
        s.connections == 1
    })
    .await;
    parent.cancel();
    assert!(told_shutdown(&mut p).await);
    assert_stopped(&node).await;
    drop(node);

    // Shutting a node down, or dropping it, leaves its parent (and its siblings) alone.
    let parent = CancellationToken::new();
    let a = lab
        .builder(small_config(), ip4(0, 0, 2), 6)
        .cancel_token(parent.clone())
        .start()
        .unwrap();
    let b = lab
        .builder(small_config(), ip4(0, 0, 3), 7)
        .cancel_token(parent.clone())
        .start()
        .unwrap();
    let c = lab
        .builder(small_config(), ip4(0, 0, 4), 8)
        .cancel_token(parent.clone())
        .start()
        .unwrap();
    a.shutdown().await;
    drop(b);
    assert!(!parent.is_cancelled(), "the node used a child token");
    let r = c.maintain().await.expect("a sibling still runs");
    assert!(r.reasons.contains(WakeReason::Maintain));
    c.shutdown().await;
    assert!(!parent.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_maintain_future_does_not_break_later_calls() {
    // 5 s links: a top-up takes a while, so maintain() is pending for a while.
    let lab = Lab::with(MemoryNetwork::with_latency(|_, _| Duration::from_secs(5)));
    let peers: Vec<Node> = (1..=10)
        .map(|i| lab.passive(ip4(1, 0, i), 100 + u64::from(i)))
        .collect();
    let node = lab.node(
        &small_config(),
        ME,
        9,
        peers.iter().map(|p| p.local_addr()).collect(),
    );
    for _ in 0..10 {
        let gave_up = tokio::time::timeout(Duration::from_secs(1), node.maintain()).await;
        assert!(gave_up.is_err(), "still dialing: {gave_up:?}");
    }
    // Dropped before its first poll completes, too.
    {
        let mut f = Box::pin(node.maintain());
        assert!(futures::poll!(f.as_mut()).is_pending());
    }
    let t_call = lab.now();
    let r = node.maintain().await.expect("later calls still work");
    assert!(
        r.started >= t_call && r.reasons.contains(WakeReason::Maintain),
        "{r:?}"
    );
    // And again, in range: at once.
    let t_call = lab.now();
    let r2 = node.maintain().await.unwrap();
    assert_eq!((r2.cycle, r2.started), (r.cycle + 1, t_call));
    node.shutdown().await;
    for p in &peers {
        p.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_dials_in_flight_and_leaves_no_point_dialing() {
    let lab = Lab::new();
    // Listeners that never accept: a dial to them waits for its dial_timeout.
    let silent: Vec<MemoryTransport> = (1..=6).map(|i| lab.bind(ip4(9, 0, i))).collect();
    let node = lab.node(
        &small_config(),
        ME,
        10,
        silent.iter().map(|t| t.local_addr()).collect(),
    );
    wait_status(&node, VIRTUAL_DEADLINE, "dials in flight", |s| {
        s.dialing == 4
    })
    .await;
    let (in_flight, dialing_points) =
        query(&node, |c| (c.dials_in_flight(), c.pool().dialing().count())).await;
    assert_eq!((in_flight, dialing_points), (4, 4));
    node.shutdown().await;
    let s = node.status();
    assert_eq!(s.dialing, 0, "no point is left dialing");
    let d = s.stats.dials;
    assert_eq!((d.attempted, d.cancelled, d.in_flight), (4, 4, 0), "{d:?}");
    assert!(d.adds_up(), "{d:?}");
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 0, "the dial tasks ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_to_ourselves_behind_an_alias_ends_as_myself_and_harms_no_healthy_point() {
    let config = Config {
        min_connections: 3,
        expected_connections: 3,
        max_connections: 6,
        time_between_looking_for_peers: Duration::from_millis(200),
        ..Config::default()
    };
    let friend = tcp_node(&config, 100, vec![]).await;
    let transport = TcpTransport::bind("0.0.0.0:0").await.unwrap();
    let port = transport.local_addr().port();
    let aliases: Vec<SocketAddr> = vec![
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 2], port)),
    ];
    let mut bootstrap = aliases.clone();
    bootstrap.push(friend.local_addr());
    let node = Node::builder(config, transport)
        .identity(peerkeeper::identity::Keypair::from_seed(1))
        .seed(1)
        .bootstrap(bootstrap)
        .start()
        .unwrap();
    let s = wait_status(&node, DEADLINE, "both aliases dialed", |s| {
        s.stats.dials.myself == 2 && s.connections == 1
    })
    .await;
    let d = s.stats.dials;
    assert_eq!(
        (d.refused, d.failed, d.timed_out, d.protocol),
        (0, 0, 0, 0),
        "{d:?}"
    );
    // Our dialer saw its own key in the listener's hello and signed nothing (a relayed
    // signature could otherwise prove "us" to our own listener): the listener's side
    // never got a proven hello to refuse.
    assert_eq!(
        s.stats.admission.refused_myself, 0,
        "the dialer stopped first"
    );
    assert!(connected(&node, friend.local_addr()).await);
    let f = friend.local_addr();
    let (friend_failures, aliases_known, own) = {
        let aliases = aliases.clone();
        query(&node, move |c| {
            (
                c.pool().get(&f).map(|p| p.failures),
                aliases.iter().filter(|a| c.pool().get(a).is_some()).count(),
                c.own_points().to_vec(),
            )
        })
        .await
    };
    assert_eq!(friend_failures, Some(0), "the healthy point is untouched");
    assert_eq!(
        aliases_known, 0,
        "our aliases are forgotten, not backed off"
    );
    assert!(aliases.iter().all(|a| own.contains(a)), "{own:?}");
    // Never dialed again: a new cycle finds no candidate.
    let attempted = d.attempted;
    let r = node.maintain().await.unwrap();
    assert_eq!(r.dialed, 0);
    assert_eq!(node.status().stats.dials.attempted, attempted);
    node.shutdown().await;
    friend.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn our_own_address_is_never_dialed() {
    let lab = Lab::new();
    let node = lab.node(&small_config(), ME, 11, vec![ME]);
    let r = node.maintain().await.unwrap();
    assert_eq!(r.dialed, 0);
    let s = node.status();
    assert_eq!((s.known_points, s.stats.dials.attempted), (0, 0));
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bad_net_settings_are_refused_at_start_naming_the_field() {
    let lab = Lab::new();
    let d = NetConfig::default();
    assert!(d.validate().is_ok());
    let s = Duration::from_secs;
    let cases: Vec<(NetConfig, &str)> = vec![
        (
            NetConfig {
                keepalive_interval: Duration::ZERO,
                ..d.clone()
            },
            "keepalive_interval",
        ),
        (
            NetConfig {
                keepalive_timeout: Duration::ZERO,
                ..d.clone()
            },
            "keepalive_timeout",
        ),
        (
            NetConfig {
                keepalive_timeout: d.keepalive_interval,
                ..d.clone()
            },
            "keepalive_timeout",
        ),
        (
            NetConfig {
                keepalive_interval: s(30),
                keepalive_timeout: s(10),
                ..d.clone()
            },
            "keepalive_timeout",
        ),
        (
            NetConfig {
                handshake_timeout: Duration::ZERO,
                ..d.clone()
            },
            "handshake_timeout",
        ),
        (
            NetConfig {
                network: String::new(),
                ..d.clone()
            },
            "network",
        ),
        (
            NetConfig {
                network: "x".repeat(65),
                ..d.clone()
            },
            "network",
        ),
        (
            NetConfig {
                queue_len: 0,
                ..d.clone()
            },
            "queue_len",
        ),
    ];
    for (net, field) in cases {
        assert_eq!(net.validate().unwrap_err().field(), Some(field), "{net:?}");
        let started = lab.builder(small_config(), ME, 12).net(net.clone()).start();
        match started {
            Err(NodeError::Config(e)) => assert_eq!(e.field(), Some(field), "{net:?}"),
            other => panic!("{net:?} started: {other:?}"),
        }
        // Nothing was left running: the address is free again.
        assert!(lab.net.bind(ME).is_ok());
    }
    // The node's own config is checked too.
    let bad = Config {
        max_connections: 0,
        ..small_config()
    };
    match lab.builder(bad, ME, 13).start() {
        Err(NodeError::Config(e)) => assert_eq!(e.field(), Some("max_connections")),
        other => panic!("started: {other:?}"),
    }
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0
    );
}

/// Accepts links at `at` and answers every handshake with something else than a
/// handshake (a protocol violation).
fn garbage_listener(lab: &Lab, at: SocketAddr) -> tokio::task::JoinHandle<()> {
    let t = lab.bind(at);
    tokio::spawn(async move {
        while let Ok((mut link, _)) = t.accept().await {
            tokio::spawn(async move {
                if next_message(&mut link).await.is_some() {
                    let _ = link.send(Message::AskForPoints).await;
                }
                while next_message(&mut link).await.is_some() {}
            });
        }
    })
}

#[tokio::test(start_paused = true)]
async fn dial_outcomes_add_up_after_a_busy_run() {
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        ..Config::default()
    };
    let lab = Lab::new();
    // Bogus points every node knows: nobody there, a listener that never answers, one that
    // answers garbage.
    let nobody = ip4(9, 0, 1);
    let silent = lab.bind(ip4(9, 0, 2));
    let garbage = garbage_listener(&lab, ip4(9, 0, 3));
    let bogus = vec![nobody, silent.local_addr(), ip4(9, 0, 3)];
    let hub = lab.node(&config, ip4(0, 0, 1), 1, bogus.clone());
    let mut nodes = vec![hub];
    for i in 2..=15u8 {
        let mut bootstrap = vec![ip4(0, 0, 1)];
        bootstrap.extend(&bogus);
        nodes.push(lab.node(&config, ip4(0, 0, i), u64::from(i), bootstrap));
    }
    // Every status any node publishes adds up.
    let watchers: Vec<_> = nodes
        .iter()
        .map(|n| {
            let mut rx = n.status_watch();
            tokio::spawn(async move {
                let mut bad = Vec::new();
                while rx.changed().await.is_ok() {
                    let s = rx.borrow_and_update().clone();
                    let d = s.stats.dials;
                    if !d.adds_up() || d.in_flight as usize != s.dialing {
                        bad.push((d, s.dialing));
                    }
                }
                bad
            })
        })
        .collect();
    let b = config.bounds();
    for n in &nodes {
        wait_status(n, VIRTUAL_DEADLINE, "min_threshold", |s| {
            s.connections >= b.min_threshold
        })
        .await;
    }
    // Three nodes leave; the rest recovers.
    let mut gone: Vec<Node> = nodes.drain(12..).collect();
    for n in &gone {
        n.shutdown().await;
    }
    // A late joiner leaves in the middle of its first dials (to listeners that never
    // answer).
    let slow: Vec<MemoryTransport> = (1..=4).map(|i| lab.bind(ip4(8, 0, i))).collect();
    let late = lab.node(
        &config,
        ip4(0, 0, 99),
        99,
        slow.iter().map(|t| t.local_addr()).collect(),
    );
    wait_status(&late, VIRTUAL_DEADLINE, "dials in flight", |s| {
        s.dialing > 0
    })
    .await;
    late.shutdown().await;
    gone.push(late);
    for n in &nodes {
        wait_status(n, VIRTUAL_DEADLINE, "back in range", |s| {
            s.connections >= b.min_threshold
        })
        .await;
    }
    let mut total = DialStats::default();
    for n in nodes.iter().chain(&gone) {
        n.shutdown().await;
        let d = n.status().stats.dials;
        assert!(d.adds_up(), "{d:?}");
        assert_eq!((d.in_flight, n.status().dialing), (0, 0), "{d:?}");
        total.add(&d);
    }
    for w in watchers {
        assert_eq!(w.await.unwrap(), vec![], "a status that did not add up");
    }
    assert!(total.adds_up(), "{total:?}");
    for (outcome, n) in [
        ("succeeded", total.succeeded),
        ("refused", total.refused),
        ("failed", total.failed),
        ("timed_out", total.timed_out),
        ("protocol", total.protocol),
        ("cancelled", total.cancelled),
    ] {
        assert!(n > 0, "no dial {outcome}: {total:?}");
    }
    garbage.abort();
}
