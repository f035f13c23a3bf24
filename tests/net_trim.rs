//! A node pushed above `max_threshold` by incoming connections trims to `max_target`.

use peerkeeper::net::demo::{demo_config, demo_net_config};
use peerkeeper::net::{Node, NodeOptions};
use peerkeeper::Config;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

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

async fn node(config: Config, seed: u64) -> Node {
    let opts = NodeOptions {
        net: demo_net_config(),
        seed,
        ..NodeOptions::new(config, "127.0.0.1:0".parse().unwrap())
    };
    Node::start(opts).await.expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_connections_above_max_threshold_are_trimmed_to_max_target() {
    // T: min 1, expected 2, max 6 -> max_threshold 5, max_target 4.
    let tc = demo_config(1, 2, 6);
    let bounds = tc.bounds();
    assert_eq!((bounds.max_threshold, bounds.max_target), (5, 4));
    let t = node(tc, 1).await;
    // Six dialers that know only T, and do not redial it soon after being trimmed.
    let mut dialers = Vec::new();
    for i in 0..6 {
        let mut c = Config {
            trusted_points: vec![t.listen_addr()],
            ..demo_config(1, 1, 2)
        };
        c.disconnection_delay = Duration::from_secs(600);
        c.private_mode = true; // they never share or ask: only T's trims matter
        dialers.push(node(c, 10 + i).await);
    }
    wait_until("T trimmed", || t.maintainer().stats().closed >= 2).await;
    wait_until("T at max_target", || {
        t.connection_count() == bounds.max_target
    })
    .await;
    let s = t.stats();
    assert!(s.net.connections <= 6, "{s:?}");
    assert_eq!(s.maintenance.closed, 2);
    // The trimmed dialers see their connection end.
    let tp = t.listen_addr();
    wait_until("two dialers disconnected", || {
        dialers
            .iter()
            .filter(|d| !d.connected_points().contains(&tp))
            .count()
            == 2
    })
    .await;
    for d in dialers {
        d.shutdown().await;
    }
    t.shutdown().await;
}
