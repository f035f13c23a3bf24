//! Arbitrary hello/auth message sequences against the listener's side of the v4
//! handshake (`handshake::accept_hello`, then `Transcript::verify`, what the tokio shell's
//! `accept` decides): the listener reads a hello, checks it (network, version, the
//! address dialed, the ephemeral key), sends its own, reads an auth and verifies it.
//! Never a panic; never an accepted handshake whose signature is not the claimed key's
//! over this very connection's transcript; a genuine one is always accepted; a hello that
//! did not dial the listener's address is always refused.
//!
//! Found on v3 (an oracle that was too narrow, not a bug of the verdict): a hello
//! claiming the listener's own key with the listener's own signature passes, as it must
//! (the core then refuses the connection as ourselves); see `tests/fuzz_regressions.rs`.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use peerkeeper::handshake::{accept_hello, DialerHandshake, HandshakeRefusal, Role};
use peerkeeper::identity::{Identity, Keypair};
use peerkeeper::wire::{Hello, Message, PROTOCOL_VERSION};
use std::net::SocketAddr;

const NETWORK: &str = "fuzznet";

#[derive(Arbitrary, Debug)]
enum Key {
    /// The dialer's own key.
    Dialer,
    /// The listener's key (a reflection).
    Listener,
    /// A small-order point (the identity).
    Identity,
    /// Any 32 bytes (mostly not on the curve).
    Raw([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Ephemeral {
    /// A real ephemeral key.
    Fresh,
    /// All zeros (a low-order point: no key exchange).
    Zero,
    /// Any 32 bytes.
    Raw([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Dialed {
    /// The listener's own address.
    Listener,
    /// Nothing said.
    Nothing,
    /// Another address (a relay's).
    Other(u32, u16),
}

#[derive(Arbitrary, Debug)]
enum Sig {
    /// The dialer signs the right transcript.
    Genuine,
    /// The dialer signs as the acceptor (the wrong role).
    WrongRole,
    /// The dialer signs another connection's transcript (a replay).
    OtherConnection,
    /// The listener's own signature of the transcript (a reflection).
    Listener,
    /// Any bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Msg {
    /// A hello built from parts.
    Hello {
        other_network: Option<String>,
        version: Option<u16>,
        key: Key,
        ephemeral: Ephemeral,
        listen_port: u16,
        dialed: Dialed,
    },
    /// An auth built from parts, maybe with one bit flipped.
    Auth { sig: Sig, flip: Option<u16> },
    /// Any bytes, decoded as a payload.
    Raw(Vec<u8>),
}

fuzz_target!(|msgs: Vec<Msg>| {
    let dialer = Keypair::from_seed(1);
    let listener = Keypair::from_seed(2);
    let here: SocketAddr = "192.0.2.2:9732".parse().unwrap();
    let key = |k: &Key| match k {
        Key::Dialer => *dialer.peer_id().as_bytes(),
        Key::Listener => *listener.peer_id().as_bytes(),
        Key::Identity => {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        }
        Key::Raw(b) => *b,
    };
    // The listener: the first message must be a hello, the second an auth.
    let mut agreed = None;
    for m in msgs.iter().take(4) {
        let message = match m {
            Msg::Hello {
                other_network,
                version,
                key: k,
                ephemeral,
                listen_port,
                dialed,
            } => Message::Hello(Hello {
                network: other_network.clone().unwrap_or_else(|| NETWORK.into()),
                version: version.unwrap_or(PROTOCOL_VERSION),
                key: key(k),
                ephemeral: match ephemeral {
                    Ephemeral::Fresh => peerkeeper::secure::Ephemeral::generate().public(),
                    Ephemeral::Zero => [0; 32],
                    Ephemeral::Raw(b) => *b,
                },
                listen_port: *listen_port,
                dialed: match dialed {
                    Dialed::Listener => Some(here),
                    Dialed::Nothing => None,
                    Dialed::Other(ip, port) => {
                        Some(SocketAddr::from((std::net::Ipv4Addr::from(*ip), *port)))
                    }
                },
            }),
            Msg::Auth { sig, flip } => {
                let Some(a) = &agreed else { return };
                let a: &peerkeeper::handshake::Agreed = a;
                let mut signature = match sig {
                    Sig::Genuine => a.transcript.sign(&dialer, Role::Dialer),
                    Sig::WrongRole => a.transcript.sign(&dialer, Role::Acceptor),
                    Sig::OtherConnection => {
                        let hs = DialerHandshake::new(dialer.peer_id(), NETWORK, 1, here);
                        let (_, other) = accept_hello(
                            listener.peer_id(),
                            NETWORK,
                            9732,
                            hs.hello().clone(),
                            Some(here),
                            &[],
                        )
                        .expect("a genuine hello is accepted");
                        other.transcript.sign(&dialer, Role::Dialer)
                    }
                    Sig::Listener => a.transcript.sign(&listener, Role::Dialer),
                    Sig::Raw(b) => b.clone(),
                };
                if let Some(bit) = flip {
                    if !signature.is_empty() {
                        let i = usize::from(*bit / 8) % signature.len();
                        signature[i] ^= 1 << (bit % 8);
                    }
                }
                Message::Auth { signature }
            }
            Msg::Raw(bytes) => match Message::decode(bytes) {
                Ok(m) => m,
                Err(_) => return, // the listener drops the connection
            },
        };
        // What the wire would carry: an oversized message never reaches the listener.
        if message.check().is_err() {
            return;
        }
        match (message, &agreed) {
            (Message::Hello(h), None) => {
                // Ours: the same port and IP (an IPv4-mapped IPv6 spelling is the same
                // address).
                let wrong_place = !h
                    .dialed
                    .is_some_and(|d| d.ip().to_canonical() == here.ip() && d.port() == here.port());
                let foreign = h.network != NETWORK || h.version != PROTOCOL_VERSION;
                match accept_hello(listener.peer_id(), NETWORK, 9732, h, Some(here), &[]) {
                    Ok((_, a)) => {
                        assert!(!wrong_place && !foreign, "accepted a hello it must refuse");
                        agreed = Some(a);
                    }
                    Err(HandshakeRefusal::WrongAddress) => assert!(wrong_place && !foreign),
                    Err(_) => return, // refused before our hello
                }
            }
            (Message::Auth { signature }, Some(a)) => {
                let verdict = a.transcript.verify(&listener, Role::Dialer, &signature);
                let hello = a.transcript.hello(Role::Dialer);
                // The only signatures that may pass: one made by the key the hello
                // claims over this connection's dialer transcript (Ed25519 signatures
                // are deterministic, so it is these bytes). Of the keys the fuzzer can
                // claim, the target holds two: the dialer's and the listener's own (a
                // reflection: proven, and refused as ourselves by the core, see
                // tests/fuzz_regressions.rs); for any other key nothing may pass.
                let t = a.transcript.bytes(Role::Dialer);
                let genuine = [&dialer, &listener]
                    .iter()
                    .any(|k| hello.key == *k.peer_id().as_bytes() && signature == k.sign(&t));
                match verdict {
                    Ok(peer) => {
                        assert!(genuine, "accepted a bad signature: {hello:?} {signature:?}");
                        assert_eq!(peer.as_bytes(), &hello.key);
                    }
                    Err(e) => assert!(!genuine, "refused a genuine handshake: {e:?}"),
                }
                return;
            }
            _ => return, // anything else out of order: dropped
        }
    }
});
