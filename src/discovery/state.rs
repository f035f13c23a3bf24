//! The pure discovery state: when to ask for points, and whom.

use crate::config::{Config, DiscoveryConfig};
use crate::pool::{jittered, Pool};
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Discovery counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Rounds run.
    pub rounds: u64,
    /// Requests for points decided (by rounds and at new connections).
    pub requests: u64,
}

/// The pure discovery state. See the [module docs](crate::discovery).
///
/// ```
/// use peerkeeper::{discovery::DiscoveryState, pool::{ConnId, Direction, Pool, PeerId}, Config, Time};
/// use rand::{rngs::StdRng, SeedableRng};
/// let config = Config::default();
/// let mut pool = Pool::new(&config);
/// let peer = "8.8.8.8:9732".parse().unwrap();
/// pool.connection_opened(ConnId(1), peer, PeerId::from_u64(1), Direction::Outbound, Time::ZERO).unwrap();
/// let mut d = DiscoveryState::new(&config);
/// d.set_wanted(true, Time::ZERO);
/// let ask = d.poll_round(&pool, Time::ZERO, &mut StdRng::seed_from_u64(1));
/// assert_eq!(ask, Some(vec![peer]));
/// assert!(d.next_deadline().unwrap() > Time::ZERO); // backed off until the next round
/// ```
#[derive(Clone, Debug)]
pub struct DiscoveryState {
    config: DiscoveryConfig,
    base: Duration,
    private_mode: bool,
    wanted: bool,
    fruitless: u32,
    next_round: Option<Time>,
    last_asked: BTreeMap<SocketAddr, Time>,
    stats: DiscoveryStats,
}

impl DiscoveryState {
    /// A discovery state for `config`.
    pub fn new(config: &Config) -> DiscoveryState {
        DiscoveryState {
            config: config.discovery.clone(),
            base: config.time_between_looking_for_peers,
            private_mode: config.private_mode,
            wanted: false,
            fruitless: 0,
            next_round: None,
            last_asked: BTreeMap::new(),
            stats: DiscoveryStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DiscoveryStats {
        self.stats
    }

    /// Whether points are wanted.
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// Maintenance wants points (a round is due at once) or no longer does (rounds stop,
    /// the backoff resets). Never wanted in private mode.
    pub fn set_wanted(&mut self, wanted: bool, now: Time) {
        let wanted = wanted && !self.private_mode;
        if wanted && !self.wanted {
            self.next_round = Some(now);
        }
        if !wanted {
            self.next_round = None;
            self.fruitless = 0;
        }
        self.wanted = wanted;
    }

    /// When the next round is due.
    pub fn next_deadline(&self) -> Option<Time> {
        self.next_round
    }

    /// The wait before the round after `fruitless` rounds that brought nothing new.
    fn round_delay<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let exp = self.fruitless.saturating_sub(1).min(20);
        let d = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.config.max_time_between_rounds);
        jittered(d, 0.2, rng).min(self.config.max_time_between_rounds)
    }

    /// If a round is due at `now`, returns the connected peers to ask (up to `fanout`, none
    /// asked within `peer_ask_interval`, chosen by the seeded RNG) and schedules the next
    /// round on the backoff; `None` when no round is due. A round with no peer to ask
    /// still counts (the node's own point sources are polled in it).
    pub fn poll_round<R: Rng + ?Sized>(
        &mut self,
        pool: &Pool,
        now: Time,
        rng: &mut R,
    ) -> Option<Vec<SocketAddr>> {
        if !self.wanted || self.next_round.is_none_or(|t| t > now) {
            return None;
        }
        // Forget peers no longer connected: the table stays bounded by the connections.
        self.last_asked
            .retain(|addr, _| pool.connection(addr).is_some());
        let mut eligible = self.askable(pool, now);
        eligible.shuffle(rng);
        eligible.truncate(self.config.fanout);
        eligible.sort_unstable();
        self.mark_asked(&eligible, now);
        self.stats.rounds += 1;
        self.fruitless = self.fruitless.saturating_add(1);
        let delay = self.round_delay(rng);
        self.next_round = Some(now + delay);
        tracing::debug!(asked = eligible.len(), next_in = ?delay, "discovery round");
        Some(eligible)
    }

    /// Connected peers not asked within `peer_ask_interval`, in point order.
    fn askable(&self, pool: &Pool, now: Time) -> Vec<SocketAddr> {
        let interval = self.config.peer_ask_interval;
        pool.connections()
            .map(|(a, _)| a)
            .filter(|a| {
                self.last_asked
                    .get(a)
                    .is_none_or(|t| now.saturating_since(*t) >= interval)
            })
            .collect()
    }

    fn mark_asked(&mut self, peers: &[SocketAddr], now: Time) {
        for a in peers {
            self.last_asked.insert(*a, now);
        }
        self.stats.requests += peers.len() as u64;
    }

    /// While points are wanted, the connected peers not asked within `peer_ask_interval`
    /// (up to `fanout`), to ask at once: a new connection is the best chance to learn
    /// points (a peer that trims us right after may be gone at the next round). Not a
    /// round: the backoff is untouched.
    pub fn poll_new_connections(&mut self, pool: &Pool, now: Time) -> Vec<SocketAddr> {
        if !self.wanted {
            return Vec::new();
        }
        let mut ask = self.askable(pool, now);
        ask.truncate(self.config.fanout);
        self.mark_asked(&ask, now);
        ask
    }

    /// `new` points new to the pool arrived at `now`: while points are wanted, the
    /// backoff resets and the next round comes within `time_between_looking_for_peers`.
    pub fn points_learned(&mut self, new: usize, now: Time) {
        if new > 0 && self.wanted {
            self.fruitless = 0;
            let soon = now + self.base;
            self.next_round = Some(self.next_round.map_or(soon, |t| t.min(soon)));
        }
    }
}
