//! A peer that asks for points but never reads the answers must not wedge its connection
//! task: once the node's writes to it stall, the node drops it, and the node still shuts
//! down. (A stalled write once blocked the task forever: no keepalive check, no
//! cancellation, and `shutdown` never returned.) Real sockets: only a kernel buffer that
//! fills up shows it.

mod common;

use common::*;
use peerkeeper::node::demo::demo_config;
use peerkeeper::node::{NetConfig, Node};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::wire::{Message, WireCodec};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{Encoder, Framed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_dropped_and_shutdown_completes() {
    let mut config = Config {
        min_connections: 0,
        expected_connections: 0,
        max_connections: 8,
        ..demo_config()
    };
    // Every request is answered (at most one a millisecond), so the stalled peer's buffers, and the
    // node's send buffer (up to 4 MiB on Linux), fill within a second.
    config.discovery.peer_ask_interval = Duration::from_millis(4); // the smallest: answers every ms
    let net = NetConfig {
        handshake_timeout: Duration::from_secs(2),
        // Silence never ends this connection here: only a stalled write may.
        keepalive_interval: Duration::from_secs(600),
        keepalive_timeout: Duration::from_secs(1200),
        ..NetConfig::default()
    };
    let transport = TcpTransport::bind(local()).await.unwrap();
    let target = Node::builder(config, transport)
        .identity(peerkeeper::identity::Keypair::from_seed(1))
        .seed(1)
        .net(net)
        .start()
        .unwrap();
    let to = target.local_addr();

    // Fifty peers that connect once: fifty points to tell, so every answer is large.
    for i in 0..50u16 {
        let stream = TcpStream::connect(to).await.unwrap();
        let mut c = Framed::new(stream, WireCodec::default());
        let reply = dial_handshake(&mut c, to, 1000 + u64::from(i), 42000 + i, "peerkeeper").await;
        assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
        let point = SocketAddr::from(([127, 0, 0, 1], 42000 + i));
        wait_core(&target, DEADLINE, "the peer is connected", move |c| {
            c.pool().connection(&point).is_some()
        })
        .await;
    }
    wait_status(&target, DEADLINE, "the fifty disconnect", |s| {
        s.connections == 0
    })
    .await;

    // The slow reader: a tiny receive window, asks for points forever, reads nothing.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let stream = socket.connect(to).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let slow: SocketAddr = "127.0.0.1:43000".parse().unwrap();
    // The handshake is read; after it, nothing is.
    let mut framed = Framed::new(stream, WireCodec::default());
    let reply = dial_handshake(&mut framed, to, 2000, 43000, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    // The link is sealed now: the requests are sealed with the handshake's keys.
    let parts = framed.into_parts();
    let (stream, mut codec) = (parts.io, parts.codec);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (read_half, mut write_half) = stream.into_split();
        // Bursts of requests every millisecond, forever (this is the attacker's pacing, not
        // a synchronisation); the answers are never read.
        let mut pace = tokio::time::interval(Duration::from_millis(1));
        loop {
            pace.tick().await;
            let mut ask = bytes::BytesMut::new();
            for _ in 0..32 {
                codec.encode(Message::AskForPoints, &mut ask).unwrap();
            }
            if write_half.write_all(&ask).await.is_err() {
                break;
            }
        }
        drop(read_half);
    });
    wait_core(
        &target,
        DEADLINE,
        "the slow reader is connected",
        move |c| c.pool().connection(&slow).is_some(),
    )
    .await;
    wait_core(&target, DEADLINE, "the slow reader is dropped", move |c| {
        c.pool().connection(&slow).is_none()
    })
    .await;
    assert!(target.status().stats.sharing.answers > 0);
    let stopped = tokio::time::timeout(DEADLINE, target.shutdown()).await;
    writer.abort();
    assert!(stopped.is_ok(), "shutdown hung on a stalled connection");
}
