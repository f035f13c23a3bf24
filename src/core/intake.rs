//! Which points a node accepts, and which it tells others about: one rule for both.
//!
//! Every point that arrives from the network is an attacker's choice. The rule is
//! go-ethereum's relay rule (`netutil.CheckRelayIP`): an address is only as trustworthy as
//! the scope of whoever sent it.
//!
//! * never: port 0, unspecified, multicast, broadcast, documentation, benchmarking,
//!   IETF-assignment, discard-only or reserved ranges;
//! * a loopback address only from a loopback sender (another process on this machine);
//! * a private address (RFC 1918, CGNAT, link-local, IPv6 unique-local and link-local)
//!   only from a private or loopback sender (a peer on the same LAN or machine);
//! * a public address from anyone.
//!
//! So a local testnet, a LAN or a Docker network forms with the defaults, and a public
//! node never learns (or leaks) LAN addresses from strangers. The switch
//! [`DiscoveryConfig::allow_private_addresses`](crate::DiscoveryConfig) set to false
//! refuses every loopback and private address from the network, whatever the sender.
//!
//! Answers use the same rule from the other side: a point is shared with a requester only
//! if the requester would accept it from us ([`shareable`]).

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// How far an address reaches, from the narrowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scope {
    /// This machine only (127.0.0.0/8, ::1).
    Loopback,
    /// A local network: RFC 1918, CGNAT (100.64/10), link-local, IPv6 unique-local
    /// (fc00::/7), link-local (fe80::/10) and the old site-local (fec0::/10).
    Private,
    /// Anything else that is unicast.
    Public,
}

/// Why a received point was dropped. Each is counted ([`PointsDropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PointDropped {
    /// Port 0 cannot be dialed.
    #[error("port 0")]
    PortZero,
    /// Unspecified, multicast, broadcast, documentation or reserved address.
    #[error("not a unicast address")]
    NotUnicast,
    /// A loopback address from a sender that is not on this machine.
    #[error("loopback address from a remote sender")]
    LoopbackFromRemote,
    /// A private (LAN) address from a public sender.
    #[error("private address from a public sender")]
    PrivateFromPublic,
    /// A loopback or private address while `allow_private_addresses` is off.
    #[error("private address refused by the config")]
    PrivateRefused,
    /// One of our own addresses.
    #[error("our own address")]
    Myself,
    /// The pool is full of points it may not drop.
    #[error("pool full")]
    PoolFull,
    /// Its address-book position is held by a point worth keeping
    /// ([`crate::pool::book`]).
    #[error("address-book position held")]
    Collision,
}

/// Points dropped, by reason: what the status line and `demo --json` show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PointsDropped {
    /// Port 0.
    pub port_zero: u64,
    /// Unspecified, multicast, broadcast, documentation or reserved.
    pub not_unicast: u64,
    /// Loopback from a remote sender.
    pub loopback_from_remote: u64,
    /// Private from a public sender.
    pub private_from_public: u64,
    /// Loopback or private while the config refuses them.
    pub private_refused: u64,
    /// Our own address.
    pub myself: u64,
    /// The pool was full.
    pub pool_full: u64,
    /// Its address-book position was held.
    pub collision: u64,
}

impl PointsDropped {
    /// Counts one drop.
    pub fn count(&mut self, why: PointDropped) {
        let c = match why {
            PointDropped::PortZero => &mut self.port_zero,
            PointDropped::NotUnicast => &mut self.not_unicast,
            PointDropped::LoopbackFromRemote => &mut self.loopback_from_remote,
            PointDropped::PrivateFromPublic => &mut self.private_from_public,
            PointDropped::PrivateRefused => &mut self.private_refused,
            PointDropped::Myself => &mut self.myself,
            PointDropped::PoolFull => &mut self.pool_full,
            PointDropped::Collision => &mut self.collision,
        };
        *c += 1;
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.port_zero
            + self.not_unicast
            + self.loopback_from_remote
            + self.private_from_public
            + self.private_refused
            + self.myself
            + self.pool_full
            + self.collision
    }

    /// Adds another node's counts (for network-wide reports).
    pub fn add(&mut self, o: &PointsDropped) {
        self.port_zero += o.port_zero;
        self.not_unicast += o.not_unicast;
        self.loopback_from_remote += o.loopback_from_remote;
        self.private_from_public += o.private_from_public;
        self.private_refused += o.private_refused;
        self.myself += o.myself;
        self.pool_full += o.pool_full;
        self.collision += o.collision;
    }

    /// The non-zero counts as `reason=count` pairs, for a status line ("none" if none).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("port_zero", self.port_zero),
            ("not_unicast", self.not_unicast),
            ("loopback_from_remote", self.loopback_from_remote),
            ("private_from_public", self.private_from_public),
            ("private_refused", self.private_refused),
            ("myself", self.myself),
            ("pool_full", self.pool_full),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        ip => ip,
    }
}

/// The scope of a unicast address, or `None` for an address nobody should dial.
///
/// ```
/// use peerkeeper::core::intake::{scope, Scope};
/// assert_eq!(scope("127.0.0.1".parse().unwrap()), Some(Scope::Loopback));
/// assert_eq!(scope("192.168.1.7".parse().unwrap()), Some(Scope::Private));
/// assert_eq!(scope("8.8.8.8".parse().unwrap()), Some(Scope::Public));
/// assert_eq!(scope("203.0.113.7".parse().unwrap()), None); // documentation
/// assert_eq!(scope("::".parse().unwrap()), None);
/// ```
pub fn scope(ip: IpAddr) -> Option<Scope> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let documentation = matches!(o, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
            // 198.18/15: benchmarking; 192.0.0/24: IETF protocol assignments.
            let special = (o[0] == 198 && (o[1] & 0xfe) == 18) || matches!(o, [192, 0, 0, _]);
            if v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || documentation
                || special
                || o[0] == 0
                || o[0] >= 240
            {
                None
            } else if v4.is_loopback() {
                Some(Scope::Loopback)
            } else if v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (64..128).contains(&o[1]))
            {
                Some(Scope::Private)
            } else {
                Some(Scope::Public)
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // 2001:db8::/32 and 3fff::/20: documentation; 100::/64: discard-only.
            let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xfff0) == 0x3ff0;
            let discard = s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0;
            if v6.is_unspecified() || v6.is_multicast() || documentation || discard {
                None
            } else if v6.is_loopback() {
                Some(Scope::Loopback)
            } else if (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
            {
                Some(Scope::Private)
            } else {
                Some(Scope::Public)
            }
        }
    }
}

/// The one rule for accepting a point (see the module docs). `sender` is the IP address
/// the point came from; `None` is this node itself (its own point sources), which may
/// name any scope, unless `allow_private` is off: then only public points pass, whoever
/// sent them. (The operator's trusted and bootstrap points do not go through this rule.)
///
/// ```
/// use peerkeeper::core::intake::{check_point, PointDropped};
/// let lo = Some("127.0.0.1".parse().unwrap());
/// let lan = Some("192.168.1.2".parse().unwrap());
/// let public = Some("8.8.4.4".parse().unwrap());
/// let p = |s: &str| s.parse().unwrap();
/// assert!(check_point(&p("127.0.0.1:9732"), lo, true).is_ok());
/// assert_eq!(check_point(&p("127.0.0.1:9732"), lan, true), Err(PointDropped::LoopbackFromRemote));
/// assert!(check_point(&p("10.1.2.3:9732"), lan, true).is_ok());
/// assert_eq!(check_point(&p("10.1.2.3:9732"), public, true), Err(PointDropped::PrivateFromPublic));
/// assert!(check_point(&p("1.2.3.4:9732"), public, true).is_ok());
/// assert_eq!(check_point(&p("10.1.2.3:9732"), lan, false), Err(PointDropped::PrivateRefused));
/// assert_eq!(check_point(&p("224.0.0.1:9732"), lo, true), Err(PointDropped::NotUnicast));
/// assert_eq!(check_point(&p("1.2.3.4:0"), lo, true), Err(PointDropped::PortZero));
/// ```
pub fn check_point(
    point: &SocketAddr,
    sender: Option<IpAddr>,
    allow_private: bool,
) -> Result<(), PointDropped> {
    if point.port() == 0 {
        return Err(PointDropped::PortZero);
    }
    let point_scope = scope(point.ip()).ok_or(PointDropped::NotUnicast)?;
    if point_scope == Scope::Public {
        return Ok(());
    }
    if !allow_private {
        return Err(PointDropped::PrivateRefused);
    }
    // A sender we cannot classify (a reserved range) is treated as public: the narrowest
    // trust.
    let from = sender
        .map_or(Some(Scope::Loopback), scope)
        .unwrap_or(Scope::Public);
    match (point_scope, from) {
        (Scope::Loopback, Scope::Loopback) => Ok(()),
        (Scope::Loopback, _) => Err(PointDropped::LoopbackFromRemote),
        (Scope::Private, Scope::Public) => Err(PointDropped::PrivateFromPublic),
        _ => Ok(()),
    }
}

/// Whether `point` may be told to a requester at `requester`: exactly when the requester
/// would accept it from us (a public requester gets public points only, a LAN requester no
/// loopback points).
pub fn shareable(point: &SocketAddr, requester: IpAddr, allow_private: bool) -> bool {
    check_point(point, Some(requester), allow_private).is_ok()
}
