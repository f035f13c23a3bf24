//! Hostile peers against a real node on 127.0.0.1: garbage, an oversized frame, 101
//! points, a wrong network, a flood of handshakes, a duplicate peer id, a connection to
//! oneself. Each is dropped (and greylisted when it breaks the protocol); the node keeps
//! its other connection, and its tables stay within their caps.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use peerkeeper::net::demo::{demo_config, demo_net_config};
use peerkeeper::net::protocol::{
    self, Hello, Message, RefuseReason, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use peerkeeper::net::{Node, NodeOptions};
use peerkeeper::{Config, PeerId};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const TIMEOUT: Duration = Duration::from_secs(60);
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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

/// A victim V (at most 5 handshakes in progress) connected to one good peer G.
async fn victim_with_a_good_peer() -> (Node, Node) {
    let mut vc = demo_config(1, 1, 4);
    vc.max_incoming_connections = 5;
    let v = node(vc, 100).await;
    let g = node(
        Config {
            trusted_points: vec![v.listen_addr()],
            ..demo_config(1, 1, 4)
        },
        101,
    )
    .await;
    let ga = g.listen_addr();
    wait_until("V connected to G", || v.connected_points().contains(&ga)).await;
    (v, g)
}

/// V is unharmed: still connected to G, within its caps, and still answering.
async fn assert_unharmed(v: &Node, g: &Node) {
    assert!(v.connected_points().contains(&g.listen_addr()), "V lost G");
    let s = v.stats();
    assert!(s.connections <= 4 && s.net.connections <= 4);
    assert!(s.net.max_handshaking <= 5);
    let fresh = v.maintainer().maintain().await;
    assert!(fresh.connections_after >= 1);
}

/// Reads until the peer closes the connection; fails if it never does.
async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(TIMEOUT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node did not close the connection");
}

fn greylisted(v: &Node) -> bool {
    let now = v.pool().now();
    v.pool().read(|p| p.is_ip_greylisted(LOCALHOST, now))
}

fn hello(network: &str, peer: PeerId, port: u16) -> Message {
    Message::Hello(Hello {
        network: network.into(),
        version: PROTOCOL_VERSION,
        peer,
        listen_port: port,
    })
}

async fn handshake(
    addr: SocketAddr,
    msg: Message,
) -> (
    Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>,
    Message,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, protocol::codec());
    framed.send(protocol::encode(&msg).unwrap()).await.unwrap();
    let reply = tokio::time::timeout(TIMEOUT, framed.next())
        .await
        .expect("a reply")
        .expect("a frame")
        .expect("readable");
    (framed, protocol::decode(&reply).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_dropped_and_greylisted() {
    let (v, g) = victim_with_a_good_peer().await;
    let mut s = TcpStream::connect(v.listen_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: peerkeeper\r\n\r\n")
        .await
        .unwrap();
    expect_closed(&mut s).await;
    wait_until("a violation counted", || v.stats().net.violations == 1).await;
    assert!(greylisted(&v));
    // A greylisted address is refused at accept.
    let mut again = TcpStream::connect(v.listen_addr()).await.unwrap();
    expect_closed(&mut again).await;
    wait_until("refused at accept", || {
        v.stats().net.refused_greylisted >= 1
    })
    .await;
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_a_frame_is_dropped_and_greylisted() {
    let (v, g) = victim_with_a_good_peer().await;
    let mut s = TcpStream::connect(v.listen_addr()).await.unwrap();
    // A well-formed frame: a variant tag that does not exist, then a forged huge length.
    let mut frame = vec![0, 0, 0, 12, 0xfe];
    frame.extend_from_slice(&[0xff; 11]);
    s.write_all(&frame).await.unwrap();
    expect_closed(&mut s).await;
    wait_until("a violation counted", || v.stats().net.violations == 1).await;
    assert!(greylisted(&v));
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_dropped_and_greylisted() {
    let (v, g) = victim_with_a_good_peer().await;
    let mut s = TcpStream::connect(v.listen_addr()).await.unwrap();
    let len = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    s.write_all(&len).await.unwrap();
    // Some of the announced bytes; the node must not wait for (or buffer) the rest.
    let _ = s.write_all(&[0u8; 4096]).await;
    expect_closed(&mut s).await;
    wait_until("a violation counted", || v.stats().net.violations == 1).await;
    assert!(greylisted(&v));
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertisement_of_101_points_is_dropped_and_greylisted() {
    let (v, g) = victim_with_a_good_peer().await;
    let (mut framed, reply) = handshake(
        v.listen_addr(),
        hello(&demo_net_config().network, PeerId(999), 1),
    )
    .await;
    assert!(
        matches!(reply, Message::Hello(_)),
        "handshake accepted: {reply:?}"
    );
    let attacker: SocketAddr = "127.0.0.1:1".parse().unwrap();
    wait_until("attacker registered", || {
        v.connected_points().contains(&attacker)
    })
    .await;
    let points: Vec<SocketAddr> = (0..101u16)
        .map(|i| SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 9732)))
        .collect();
    let frame: Bytes = protocol::encode(&Message::Points(points.clone())).unwrap();
    framed.send(frame).await.unwrap();
    let mut s = framed.into_inner();
    expect_closed(&mut s).await;
    wait_until("a violation counted", || v.stats().net.violations == 1).await;
    assert!(greylisted(&v));
    assert!(!v.connected_points().contains(&attacker));
    let learned = v
        .pool()
        .read(|p| points.iter().filter(|a| p.get(a).is_some()).count());
    assert_eq!(
        learned, 0,
        "no point of the oversized message entered the pool"
    );
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_network_is_refused_with_a_reason_and_greylisted() {
    let (v, g) = victim_with_a_good_peer().await;
    let (framed, reply) =
        handshake(v.listen_addr(), hello("another-network", PeerId(998), 2)).await;
    assert_eq!(
        reply,
        Message::Refused {
            reason: RefuseReason::WrongNetwork,
            points: vec![]
        }
    );
    let mut s = framed.into_inner();
    expect_closed(&mut s).await;
    wait_until("a violation counted", || v.stats().net.violations == 1).await;
    assert!(greylisted(&v));
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneself_and_a_second_connection_of_a_peer_are_refused() {
    let (v, g) = victim_with_a_good_peer().await;
    let net = demo_net_config().network;
    let (_f, reply) = handshake(v.listen_addr(), hello(&net, v.peer_id(), 3)).await;
    assert!(matches!(
        reply,
        Message::Refused {
            reason: RefuseReason::Myself,
            ..
        }
    ));
    let (_f, reply) = handshake(v.listen_addr(), hello(&net, g.peer_id(), 4)).await;
    assert!(matches!(
        reply,
        Message::Refused {
            reason: RefuseReason::AlreadyConnected,
            ..
        }
    ));
    // Neither is a protocol violation.
    assert_eq!(v.stats().net.violations, 0);
    assert!(!greylisted(&v));
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_handshakes_stays_capped() {
    let (v, g) = victim_with_a_good_peer().await;
    let mut silent = Vec::new();
    for _ in 0..100 {
        // Connections that never say anything.
        silent.push(TcpStream::connect(v.listen_addr()).await.unwrap());
    }
    wait_until("every flood connection accepted", || {
        v.stats().net.accepted >= 101
    })
    .await;
    let s = v.stats();
    assert!(s.net.max_handshaking <= 5, "{s:?}");
    assert!(s.net.handshaking <= 5);
    assert!(s.net.refused_handshaking >= 95, "{s:?}");
    assert!(s.net.connections <= 4);
    // The ones let in time out of their handshake; none of it is a violation.
    wait_until("handshakes timed out", || v.stats().net.handshaking == 0).await;
    assert_eq!(v.stats().net.violations, 0);
    for s in &mut silent {
        expect_closed(s).await;
    }
    assert_unharmed(&v, &g).await;
    v.shutdown().await;
    g.shutdown().await;
}
