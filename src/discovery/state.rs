//! The pure discovery state: whom to ask, when, what to answer, what to accept.

use crate::config::{Config, DiscoveryConfig};
use crate::pool::{jittered, Added, Pool, Source};
use crate::Time;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Why a received point was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PointRejected {
    /// Port 0 cannot be dialed.
    #[error("port 0")]
    PortZero,
    /// Unspecified (0.0.0.0, ::), multicast, broadcast or documentation address.
    #[error("not a unicast address")]
    NotUnicast,
    /// Loopback, private, link-local or unique-local address, not allowed by the config.
    #[error("private or loopback address")]
    Private,
    /// One of our own addresses.
    #[error("our own address")]
    Myself,
}

/// A peer-sharing message carried more points than allowed: a protocol violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("message carries {got} points, more than the {max} allowed")]
pub struct TooManyPoints {
    /// Points in the message.
    pub got: usize,
    /// The cap.
    pub max: usize,
}

/// Checks that `addr` is worth dialing: a unicast address with a port; loopback and
/// private ranges only when `allow_private`.
///
/// ```
/// use peerkeeper::discovery::{validate_point, PointRejected};
/// assert!(validate_point(&"203.0.113.7:1".parse().unwrap(), false).is_err()); // documentation range
/// assert!(validate_point(&"8.8.8.8:9732".parse().unwrap(), false).is_ok());
/// assert_eq!(validate_point(&"127.0.0.1:9732".parse().unwrap(), false), Err(PointRejected::Private));
/// assert!(validate_point(&"127.0.0.1:9732".parse().unwrap(), true).is_ok());
/// assert_eq!(validate_point(&"8.8.8.8:0".parse().unwrap(), true), Err(PointRejected::PortZero));
/// ```
pub fn validate_point(addr: &SocketAddr, allow_private: bool) -> Result<(), PointRejected> {
    if addr.port() == 0 {
        return Err(PointRejected::PortZero);
    }
    let ip = match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let documentation = matches!(o, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
            if v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || documentation
                || o[0] == 0
                || o[0] >= 240
            {
                return Err(PointRejected::NotUnicast);
            }
            let shared_cgnat = o[0] == 100 && (64..128).contains(&o[1]);
            if (v4.is_loopback() || v4.is_private() || v4.is_link_local() || shared_cgnat)
                && !allow_private
            {
                return Err(PointRejected::Private);
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_unspecified() || v6.is_multicast() || s[0] == 0x2001 && s[1] == 0x0db8 {
                return Err(PointRejected::NotUnicast);
            }
            let unique_local = (s[0] & 0xfe00) == 0xfc00;
            let link_local = (s[0] & 0xffc0) == 0xfe80;
            if (v6.is_loopback() || unique_local || link_local) && !allow_private {
                return Err(PointRejected::Private);
            }
        }
    }
    Ok(())
}

/// Discovery counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveryStats {
    /// Rounds run.
    pub rounds: u64,
    /// Requests sent.
    pub requests: u64,
    /// Points received in answers.
    pub points_received: u64,
    /// Points new to the pool.
    pub points_new: u64,
    /// Points dropped by validation.
    pub points_rejected: u64,
    /// Messages refused for carrying too many points.
    pub oversized_messages: u64,
    /// Requests answered.
    pub answers: u64,
}

/// The pure discovery state. See the [module docs](crate::discovery).
///
/// ```
/// use peerkeeper::{discovery::DiscoveryState, pool::{Direction, Pool, PeerId}, Config, Time};
/// use rand::{rngs::StdRng, SeedableRng};
/// let config = Config::default();
/// let mut pool = Pool::new(&config);
/// let peer = "8.8.8.8:9732".parse().unwrap();
/// pool.connection_opened(peer, PeerId(1), Direction::Outbound, Time::ZERO).unwrap();
/// let mut d = DiscoveryState::new(&config, vec![]);
/// d.set_wanted(true, Time::ZERO);
/// let ask = d.poll_round(&pool, Time::ZERO, &mut StdRng::seed_from_u64(1));
/// assert_eq!(ask, vec![peer]);
/// assert!(d.next_deadline().unwrap() > Time::ZERO); // backed off until the next round
/// ```
#[derive(Clone, Debug)]
pub struct DiscoveryState {
    config: DiscoveryConfig,
    base: Duration,
    private_mode: bool,
    me: Vec<SocketAddr>,
    wanted: bool,
    fruitless: u32,
    next_round: Option<Time>,
    last_asked: BTreeMap<SocketAddr, Time>,
    stats: DiscoveryStats,
}

impl DiscoveryState {
    /// A discovery state for `config`; `me` are our own listening points (never accepted).
    pub fn new(config: &Config, me: Vec<SocketAddr>) -> DiscoveryState {
        DiscoveryState {
            config: config.discovery.clone(),
            base: config.time_between_looking_for_peers,
            private_mode: config.private_mode,
            me,
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

    /// How long an answer (or a point source) is awaited.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// Whether points are wanted.
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// Adds one of our own points (learned after binding, for instance).
    pub fn add_myself(&mut self, addr: SocketAddr) {
        if !self.me.contains(&addr) {
            self.me.push(addr);
        }
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
        let exp = self.fruitless.saturating_sub(1).min(30);
        let d = self
            .base
            .saturating_mul(1u32 << exp.min(20))
            .min(self.config.max_time_between_rounds);
        jittered(d, 0.2, rng).min(self.config.max_time_between_rounds)
    }

    /// If a round is due at `now`, returns the connected peers to ask (up to `fanout`, none
    /// asked within `peer_ask_interval`, chosen by the seeded RNG) and schedules the next
    /// round on the backoff. Returns nothing otherwise.
    pub fn poll_round<R: Rng + ?Sized>(
        &mut self,
        pool: &Pool,
        now: Time,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        if !self.wanted || self.next_round.is_none_or(|t| t > now) {
            return Vec::new();
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
        eligible
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

    /// Points received (from a peer's answer or advertisement, or a [`PointSource`]).
    /// A message over the cap is refused whole (the caller greylists the sender); valid
    /// points enter the pool with `source`; new points reset the backoff. Returns how many
    /// were new.
    ///
    /// [`PointSource`]: crate::discovery::PointSource
    pub fn on_points(
        &mut self,
        points: &[SocketAddr],
        source: Source,
        pool: &mut Pool,
        now: Time,
    ) -> Result<usize, TooManyPoints> {
        let max = self.config.max_points_per_message;
        if points.len() > max {
            self.stats.oversized_messages += 1;
            return Err(TooManyPoints {
                got: points.len(),
                max,
            });
        }
        self.stats.points_received += points.len() as u64;
        let mut new = 0;
        for p in points {
            let ok = if self.me.contains(p) {
                Err(PointRejected::Myself)
            } else {
                validate_point(p, self.config.allow_private_addresses)
            };
            match ok {
                Ok(()) => {
                    if pool.add_point(*p, source, now) == Added::New {
                        new += 1;
                    }
                }
                Err(_) => self.stats.points_rejected += 1,
            }
        }
        self.stats.points_new += new as u64;
        if new > 0 && self.wanted {
            self.fruitless = 0;
            let soon = now + self.base;
            self.next_round = Some(self.next_round.map_or(soon, |t| t.min(soon)));
        }
        Ok(new)
    }

    /// What to answer a peer that asks for points: a random sample of good points (known to
    /// work), never the requester, never in private mode, only addresses that pass
    /// [`validate_point`].
    pub fn answer<R: Rng + ?Sized>(
        &mut self,
        pool: &Pool,
        requester: SocketAddr,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        if self.private_mode {
            return Vec::new();
        }
        self.stats.answers += 1;
        let allow = self.config.allow_private_addresses;
        let mut sample = pool.sample_good(self.config.answer_size, Some(requester), rng);
        sample.retain(|p| validate_point(p, allow).is_ok());
        sample
    }
}
