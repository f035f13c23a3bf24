//! A peer that asks for points but never reads the answers must not wedge its connection
//! task: once the node's writes to it stall, the node drops it, and the node still shuts
//! down. (Before the fix, a stalled write blocked the task forever: no keepalive check, no
//! cancellation, and `Node::shutdown` never returned.)

mod common;

use common::{eventually, handshake, DEADLINE};
use futures::SinkExt;
use peerkeeper::net::demo::demo_config;
use peerkeeper::net::wire::{Message, WireCodec};
use peerkeeper::net::{NetConfig, Node};
use peerkeeper::{Config, PeerId};
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
    // Answers as often as possible, so the stalled peer's buffers fill quickly.
    config.discovery.peer_ask_interval = Duration::from_millis(4);
    let net = NetConfig {
        handshake_timeout: Duration::from_secs(2),
        // Silence never ends this connection here: only a stalled write may.
        keepalive_interval: Duration::from_secs(600),
        keepalive_timeout: Duration::from_secs(1200),
        ..NetConfig::default()
    };
    let target = Node::start(
        config,
        net,
        "127.0.0.1:0".parse().unwrap(),
        PeerId(1),
        vec![],
        vec![],
        1,
    )
    .await
    .unwrap();
    let to = target.local_addr();

    // Fifty peers that connect once: fifty good points, so every answer is large.
    for i in 0..50u16 {
        let stream = TcpStream::connect(to).await.unwrap();
        let mut c = Framed::new(stream, WireCodec::default());
        c.send(handshake(1000 + u64::from(i), 42000 + i, "peerkeeper"))
            .await
            .unwrap();
        let point: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 42000 + i));
        eventually("the peer is connected", || {
            target.pool().read(|p| p.connection(&point).is_some())
        })
        .await;
    }
    eventually("the fifty disconnect", || target.pool().active_count() == 0).await;

    // The slow reader: a tiny receive window, asks for points forever, reads nothing.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let slow: SocketAddr = "127.0.0.1:43000".parse().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut codec = WireCodec::default();
        let mut buf = bytes::BytesMut::new();
        codec
            .encode(handshake(2000, 43000, "peerkeeper"), &mut buf)
            .unwrap();
        let (read_half, mut write_half) = stream.into_split();
        if write_half.write_all(&buf).await.is_err() {
            return;
        }
        // One request per answer interval, forever (this is the attacker's pacing, not a
        // synchronisation); the answers are never read.
        let mut ask = bytes::BytesMut::new();
        codec.encode(Message::AskForPoints, &mut ask).unwrap();
        let mut pace = tokio::time::interval(Duration::from_millis(1));
        loop {
            pace.tick().await;
            if write_half.write_all(&ask).await.is_err() {
                break;
            }
        }
        drop(read_half);
    });
    eventually("the slow reader is connected", || {
        target.pool().read(|p| p.connection(&slow).is_some())
    })
    .await;
    eventually("the slow reader is dropped", || {
        target.pool().read(|p| p.connection(&slow).is_none())
    })
    .await;
    let stopped = tokio::time::timeout(DEADLINE, target.shutdown()).await;
    writer.abort();
    assert!(stopped.is_ok(), "shutdown hung on a stalled connection");
}
