//! Inputs the fuzz targets (`fuzz/`) found, kept as regression tests.
//!
//! * `handshake`, first run: a hello claiming the listener's own key, with an auth the
//!   listener's own key signed over this connection's dialer transcript, passes
//!   `verify_hello_auth`. That is right (the signature proves the key), and not a way in:
//!   such an auth can only come from ourselves (a dial to our own address) or be relayed
//!   from one of our own dials, and the core refuses the connection as ourselves. The
//!   target's oracle, which allowed only the dialer's key, was too narrow. Since then our
//!   dialer signs nothing for a listener claiming our own key (`src/node/conn.rs`: such a
//!   dial ends as `myself`), so no relay can obtain that signature from us either
//!   (`tests/node_lifecycle.rs`, the alias test).

use peerkeeper::core::{Admission, Hello, NodeCore, RefuseReason};
use peerkeeper::handshake::{accept_hello, DialerHandshake, Role};
use peerkeeper::identity::{Identity, Keypair};
use peerkeeper::pool::ConnId;
use peerkeeper::{Config, PeerId, Time};
use std::net::SocketAddr;

#[test]
fn a_handshake_proving_our_own_key_is_proven_and_then_refused_as_ourselves() {
    let listener = Keypair::from_seed(2);
    let at = SocketAddr::from(([10, 0, 0, 2], 9732));
    // (Found on v3; kept in v4's terms.) A hello claiming the listener's own key, with a
    // proof the listener's own key made over this connection's dialer transcript.
    let hs = DialerHandshake::new(listener.peer_id(), "fuzznet", 41377, at);
    let hello = hs.hello().clone();
    let (_, agreed) = accept_hello(
        listener.peer_id(),
        "fuzznet",
        9732,
        hello.clone(),
        Some(at),
        &[],
    )
    .unwrap();
    let signature = agreed.transcript.sign(&listener, Role::Dialer);
    let proven = agreed
        .transcript
        .verify(&listener, Role::Dialer, &signature);
    assert_eq!(proven, Ok(listener.peer_id()));
    // A bit flipped (every third one): refused.
    for bit in (0..signature.len() * 8).step_by(3) {
        let mut s = signature.clone();
        s[bit / 8] ^= 1 << (bit % 8);
        assert!(agreed
            .transcript
            .verify(&listener, Role::Dialer, &s)
            .is_err());
    }

    // The core, told of a peer proven to be itself, refuses it as ourselves.
    let mut core = NodeCore::new(Config::default(), listener.peer_id(), 1);
    core.start(Time::ZERO);
    let remote = SocketAddr::from(([10, 0, 0, 9], 40000));
    let admission = core.handle_inbound(
        ConnId(1),
        remote,
        Hello {
            peer: PeerId::from_bytes(hello.key),
            listen_port: hello.listen_port,
        },
        Time::ZERO,
    );
    assert_eq!(
        admission,
        Admission::Refuse {
            reason: RefuseReason::Myself,
            points: vec![]
        }
    );
    assert_eq!(core.connection_count(), 0);
    core.check_invariants();
}
