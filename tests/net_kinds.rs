//! Kinds and targets in running nodes (issue 9): a node fed by a ledger
//! ([`LedgerSource`]) discovers its relays and keeps a floor of connections to them, even
//! when peer sharing filled its outbound budget first and when a ledger peer goes away
//! (memory transport, paused clock); and Amaru's acceptance test on real sockets: a node
//! that knows one preconfigured peer discovers a new peer through it (peer sharing) and
//! connects to it, keeping a floor of each kind.

mod common;

use common::*;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::ledger::{LedgerSource, StakePool};
use peerkeeper::node::Node;
use peerkeeper::pool::Source;
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::Config;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connections of `node` to any of `points`.
async fn connected_to(node: &Node, points: &[SocketAddr]) -> usize {
    let points = points.to_vec();
    query(node, move |c| {
        points
            .iter()
            .filter(|p| c.pool().connection(p).is_some())
            .count()
    })
    .await
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_node_discovers_and_keeps_a_floor_of_ledger_peers() {
    let lab = Lab::new();
    // Eight bootstrap relays, three ledger relays: plain nodes that dial nobody.
    let bootstrap: Vec<SocketAddr> = (1..=8).map(|i| ip4(1, 0, i)).collect();
    let ledger_relays: Vec<SocketAddr> = (1..=3).map(|i| ip4(2, 0, i)).collect();
    let mut others = Vec::new();
    for (i, p) in bootstrap.iter().chain(&ledger_relays).enumerate() {
        others.push(lab.passive(*p, 100 + i as u64));
    }
    let ledger = Arc::new(LedgerSource::new("ledger", 1.0));
    ledger.update(
        ledger_relays
            .iter()
            .enumerate()
            .map(|(i, r)| StakePool {
                stake: 100 - i as u64,
                relays: vec![*r],
            })
            .collect(),
    );
    // 4 / 8 / 12: min_target 6 outbound; at least 2 of them ledger relays.
    let mut config = demo_config();
    config.targets.external.floor = 2;
    config.validate().unwrap();
    assert_eq!(config.outbound_budget(), 6);
    let a = lab
        .builder(config, ip4(3, 0, 1), 1)
        .bootstrap(bootstrap.clone())
        .source(ledger.clone())
        .start()
        .unwrap();
    // The bootstrap points are known (and better ranked) first: the top-up fills the
    // outbound budget with them; the ledger's relays arrive with the first discovery
    // round, and the floor makes room for two of them.
    wait_status(&a, VIRTUAL_DEADLINE, "two ledger peers", |s| {
        s.connections_of(Source::External) >= 2 && s.outbound >= 6
    })
    .await;
    assert_eq!(connected_to(&a, &ledger_relays).await, 2);
    assert!(learned_from(&a, ledger_relays[0], Source::External).await);
    let s = a.status();
    assert!(s.outbound <= 6, "the outbound budget holds: {s:?}");
    // A ledger peer goes away: the floor is restored with the third relay.
    let gone = *query(&a, {
        let l = ledger_relays.clone();
        move |c| {
            l.iter()
                .filter(|p| c.pool().connection(p).is_some())
                .copied()
                .collect::<Vec<_>>()
        }
    })
    .await
    .first()
    .unwrap();
    let i = ledger_relays.iter().position(|p| *p == gone).unwrap();
    others[bootstrap.len() + i].shutdown().await;
    wait_core(&a, VIRTUAL_DEADLINE, "the floor restored", {
        let l = ledger_relays.clone();
        move |c| {
            l.iter()
                .filter(|p| **p != gone && c.pool().connection(p).is_some())
                .count()
                >= 2
        }
    })
    .await;
    a.shutdown().await;
    for n in others {
        n.shutdown().await;
    }
}

/// Amaru's acceptance test (pragma-org/amaru#659), on real sockets: C is preconfigured
/// with B only; B knows A (A dialed it); C discovers A through B and connects to it, and
/// keeps its floors: one bootstrap peer (B) and one peer-shared peer (A).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_discovers_a_new_peer_through_a_preconfigured_one() {
    let small = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..demo_config()
    };
    let b = tcp_node(&small, 2, vec![]).await;
    let a = tcp_node(&small, 1, vec![b.local_addr()]).await;
    let (to_a, to_b) = (a.local_addr(), b.local_addr());
    wait_core(&b, DEADLINE, "A connects to B", move |c| {
        c.pool().connection(&to_a).is_some()
    })
    .await;
    let mut config = Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 4,
        ..demo_config()
    };
    config.targets.bootstrap.floor = 1;
    config.targets.peer_sharing.floor = 1;
    config.validate().unwrap();
    let c = Node::builder(config, TcpTransport::bind(local()).await.unwrap())
        .identity(peerkeeper::identity::Keypair::from_seed(3))
        .seed(3)
        .bootstrap(vec![to_b])
        .start()
        .unwrap();
    wait_core(&c, DEADLINE, "C connects to A and B", move |c| {
        c.pool().connection(&to_a).is_some() && c.pool().connection(&to_b).is_some()
    })
    .await;
    assert!(
        learned_from(&c, to_a, Source::PeerSharing).await,
        "C learned A from B"
    );
    let s = c.status();
    assert_eq!(s.connections_of(Source::Bootstrap), 1, "{s:?}");
    assert_eq!(s.connections_of(Source::PeerSharing), 1, "{s:?}");
    c.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}
