//! The relay attack on real sockets (protocol v4): a relay between two honest nodes that
//! forwards every byte and logs it.
//!
//! * Spliced: V dials the relay believing it is T; the relay dials T and forwards. T sees
//!   that V dialed another address than its own and refuses (`WrongAddress`): neither node
//!   accepts the other at the relay's address, and neither is punished.
//! * A port mapping T was told of (`NetConfig::external_addrs`): the same relay is then a
//!   legitimate path, V and T connect through it, and application messages cross it, but
//!   the relay's log of every byte never shows their text.

mod common;

use common::*;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::{ChannelConfig, NetConfig, Node, Recipients, WhenFull};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::transport::Transport;
use peerkeeper::Config;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay on 127.0.0.1 to `target`: every byte either way is forwarded and appended
/// to the log.
async fn relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pipe(ri, wo, log2.clone()));
            tokio::spawn(pipe(ro, wi, log2.clone()));
        }
    });
    (at, log)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn config() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..demo_config()
    }
}

async fn node(id: u64, net: NetConfig, bootstrap: Vec<SocketAddr>) -> Node {
    let transport = TcpTransport::bind("127.0.0.1:0").await.unwrap();
    Node::builder(config(), transport)
        .identity(key(id))
        .seed(id)
        .net(net)
        .bootstrap(bootstrap)
        .start()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_splice_two_nodes() {
    let t = node(1, NetConfig::default(), vec![]).await;
    let (r, log) = relay(t.local_addr()).await;
    let v = node(2, NetConfig::default(), vec![r]).await;
    wait_status(&v, DEADLINE, "V's dial through the relay is refused", |s| {
        s.stats.dials.refused >= 1
    })
    .await;
    // Neither accepted the other: no connection, no admission at T, and no ban either
    // (nothing in a hello is proven: the relay could be anybody's).
    assert_eq!(v.status().connections, 0);
    let ts = t.status();
    assert_eq!(ts.connections, 0);
    assert_eq!(ts.stats.admission.accepted, 0);
    assert_eq!(ts.stats.violations, 0);
    assert_eq!(v.status().stats.violations, 0);
    assert!(v.peers().is_empty() && t.peers().is_empty());
    assert!(!log.lock().unwrap().is_empty(), "the relay forwarded bytes");
    v.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_known_port_mapping_messages_cross_a_relay_sealed() {
    // T binds first; the relay forwards to it; T is told the relay's address is its own.
    let transport = TcpTransport::bind("127.0.0.1:0").await.unwrap();
    let (r, log) = relay(transport.local_addr()).await;
    let t = Node::builder(config(), transport)
        .identity(key(1))
        .seed(1)
        .net(NetConfig {
            external_addrs: vec![r],
            ..NetConfig::default()
        })
        .start()
        .unwrap();
    let v = node(2, NetConfig::default(), vec![r]).await;
    let (_t_tx, mut t_rx) = t.channel(9, ChannelConfig::default()).unwrap();
    let (v_tx, _v_rx) = v.channel(9, ChannelConfig::default()).unwrap();
    wait_status(&v, DEADLINE, "V connects through the relay", |s| {
        s.connections == 1
    })
    .await;
    let secret = b"the quick brown fox jumps over the relay";
    let sent = v_tx
        .send(Recipients::One(t.peer_id()), &secret[..], WhenFull::Error)
        .unwrap();
    assert_eq!(sent, vec![t.peer_id()]);
    let (from, got) = tokio::time::timeout(DEADLINE, t_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from, &got[..]), (v.peer_id(), &secret[..]));
    let bytes = log.lock().unwrap().clone();
    assert!(
        bytes
            .windows(b"peerkeeper".len())
            .any(|w| w == b"peerkeeper"),
        "the relay saw the clear-text hellos (so it logged this connection)"
    );
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret),
        "the message's text crossed the relay"
    );
    v.shutdown().await;
    t.shutdown().await;
}
