//! Authenticated identities (issue 9, item 4), on the memory transport under a paused
//! clock, and on real sockets for what only bytes can show:
//!
//! * an impersonator (claims a connected peer's id, cannot sign for it) is refused before
//!   the core hears of it, and the connected peer keeps its connection;
//! * a recorded handshake replayed to the node fails (the node's nonce is fresh);
//! * a signature made for another network does not verify;
//! * `KEY@HOST:PORT`: a bootstrap point proving another key is dropped and counted, not
//!   greylisted; the right key connects;
//! * a version 2 node (bincode hello) is told `WrongVersion`, not treated as hostile.

mod common;

use common::*;
use futures::SinkExt;
use peerkeeper::handshake::{accept_hello, DialerHandshake, HandshakeRefusal, Role};
use peerkeeper::identity::{Identity, Keypair};
use peerkeeper::pool::PointState;
use peerkeeper::transport::Link;
use peerkeeper::transport::Transport;
use peerkeeper::wire::{Message, RefuseCode};
use peerkeeper::Config;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);
const B: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    9732,
);

fn config() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 4,
        ..Config::default()
    }
}

/// Node A (id 1) connected to node B (id 2).
async fn a_and_b(lab: &Lab) -> (peerkeeper::Node, peerkeeper::Node) {
    let b = lab.node(&config(), B, 2, vec![]);
    let a = lab.node(&config(), A, 1, vec![B]);
    wait_status(&a, VIRTUAL_DEADLINE, "A connects to B", |s| {
        s.connections == 1
    })
    .await;
    (a, b)
}

/// Dials A as `claimed` (hello with that key) and signs with `signer`; returns the
/// node's last answer.
async fn dial_claiming(
    lab: &Lab,
    from: SocketAddr,
    claimed: &Keypair,
    signer: &Keypair,
) -> Message {
    let t = lab.bind(from);
    let mut link = t.connect(A).await.unwrap();
    let hs = DialerHandshake::new(claimed.peer_id(), "peerkeeper", from.port(), A);
    link.send(Message::Hello(hs.hello().clone())).await.unwrap();
    let Some(Message::Hello(h)) = next_message(&mut link).await else {
        panic!("the node answers with its hello first");
    };
    let agreed = hs.on_hello(h).unwrap();
    link.secure(agreed.keys);
    link.send(Message::Auth {
        signature: agreed.transcript.sign(signer, Role::Dialer),
    })
    .await
    .unwrap();
    let reply = next_message(&mut link).await.expect("an answer");
    if matches!(reply, Message::Refused { .. }) {
        assert!(
            next_message(&mut link).await.is_none(),
            "then the node closes"
        );
    }
    reply
}

#[tokio::test(start_paused = true)]
async fn an_impersonator_of_a_connected_peer_is_refused_and_replaces_nothing() {
    let lab = Lab::new();
    let (a, b) = a_and_b(&lab).await;
    let before = a.status().stats;
    // Claims B's id (its public key is public), signs with its own key.
    let reply = dial_claiming(&lab, ip4(6, 6, 6), &key(2), &key(666)).await;
    assert!(refused_with(&reply, RefuseCode::BadAuth), "{reply:?}");
    // B keeps its connection; the core never heard of the impostor's claim.
    assert!(connected(&a, B).await);
    let after = a.status().stats;
    assert_eq!(
        after.admission, before.admission,
        "no admission decision was asked"
    );
    let b_peer = query(&a, |c| c.pool().connected_point_of(peer_of(2))).await;
    assert_eq!(b_peer, Some(B));
    // The impostor's address is greylisted as any protocol violator's.
    wait_status(&a, VIRTUAL_DEADLINE, "the violation is counted", |s| {
        s.stats.violations == before.violations + 1
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_real_peer_on_a_second_connection_is_a_duplicate_not_an_impostor() {
    let lab = Lab::new();
    let (a, b) = a_and_b(&lab).await;
    // B's own key, from another address: proven, so the duplicate rule decides (the
    // connection dialed by the smaller id wins; here A dialed B).
    let second = ip4(2, 2, 2);
    let reply = dial_claiming(&lab, second, &key(2), &key(2)).await;
    if peer_of(1) < peer_of(2) {
        assert!(
            refused_with(&reply, RefuseCode::AlreadyConnected),
            "{reply:?}"
        );
        assert!(connected(&a, B).await);
    } else {
        assert!(matches!(reply, Message::Auth { .. }), "{reply:?}");
        assert!(connected(&a, second).await);
        assert!(!connected(&a, B).await, "the old one closed as a duplicate");
    }
    assert_eq!(a.status().stats.violations, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_replayed_handshake_fails() {
    let lab = Lab::new();
    let a = lab.node(&config(), A, 1, vec![]);
    // A genuine peer's handshake, recorded.
    let p = ip4(5, 0, 1);
    let t = lab.bind(p);
    let mut link = t.connect(A).await.unwrap();
    let signer = key(5);
    let hs = DialerHandshake::new(signer.peer_id(), "peerkeeper", p.port(), A);
    let recorded_hello = Message::Hello(hs.hello().clone());
    link.send(recorded_hello.clone()).await.unwrap();
    let Some(Message::Hello(h)) = next_message(&mut link).await else {
        panic!("a hello");
    };
    let agreed = hs.on_hello(h.clone()).unwrap();
    let recorded_auth = Message::Auth {
        signature: agreed.transcript.sign(&signer, Role::Dialer),
    };
    link.send(recorded_auth.clone()).await.unwrap();
    assert!(matches!(
        next_message(&mut link).await,
        Some(Message::Auth { .. })
    ));
    drop(link);
    wait_status(&a, VIRTUAL_DEADLINE, "the peer left", |s| {
        s.connections == 0
    })
    .await;

    // Somebody replays both messages, byte for byte, on a new connection.
    let mut replay = lab.bind(ip4(5, 0, 2)).connect(A).await.unwrap();
    replay.send(recorded_hello).await.unwrap();
    let Some(Message::Hello(h2)) = next_message(&mut replay).await else {
        panic!("a hello");
    };
    assert_ne!(
        h2.ephemeral, h.ephemeral,
        "a fresh key exchange for every connection"
    );
    replay.send(recorded_auth).await.unwrap();
    let reply = next_message(&mut replay).await;
    assert!(
        matches!(&reply, Some(m) if refused_with(m, RefuseCode::BadAuth)),
        "{reply:?}"
    );
    assert_eq!(
        a.status().stats.admission.accepted,
        1,
        "only the genuine one"
    );
    a.shutdown().await;
}

#[test]
fn a_signature_for_another_role_or_connection_does_not_verify_and_another_network_is_refused() {
    let (d, a) = (key(1), key(2));
    let to = B;
    let handshake = || {
        let hs = DialerHandshake::new(d.peer_id(), "main", 9000, to);
        let (ours, acceptor) =
            accept_hello(a.peer_id(), "main", 9732, hs.hello().clone(), Some(to), &[]).unwrap();
        (hs.on_hello(ours).unwrap(), acceptor)
    };
    let (dialer, acceptor) = handshake();
    let proof = dialer.transcript.sign(&d, Role::Dialer);
    assert_eq!(
        acceptor.transcript.verify(&a, Role::Dialer, &proof),
        Ok(d.peer_id())
    );
    // The other role: a reflected proof.
    assert!(acceptor
        .transcript
        .verify(&a, Role::Acceptor, &proof)
        .is_err());
    // Another connection (fresh ephemeral keys): a replayed proof.
    let (_, other) = handshake();
    assert!(other.transcript.verify(&a, Role::Dialer, &proof).is_err());
    // Another network: refused at the hello, before anything is signed.
    let hs = DialerHandshake::new(d.peer_id(), "test", 9000, to);
    assert_eq!(
        accept_hello(a.peer_id(), "main", 9732, hs.hello().clone(), Some(to), &[]).unwrap_err(),
        HandshakeRefusal::WrongNetwork
    );
}

#[tokio::test(start_paused = true)]
async fn a_bootstrap_point_proving_another_key_is_dropped_counted_and_not_greylisted() {
    let lab = Lab::new();
    let b = lab.node(&config(), B, 2, vec![]);
    // A expects key 99 at B; B proves key 2.
    let a = lab
        .builder(config(), A, 1)
        .bootstrap(vec![B])
        .expect_peer(B, peer_of(99))
        .start()
        .unwrap();
    wait_status(&a, VIRTUAL_DEADLINE, "the dial to B ends", |s| {
        s.stats.dials.wrong_peer >= 1
    })
    .await;
    let s = a.status();
    assert_eq!(s.connections, 0);
    assert_eq!(s.stats.violations, 0);
    assert!(s.stats.dials.adds_up());
    let state = point_state(&a, B).await;
    assert_eq!(
        state,
        Some(PointState::Disconnected),
        "backed off, not greylisted"
    );
    assert_eq!(b.status().stats.violations, 0, "B did nothing wrong either");
    a.shutdown().await;
    b.shutdown().await;

    // The right key: connected.
    let lab = Lab::new();
    let b = lab.node(&config(), B, 2, vec![]);
    let a = lab
        .builder(config(), A, 1)
        .bootstrap(vec![B])
        .expect_peer(B, peer_of(2))
        .start()
        .unwrap();
    wait_status(&a, VIRTUAL_DEADLINE, "A connects to B", |s| {
        s.connections == 1
    })
    .await;
    assert_eq!(a.status().stats.dials.wrong_peer, 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// Sends `hello` (a payload of an older version) to a fresh node in a length-delimited
/// frame, and checks the answer: Refused (1), WrongVersion (1), no points, in clear text,
/// the bytes an old node decodes as such; then the node closes, and counts no violation
/// (not hostile, just old).
async fn an_old_hello_is_told_wrong_version(hello: Vec<u8>) {
    let node = tcp_node(&config(), 1, vec![]).await;
    let mut s = tokio::net::TcpStream::connect(node.local_addr())
        .await
        .unwrap();
    let mut frame = (hello.len() as u32).to_be_bytes().to_vec();
    frame.extend(hello);
    s.write_all(&frame).await.unwrap();
    let mut reply = [0u8; 7];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, [0, 0, 0, 3, 1, 1, 0]);
    assert!(raw_closed(&mut s).await);
    assert_eq!(node.status().stats.violations, 0, "not hostile, just old");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_node_is_told_wrong_version_and_not_greylisted() {
    // A version 2 hello, as bincode 1 encoded it.
    let mut v2 = vec![0u8, 10];
    v2.extend_from_slice(b"peerkeeper");
    v2.extend_from_slice(&[2, 42, 251, 0x44, 0x9c]); // peer 42, port 40004
    an_old_hello_is_told_wrong_version(v2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_node_is_told_wrong_version_and_not_greylisted() {
    // A version 3 hello (postcard: variant 0, network, version 3, key, nonce, port).
    let mut v3 = vec![0u8, 10];
    v3.extend_from_slice(b"peerkeeper");
    v3.push(3);
    v3.extend_from_slice(&[7; 32]);
    v3.extend_from_slice(&[9; 32]);
    v3.extend_from_slice(&[0xc4, 0xb8, 0x02]); // port 40004
    an_old_hello_is_told_wrong_version(v3).await;
}
