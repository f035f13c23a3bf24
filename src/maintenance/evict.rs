//! Which inbound connection to give up, when one must go: room for a newcomer at
//! `max_connections`, room for the outbound floor, or a trim above `max_threshold`.
//!
//! Anyone can open inbound connections, as many as it has addresses and keys, and as
//! fast as it likes; so the choice must not reward what is cheap (being many, being
//! recent). Before choosing, [`protected_inbound`] sets aside, as Bitcoin Core's
//! `SelectNodeToEvict` does (`src/node/eviction.cpp`; the rules, not its code):
//!
//! 1. the longest-connected peer of each of up to [`PROTECT_BY_GROUP`] network groups,
//!    the groups holding the fewest inbound connections first (a flood from one group
//!    can win one place here, never more), when the inbound connections come from more
//!    than one group (on one machine or one LAN, groups say nothing);
//! 2. the [`PROTECT_BY_RTT`] lowest round-trip times measured by the shell
//!    ([`NodeCore::handle_rtt`](crate::core::NodeCore::handle_rtt)): a fresh connection
//!    has none yet;
//! 3. the [`PROTECT_BY_USEFUL`] peers most recently reported useful by the application
//!    ([`Report::Useful`](crate::core::Report::Useful));
//! 4. the longest-connected half of what remains.
//!
//! Then [`evict_inbound`] takes, among the rest, the network group with the most
//! connections (ties: the group holding the youngest), and in it the youngest connection:
//! a flood from one host or one group evicts its own. If that connection is younger than
//! `newcomer_grace`, or nothing is left, nobody is evicted (the newcomer is refused with
//! points): a long-lived honest peer is never pushed out by a stream of fresh ones.
//! Trusted and protected peers ([`Pool::is_protected`]) are never candidates.

use crate::pool::{Connection, Direction, Pool};
use crate::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Inbound connections protected by network group (the longest-connected of each group).
pub const PROTECT_BY_GROUP: usize = 4;
/// Inbound connections protected by lowest round-trip time.
pub const PROTECT_BY_RTT: usize = 4;
/// Inbound connections protected by most recent usefulness.
pub const PROTECT_BY_USEFUL: usize = 4;

/// The inbound connections (by point) that [`evict_inbound`] never chooses, among those
/// `eligible` accepts: see the [module docs](self). Pure and deterministic (ties are
/// broken by age, then by point).
///
/// ```
/// use peerkeeper::maintenance::evict::protected_inbound;
/// use peerkeeper::pool::{ConnId, Direction, PeerId, Pool};
/// use peerkeeper::{Config, Time};
/// let mut pool = Pool::new(&Config::default());
/// for (i, ip) in ["203.0.113.1", "198.51.100.1", "192.0.2.1"].iter().enumerate() {
///     let a = format!("{ip}:9732").parse().unwrap();
///     pool.connection_opened(ConnId(i as u64), a, PeerId::from_u64(i as u64 + 10),
///                            Direction::Inbound, Time::from_millis(i as u64)).unwrap();
/// }
/// // Three groups, each holding one connection: all three protected.
/// assert_eq!(protected_inbound(&pool, |_, _| true).len(), 3);
/// ```
pub fn protected_inbound(
    pool: &Pool,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
) -> BTreeSet<SocketAddr> {
    let mut rest: Vec<(SocketAddr, Connection)> = pool
        .connections()
        .filter(|(a, c)| {
            c.direction == Direction::Inbound && !pool.is_protected(a) && eligible(a, c)
        })
        .map(|(a, c)| (a, *c))
        .collect();
    // Oldest first (ties by point): every "longest-connected" below reads this order.
    rest.sort_by_key(|(a, c)| (c.since, *a));
    let mut protected = BTreeSet::new();
    let mut take = |rest: &mut Vec<(SocketAddr, Connection)>, picked: Vec<SocketAddr>| {
        rest.retain(|(a, _)| !picked.contains(a));
        protected.extend(picked);
    };
    // 1. By group: the oldest of each group, groups with the fewest connections first.
    let mut groups: BTreeMap<u64, (usize, SocketAddr, Time)> = BTreeMap::new();
    for (a, c) in &rest {
        let g = groups.entry(pool.group(a)).or_insert((0, *a, c.since));
        g.0 += 1;
    }
    let mut by_size: Vec<(usize, Time, SocketAddr)> =
        groups.values().map(|(n, a, t)| (*n, *t, *a)).collect();
    by_size.sort();
    // One group only (a machine, a LAN, one range): groups say nothing, none protected.
    let distinct = by_size.len() > 1;
    let picked = by_size
        .into_iter()
        .take(if distinct { PROTECT_BY_GROUP } else { 0 })
        .map(|(_, _, a)| a)
        .collect();
    take(&mut rest, picked);
    // 2. Lowest round-trip times (measured ones only).
    let mut rtt: Vec<(u32, Time, SocketAddr)> = rest
        .iter()
        .filter_map(|(a, c)| c.rtt_ms.map(|r| (r, c.since, *a)))
        .collect();
    rtt.sort();
    let picked = rtt
        .into_iter()
        .take(PROTECT_BY_RTT)
        .map(|(_, _, a)| a)
        .collect();
    take(&mut rest, picked);
    // 3. Most recently useful.
    let mut useful: Vec<(std::cmp::Reverse<Time>, Time, SocketAddr)> = rest
        .iter()
        .filter_map(|(a, c)| c.last_useful.map(|t| (std::cmp::Reverse(t), c.since, *a)))
        .collect();
    useful.sort();
    let picked = useful
        .into_iter()
        .take(PROTECT_BY_USEFUL)
        .map(|(_, _, a)| a)
        .collect();
    take(&mut rest, picked);
    // 4. The longest-connected half of the rest.
    let half = rest.len() / 2;
    let picked = rest.iter().take(half).map(|(a, _)| *a).collect();
    take(&mut rest, picked);
    protected
}

/// The inbound connections that may be evicted now, in the order they would be: among
/// those `eligible` accepts and [`protected_inbound`] leaves, repeatedly the youngest of
/// the group with the most (ties: the group holding the youngest). Connections younger
/// than `grace` at `now` are listed too (a trim may cut them); [`evict_inbound`] stops at
/// the first.
pub fn eviction_order(
    pool: &Pool,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
) -> Vec<(SocketAddr, Time)> {
    let protected = protected_inbound(pool, &eligible);
    let mut groups: BTreeMap<u64, Vec<(Time, SocketAddr)>> = BTreeMap::new();
    for (a, c) in pool.connections() {
        if c.direction == Direction::Inbound
            && !pool.is_protected(&a)
            && eligible(&a, c)
            && !protected.contains(&a)
        {
            groups.entry(pool.group(&a)).or_default().push((c.since, a));
        }
    }
    // Each group oldest first: the youngest is popped first.
    for v in groups.values_mut() {
        v.sort();
    }
    let mut out = Vec::new();
    loop {
        let pick = groups
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .max_by_key(|(g, v)| {
                (
                    v.len(),
                    v.last().map(|(t, a)| (*t, *a)),
                    std::cmp::Reverse(**g),
                )
            })
            .map(|(g, _)| *g);
        let Some(g) = pick else { break };
        if let Some((t, a)) = groups.get_mut(&g).and_then(Vec::pop) {
            out.push((a, t));
        }
    }
    out
}

/// The inbound connection to evict at `now`, if one may be: the first of
/// [`eviction_order`], unless it is younger than `grace` (then none: the newcomer is
/// refused, and a flood's own connections leave first once they are old enough).
///
/// ```
/// use peerkeeper::maintenance::evict::evict_inbound;
/// use peerkeeper::pool::{ConnId, Direction, PeerId, Pool};
/// use peerkeeper::{Config, Time};
/// use std::time::Duration;
/// let mut pool = Pool::new(&Config::default());
/// let honest: std::net::SocketAddr = "198.51.100.1:9732".parse().unwrap();
/// pool.connection_opened(ConnId(1), honest, PeerId::from_u64(1), Direction::Inbound,
///                        Time::ZERO).unwrap();
/// // Four sybils from one /16, each 20 s younger than the last.
/// for i in 0..4u64 {
///     let a = format!("203.0.113.{}:9732", i + 1).parse().unwrap();
///     pool.connection_opened(ConnId(10 + i), a, PeerId::from_u64(10 + i), Direction::Inbound,
///                            Time::from_millis(60_000 + 20_000 * i)).unwrap();
/// }
/// let now = Time::from_millis(200_000);
/// let victim = evict_inbound(&pool, now, Duration::from_secs(10), |_, _| true).unwrap();
/// assert_eq!(victim, "203.0.113.4:9732".parse().unwrap()); // the youngest sybil
/// ```
pub fn evict_inbound(
    pool: &Pool,
    now: Time,
    grace: Duration,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
) -> Option<SocketAddr> {
    let (a, since) = eviction_order(pool, eligible).into_iter().next()?;
    (since + grace <= now).then_some(a)
}
