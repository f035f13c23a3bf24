//! The protocol v4 handshake, as pure steps: what each side sends, checks and derives. The
//! tokio shell ([`crate::node`]) runs it on a link; tests, the `handshake` fuzz target and
//! other drivers run the same steps.
//!
//! ```text
//!  dialer                                                      acceptor
//!    Hello { network, version, key_d, eph_d, port_d, dialed } ->      (clear text)
//!                       <- Hello { network, version, key_a, eph_a, port_a }  or Refused
//!    ---- both sides: keys = HKDF(X25519(eph), salt = H(hello_d, hello_a)); sealed from here
//!    Auth { sign_d(transcript(Dialer)) }                     ->
//!                       <- Auth { sign_a(transcript(Acceptor)) }             or Refused
//!  transcript(role) = label | role | H(hello_d, hello_a)
//! ```
//!
//! * **Both hellos are signed by both sides**, whole: network, version, identity key,
//!   ephemeral key, listen port and the address dialed. A relay that alters any field
//!   breaks a signature; one that substitutes its own ephemeral key (to read the traffic)
//!   does too. The signature of one connection verifies for no other (the ephemeral keys
//!   are fresh), nor in the other role, nor for another network or version.
//! * **The session keys** come from the ephemeral exchange ([`crate::secure`]), so a
//!   passive observer who later steals an identity key reads nothing recorded (forward
//!   secrecy). From the first message after the hellos every frame is sealed: the proofs,
//!   a refusal with its points, and all traffic after.
//! * **The dialed address is bound**: the dialer names the address it dialed, and the
//!   acceptor refuses unless it is its own (the socket's local address, or an address it
//!   was told it is reachable at: [`crate::node::NetConfig::external_addrs`]). A relay
//!   between two nodes can forward bytes, but the node it dials sees the relay's address
//!   as dialed, and refuses ([`HandshakeRefusal::WrongAddress`]): neither node accepts the
//!   other at the relay's address.
//! * **Not hidden**: the hellos are clear text, so an observer sees which ids connect
//!   (traffic analysis); message sizes and timing are visible too.
//!
//! ```
//! use peerkeeper::handshake::{accept_hello, DialerHandshake, Role};
//! use peerkeeper::identity::{Identity, Keypair};
//! let (d, a) = (Keypair::from_seed(1), Keypair::from_seed(2));
//! let at: std::net::SocketAddr = "192.0.2.1:9732".parse().unwrap();
//! // The dialer's hello, then the acceptor's answer and keys.
//! let dialer = DialerHandshake::new(d.peer_id(), "net", 9000, at);
//! let (a_hello, a_side) = accept_hello(a.peer_id(), "net", 9732, dialer.hello().clone(), Some(at), &[]).unwrap();
//! let d_side = dialer.on_hello(a_hello).unwrap();
//! // Proofs both ways (sealed on a real link).
//! let proof = d_side.transcript.sign(&d, Role::Dialer);
//! assert_eq!(a_side.transcript.verify(&a, Role::Dialer, &proof), Ok(d.peer_id()));
//! let proof = a_side.transcript.sign(&a, Role::Acceptor);
//! assert_eq!(d_side.transcript.verify(&d, Role::Acceptor, &proof), Ok(a.peer_id()));
//! ```

use crate::identity::Identity;
use crate::pool::PeerId;
use crate::secure::{Ephemeral, SecureError, SessionKeys};
use crate::wire::{Hello, PROTOCOL_VERSION};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// The domain-separation label every v4 transcript starts with.
pub const TRANSCRIPT_LABEL: &[u8] = b"peerkeeper handshake v4\0";

/// Which side of a connection signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that dialed.
    Dialer,
    /// The side that accepted.
    Acceptor,
}

/// Why a handshake is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeRefusal {
    /// The hello names another network.
    #[error("another network")]
    WrongNetwork,
    /// The hello is of another protocol version.
    #[error("another protocol version")]
    WrongVersion,
    /// The signature does not prove the key the hello claims over this connection's
    /// transcript.
    #[error("the handshake signature does not verify")]
    BadAuth,
    /// The dialer did not dial one of the acceptor's addresses (a relay, or a port
    /// mapping the acceptor was not told of), or did not say what it dialed.
    #[error("the address dialed is not the acceptor's")]
    WrongAddress,
    /// The other side's ephemeral key is degenerate: no key exchange.
    #[error("a degenerate ephemeral key")]
    BadKey,
    /// The other side claims our own key: we reached ourselves, or someone reflects our
    /// hello. We sign nothing for it.
    #[error("the peer claims our own key")]
    Myself,
}

impl From<SecureError> for HandshakeRefusal {
    fn from(_: SecureError) -> Self {
        HandshakeRefusal::BadKey
    }
}

/// The two hellos of a connection: what both sides sign.
#[derive(Clone, Debug)]
pub struct Transcript {
    dialer: Hello,
    acceptor: Hello,
    hash: [u8; 32],
}

impl Transcript {
    fn new(dialer: Hello, acceptor: Hello) -> Transcript {
        let hash = hellos_hash(&dialer, &acceptor);
        Transcript {
            dialer,
            acceptor,
            hash,
        }
    }

    /// The bytes the side `role` signs.
    pub fn bytes(&self, role: Role) -> Vec<u8> {
        let mut t = Vec::with_capacity(TRANSCRIPT_LABEL.len() + 1 + 32);
        t.extend_from_slice(TRANSCRIPT_LABEL);
        t.push(match role {
            Role::Dialer => b'D',
            Role::Acceptor => b'A',
        });
        t.extend_from_slice(&self.hash);
        t
    }

    /// Our proof, as the side `role`.
    pub fn sign(&self, identity: &(impl Identity + ?Sized), role: Role) -> Vec<u8> {
        identity.sign(&self.bytes(role))
    }

    /// Whether `signature` proves that the side `role` holds the key its hello claims:
    /// that key's id.
    pub fn verify(
        &self,
        identity: &(impl Identity + ?Sized),
        role: Role,
        signature: &[u8],
    ) -> Result<PeerId, HandshakeRefusal> {
        let peer = PeerId::from_bytes(self.hello(role).key);
        if identity.verify(&peer, &self.bytes(role), signature) {
            Ok(peer)
        } else {
            Err(HandshakeRefusal::BadAuth)
        }
    }

    /// The hello of the side `role`.
    pub fn hello(&self, role: Role) -> &Hello {
        match role {
            Role::Dialer => &self.dialer,
            Role::Acceptor => &self.acceptor,
        }
    }
}

/// One side's result of the hellos: the peer's claimed (not yet proven) id, the keys that
/// seal the link from now on, and the transcript to sign and verify.
#[derive(Debug)]
pub struct Agreed {
    /// The id the peer claims; proven once [`Transcript::verify`] accepts its proof.
    pub peer: PeerId,
    /// Our keys for this connection.
    pub keys: SessionKeys,
    /// Both hellos.
    pub transcript: Transcript,
}

/// The hash of both hellos (each postcard-encoded and length-prefixed): the key
/// derivation's salt and what both signatures cover.
pub fn hellos_hash(dialer: &Hello, acceptor: &Hello) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRANSCRIPT_LABEL);
    for hello in [dialer, acceptor] {
        // A hello we hold always encodes: its fields are bounded.
        let bytes = postcard::to_allocvec(hello).unwrap_or_default();
        h.update((bytes.len() as u32).to_be_bytes());
        h.update(&bytes);
    }
    h.finalize().into()
}

fn check(network: &str, theirs: &Hello) -> Result<(), HandshakeRefusal> {
    if theirs.network != network {
        Err(HandshakeRefusal::WrongNetwork)
    } else if theirs.version != PROTOCOL_VERSION {
        Err(HandshakeRefusal::WrongVersion)
    } else {
        Ok(())
    }
}

/// Our hello, with a fresh ephemeral key (returned too: ours to agree with).
fn our_hello(
    me: PeerId,
    network: &str,
    listen_port: u16,
    dialed: Option<SocketAddr>,
) -> (Hello, Ephemeral) {
    let ephemeral = Ephemeral::generate();
    let hello = Hello {
        network: network.to_string(),
        version: PROTOCOL_VERSION,
        key: *me.as_bytes(),
        ephemeral: ephemeral.public(),
        listen_port,
        dialed,
    };
    (hello, ephemeral)
}

/// The dialer's side, between its hello and the acceptor's.
#[derive(Debug)]
pub struct DialerHandshake {
    hello: Hello,
    ephemeral: Ephemeral,
}

impl DialerHandshake {
    /// Our hello to `dialed`, as `me` listening on `listen_port` (0: we do not listen),
    /// with a fresh ephemeral key.
    pub fn new(me: PeerId, network: &str, listen_port: u16, dialed: SocketAddr) -> Self {
        let (hello, ephemeral) = our_hello(me, network, listen_port, Some(dialed));
        DialerHandshake { hello, ephemeral }
    }

    /// The hello to send first.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Whether the acceptor's hello claims our own key: we reached ourselves, or someone
    /// reflects our hello to have us sign for our key. A node signs nothing then (the
    /// tokio shell ends such a dial as `Myself` before [`DialerHandshake::on_hello`]).
    pub fn is_ourselves(&self, theirs: &Hello) -> bool {
        theirs.key == self.hello.key
    }

    /// On the acceptor's hello: checks its network and version and derives the keys.
    /// Then send our proof (sealed), and check the acceptor's.
    pub fn on_hello(self, theirs: Hello) -> Result<Agreed, HandshakeRefusal> {
        check(&self.hello.network, &theirs)?;
        let peer = PeerId::from_bytes(theirs.key);
        let transcript = Transcript::new(self.hello, theirs);
        let keys = self
            .ephemeral
            .agree(&transcript.acceptor.ephemeral, &transcript.hash, true)?;
        Ok(Agreed {
            peer,
            keys,
            transcript,
        })
    }
}

/// The acceptor's side, on the dialer's hello: checks its network and version, that it
/// dialed one of our addresses (`local`, the link's own local address when the transport
/// knows it, or one of `external`), and derives the keys. Returns our hello to send (in
/// clear text) and what we agreed; then the dialer's proof arrives, sealed.
///
/// A refusal here is told to the dialer and punishes nobody: nothing in a hello is proven
/// yet.
pub fn accept_hello(
    me: PeerId,
    network: &str,
    listen_port: u16,
    theirs: Hello,
    local: Option<SocketAddr>,
    external: &[SocketAddr],
) -> Result<(Hello, Agreed), HandshakeRefusal> {
    check(network, &theirs)?;
    let ours = |a: SocketAddr, b: SocketAddr| {
        a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
    };
    match theirs.dialed {
        Some(d) if local.is_some_and(|l| ours(l, d)) || external.iter().any(|&e| ours(e, d)) => {}
        // A transport that does not know its local address cannot check it.
        Some(_) if local.is_none() && external.is_empty() => {}
        _ => return Err(HandshakeRefusal::WrongAddress),
    }
    let (hello, ephemeral) = our_hello(me, network, listen_port, None);
    let peer = PeerId::from_bytes(theirs.key);
    let transcript = Transcript::new(theirs, hello.clone());
    let keys = ephemeral.agree(&transcript.dialer.ephemeral, &transcript.hash, false)?;
    Ok((
        hello,
        Agreed {
            peer,
            keys,
            transcript,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn at() -> SocketAddr {
        "192.0.2.1:9732".parse().unwrap()
    }

    #[test]
    fn a_hello_altered_on_the_path_breaks_the_proof() {
        let (d, a) = (Keypair::from_seed(1), Keypair::from_seed(2));
        let dialer = DialerHandshake::new(d.peer_id(), "net", 9000, at());
        let mut relayed = dialer.hello().clone();
        relayed.listen_port = 9999; // the relay's choice
        let (a_hello, a_side) =
            accept_hello(a.peer_id(), "net", 9732, relayed, Some(at()), &[]).unwrap();
        let d_side = dialer.on_hello(a_hello).unwrap();
        let proof = d_side.transcript.sign(&d, Role::Dialer);
        assert_eq!(
            a_side.transcript.verify(&a, Role::Dialer, &proof),
            Err(HandshakeRefusal::BadAuth)
        );
    }

    #[test]
    fn a_dial_to_another_address_is_refused() {
        let (d, a) = (Keypair::from_seed(1), Keypair::from_seed(2));
        let relay: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        let dialer = DialerHandshake::new(d.peer_id(), "net", 9000, relay);
        let r = accept_hello(
            a.peer_id(),
            "net",
            9732,
            dialer.hello().clone(),
            Some(at()),
            &[],
        );
        assert_eq!(r.unwrap_err(), HandshakeRefusal::WrongAddress);
        // Unless the operator said the node is reachable there (a port mapping).
        assert!(accept_hello(
            a.peer_id(),
            "net",
            9732,
            dialer.hello().clone(),
            Some(at()),
            &[relay]
        )
        .is_ok());
    }

    #[test]
    fn a_reflected_hello_is_ourselves() {
        let d = Keypair::from_seed(1);
        let dialer = DialerHandshake::new(d.peer_id(), "net", 9000, at());
        let mirror = dialer.hello().clone();
        assert!(dialer.is_ourselves(&mirror));
    }
}
