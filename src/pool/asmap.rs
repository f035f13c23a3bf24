//! An AS map: which autonomous system announces an address, for grouping peers by
//! operator rather than by address range (Bitcoin Core's `-asmap`).
//!
//! Grouping by IPv4 /16 (IPv6 /32) assumes that one operator holds few ranges. A large
//! hosting provider or transit network holds hundreds of /16s, and can eclipse a node
//! through them (Tran et al., "A Stealthier Partitioning Attack against Bitcoin
//! Peer-to-Peer Network", Erebus, IEEE S&P 2020). With an AS map, a point's group is the
//! AS that announces it; an address the map does not cover keeps its /16 (/32) group.
//!
//! # File format
//!
//! Text, one prefix per line: `PREFIX ASN`, as `1.0.0.0/24 13335` or `2001:db8::/32 64496`
//! (an `AS` before the number is accepted); `#` starts a comment; blank lines are skipped.
//! This is the human-readable form Bitcoin Core's `contrib/asmap/asmap-tool.py decode`
//! prints, so a map built for Bitcoin Core serves here too. The longest matching prefix
//! wins. At most [`MAX_ASMAP_ENTRIES`] prefixes and [`MAX_ASMAP_BYTES`] bytes: a full
//! Internet routing table is about a million prefixes.
//!
//! Lookups only: nothing iterates the map in hash order. Pure: [`AsMap::load`], which
//! reads the file, lives with the shell's other file code ([`crate::store`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Most prefixes an AS map may hold.
pub const MAX_ASMAP_ENTRIES: usize = 4_000_000;
/// The largest AS map file read.
pub const MAX_ASMAP_BYTES: usize = 256 << 20;

/// Why an AS map cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsMapError {
    /// A line is not `PREFIX ASN`.
    #[error("line {line}: {why} (expected `PREFIX ASN`, as `1.0.0.0/24 13335`)")]
    Line {
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Too many prefixes or bytes.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Io(#[source] std::io::Error),
}

/// A longest-prefix-match table from addresses to AS numbers. See the module docs.
///
/// ```
/// use peerkeeper::pool::AsMap;
/// let map = AsMap::parse("# two providers\n45.0.0.0/8 64500\n45.33.0.0/16 AS64501\n").unwrap();
/// assert_eq!(map.asn("45.1.2.3".parse().unwrap()), Some(64500));
/// assert_eq!(map.asn("45.33.9.9".parse().unwrap()), Some(64501)); // the longest prefix
/// assert_eq!(map.asn("46.0.0.1".parse().unwrap()), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AsMap {
    /// By prefix length (in the IPv6 space; IPv4 as `::ffff:0:0/96`), longest first:
    /// (length, prefix -> ASN).
    by_len: Vec<(u8, HashMap<u128, u32>)>,
    len: usize,
}

fn mask(bits: u8) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits))
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

impl AsMap {
    /// Reads the text format (see the module docs).
    ///
    /// # Errors
    ///
    /// [`AsMapError`] naming the first bad line, or the bound passed.
    pub fn parse(text: &str) -> Result<AsMap, AsMapError> {
        if text.len() > MAX_ASMAP_BYTES {
            return Err(AsMapError::TooLarge(format!(
                "{} bytes, at most {MAX_ASMAP_BYTES}",
                text.len()
            )));
        }
        let mut lens: HashMap<u8, HashMap<u128, u32>> = HashMap::new();
        let mut len = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| AsMapError::Line {
                line: i + 1,
                why: why.to_string(),
            };
            let mut words = line.split_whitespace();
            let (Some(prefix), Some(asn), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad("not two words"));
            };
            let (addr, bits) = prefix.split_once('/').ok_or_else(|| bad("no /length"))?;
            let ip: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
            let bits: u8 = bits.parse().map_err(|_| bad("bad prefix length"))?;
            let bits = match ip {
                IpAddr::V4(_) if bits <= 32 => bits + 96,
                IpAddr::V6(_) if bits <= 128 => bits,
                _ => return Err(bad("prefix length too long")),
            };
            let asn = asn.strip_prefix("AS").unwrap_or(asn);
            let asn: u32 = asn.parse().map_err(|_| bad("bad AS number"))?;
            if asn == 0 {
                return Err(bad("AS 0 is reserved"));
            }
            len += 1;
            if len > MAX_ASMAP_ENTRIES {
                return Err(AsMapError::TooLarge(format!(
                    "more than {MAX_ASMAP_ENTRIES} prefixes"
                )));
            }
            lens.entry(bits)
                .or_default()
                .insert(key(ip) & mask(bits), asn);
        }
        let mut by_len: Vec<(u8, HashMap<u128, u32>)> = lens.into_iter().collect();
        by_len.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        Ok(AsMap { by_len, len })
    }

    /// The AS announcing `ip`, if the map covers it.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let k = key(ip);
        self.by_len
            .iter()
            .find_map(|(bits, m)| m.get(&(k & mask(*bits))).copied())
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The group of `addr`: its AS when the map covers it, else its /16 (/32)
    /// ([`super::netgroup`]). AS groups and range groups never collide.
    pub fn group(&self, addr: &SocketAddr) -> u64 {
        match self.asn(addr.ip()) {
            Some(asn) => (1 << 40) | u64::from(asn),
            None => super::netgroup(addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let m = AsMap::parse(
            "1.0.0.0/8 100\n1.2.0.0/16 200\n1.2.3.0/24 AS300\n2001:db8::/32 400\n2001:db8:1::/48 500\n",
        )
        .unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m.asn("1.9.9.9".parse().unwrap()), Some(100));
        assert_eq!(m.asn("1.2.9.9".parse().unwrap()), Some(200));
        assert_eq!(m.asn("1.2.3.9".parse().unwrap()), Some(300));
        assert_eq!(m.asn("::ffff:1.2.3.9".parse().unwrap()), Some(300));
        assert_eq!(m.asn("2001:db8:2::1".parse().unwrap()), Some(400));
        assert_eq!(m.asn("2001:db8:1::1".parse().unwrap()), Some(500));
        assert_eq!(m.asn("2.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line) in [
            ("1.0.0.0/8 100\n1.0.0.0 100\n", 2),
            ("# c\n\n1.0.0.0/33 1\n", 3),
            ("1.0.0.0/8\n", 1),
            ("1.0.0.0/8 x\n", 1),
            ("1.0.0.0/8 0\n", 1),
            ("1.0.0.0/8 1 2\n", 1),
        ] {
            match AsMap::parse(text) {
                Err(AsMapError::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unmapped_addresses_keep_their_range_group() {
        let m = AsMap::parse("45.0.0.0/8 64500\n").unwrap();
        let a: SocketAddr = "45.1.0.1:1".parse().unwrap();
        let b: SocketAddr = "45.200.0.1:1".parse().unwrap();
        let c: SocketAddr = "46.1.0.1:1".parse().unwrap();
        assert_eq!(m.group(&a), m.group(&b), "one AS, two /16s: one group");
        assert_eq!(m.group(&c), super::super::netgroup(&c));
        assert_ne!(m.group(&a), super::super::netgroup(&a));
    }
}
