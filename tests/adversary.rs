//! The cheap attacks of issue 17, played against a real node (the library's `Node`): each
//! must leave the node's honest peers connected and let an honest newcomer join.
//!
//! * **Hellos naming an honest peer's port.** Unauthenticated hellos of another network,
//!   naming the ports of the node's friend and of its trusted `KEY@` peer, and one of our
//!   network whose sender then sends garbage instead of its proof. Before: each was
//!   charged to the point it named, which closed the honest connection there and
//!   greylisted it (three such hellos took a node from 3 connections to 0 for 15 minutes).
//!   Now: refusals with a reason, one unauthenticated socket dropped, nobody banned.
//! * **Idle sockets.** One host keeps 300 silent sockets open to the node, reopening each
//!   one the node closes. Before: 20 handshake slots held for 5 s each, and no honest
//!   handshake got through. Now: the handshake budget evicts the oldest idle socket for a
//!   newcomer ([`peerkeeper::node::gate`]).
//! * **One bad frame from a shared address.** Several nodes behind one public IPv6
//!   address; one socket there sends garbage. Before: the whole /64 was greylisted, and
//!   neither a new node there nor a restarted one could join. Now: only that socket is
//!   dropped; the address itself is greylisted only after repeated violations from
//!   distinct sockets. This one runs on the in-memory transport, which lets one machine
//!   have public addresses; `tests/netns/run` plays it between network namespaces.
//!
//! The first two run on TCP sockets on 127.0.0.1. Waiting is on status, events and peer
//! lists with deadlines; nothing asserts a timing.

mod common;

use common::{connected, key, mem_peer, peer_of, raw_peer, wait_status, Lab, DEADLINE};
use futures::SinkExt;
use peerkeeper::core::Event;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::Node;
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::transport::Transport;
use peerkeeper::wire::{Message, RefuseCode};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::TryRecvError;

/// A node on 127.0.0.1 with peer id and seed `id`, trusting `trusted` (a point and the
/// peer id it must prove, `KEY@POINT`), bootstrapping from `boot`.
async fn tcp_node(
    config: &Config,
    id: u64,
    trusted: Option<(SocketAddr, u64)>,
    boot: Vec<SocketAddr>,
) -> Node {
    let transport = TcpTransport::bind(common::local()).await.unwrap();
    let mut config = config.clone();
    config.trusted_points.extend(trusted.map(|(p, _)| p));
    let mut b = Node::builder(config, transport);
    if let Some((point, peer)) = trusted {
        b = b.expect_peer(point, peer_of(peer));
    }
    b.identity(key(id))
        .seed(id)
        .bootstrap(boot)
        .start()
        .expect("a valid config")
}

/// Disconnections and bans among the events received so far.
fn harm(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e @ (Event::Disconnected { .. } | Event::Banned { .. })) => out.push(e),
            Ok(_) => {}
            Err(TryRecvError::Empty) => return out,
            Err(TryRecvError::Lagged(n)) => panic!("the event subscriber lost {n} events"),
            Err(TryRecvError::Closed) => panic!("the node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hellos_naming_honest_peers_ports_cut_nobody_off_and_ban_nobody() {
    let config = Config {
        min_connections: 2,
        expected_connections: 3,
        max_connections: 6,
        ..demo_config()
    };
    let friend = tcp_node(&config, 2, None, vec![]).await;
    let trusted = tcp_node(&config, 3, None, vec![]).await;
    let target = tcp_node(
        &config,
        1,
        Some((trusted.local_addr(), 3)),
        vec![friend.local_addr()],
    )
    .await;
    let (f, t) = (friend.local_addr(), trusted.local_addr());
    wait_status(&target, DEADLINE, "connected to both", |s| {
        s.connections == 2
    })
    .await;
    assert!(connected(&target, f).await && connected(&target, t).await);
    let mut events = target.subscribe();

    // Three hellos of another network, naming the friend's and the trusted peer's ports.
    for (id, port) in [(66, f.port()), (67, t.port()), (68, f.port())] {
        let (_c, reply) = raw_peer(target.local_addr(), id, port, "another-network").await;
        assert_eq!(
            reply,
            Message::Refused {
                reason: RefuseCode::WrongNetwork,
                points: vec![]
            }
        );
    }
    // A hello of our network naming the friend's port, then garbage instead of its proof.
    let s = TcpStream::connect(target.local_addr()).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(s, peerkeeper::wire::WireCodec::default());
    let hs = peerkeeper::handshake::DialerHandshake::new(
        peer_of(69),
        "peerkeeper",
        f.port(),
        target.local_addr(),
    );
    framed
        .send(Message::Hello(hs.hello().clone()))
        .await
        .unwrap();
    let reply = common::next_message(&mut framed).await;
    assert!(matches!(reply, Some(Message::Hello(_))), "{reply:?}");
    let mut s = framed.into_inner();
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    let mut buf = [0u8; 64];
    while let Ok(Ok(n)) = tokio::time::timeout(DEADLINE, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }

    // The one unauthenticated violation is counted; nobody is banned or disconnected.
    let st = wait_status(&target, DEADLINE, "the violation counted", |s| {
        s.stats.violations >= 1
    })
    .await;
    assert_eq!(st.stats.bans, 0, "{:?}", st.stats);
    // The refusals are counted by reason, not as violations.
    assert_eq!(st.handshakes.refused_network, 3, "{:?}", st.handshakes);
    assert!(connected(&target, f).await, "the friend is kept");
    assert!(connected(&target, t).await, "the trusted peer is kept");
    assert_eq!(harm(&mut events), vec![], "no disconnection, no ban");
    // The honest peers' own points are not greylisted: an honest newcomer joins, and the
    // friend can still come in by its own dial (it is a duplicate, told so: not refused
    // as greylisted).
    let newcomer = tcp_node(&config, 4, None, vec![target.local_addr()]).await;
    let n = newcomer.local_addr();
    common::wait_core(&target, DEADLINE, "the newcomer joins", move |c| {
        c.pool().connection(&n).is_some()
    })
    .await;
    assert_eq!(harm(&mut events), vec![]);
    for node in [&newcomer, &target, &friend, &trusted] {
        node.shutdown().await;
    }
}

/// Keeps `n` silent sockets open to `to` until `stop`, reopening each one that closes;
/// counts the closes.
async fn idle_flood(to: SocketAddr, n: usize, stop: Arc<AtomicBool>, closed: Arc<AtomicUsize>) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (stop, closed) = (stop.clone(), closed.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(to).await else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let mut buf = [0u8; 16];
                // Silent until the node closes it (or the flood stops).
                loop {
                    tokio::select! {
                        r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stop.load(Ordering::Relaxed) { return; }
                        }
                    }
                }
                closed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_host_do_not_stop_an_honest_newcomer() {
    let config = Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 8,
        ..demo_config()
    };
    assert_eq!(
        config.max_incoming_connections,
        Config::default().max_incoming_connections
    );
    let friend = tcp_node(&config, 2, None, vec![]).await;
    let target = tcp_node(&config, 1, None, vec![friend.local_addr()]).await;
    let f = friend.local_addr();
    wait_status(&target, DEADLINE, "connected to its friend", |s| {
        s.connections == 1
    })
    .await;
    let mut events = target.subscribe();

    // More silent sockets than the whole handshake budget, held and reopened.
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let flood = tokio::spawn(idle_flood(
        target.local_addr(),
        300,
        stop.clone(),
        closed.clone(),
    ));
    let st = wait_status(&target, DEADLINE, "the budget is spent and evicting", |s| {
        s.handshakes.evicted > 0
    })
    .await;
    assert!(st.handshakes.pending > 0);

    // Honest newcomers join through the flood, each as soon as it dials.
    let mut newcomers = Vec::new();
    for id in 10..15 {
        newcomers.push(tcp_node(&config, id, None, vec![target.local_addr()]).await);
    }
    for n in &newcomers {
        let at = n.local_addr();
        common::wait_core(
            &target,
            DEADLINE,
            "a newcomer joins through the flood",
            move |c| c.pool().connection(&at).is_some(),
        )
        .await;
    }
    assert!(connected(&target, f).await, "the friend is kept");
    let harmed: Vec<Event> = harm(&mut events)
        .into_iter()
        .filter(|e| {
            matches!(e, Event::Disconnected { point, .. } if *point == f)
                || matches!(e, Event::Banned { .. })
        })
        .collect();
    assert_eq!(harmed, vec![], "the friend is kept, nobody banned");
    stop.store(true, Ordering::Relaxed);
    let _ = flood.await;
    assert!(
        closed.load(Ordering::Relaxed) > 0,
        "the node closed idle sockets"
    );
    for n in newcomers {
        n.shutdown().await;
    }
    target.shutdown().await;
    friend.shutdown().await;
}

fn v6(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_frame_from_a_shared_address_bans_nobody_behind_it() {
    let lab = Lab::new();
    let config = Config {
        min_connections: 0,
        expected_connections: 0,
        max_connections: 20,
        maintenance_idle_time: None,
        ..Config::default()
    };
    let target_at = v6("[2a01:4f8:10::1]:9732");
    let target = lab.node(&config, target_at, 1, vec![]);
    // Behind one public IPv6 address (one NAT64, one provider's CGNAT, one LAN):
    // an honest node, already connected.
    let shared = |port: u16| SocketAddr::new(v6("[2a01:4f8:20::7]:1").ip(), port);
    let (_h1, reply) = mem_peer(&lab, shared(9732), 2, target_at).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let mut events = target.subscribe();

    // One socket there sends garbage instead of a hello.
    let bad = lab.bind(shared(40_001));
    let mut link = bad.connect(target_at).await.unwrap();
    link.send(Message::AskForPoints).await.unwrap();
    let _ = common::next_message(&mut link).await;
    let st = wait_status(&target, DEADLINE, "the violation counted", |s| {
        s.stats.violations == 1
    })
    .await;
    assert_eq!(st.stats.bans, 0);
    assert_eq!(
        harm(&mut events),
        vec![],
        "nobody banned, nobody disconnected"
    );

    // A new honest node at the same address joins; so does another there (a restart
    // under a new port, as a node behind a NAT gets).
    for (port, id) in [(9733, 3), (9734, 4)] {
        let (_p, reply) = mem_peer(&lab, shared(port), id, target_at).await;
        assert!(matches!(reply, Message::Hello(_)), "{port}: {reply:?}");
    }
    // Repeated abuse from distinct sockets of the address is evidence: the address itself
    // is greylisted (its whole /64), a ban that says so.
    for port in [40_002, 40_003] {
        let bad = lab.bind(shared(port));
        let mut link = bad.connect(target_at).await.unwrap();
        link.send(Message::AskForPoints).await.unwrap();
        let _ = common::next_message(&mut link).await;
    }
    let st = wait_status(&target, DEADLINE, "the address banned", |s| {
        s.stats.bans == 1
    })
    .await;
    assert_eq!(st.stats.violations, 3);
    let bans: Vec<Event> = harm(&mut events)
        .into_iter()
        .filter(|e| matches!(e, Event::Banned { .. }))
        .collect();
    assert!(
        matches!(bans.as_slice(), [Event::Banned { whole_ip: true, point: None, ip, .. }] if *ip == shared(0).ip()),
        "{bans:?}"
    );
    let (_p, reply) = mem_peer(&lab, shared(9735), 5, target_at).await;
    assert!(
        common::refused_with(&reply, RefuseCode::Greylisted),
        "{reply:?}"
    );
    target.shutdown().await;
}
