//! The relay rule for points learned from peers (`core::intake`), go-ethereum's
//! `CheckRelayIP`: loopback points only from loopback senders, private (LAN) points only
//! from private or loopback senders, public points from anyone, never an unspecified,
//! multicast, broadcast or documentation address or port 0; `allow_private = false`
//! refuses every point that is not public; a node shares a point with a requester exactly
//! when the requester would accept it. Table-driven over IPv4, IPv6 and IPv4-mapped IPv6,
//! plus a property over random IPv4 points and senders.

use peerkeeper::core::intake::{check_point, scope, shareable, PointDropped, Scope};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn point(s: &str) -> SocketAddr {
    SocketAddr::new(ip(s), 9732)
}

/// Loopback addresses: 127/8 and ::1, also IPv4-mapped.
const LOOPBACK: &[&str] = &["127.0.0.1", "127.255.0.3", "::1", "::ffff:127.0.0.1"];

/// Private (LAN) addresses, each range at its edges: 10/8, 172.16/12, 192.168/16,
/// 100.64/10 (CGNAT), 169.254/16 (link-local), fc00::/7, fe80::/10, and IPv4-mapped ones.
const PRIVATE: &[&str] = &[
    "10.0.0.0",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.254",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.0.1",
    "169.254.255.254",
    "fc00::1",
    "fdff:ffff::1",
    "fe80::1",
    "febf:ffff::1",
    "::ffff:10.1.2.3",
    "::ffff:192.168.1.1",
    "::ffff:100.64.0.1",
];

/// Public addresses, including the neighbours of every private and documentation range.
const PUBLIC: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "9.255.255.255",
    "11.0.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "192.0.1.255",
    "192.0.3.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.254",
    "2001:4860:4860::8888",
    "2a00:1450::1",
    "fbff:ffff::1",
    "2001:db7:ffff::1",
    "2001:db9::1",
    "::ffff:8.8.8.8",
];

/// Addresses nobody should dial: unspecified, multicast, broadcast, documentation, 0/8
/// and 240/4, in both families and IPv4-mapped.
const NEVER: &[&str] = &[
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "224.0.0.1",
    "239.255.255.255",
    "255.255.255.255",
    "240.0.0.1",
    "ff02::1",
    "ff0e::1",
    "192.0.2.0",
    "192.0.2.255",
    "198.51.100.7",
    "203.0.113.9",
    "2001:db8::1",
    "2001:db8:ffff:ffff::1",
    "::ffff:0.0.0.0",
    "::ffff:224.0.0.1",
    "::ffff:192.0.2.1",
    "::ffff:255.255.255.255",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    /// This node itself (its operator, its own sources).
    Me,
    Loopback,
    Private,
    Public,
}

/// Senders of each kind; an address that has no scope (multicast, documentation) is
/// treated as the narrowest trust, a public sender.
const SENDERS: &[(&str, Sender)] = &[
    ("127.0.0.1", Sender::Loopback),
    ("127.3.2.1", Sender::Loopback),
    ("::1", Sender::Loopback),
    ("::ffff:127.0.0.1", Sender::Loopback),
    ("10.0.0.2", Sender::Private),
    ("172.20.1.1", Sender::Private),
    ("192.168.5.5", Sender::Private),
    ("100.100.0.1", Sender::Private),
    ("169.254.9.9", Sender::Private),
    ("fd00::5", Sender::Private),
    ("fe80::5", Sender::Private),
    ("::ffff:10.9.9.9", Sender::Private),
    ("8.8.4.4", Sender::Public),
    ("2001:4860::1", Sender::Public),
    ("::ffff:9.9.9.9", Sender::Public),
    ("0.0.0.0", Sender::Public),
    ("224.0.0.5", Sender::Public),
    ("192.0.2.5", Sender::Public),
    ("2001:db8::5", Sender::Public),
];

fn senders() -> impl Iterator<Item = (Option<IpAddr>, Sender)> {
    SENDERS
        .iter()
        .map(|(s, k)| (Some(ip(s)), *k))
        .chain([(None, Sender::Me)])
}

#[test]
fn scope_classifies_every_table_entry() {
    for (list, expected) in [
        (LOOPBACK, Some(Scope::Loopback)),
        (PRIVATE, Some(Scope::Private)),
        (PUBLIC, Some(Scope::Public)),
        (NEVER, None),
    ] {
        for a in list {
            assert_eq!(scope(ip(a)), expected, "{a}");
        }
    }
}

#[test]
fn the_relay_rule_by_point_scope_and_sender() {
    for (sender, kind) in senders() {
        for a in LOOPBACK {
            let expected = match kind {
                Sender::Me | Sender::Loopback => Ok(()),
                _ => Err(PointDropped::LoopbackFromRemote),
            };
            assert_eq!(
                check_point(&point(a), sender, true),
                expected,
                "{a} from {sender:?}"
            );
        }
        for a in PRIVATE {
            let expected = match kind {
                Sender::Public => Err(PointDropped::PrivateFromPublic),
                _ => Ok(()),
            };
            assert_eq!(
                check_point(&point(a), sender, true),
                expected,
                "{a} from {sender:?}"
            );
        }
        for allow in [true, false] {
            for a in PUBLIC {
                assert_eq!(
                    check_point(&point(a), sender, allow),
                    Ok(()),
                    "{a} from {sender:?}"
                );
            }
            for a in NEVER {
                assert_eq!(
                    check_point(&point(a), sender, allow),
                    Err(PointDropped::NotUnicast),
                    "{a} from {sender:?}"
                );
            }
        }
    }
}

#[test]
fn port_zero_is_never_accepted() {
    for (sender, _) in senders() {
        for allow in [true, false] {
            for a in LOOPBACK.iter().chain(PRIVATE).chain(PUBLIC).chain(NEVER) {
                let p = SocketAddr::new(ip(a), 0);
                assert_eq!(
                    check_point(&p, sender, allow),
                    Err(PointDropped::PortZero),
                    "{p} from {sender:?}"
                );
            }
        }
    }
}

#[test]
fn refusing_private_addresses_refuses_every_non_public_point_from_anyone() {
    for (sender, _) in senders() {
        for a in LOOPBACK.iter().chain(PRIVATE) {
            assert_eq!(
                check_point(&point(a), sender, false),
                Err(PointDropped::PrivateRefused),
                "{a} from {sender:?}"
            );
        }
    }
}

#[test]
fn an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_is() {
    let all = LOOPBACK.iter().chain(PRIVATE).chain(PUBLIC).chain(NEVER);
    for a in all.filter(|a| !a.contains(':')) {
        let v4: Ipv4Addr = a.parse().unwrap();
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(scope(mapped), scope(IpAddr::V4(v4)), "{a}");
        for (sender, _) in senders() {
            for allow in [true, false] {
                let plain = check_point(&SocketAddr::new(v4.into(), 1), sender, allow);
                let as_v6 = check_point(&SocketAddr::new(mapped, 1), sender, allow);
                assert_eq!(plain, as_v6, "{a} from {sender:?}");
                // And as a sender.
                if let Some(s) = sender.map(|s| match s {
                    IpAddr::V4(s) => IpAddr::V6(s.to_ipv6_mapped()),
                    s => s,
                }) {
                    let from_mapped = check_point(&SocketAddr::new(v4.into(), 1), Some(s), allow);
                    assert_eq!(plain, from_mapped, "{a} from mapped {s}");
                }
            }
        }
    }
}

/// Requesters, each with the address it sees us at: on one machine both are loopback,
/// on one LAN both are private, across the Internet both are public.
const REQUESTERS: &[(&str, &str)] = &[
    ("127.0.0.1", "127.0.0.1"),
    ("::1", "::1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("10.0.0.2", "10.0.0.1"),
    ("192.168.1.20", "192.168.1.1"),
    ("172.17.0.3", "172.17.0.2"),
    ("100.64.3.3", "100.64.3.1"),
    ("fd00::20", "fd00::1"),
    ("fe80::20", "fe80::1"),
    ("::ffff:10.0.0.2", "10.0.0.1"),
    ("8.8.4.4", "1.2.3.4"),
    ("2001:4860::20", "2a00:1450::1"),
    ("::ffff:8.8.4.4", "1.2.3.4"),
];

#[test]
fn a_point_is_shared_exactly_when_the_requester_would_accept_it_from_us() {
    for (requester, us) in REQUESTERS {
        for allow in [true, false] {
            for a in LOOPBACK.iter().chain(PRIVATE).chain(PUBLIC).chain(NEVER) {
                let p = point(a);
                // The requester judges our answer by the address it sees us at.
                let accepted = check_point(&p, Some(ip(us)), allow).is_ok();
                assert_eq!(
                    shareable(&p, ip(requester), allow),
                    accepted,
                    "{p} to {requester} (who sees us at {us}), allow_private {allow}"
                );
            }
        }
    }
    // In words: a public requester gets public points only, a LAN requester no loopback.
    let public = ip("8.8.4.4");
    let lan = ip("192.168.1.20");
    assert!(!shareable(&point("192.168.1.7"), public, true));
    assert!(!shareable(&point("127.0.0.1"), lan, true));
    assert!(shareable(&point("192.168.1.7"), lan, true));
    assert!(shareable(&point("8.8.8.8"), public, true));
}

/// An IPv4 address is public when it is in none of the ranges the rule names (written
/// here from the RFCs, apart from the code under test).
fn is_public_v4(a: Ipv4Addr) -> bool {
    let v = u32::from(a);
    let in_net = |net: [u8; 4], bits: u32| {
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        v & mask == u32::from(Ipv4Addr::from(net)) & mask
    };
    ![
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ]
    .iter()
    .any(|(net, bits)| in_net(*net, *bits))
}

/// Random IPv4 addresses, with the named ranges' neighbourhoods drawn often.
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    let near = prop::sample::select(vec![
        0u32,
        0x0a00_0000,
        0x6440_0000,
        0x7f00_0000,
        0xa9fe_0000,
        0xac10_0000,
        0xc000_0000,
        0xc000_0200,
        0xc0a8_0000,
        0xc612_0000,
        0xc633_6400,
        0xcb00_7100,
        0xe000_0000,
        0xf000_0000,
    ]);
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from),
        (near, -70_000i64..70_000)
            .prop_map(|(base, d)| Ipv4Addr::from((i64::from(base) + d).rem_euclid(1 << 32) as u32)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// For any IPv4 point and sender, the rule answers (never panics); a public point
    /// with a port is accepted from anyone, whatever the switch; anything else is refused
    /// from a public sender; and the scope agrees with the RFC ranges.
    #[test]
    fn random_ipv4_points_and_senders(
        p in v4(),
        port in any::<u16>(),
        sender in prop::option::of(v4()),
        allow in any::<bool>(),
    ) {
        let point = SocketAddr::new(p.into(), port);
        let verdict = check_point(&point, sender.map(IpAddr::V4), allow);
        let public = is_public_v4(p);
        prop_assert_eq!(scope(p.into()) == Some(Scope::Public), public, "{}", p);
        if port == 0 {
            prop_assert_eq!(verdict, Err(PointDropped::PortZero));
        } else if public {
            prop_assert_eq!(verdict, Ok(()), "{} from {:?}", p, sender);
        } else {
            let from_public = check_point(&point, Some(IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4))), allow);
            prop_assert!(from_public.is_err(), "{} accepted from a public sender", p);
        }
    }
}
