//! Helpers shared by the real-network tests: nodes on 127.0.0.1, raw peers speaking the
//! wire protocol, and waiting for a condition with an overall deadline (re-checked on a
//! short interval, never a fixed sleep standing in for an event).

#![allow(dead_code)] // each test crate uses its own subset

use futures::{SinkExt, StreamExt};
use peerkeeper::net::wire::{Handshake, Message, RefuseReason, WireCodec, PROTOCOL_VERSION};
use peerkeeper::net::{NetConfig, Node};
use peerkeeper::pool::PointState;
use peerkeeper::{Config, PeerId};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// The longest any condition is awaited.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Re-checks `cond` every 20 ms; fails the test at [`DEADLINE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if cond() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for {what}"
        );
        tick.tick().await;
    }
}

/// 127.0.0.1, any port.
pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A node with peer id and seed `id`, knowing `bootstrap`.
pub async fn node(config: &Config, id: u64, bootstrap: Vec<SocketAddr>) -> Node {
    Node::start(
        config.clone(),
        NetConfig::default(),
        local(),
        PeerId(id),
        bootstrap,
        vec![],
        id,
    )
    .await
    .unwrap()
}

/// Whether `n` has a connection to `to`.
pub fn connected(n: &Node, to: &Node) -> bool {
    n.pool().read(|p| p.connection(&to.local_addr()).is_some())
}

/// The handshake of a raw peer `id` claiming to listen on `port`.
pub fn handshake(id: u64, port: u16, network: &str) -> Message {
    Message::Handshake(Handshake {
        network: network.into(),
        version: PROTOCOL_VERSION,
        peer_id: PeerId(id),
        listen_port: port,
    })
}

/// A raw client that sends a handshake as `id` (listening on `port`) and returns the
/// connection with the node's reply.
pub async fn raw_peer(
    to: SocketAddr,
    id: u64,
    port: u16,
    network: &str,
) -> (Framed<TcpStream, WireCodec>, Message) {
    let stream = TcpStream::connect(to).await.unwrap();
    let mut conn = Framed::new(stream, WireCodec::default());
    conn.send(handshake(id, port, network)).await.unwrap();
    let reply = tokio::time::timeout(DEADLINE, conn.next())
        .await
        .expect("a reply in time")
        .expect("a frame")
        .expect("a valid frame");
    (conn, reply)
}

/// Reads until the node closes the connection (or says Close).
pub async fn closed_by_node(conn: &mut Framed<TcpStream, WireCodec>) -> bool {
    let wait = async {
        loop {
            match conn.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.unwrap_or(false)
}

/// Reads raw bytes until the node closes the socket.
pub async fn raw_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.unwrap_or(false)
}



/// Waits until `target` has greylisted the point `127.0.0.1:port`, then checks that the
/// same point coming back (as peer `id`, on the right network) is refused and dropped.
pub async fn assert_greylisted_and_refused(target: &Node, id: u64, port: u16) {
    let bad = SocketAddr::from(([127, 0, 0, 1], port));
    eventually("the point is greylisted", || {
        target.pool().read(|p| p.get(&bad).map(|i| i.state)) == Some(PointState::Greylisted)
    })
    .await;
    let (mut c, reply) = raw_peer(target.local_addr(), id, port, "peerkeeper").await;
    assert!(
        matches!(
            reply,
            Message::Refused {
                reason: RefuseReason::Greylisted,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(closed_by_node(&mut c).await);
}
