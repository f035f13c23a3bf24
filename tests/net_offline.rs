//! The offline rule in a running node, on the memory network with a paused clock: while
//! every peer is unreachable the node holds no failure against its points and keeps
//! trying; when the network comes back it reconnects within a minute, not after the
//! longest backoff.

mod common;

use common::*;
use peerkeeper::core::{OFFLINE_PROBES, OFFLINE_RETRY};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;

const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);
const PEERS: u32 = 8;

fn addr(i: u32) -> SocketAddr {
    ip4(1, (i >> 8) as u8, i as u8)
}

#[tokio::test(start_paused = true)]
async fn a_node_cut_off_for_half_an_hour_reconnects_at_once() {
    let lab = Lab::new();
    let peers: Vec<_> = (1..=PEERS)
        .map(|i| lab.passive(addr(i), 100 + u64::from(i)))
        .collect();
    for i in 1..=PEERS {
        lab.net.set_unreachable(addr(i), true);
    }
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 8,
        ..Config::default()
    };
    let node = lab
        .builder(config, ME, 1)
        .bootstrap((1..=PEERS).map(addr).collect())
        .start()
        .unwrap();
    wait_core(
        &node,
        VIRTUAL_DEADLINE,
        "the node counts itself offline",
        |c| c.offline_since().is_some(),
    )
    .await;
    // Half an hour without a network: the node keeps dialing, holds nothing against
    // its points.
    let before = lab.net.connects();
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let tries = lab.net.connects() - before;
    assert!(tries >= 10, "an offline node keeps trying: {tries} dials");
    // At most about OFFLINE_PROBES dials per OFFLINE_RETRY (the probe interval is at
    // least that).
    let bound = 1800 / OFFLINE_RETRY.as_secs() * OFFLINE_PROBES as u64 + PEERS as u64;
    assert!(tries <= bound, "{tries} dials in half an hour offline");
    let failures = query(&node, |c| {
        (1..=PEERS)
            .map(|i| c.pool().get(&addr(i)).map_or(0, |p| p.failures))
            .max()
            .unwrap()
    })
    .await;
    assert_eq!(failures, 0, "failures counted while offline");

    // The network is back.
    for i in 1..=PEERS {
        lab.net.set_unreachable(addr(i), false);
    }
    // Within a probe interval or two (here 20 s: twice the dial timeout), where the
    // backoff the failures would have built would be at its 10 minute cap.
    wait_status(
        &node,
        Duration::from_secs(60),
        "the node reconnects within a minute of the network's return",
        |s| s.connections >= 2,
    )
    .await;
    node.shutdown().await;
    for p in &peers {
        p.shutdown().await;
    }
}
