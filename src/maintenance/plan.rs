//! The pure planner: what to dial, what to close, whether to ask for points.

use crate::config::{Config, RangeStatus};
use crate::pool::{netgroup, Connection, Direction, Pool};
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What a maintenance step should do. Produced by [`plan`], carried out by a driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Points to dial now.
    pub dial: Vec<SocketAddr>,
    /// Connections to close (by point).
    pub close: Vec<SocketAddr>,
    /// No candidate is left and no dial is in flight while connections are short: more
    /// points are needed (peer sharing). Never set in private mode.
    pub ask_for_points: bool,
}

/// The plan for a maintenance cycle at `now`.
///
/// * Above `max_threshold`: close down to exactly `max_target`, never a trusted
///   connection, newcomers (younger than `newcomer_grace`) last (see [`trim`]).
/// * Below `min_threshold`: dial the best candidates (see [`top_up_dials`]); if there are
///   none and nothing is in flight, ask for points.
/// * In between: nothing (hysteresis).
///
/// Pure: the same pool, config, `now` and RNG state give the same plan. Candidates reflect
/// the pool's last [`Pool::advance`].
///
/// ```
/// use peerkeeper::{maintenance::plan, pool::{Pool, Source}, Config, Time};
/// use rand::{rngs::StdRng, SeedableRng};
/// let config = Config { min_connections: 4, expected_connections: 8, max_connections: 12,
///                       max_concurrent_dials: 2, ..Config::default() };
/// let mut pool = Pool::new(&config);
/// for i in 1..=5 {
///     pool.add_point(format!("10.0.0.{i}:1").parse().unwrap(), Source::PeerSharing, Time::ZERO);
/// }
/// pool.advance(Time::ZERO);
/// let p = plan(&pool, &config, Time::ZERO, &mut StdRng::seed_from_u64(7));
/// assert_eq!(p.dial.len(), 2); // bounded by max_concurrent_dials
/// ```
pub fn plan<R: Rng + ?Sized>(pool: &Pool, config: &Config, now: Time, rng: &mut R) -> Plan {
    let bounds = config.bounds();
    let active = pool.active_count();
    match bounds.classify(active) {
        RangeStatus::TooMany => Plan {
            close: trim(
                pool,
                active - bounds.max_target,
                now - config.newcomer_grace,
                rng,
            ),
            ..Plan::default()
        },
        RangeStatus::TooFew => {
            let dial = top_up_dials(pool, config, now);
            let ask_for_points =
                dial.is_empty() && pool.dialing_count() == 0 && !config.private_mode;
            Plan {
                dial,
                ask_for_points,
                ..Plan::default()
            }
        }
        RangeStatus::InRange => Plan::default(),
    }
}

/// The dials a top-up starts now: while fewer than `min_target` connections are open, the
/// best candidates, as many as fit both under `max_concurrent_dials` in flight and under
/// `min_target` connections plus dials. A top-up stops at `min_target` (the design's
/// rule): the room between `min_target` and `max_connections` is left for the nodes that
/// dial us, which is what lets late joiners in (dialing up to `max_target` filled the
/// first nodes of a network with each other). In private mode only trusted points.
pub fn top_up_dials(pool: &Pool, config: &Config, _now: Time) -> Vec<SocketAddr> {
    let bounds = config.bounds();
    let active = pool.active_count();
    let inflight = pool.dialing_count();
    if active >= bounds.min_target {
        return Vec::new();
    }
    let slots = config
        .max_concurrent_dials
        .saturating_sub(inflight)
        .min(bounds.min_target.saturating_sub(active + inflight));
    pool.candidates(config.private_mode).take(slots).collect()
}

/// Chooses `count` connections to close: never a trusted one nor a protected one (a
/// primary of a tracked peer set, [`Pool::is_protected`]); spread over address groups
/// (the most represented /16 loses one first, so one operator's range cannot crowd out
/// the rest); within a group, inbound before outbound (outbound ones we chose, inbound
/// ones an attacker can choose for us), and among inbound ones, those opened at or before
/// `young_after` first, then the younger ones from the oldest (a newcomer just admitted
/// keeps its chance); the rest by the seeded RNG. Fewer than `count` if there are not enough untrusted connections.
pub fn trim<R: Rng + ?Sized>(
    pool: &Pool,
    count: usize,
    young_after: Time,
    rng: &mut R,
) -> Vec<SocketAddr> {
    trim_where(pool, count, young_after, |_, _| true, rng)
}

/// [`trim`] among the connections `eligible` accepts only (making room for a newcomer
/// closes an inbound connection old enough, by the same rule).
pub fn trim_where<R: Rng + ?Sized>(
    pool: &Pool,
    count: usize,
    young_after: Time,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
    rng: &mut R,
) -> Vec<SocketAddr> {
    // Per group: [outbound, young inbound, old inbound]; cut from the end.
    let mut groups: BTreeMap<u64, [Vec<SocketAddr>; 3]> = BTreeMap::new();
    for (addr, conn) in pool.connections() {
        if pool.is_trusted(&addr) || pool.is_protected(conn) || !eligible(&addr, conn) {
            continue;
        }
        let g = groups.entry(netgroup(&addr)).or_default();
        let class = match conn.direction {
            Direction::Outbound => 0,
            Direction::Inbound if conn.since > young_after => 1,
            Direction::Inbound => 2,
        };
        g[class].push(addr);
    }
    let mut stacks: Vec<Vec<SocketAddr>> = groups
        .into_values()
        .map(|classes| {
            let mut stack = Vec::new();
            for (class, mut c) in classes.into_iter().enumerate() {
                c.shuffle(rng);
                if class == 1 {
                    // Young inbound connections: the newest is cut last (a newcomer just
                    // admitted keeps its place over one admitted seconds before it).
                    let since = |a: &SocketAddr| pool.connection(a).map(|c| c.since);
                    c.sort_by_key(|a| std::cmp::Reverse(since(a)));
                }
                stack.extend(c);
            }
            stack
        })
        .collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let Some(largest) = stacks.iter().map(Vec::len).max().filter(|n| *n > 0) else {
            break;
        };
        let tied: Vec<usize> = (0..stacks.len())
            .filter(|i| stacks[*i].len() == largest)
            .collect();
        let pick = tied[rng.gen_range(0..tied.len())];
        out.extend(stacks[pick].pop());
    }
    out
}
