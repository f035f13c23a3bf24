//! The pure planner: what to dial, what to close, whether to ask for points.
//!
//! See the [maintenance module](crate::maintenance) for kinds, targets and budgets.

use crate::config::{Config, KindTargets, RangeStatus};
use crate::pool::{Connection, Direction, Pool, Source};
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
/// * In between: nothing (hysteresis), unless a kind is below its floor and has a
///   candidate: then the floor's dials (see [`floors_short`]).
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
            close: trim_for(
                pool,
                config,
                active - bounds.max_target,
                now - config.newcomer_grace,
                |_, _| true,
                rng,
            ),
            ..Plan::default()
        },
        RangeStatus::InRange if floors_short(pool, config) => Plan {
            dial: top_up_dials(pool, config, now),
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
///
/// Never more than the outbound budget ([`Config::outbound_budget`]) of outbound
/// connections and dials. With per-kind targets ([`KindTargets`]), floors first, then
/// shares, then spill (see the [module docs](crate::maintenance)); a kind below its floor is dialed
/// for even at or above `min_target` (below `max_target`). Within each step, with
/// `defences.diverse_dials` on (the default), candidates in network groups our dialed
/// connections do not hold yet come first ([`diverse`]).
///
/// ```
/// use peerkeeper::{maintenance::top_up_dials, pool::{Pool, Source}, Config, Time};
/// let mut config = Config { min_connections: 4, expected_connections: 8, max_connections: 12,
///                           ..Config::default() };
/// config.targets.external.floor = 2;
/// let mut pool = Pool::new(&config);
/// for i in 1..=8 {
///     pool.add_point(format!("10.0.0.{i}:1").parse().unwrap(), Source::PeerSharing, Time::ZERO);
/// }
/// for i in 1..=3 {
///     pool.add_point(format!("10.0.1.{i}:1").parse().unwrap(), Source::External, Time::ZERO);
/// }
/// pool.advance(Time::ZERO);
/// let dials = top_up_dials(&pool, &config, Time::ZERO);
/// assert_eq!(dials.len(), 6); // min_target
/// let external = dials.iter().filter(|a| pool.kind_of(a) == Source::External).count();
/// assert!(external >= 2); // the floor first
/// ```
pub fn top_up_dials(pool: &Pool, config: &Config, _now: Time) -> Vec<SocketAddr> {
    let bounds = config.bounds();
    let active = pool.active_count();
    let inflight = pool.dialing_count();
    let out_room = config
        .outbound_budget()
        .saturating_sub(pool.outbound_count() + inflight);
    let conc_room = config.max_concurrent_dials.saturating_sub(inflight);
    let targets = &config.targets;
    // The outbound floor: dialed for whatever the total, within max_connections (room
    // is made first: see outbound_floor_evictions).
    let floor_need =
        outbound_need(pool, config).min(config.max_connections.saturating_sub(active + inflight));
    if targets.is_neutral() {
        if active >= bounds.min_target && floor_need == 0 {
            return Vec::new();
        }
        let slots = conc_room
            .min(
                bounds
                    .min_target
                    .saturating_sub(active + inflight)
                    .max(floor_need),
            )
            .min(out_room);
        if slots == 0 {
            return Vec::new();
        }
        if !config.defences.diverse_dials {
            return standing_first(pool, pool.candidates(config.private_mode), slots)
                .into_iter()
                .take(slots)
                .collect();
        }
        return spread_over_groups(
            pool,
            config.private_mode,
            slots,
            active >= bounds.min_threshold,
        );
    }
    let floor_room = floor_need;
    let mut counts = pool.kind_counts();
    let floor_need: usize = Source::ALL
        .iter()
        .map(|k| targets.get(*k).floor.saturating_sub(counts[k.index()]))
        .sum();
    let need = bounds
        .min_target
        .saturating_sub(active + inflight)
        .max(outbound_need(pool, config));
    let slots = conc_room.min(out_room).min(need.max(floor_need)).min(
        bounds
            .max_target
            .saturating_sub(active + inflight)
            .max(floor_room),
    );
    if slots == 0 {
        return Vec::new();
    }
    let cap = |k: Source| targets.get(k).cap.unwrap_or(usize::MAX);
    let quotas = targets.quotas(bounds.min_target);
    let mut out: Vec<SocketAddr> = Vec::with_capacity(slots);
    let private = config.private_mode;
    // Group diversity ([`diverse`]) within each step: new groups first.
    let mut spread = config.defences.diverse_dials.then(|| {
        let mut s = Spread::new(pool);
        // In range, only floors are dialed for: those dials are for diversity and
        // safety, never all into one group.
        s.capped = active >= bounds.min_threshold;
        s
    });
    // 1. Floors, best kind first.
    for k in Source::BY_RANK {
        let want = targets.get(k).floor.saturating_sub(counts[k.index()]);
        if want == 0 || out.len() >= slots {
            continue;
        }
        let room = want.min(slots - out.len());
        let of_kind = pool.candidates(private).filter(|a| pool.kind_of(a) == k);
        let picked: Vec<SocketAddr> = match &mut spread {
            Some(s) => s.pick(pool, of_kind, room),
            None => of_kind.take(room).collect(),
        };
        counts[k.index()] += picked.len();
        out.extend(picked);
    }
    // Beyond the floors, no further than min_target.
    let limit = need.max(out.len()).min(slots);
    // 2. Shares (quotas already hold the floors and the caps), then 3. spill; each in a
    // first pass over new groups only (a window of the best candidates), then any.
    for spill in [false, true] {
        if out.len() >= limit || (!spill && targets.weight_sum() == 0) {
            continue;
        }
        for fresh_only in [true, false] {
            if fresh_only && spread.is_none() {
                continue;
            }
            let window = if fresh_only {
                limit + DIVERSITY_WINDOW
            } else {
                usize::MAX
            };
            for a in pool.candidates(private).take(window) {
                if out.len() >= limit {
                    break;
                }
                let k = pool.kind_of(&a);
                let limit = if spill { cap(k) } else { quotas[k.index()] };
                if counts[k.index()] >= limit || out.contains(&a) {
                    continue;
                }
                if let Some(s) = &mut spread {
                    if fresh_only && !s.fresh(pool, &a) {
                        continue;
                    }
                    if !pool.is_protected(&a) && s.full(pool.group(&a)) {
                        continue;
                    }
                    s.take(pool, &a);
                }
                counts[k.index()] += 1;
                out.push(a);
            }
        }
    }
    out
}

/// How many candidates past the `slots` wanted [`diverse`] reads at most: the planner stays
/// `O(k + log n)`.
const DIVERSITY_WINDOW: usize = 64;

/// The best `slots` candidates, at most one per network group ([`Pool::group`]: /16, /32
/// for IPv6, or the AS when an AS map is set) among the groups our outbound connections and dials in flight do not hold
/// yet, while enough groups are known; past that, the best of the rest (a small or
/// single-group network still fills its slots). Trusted and protected points (peer-set
/// primaries) are exempt: they never take or need a group's place. Reads the candidate
/// index in rank order, at most `slots + DIVERSITY_WINDOW` entries. As Bitcoin Core's one
/// outbound connection per network group: an attacker with many addresses in one range
/// gets at most one of our dialed slots while others are known.
///
/// ```
/// use peerkeeper::maintenance::diverse;
/// use peerkeeper::{pool::{Pool, Source}, Config, Time};
/// let mut pool = Pool::new(&Config::default());
/// for i in 1..=5 {
///     pool.add_point(format!("203.0.113.{i}:9732").parse().unwrap(), Source::PeerSharing, Time::ZERO);
/// }
/// pool.add_point("198.51.100.1:9732".parse().unwrap(), Source::PeerSharing, Time::ZERO);
/// let picked = diverse(&pool, false, 2);
/// // One from each /16 first, whatever their rank.
/// assert!(picked.contains(&"198.51.100.1:9732".parse().unwrap()));
/// assert_eq!(diverse(&pool, false, 4).len(), 4); // then the best of the rest
/// ```
pub fn diverse(pool: &Pool, private: bool, slots: usize) -> Vec<SocketAddr> {
    spread_over_groups(pool, private, slots, false)
}

/// [`diverse`], with [`MAX_OUTBOUND_PER_GROUP`] applied when `capped` (a node in range).
fn spread_over_groups(pool: &Pool, private: bool, slots: usize, capped: bool) -> Vec<SocketAddr> {
    if slots == 0 {
        return Vec::new();
    }
    let cands = standing_first(pool, pool.candidates(private), slots + DIVERSITY_WINDOW);
    let mut spread = Spread::new(pool);
    spread.capped = capped;
    spread.pick(pool, cands.into_iter(), slots)
}

/// How many outbound connections the floor lacks ([`Config::outbound_floor`]): open
/// outbound connections and dials in flight counted.
pub fn outbound_need(pool: &Pool, config: &Config) -> usize {
    config
        .outbound_floor()
        .saturating_sub(pool.outbound_count() + pool.dialing_count())
}

/// The first `window` candidates of `cands` (in rank order), the points whose peer has a
/// positive feedback score ([`Pool::standing`]) moved before the otherwise-equal ones
/// (those of the same class: trusted, never failed, failed) and the points with a
/// negative score after them. Stable: with no standing at all, exactly the first
/// `window` candidates in their order.
fn standing_first(
    pool: &Pool,
    cands: impl Iterator<Item = SocketAddr>,
    window: usize,
) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = cands.take(window).collect();
    if pool.has_standings() {
        v.sort_by_key(|a| {
            let class = match pool.get(a) {
                Some(p) if p.is_trusted() => 0,
                Some(p) if p.failures == 0 => 1,
                _ => 2,
            };
            let standing = match pool.standing(a) {
                Some(true) => 0,
                None => 1,
                Some(false) => 2,
            };
            (class, standing)
        });
    }
    v
}

/// The inbound connection to close so that the outbound floor can be dialed at
/// `max_connections` ([`Config::outbound_floor`]): when the node has no outbound
/// connection (nor dial) at all and a candidate exists, one, chosen
/// by [`evict_inbound`](super::evict::evict_inbound) (never a protected one, never one
/// younger than `newcomer_grace`). Inbound connections never satisfy maintenance alone.
/// None with `make_room_interval = "none"` (the node never closes an inbound connection to
/// make room).
pub fn outbound_floor_evictions(pool: &Pool, config: &Config, now: Time) -> Vec<SocketAddr> {
    // Only for a node with no outbound connection at all (kept in range by inbound ones
    // alone): evicting for every missing slot of the floor made full networks churn (a
    // NAT-heavy simulated network, whose public nodes carry everyone, never settled).
    let need = if pool.outbound_count() + pool.dialing_count() == 0 {
        outbound_need(pool, config).min(1)
    } else {
        0
    };
    let busy = pool.active_count() + pool.dialing_count();
    // `make_room_interval = "none"`: no inbound connection is ever closed to make room.
    if need == 0 || busy < config.max_connections || config.make_room_interval.is_none() {
        return Vec::new();
    }
    let available = pool.candidates(config.private_mode).take(need).count();
    let n = need.min(available).min(busy + 1 - config.max_connections);
    let mut out = Vec::new();
    while out.len() < n {
        match super::evict::evict_inbound(pool, now, config.newcomer_grace, |a, _| !out.contains(a))
        {
            Some(a) => out.push(a),
            None => break,
        }
    }
    out
}

/// The network groups our dialed connections hold, and the rule of [`diverse`]: one new
/// group per pick while there are some, trusted and protected points exempt.
struct Spread {
    used: Vec<u64>,
    /// The groups of every connection and dial in flight when the plan began, both
    /// directions.
    seen: Vec<u64>,
    /// Whether [`MAX_OUTBOUND_PER_GROUP`] applies (a node in range, dialing for its
    /// floors).
    capped: bool,
}

/// With diverse dials, a node in range (which dials only for its floors, the outbound
/// floor among them) makes at most this many outbound connections (and dials) into one
/// group, while it is connected to another group as well: a node whose honest peers all
/// dialed it does not fill its outbound floor from one group (an attacker's, with many
/// addresses there; seen in the netns testnet). Bitcoin Core allows one; two leave room
/// for a small network whose nodes share a few groups. A network within one group (a
/// LAN, loopback, the simulator's address plan) is not capped, nor is a node short of
/// connections (it must reach its minimum first).
pub const MAX_OUTBOUND_PER_GROUP: usize = 2;

impl Spread {
    /// The groups of our outbound connections and dials in flight (not protected ones).
    fn new(pool: &Pool) -> Spread {
        let used = pool
            .connections()
            .filter(|(a, c)| c.direction == Direction::Outbound && !pool.is_protected(a))
            .map(|(a, _)| pool.group(&a))
            .chain(
                pool.dialing()
                    .filter(|a| !pool.is_protected(a))
                    .map(|a| pool.group(&a)),
            )
            .collect();
        let seen = pool
            .connections()
            .map(|(a, _)| pool.group(&a))
            .chain(pool.dialing().map(|a| pool.group(&a)))
            .collect();
        Spread {
            used,
            seen,
            capped: false,
        }
    }

    /// Whether group `g` is full of our outbound connections ([`MAX_OUTBOUND_PER_GROUP`]),
    /// another group being connected too.
    fn full(&self, g: u64) -> bool {
        self.capped
            && self.used.iter().filter(|u| **u == g).count() >= MAX_OUTBOUND_PER_GROUP
            && self.seen.iter().any(|s| *s != g)
    }

    /// Whether `a` may be taken in the first pass (a group we do not hold yet, or exempt).
    fn fresh(&self, pool: &Pool, a: &SocketAddr) -> bool {
        pool.is_protected(a) || !self.used.contains(&pool.group(a))
    }

    /// Records that `a` is taken.
    fn take(&mut self, pool: &Pool, a: &SocketAddr) {
        if !pool.is_protected(a) {
            self.used.push(pool.group(a));
        }
    }

    /// Up to `want` of `cands` (in rank order): new groups first, then the best of the
    /// rest; reads at most `want + DIVERSITY_WINDOW` of them.
    fn pick(
        &mut self,
        pool: &Pool,
        cands: impl Iterator<Item = SocketAddr>,
        want: usize,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(want);
        let mut rest = Vec::new();
        for a in cands.take(want + DIVERSITY_WINDOW) {
            if out.len() == want {
                break;
            }
            if self.fresh(pool, &a) {
                self.take(pool, &a);
                out.push(a);
            } else {
                rest.push(a);
            }
        }
        for a in rest {
            if out.len() == want {
                break;
            }
            if pool.is_protected(&a) || !self.full(pool.group(&a)) {
                self.take(pool, &a);
                out.push(a);
            }
        }
        out
    }
}

/// The kinds below their floor (open connections and dials in flight counted).
fn short_kinds(pool: &Pool, config: &Config) -> Vec<Source> {
    let targets = &config.targets;
    if targets.floor_sum() == 0 {
        return Vec::new();
    }
    let counts = pool.kind_counts();
    Source::ALL
        .into_iter()
        .filter(|k| counts[k.index()] < targets.get(*k).floor)
        .collect()
}

/// Whether a kind is below its floor ([`KindTargets`]), whether or not it has candidates:
/// while it is, discovery keeps asking and the node's sources keep being polled.
pub fn floors_unmet(pool: &Pool, config: &Config) -> bool {
    !short_kinds(pool, config).is_empty() || outbound_need(pool, config) > 0
}

/// Whether a kind is below its floor while one of its candidates could be dialed within
/// the outbound budget (what makes a cycle dial while the count is in range).
pub fn floors_short(pool: &Pool, config: &Config) -> bool {
    if outbound_need(pool, config) > 0
        && pool.active_count() + pool.dialing_count() < config.max_connections
        && pool.candidates(config.private_mode).next().is_some()
    {
        return true;
    }
    if config.outbound_budget() <= pool.outbound_count() + pool.dialing_count()
        || pool.active_count() + pool.dialing_count() >= config.bounds().max_target
    {
        return false;
    }
    has_floor_candidate(pool, config, &short_kinds(pool, config))
}

/// Whether a kind below its floor has a candidate, room or not.
pub fn floors_dialable(pool: &Pool, config: &Config) -> bool {
    (outbound_need(pool, config) > 0 && pool.candidates(config.private_mode).next().is_some())
        || has_floor_candidate(pool, config, &short_kinds(pool, config))
}

fn has_floor_candidate(pool: &Pool, config: &Config, short: &[Source]) -> bool {
    !short.is_empty()
        && pool
            .candidates(config.private_mode)
            .any(|a| short.contains(&pool.kind_of(&a)))
}

/// The connections to close so that a kind below its floor, with candidates, can be
/// dialed although the outbound budget is spent (or the count is at `max_target`): as
/// many as the floors lack (at most `max_concurrent_dials`), chosen by [`trim_for`] among
/// outbound connections (among all when only the total is at its bound) of kinds that are
/// not short, never a protected one, never a kind down below its floor; only for
/// candidates that have not failed since they last worked. Empty with the default
/// targets. A floor is kept, not only reached: a node whose outbound connections
/// all came from peer sharing before its ledger answered makes room for its ledger peers.
pub fn floor_evictions<R: Rng + ?Sized>(
    pool: &Pool,
    config: &Config,
    young_after: Time,
    rng: &mut R,
) -> Vec<SocketAddr> {
    let short = short_kinds(pool, config);
    if !has_floor_candidate(pool, config, &short) {
        return Vec::new();
    }
    let out_full = config.outbound_budget() <= pool.outbound_count() + pool.dialing_count();
    let total_full = pool.active_count() + pool.dialing_count() >= config.bounds().max_target;
    if !out_full && !total_full {
        return Vec::new();
    }
    let counts = pool.kind_counts();
    let lacking: usize = short
        .iter()
        .map(|k| config.targets.get(*k).floor - counts[k.index()])
        .sum();
    // Only as many as there are candidates of the short kinds that have not failed since
    // they last worked: a connection is not given up for a dial likely to fail (a
    // failing one is dialed when room comes by itself).
    let available = pool
        .candidates(config.private_mode)
        .filter(|a| {
            short.contains(&pool.kind_of(a)) && pool.get(a).is_some_and(|p| p.failures == 0)
        })
        .take(lacking)
        .count();
    if available == 0 {
        return Vec::new();
    }
    let n = lacking.min(available).min(config.max_concurrent_dials);
    trim_for(
        pool,
        config,
        n,
        young_after,
        |a, c| {
            (!out_full || c.direction == Direction::Outbound) && !short.contains(&pool.kind_of(a))
        },
        rng,
    )
}

/// Chooses `count` connections to close among those `eligible` accepts, by the targets
/// of `config`: with the default targets exactly [`trim_where`]; with per-kind targets,
/// inbound connections first, then outbound ones, each one at a time from the kind
/// furthest over its quota of `max_target` (a kind above its cap first; ties to the worse
/// kind), never taking a kind down below its floor, and within the kind by
/// [`trim_where`]'s rule. Never a protected connection.
pub fn trim_for<R: Rng + ?Sized>(
    pool: &Pool,
    config: &Config,
    count: usize,
    young_after: Time,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
    rng: &mut R,
) -> Vec<SocketAddr> {
    let targets: &KindTargets = &config.targets;
    // Outbound connections above the floor only.
    let outbound_cuttable = pool
        .connections()
        .filter(|(a, c)| c.direction == Direction::Outbound && !pool.is_protected(a))
        .count()
        .saturating_sub(config.outbound_floor());
    if targets.is_neutral() {
        return trim_protected(pool, count, young_after, outbound_cuttable, eligible, rng);
    }
    let quotas = targets.quotas(config.bounds().max_target);
    let mut counts = [0usize; 5];
    for (a, _) in pool.connections() {
        counts[pool.kind_of(&a).index()] += 1;
    }
    let mut out: Vec<SocketAddr> = Vec::with_capacity(count);
    // Inbound connections first, as in trim_where; then outbound ones.
    let mut outbound_cut = 0;
    for dir in [Direction::Inbound, Direction::Outbound] {
        let mut exhausted = [false; 5];
        while out.len() < count && (dir == Direction::Inbound || outbound_cut < outbound_cuttable) {
            let pick = Source::ALL
                .into_iter()
                .filter(|k| {
                    let i = k.index();
                    !exhausted[i] && counts[i] > targets.get(*k).floor
                })
                .max_by_key(|k| {
                    let i = k.index();
                    let over_cap = targets.get(*k).cap.is_some_and(|c| counts[i] > c);
                    (over_cap, counts[i] as i64 - quotas[i] as i64, k.rank())
                });
            let Some(k) = pick else { break };
            let victim = trim_where(
                pool,
                1,
                young_after,
                |a, c| {
                    c.direction == dir && eligible(a, c) && pool.kind_of(a) == k && !out.contains(a)
                },
                rng,
            );
            match victim.first() {
                Some(a) => {
                    out.push(*a);
                    counts[k.index()] -= 1;
                    outbound_cut += usize::from(dir == Direction::Outbound);
                }
                None => exhausted[k.index()] = true,
            }
        }
    }
    out
}

/// The trim of the node core (default targets): `count` connections among those
/// `eligible` accepts, never a protected one; first the inbound connections inbound
/// eviction would choose ([`eviction_order`](super::evict::eviction_order): after
/// protecting some by group, round-trip time, usefulness and age, the youngest of the
/// most represented group first), then outbound ones (at most `outbound_cuttable`: the
/// outbound floor is never cut), spread over groups as [`trim_where`] does, then the
/// inbound connections eviction protected, as [`trim_where`] orders them.
fn trim_protected<R: Rng + ?Sized>(
    pool: &Pool,
    count: usize,
    young_after: Time,
    outbound_cuttable: usize,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
    rng: &mut R,
) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = super::evict::eviction_order(pool, &eligible)
        .into_iter()
        .map(|(a, _)| a)
        .take(count)
        .collect();
    if out.len() < count {
        let goal = (count - out.len()).min(outbound_cuttable) + out.len();
        cut_spread(
            pool,
            goal,
            young_after,
            |a, c| c.direction == Direction::Outbound && eligible(a, c),
            rng,
            &mut out,
        );
    }
    if out.len() < count {
        let taken = out.clone();
        cut_spread(
            pool,
            count,
            young_after,
            |a, c| c.direction == Direction::Inbound && eligible(a, c) && !taken.contains(a),
            rng,
            &mut out,
        );
    }
    out
}

/// Chooses `count` connections to close: never a protected one (trusted, or marked with
/// [`Pool::protect`]); inbound ones first (an inbound connection is one an attacker can
/// choose for us, an outbound one we chose: inbound strangers never crowd out the peers
/// we dialed), outbound ones only when no inbound one is left. Within a direction, spread
/// over address groups (the most represented /16 loses one first, so one operator's
/// range cannot crowd out the rest); among inbound ones, those opened at or before
/// `young_after` first, then the younger ones from the oldest (a newcomer just admitted
/// keeps its chance); the rest by the seeded RNG. Fewer than `count` if there are not
/// enough unprotected connections.
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
    let mut out = Vec::with_capacity(count);
    for dir in [Direction::Inbound, Direction::Outbound] {
        if out.len() >= count {
            break;
        }
        cut_spread(
            pool,
            count,
            young_after,
            |a, c| c.direction == dir && eligible(a, c),
            rng,
            &mut out,
        );
    }
    out
}

/// Cuts from the most represented address group until `out` holds `count` connections.
fn cut_spread<R: Rng + ?Sized>(
    pool: &Pool,
    count: usize,
    young_after: Time,
    eligible: impl Fn(&SocketAddr, &Connection) -> bool,
    rng: &mut R,
    out: &mut Vec<SocketAddr>,
) {
    // Per group: [outbound, young inbound, old inbound]; cut from the end.
    let mut groups: BTreeMap<u64, [Vec<SocketAddr>; 3]> = BTreeMap::new();
    for (addr, conn) in pool.connections() {
        if pool.is_protected(&addr) || !eligible(&addr, conn) {
            continue;
        }
        let g = groups.entry(pool.group(&addr)).or_default();
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
}
