//! How libp2p's names map onto the core's: multiaddrs onto points, peer ids onto ids.
//!
//! The core knows a peer by a 32-byte id and a point by an IP address and a port
//! ([`SocketAddr`]). libp2p's names are richer, so the mapping is partial, and what does
//! not map is refused with a counted reason ([`Unmapped`]), never a panic:
//!
//! * `/ip4/A/tcp/P` and `/ip6/A/tcp/P` map to `A:P` ([`Transport::Tcp`]);
//!   `/ip4/A/udp/P/quic-v1` and `/ip6/A/udp/P/quic-v1` map to `A:P` ([`Transport::QuicV1`]).
//!   A trailing `/p2p/ID` is allowed and ignored.
//! * DNS names (`/dns`, `/dns4`, `/dns6`, `/dnsaddr`) are refused until resolved: the
//!   application resolves them and hands over the IP multiaddrs.
//! * Relay circuits (`/p2p-circuit`) are refused: a relayed connection has no point of its
//!   own that another peer could dial.
//! * Anything else (WebSocket, WebTransport, WebRTC, `/memory`, TCP without a port, ...)
//!   is refused as another transport.
//!
//! A point is dialed back over the node's one [`Transport`] (its configured one): the
//! core's points carry no transport, so a node's points are all TCP or all QUIC.
//!
//! Peer ids: an Ed25519 key's libp2p id embeds the key, and maps to the key's 32 bytes,
//! the same id a native peerkeeper node with that key has. Other keys (secp256k1, ECDSA,
//! RSA) map to the SHA-256 of their libp2p id, domain-separated: stable and distinct, but
//! not the key itself.

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

/// The transport a node dials its points over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// `/ipX/A/tcp/P`.
    #[default]
    Tcp,
    /// `/ipX/A/udp/P/quic-v1`.
    QuicV1,
}

/// Why a multiaddr does not map onto a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Unmapped {
    /// A DNS name not resolved yet (`/dns`, `/dns4`, `/dns6`, `/dnsaddr`).
    #[error("a DNS multiaddr (resolve it first)")]
    Dns,
    /// A relay circuit (`/p2p-circuit`).
    #[error("a relay circuit")]
    Relay,
    /// Not an IP address at all (`/memory`, `/unix`, ...), or no port.
    #[error("not an IP address and port")]
    NotIp,
    /// An IP address over a transport other than TCP or QUIC v1 (WebSocket, WebRTC, ...).
    #[error("a transport other than TCP or QUIC v1")]
    OtherTransport,
    /// An unspecified address (`0.0.0.0`, `::`) or port 0: nobody can dial it.
    #[error("an unspecified address or port 0")]
    Unspecified,
}

impl Unmapped {
    /// Every reason, in order.
    pub const ALL: [Unmapped; 5] = [
        Unmapped::Dns,
        Unmapped::Relay,
        Unmapped::NotIp,
        Unmapped::OtherTransport,
        Unmapped::Unspecified,
    ];

    /// Its name, as in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Unmapped::Dns => "dns",
            Unmapped::Relay => "relay",
            Unmapped::NotIp => "not_ip",
            Unmapped::OtherTransport => "other_transport",
            Unmapped::Unspecified => "unspecified",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The point of a multiaddr, and its transport.
///
/// ```
/// use peerkeeper_libp2p::{to_point, Transport, Unmapped};
/// let (p, t) = to_point(&"/ip4/10.0.0.1/tcp/4001".parse().unwrap()).unwrap();
/// assert_eq!((p, t), ("10.0.0.1:4001".parse().unwrap(), Transport::Tcp));
/// let (p, t) = to_point(&"/ip6/::1/udp/9/quic-v1".parse().unwrap()).unwrap();
/// assert_eq!((p, t), ("[::1]:9".parse().unwrap(), Transport::QuicV1));
/// assert_eq!(to_point(&"/dns4/example.org/tcp/1".parse().unwrap()), Err(Unmapped::Dns));
/// ```
///
/// # Errors
///
/// [`Unmapped`], with the reason, for anything that is not an IP address and port over
/// TCP or QUIC v1.
pub fn to_point(addr: &Multiaddr) -> Result<(SocketAddr, Transport), Unmapped> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return Err(Unmapped::Relay);
    }
    let mut it = addr.iter();
    let ip: IpAddr = match it.next() {
        Some(Protocol::Ip4(a)) => a.into(),
        Some(Protocol::Ip6(a)) => a.into(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)) => {
            return Err(Unmapped::Dns)
        }
        _ => return Err(Unmapped::NotIp),
    };
    let (port, transport) = match (it.next(), it.next()) {
        (Some(Protocol::Tcp(p)), None | Some(Protocol::P2p(_))) => (p, Transport::Tcp),
        (Some(Protocol::Udp(p)), Some(Protocol::QuicV1)) => (p, Transport::QuicV1),
        (None, _) => return Err(Unmapped::NotIp),
        _ => return Err(Unmapped::OtherTransport),
    };
    // After the transport: at most the peer's id.
    if transport == Transport::QuicV1 {
        match it.next() {
            None | Some(Protocol::P2p(_)) => {}
            Some(_) => return Err(Unmapped::OtherTransport),
        }
    }
    if it.next().is_some() {
        return Err(Unmapped::OtherTransport);
    }
    if ip.is_unspecified() || port == 0 {
        return Err(Unmapped::Unspecified);
    }
    Ok((SocketAddr::new(ip, port), transport))
}

/// The multiaddr to dial a point over `transport`.
///
/// ```
/// use peerkeeper_libp2p::{to_multiaddr, Transport};
/// let a = to_multiaddr("10.0.0.1:4001".parse().unwrap(), Transport::Tcp);
/// assert_eq!(a.to_string(), "/ip4/10.0.0.1/tcp/4001");
/// let a = to_multiaddr("[::1]:9".parse().unwrap(), Transport::QuicV1);
/// assert_eq!(a.to_string(), "/ip6/::1/udp/9/quic-v1");
/// ```
pub fn to_multiaddr(point: SocketAddr, transport: Transport) -> Multiaddr {
    let ip = match point.ip() {
        IpAddr::V4(a) => Protocol::Ip4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Protocol::Ip4(v4),
            None => Protocol::Ip6(a),
        },
    };
    let m = Multiaddr::empty().with(ip);
    match transport {
        Transport::Tcp => m.with(Protocol::Tcp(point.port())),
        Transport::QuicV1 => m.with(Protocol::Udp(point.port())).with(Protocol::QuicV1),
    }
}

/// The core's id of a libp2p peer: an Ed25519 key's 32 bytes (the id a native peerkeeper
/// node with that key has), otherwise a domain-separated SHA-256 of the libp2p id.
///
/// ```
/// use libp2p::identity::Keypair;
/// let key = Keypair::generate_ed25519();
/// let id = peerkeeper_libp2p::core_peer_id(&key.public().to_peer_id());
/// let raw = key.public().try_into_ed25519().unwrap().to_bytes();
/// assert_eq!(id.as_bytes(), &raw);
/// ```
pub fn core_peer_id(peer: &libp2p::PeerId) -> peerkeeper::PeerId {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // The identity multihash (code 0) holds the protobuf-encoded public key.
    if mh.code() == 0 {
        if let Ok(key) = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()) {
            if let Ok(ed) = key.try_into_ed25519() {
                return peerkeeper::PeerId::from_bytes(ed.to_bytes());
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"peerkeeper-libp2p peer id\0");
    h.update(peer.to_bytes());
    peerkeeper::PeerId::from_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_multiaddr_maps_or_is_refused_with_its_reason() {
        let cases: &[(&str, Result<&str, Unmapped>)] = &[
            ("/ip4/1.2.3.4/tcp/5", Ok("1.2.3.4:5")),
            (
                "/ip4/1.2.3.4/tcp/5/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
                Ok("1.2.3.4:5"),
            ),
            ("/ip6/2001:db8::1/udp/7/quic-v1", Ok("[2001:db8::1]:7")),
            ("/dns/example.org/tcp/5", Err(Unmapped::Dns)),
            ("/dnsaddr/bootstrap.libp2p.io", Err(Unmapped::Dns)),
            (
                "/ip4/1.2.3.4/tcp/5/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit",
                Err(Unmapped::Relay),
            ),
            ("/memory/5", Err(Unmapped::NotIp)),
            ("/ip4/1.2.3.4", Err(Unmapped::NotIp)),
            ("/ip4/1.2.3.4/tcp/5/ws", Err(Unmapped::OtherTransport)),
            ("/ip4/1.2.3.4/udp/5/quic", Err(Unmapped::OtherTransport)),
            ("/ip4/1.2.3.4/udp/5", Err(Unmapped::OtherTransport)),
            ("/ip4/0.0.0.0/tcp/5", Err(Unmapped::Unspecified)),
            ("/ip4/1.2.3.4/tcp/0", Err(Unmapped::Unspecified)),
        ];
        for (a, want) in cases {
            let got = to_point(&a.parse().unwrap()).map(|(p, _)| p);
            let want = want.map(|s| s.parse::<SocketAddr>().unwrap());
            assert_eq!(got, want, "{a}");
        }
    }

    #[test]
    fn a_point_maps_back_to_the_same_multiaddr() {
        for s in ["1.2.3.4:5", "[2001:db8::1]:7"] {
            let p: SocketAddr = s.parse().unwrap();
            for t in [Transport::Tcp, Transport::QuicV1] {
                assert_eq!(to_point(&to_multiaddr(p, t)), Ok((p, t)));
            }
        }
    }

    #[test]
    fn ids_of_other_key_types_are_distinct_and_stable() {
        let a = libp2p::PeerId::random();
        let b = libp2p::PeerId::random();
        assert_eq!(core_peer_id(&a), core_peer_id(&a));
        assert_ne!(core_peer_id(&a), core_peer_id(&b));
    }
}
