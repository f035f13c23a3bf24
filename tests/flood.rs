//! The fresh-key flood of issue 16 on real sockets: "On loopback, one host opening a
//! connection with a fresh key every 1.2 s evicted all 3 honest inbound peers of a node in
//! 10.8 s, and they never came back."
//!
//! A target node (the library's `Node` on `TcpTransport`, 127.0.0.1) with room for one more
//! connection has 3 honest inbound peers: real nodes that dialed it and whose ping round
//! trips it has measured. Then one host (127.0.0.1, like everyone here) opens a connection
//! with a fresh key about every second, keeps it open and answers nothing (no pongs: it
//! never gets a round-trip time). The honest peers must stay connected throughout: no
//! disconnection seen by the target or by them, and the same peer ids listed by
//! `target.peers()` at the end. The flood must also really have met a full node: the
//! target made room for it (evicting the flood's own connections) and refused it.
//!
//! Why this fails with an eviction that ignores who is long-lived (e3cb237's `make_room`,
//! the oldest inbound connection, or a random one): the target is full (4 of 4) from the
//! first flood connection on, and every later one makes room by evicting an inbound
//! connection older than `newcomer_grace` (2 s here). When the second flood connection
//! arrives (1 s after the first), the only inbound connections older than the grace are
//! the three honest ones, so the eviction at e3cb237 (any inbound connection past its
//! grace, chosen by the trim's spread and seeded RNG) and an oldest-first eviction both
//! close an honest peer then; a random one closes one with probability 3/4 at each of the
//! ~12 arrivals. Either way a `Disconnected` event for an honest peer shows up and the test
//! fails. With the current rules (`maintenance::evict`), on one host the groups say nothing,
//! but the honest peers hold the lowest measured round-trip times (the flood has none), so
//! they are protected, and the flood can only evict its own connections, each past its
//! grace.
//!
//! Waiting is on status and peer lists with deadlines; the attacker's pace (one connection
//! a second) is the attack's rhythm, not a synchronisation. Nothing here asserts a timing.

mod common;

use common::{key, peer_of, raw_peer, wait_status, DEADLINE};
use peerkeeper::core::Event;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::{NetConfig, Node};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::wire::Message;
use peerkeeper::{Config, PeerId};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::Instant;

/// The honest peers' ids (and seeds).
const HONEST: [u64; 3] = [1, 2, 3];
/// The target's id.
const TARGET: u64 = 100;
/// The first of the flood's fresh keys.
const FLOOD_KEY: u64 = 10_000;
/// Connections the flood opens.
const FLOOD: u64 = 12;
/// The flood's pace.
const FLOOD_EVERY: Duration = Duration::from_secs(1);
/// A connection younger than this is never evicted to make room (the default is 10 s:
/// shorter so that the honest peers are past it, and the flood's own connections are too,
/// within a few seconds).
const GRACE: Duration = Duration::from_secs(2);

/// Pings every 300 ms, so round-trip times exist within a second; a silent connection
/// lives a minute, so the flood's connections stay open for the whole test unless the
/// target closes them.
fn net() -> NetConfig {
    NetConfig {
        keepalive_interval: Duration::from_millis(300),
        keepalive_timeout: Duration::from_secs(60),
        ..NetConfig::default()
    }
}

/// Room for the 3 honest peers and one more: the flood fills the node at once, and from
/// then on every newcomer goes through room-making (at most once per 500 ms, so each of
/// the flood's connections gets its chance at a second's pace).
fn target_config() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 4,
        newcomer_grace: GRACE,
        make_room_interval: Some(Duration::from_millis(500)),
        ..demo_config()
    }
}

/// An honest node: dials the target, may meet the other honest nodes, never trims.
fn honest_config() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 4,
        ..demo_config()
    }
}

async fn node(config: Config, id: u64, bootstrap: Vec<std::net::SocketAddr>) -> Node {
    let transport = TcpTransport::bind(common::local()).await.unwrap();
    Node::builder(config, transport)
        .identity(key(id))
        .seed(id)
        .net(net())
        .bootstrap(bootstrap)
        .start()
        .expect("a valid config")
}

/// Disconnections of `peers` among the events received so far (and whether the
/// subscriber fell behind, which would hide some).
fn disconnections(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    peers: &BTreeSet<PeerId>,
) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e @ Event::Disconnected { peer, .. }) if peers.contains(&peer) => out.push(e),
            Ok(_) => {}
            Err(TryRecvError::Empty) => return out,
            Err(TryRecvError::Lagged(n)) => panic!("the event subscriber lost {n} events"),
            Err(TryRecvError::Closed) => panic!("the node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_flood_from_one_host_leaves_the_long_lived_inbound_peers_connected() {
    let target = node(target_config(), TARGET, vec![]).await;
    let honest_ids: BTreeSet<PeerId> = HONEST.iter().map(|&i| peer_of(i)).collect();
    let mut honest = Vec::new();
    for &i in &HONEST {
        honest.push(node(honest_config(), i, vec![target.local_addr()]).await);
    }

    // The three honest peers are connected inbound, long enough for their round trips to
    // be measured (on the target's pings) and for them to be past the grace period.
    let give_up = Instant::now() + DEADLINE;
    loop {
        let peers = target.peers();
        let ready = honest_ids.iter().all(|id| {
            peers
                .iter()
                .any(|p| p.peer == *id && p.inbound && p.rtt.is_some() && p.connected_for > GRACE)
        });
        if ready {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the honest peers did not settle: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The core has the round trips too (the shell shows one before the core hears of it).
    common::wait_core(&target, DEADLINE, "round trips in the core", |c| {
        let with_rtt = c
            .pool()
            .connections()
            .filter(|(_, conn)| conn.rtt_ms.is_some())
            .count();
        with_rtt >= 3
    })
    .await;
    assert_eq!(target.status().connections, 3, "{:?}", target.peers());

    // From here on, no honest connection may end, on either side.
    let mut target_events = target.subscribe();
    let target_id: BTreeSet<PeerId> = [target.peer_id()].into();
    let mut honest_events: Vec<_> = honest.iter().map(Node::subscribe).collect();
    let before = target.status().stats;

    // The flood: a fresh key every second from 127.0.0.1, each link kept open and silent.
    let mut links = Vec::new();
    let (mut admitted, mut refused) = (0, 0);
    let mut next = Instant::now();
    for k in 0..FLOOD {
        tokio::time::sleep_until(next).await;
        next += FLOOD_EVERY;
        // It claims to listen on a port where nothing listens.
        let (link, reply) = raw_peer(
            target.local_addr(),
            FLOOD_KEY + k,
            30_000 + k as u16,
            "peerkeeper",
        )
        .await;
        match reply {
            Message::Hello(_) => admitted += 1,
            Message::Refused { .. } => refused += 1,
            other => panic!("flood connection {k}: unexpected answer {other:?}"),
        }
        links.push(link);
        let lost = disconnections(&mut target_events, &honest_ids);
        assert!(
            lost.is_empty(),
            "after flood connection {k}, the target lost honest peers: {lost:?}"
        );
    }
    // Let the target handle the last handshake fully (the core counts it before the
    // status is published) before reading what happened.
    let accepted = before.admission.accepted;
    let refused_before = before.admission.refused_full;
    wait_status(&target, DEADLINE, "the flood's handshakes counted", |s| {
        s.stats.admission.accepted + s.stats.admission.refused_full
            >= accepted + refused_before + FLOOD
    })
    .await;

    // Not one honest connection ended, as the target or the honest peers saw it.
    let lost = disconnections(&mut target_events, &honest_ids);
    assert!(lost.is_empty(), "the target lost honest peers: {lost:?}");
    for (i, rx) in honest_events.iter_mut().enumerate() {
        let lost = disconnections(rx, &target_id);
        assert!(lost.is_empty(), "honest peer {i} lost the target: {lost:?}");
    }
    // The same three peer ids are connected inbound at the end.
    let peers = target.peers();
    let inbound_honest: BTreeSet<PeerId> = peers
        .iter()
        .filter(|p| p.inbound && honest_ids.contains(&p.peer))
        .map(|p| p.peer)
        .collect();
    assert_eq!(inbound_honest, honest_ids, "{peers:?}");
    for n in &honest {
        assert!(
            n.peers().iter().any(|p| p.peer == target.peer_id()),
            "{} lost the target",
            n.peer_id().short()
        );
    }

    // The flood met a full node that makes room: it got in (first into the free slot, then
    // by evicting its own connections once past their grace) and was refused when its
    // youngest was still within its grace. Without this the test would show nothing.
    let after = target.status().stats;
    let made_room = after.admission.made_room - before.admission.made_room;
    let protected = after.admission.no_room_protected - before.admission.no_room_protected;
    assert!(after.max_connections_seen >= 4, "{after:?}");
    assert!(admitted >= 2, "admitted {admitted}, refused {refused}");
    assert!(refused >= 1, "admitted {admitted}, refused {refused}");
    assert!(made_room >= 1, "made room {made_room}: {after:?}");
    assert!(protected >= 1, "no room (protected) {protected}: {after:?}");
    eprintln!(
        "flood of {FLOOD}: {admitted} admitted, {refused} refused; room made {made_room} \
         times, refused as protected {protected} times; target peers at the end: {:?}",
        peers
            .iter()
            .map(|p| (p.peer.short(), p.inbound, p.rtt))
            .collect::<Vec<_>>()
    );

    drop(links);
    for n in &honest {
        n.shutdown().await;
    }
    target.shutdown().await;
}
