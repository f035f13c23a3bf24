//! The handshake budget: which accepted sockets may handshake, and which go first.
//!
//! Every byte before a handshake is proven is an attacker's, and so is every socket: a
//! host that opens sockets and says nothing must not hold the handshake slots that honest
//! dialers need. The gate decides, as a pure function of its state and an explicit `now`
//! (the accept loop and the handshake tasks only carry out its answers):
//!
//! * **A global budget sized by cost.** `max_incoming_connections` handshakes at once
//!   (default 256: each costs a task, a socket and at most one 8 KiB handshake frame,
//!   about 20 KiB with the kernel's buffers idle, so 256 cost about 5 MiB).
//! * **Per source.** At most [`PER_IP`] pending handshakes per address and
//!   [`PER_SUBNET`] per /24 (IPv4) or /64 (IPv6). Loopback is exempt (every local process
//!   shares it), like every other per-address defence.
//! * **The oldest idle go first.** When a scope is full, a newcomer evicts the oldest
//!   handshake of that scope whose hello has not arrived; only if every pending one has
//!   spoken is the newcomer dropped. A silent socket thus holds a slot only until the
//!   budget's worth of newer sockets arrived after it, while an honest socket, whose hello
//!   follows its connect within a round trip, is idle for that round trip only: it is
//!   never the oldest idle one while a flood's older sockets wait.
//! * **Shorter under pressure.** Past half the budget, a new handshake must show its
//!   hello within [`PRESSURE_HELLO_TIMEOUT`] instead of the whole `handshake_timeout`.
//! * **Failures cost.** A handshake that fails (silent, garbage, a bad signature,
//!   evicted) takes a token from its address's bucket ([`FAILURE_BURST`] tokens, one back
//!   every [`FAILURE_REFILL`]: commonware's one handshake per address per 5 s, charged
//!   only to failures). An address with no token left has its sockets closed at once. An
//!   honest handshake costs nothing, however many.
//!
//! Tables are bounded: the pending set by the budget, the buckets by [`MAX_BUCKETS`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pending handshakes per source address (not loopback).
pub const PER_IP: usize = 8;
/// Pending handshakes per /24 (IPv4) or /64 (IPv6) (not loopback).
pub const PER_SUBNET: usize = 32;
/// Past half the budget, the hello must arrive within this (or `handshake_timeout`, if
/// shorter).
pub const PRESSURE_HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// Failed handshakes an address may have before its sockets are closed at once.
pub const FAILURE_BURST: f64 = 8.0;
/// One failure token back per this long.
pub const FAILURE_REFILL: Duration = Duration::from_secs(5);
/// Most addresses with a failure bucket (full buckets are forgotten first).
pub const MAX_BUCKETS: usize = 4096;

/// Why a socket was closed before its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drop {
    /// Its address failed too many handshakes lately.
    Throttled,
    /// Its address or subnet has too many handshakes pending, all of them past their
    /// hello.
    Busy,
    /// The budget is spent, every pending handshake past its hello.
    Full,
}

/// How a handshake ended, for the bucket of its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It reached a decision (admitted, refused with a reason): free.
    Done,
    /// Silent, garbage, unproven: costs a token.
    Failed,
}

/// A pending handshake's permission: its id, its cancel token (cancelled when it is
/// evicted), and how long its hello may take.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub id: u64,
    pub evicted: CancellationToken,
    pub hello_timeout: Duration,
}

/// Counters of the gate, shown in the node's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HandshakeStats {
    /// Handshakes pending now.
    pub pending: usize,
    /// Idle handshakes evicted to make room for a newcomer.
    pub evicted: u64,
    /// Sockets closed at once because their address failed too many handshakes.
    pub throttled: u64,
    /// Sockets closed at once because their address or subnet had too many pending.
    pub busy: u64,
    /// Sockets closed at once because the budget was spent.
    pub full: u64,
    /// Handshakes that failed (silent, garbage, unproven, evicted).
    pub failed: u64,
    /// Hellos refused for another network (told why; no penalty).
    pub refused_network: u64,
    /// Hellos refused for another protocol version (told why; no penalty).
    pub refused_version: u64,
    /// Hellos refused because they did not dial one of our addresses (a relay).
    pub refused_address: u64,
}

/// Why a hello was refused before the core heard of it ([`Gate::refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Network,
    Version,
    Address,
}

struct Pending {
    ip: IpAddr,
    hello: bool,
    evicted: CancellationToken,
}

/// The gate. See the [module docs](self).
pub(crate) struct Gate {
    cap: usize,
    handshake_timeout: Duration,
    next: u64,
    /// By id: ids grow with time, so the first idle one is the oldest.
    pending: BTreeMap<u64, Pending>,
    per_ip: HashMap<IpAddr, usize>,
    per_subnet: HashMap<IpAddr, usize>,
    /// Tokens and when they were last counted.
    buckets: HashMap<IpAddr, (f64, Instant)>,
    stats: HandshakeStats,
}

/// The key of an address's subnet: its /24 (IPv4) or /64 (IPv6).
fn subnet(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Gate {
    /// A gate for `cap` pending handshakes of at most `handshake_timeout`.
    pub fn new(cap: usize, handshake_timeout: Duration) -> Gate {
        Gate {
            cap: cap.max(1),
            handshake_timeout,
            next: 0,
            pending: BTreeMap::new(),
            per_ip: HashMap::new(),
            per_subnet: HashMap::new(),
            buckets: HashMap::new(),
            stats: HandshakeStats::default(),
        }
    }

    /// The counters, with the pending count.
    pub fn stats(&self) -> HandshakeStats {
        HandshakeStats {
            pending: self.pending.len(),
            ..self.stats
        }
    }

    fn tokens(&mut self, ip: IpAddr, now: Instant) -> f64 {
        match self.buckets.get_mut(&ip) {
            None => FAILURE_BURST,
            Some((tokens, at)) => {
                let refill =
                    now.saturating_duration_since(*at).as_secs_f64() / FAILURE_REFILL.as_secs_f64();
                *tokens = (*tokens + refill).min(FAILURE_BURST);
                *at = now;
                *tokens
            }
        }
    }

    /// May a socket from `ip` handshake? A ticket, or why not. May evict an idle
    /// handshake (its token is cancelled).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<Ticket, Drop> {
        let ip = canonical(ip);
        let local = ip.is_loopback();
        if !local && self.tokens(ip, now) < 1.0 {
            self.stats.throttled += 1;
            return Err(Drop::Throttled);
        }
        let net = subnet(ip);
        if !local {
            if self.per_ip.get(&ip).copied().unwrap_or(0) >= PER_IP
                && !self.evict(now, |p| p.ip == ip)
            {
                self.stats.busy += 1;
                return Err(Drop::Busy);
            }
            if self.per_subnet.get(&net).copied().unwrap_or(0) >= PER_SUBNET
                && !self.evict(now, |p| subnet(p.ip) == net)
            {
                self.stats.busy += 1;
                return Err(Drop::Busy);
            }
        }
        if self.pending.len() >= self.cap && !self.evict(now, |_| true) {
            self.stats.full += 1;
            return Err(Drop::Full);
        }
        let hello_timeout = if self.pending.len() >= self.cap / 2 {
            self.handshake_timeout.min(PRESSURE_HELLO_TIMEOUT)
        } else {
            self.handshake_timeout
        };
        self.next += 1;
        let id = self.next;
        let evicted = CancellationToken::new();
        self.pending.insert(
            id,
            Pending {
                ip,
                hello: false,
                evicted: evicted.clone(),
            },
        );
        if !local {
            *self.per_ip.entry(ip).or_default() += 1;
            *self.per_subnet.entry(net).or_default() += 1;
        }
        Ok(Ticket {
            id,
            evicted,
            hello_timeout,
        })
    }

    /// Evicts the oldest pending handshake matching `scope` that is still waiting for its
    /// hello: `false` if there is none.
    fn evict(&mut self, now: Instant, scope: impl Fn(&Pending) -> bool) -> bool {
        let victim = self
            .pending
            .iter()
            .find(|(_, p)| !p.hello && scope(p))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.stats.evicted += 1;
                if let Some(p) = self.pending.get(&id) {
                    p.evicted.cancel();
                }
                self.end(id, Outcome::Failed, now);
                true
            }
            None => false,
        }
    }

    /// Counts a hello refused for `why` (a refusal with its reason, not a failure).
    pub fn refused(&mut self, why: Refusal) {
        let n = match why {
            Refusal::Network => &mut self.stats.refused_network,
            Refusal::Version => &mut self.stats.refused_version,
            Refusal::Address => &mut self.stats.refused_address,
        };
        *n += 1;
    }

    /// The hello of handshake `id` arrived: it is no longer idle.
    pub fn hello(&mut self, id: u64) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.hello = true;
        }
    }

    /// Handshake `id` ended (a second end, after an eviction, is ignored).
    pub fn end(&mut self, id: u64, outcome: Outcome, now: Instant) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if !p.ip.is_loopback() {
            for (map, key) in [
                (&mut self.per_ip, p.ip),
                (&mut self.per_subnet, subnet(p.ip)),
            ] {
                if let Some(n) = map.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(&key);
                    }
                }
            }
        }
        if outcome == Outcome::Failed {
            self.stats.failed += 1;
            if !p.ip.is_loopback() {
                let tokens = self.tokens(p.ip, now);
                if !self.buckets.contains_key(&p.ip) && self.buckets.len() >= MAX_BUCKETS {
                    self.forget_buckets(now);
                }
                self.buckets.insert(p.ip, ((tokens - 1.0).max(0.0), now));
            }
        }
    }

    /// Makes room in the bucket table: drops the buckets that refilled, then, if none
    /// did, the fullest.
    fn forget_buckets(&mut self, now: Instant) {
        let full = |(t, at): &(f64, Instant)| {
            t + now.saturating_duration_since(*at).as_secs_f64() / FAILURE_REFILL.as_secs_f64()
                >= FAILURE_BURST
        };
        self.buckets.retain(|_, b| !full(b));
        if self.buckets.len() >= MAX_BUCKETS {
            if let Some(ip) = self
                .buckets
                .iter()
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(b.0)))
                .map(|(ip, _)| *ip)
            {
                self.buckets.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn idle_sockets_of_one_host_cannot_keep_a_newcomer_out() {
        let t0 = Instant::now();
        let mut g = Gate::new(256, Duration::from_secs(5));
        // A flood host fills its share with silent sockets.
        let mut flood = Vec::new();
        for _ in 0..PER_IP {
            flood.push(g.admit(ip("203.0.113.9"), t0).unwrap());
        }
        // Its next socket evicts its own oldest idle one.
        let t1 = t0 + Duration::from_millis(1);
        let newer = g.admit(ip("203.0.113.9"), t1).unwrap();
        assert!(flood[0].evicted.is_cancelled());
        assert!(!newer.evicted.is_cancelled());
        // An honest dialer elsewhere is untouched.
        let honest = g.admit(ip("198.51.100.1"), t1).unwrap();
        g.hello(honest.id);
        g.end(honest.id, Outcome::Done, t1);
        assert_eq!(g.stats().pending, PER_IP);
    }

    #[test]
    fn failures_throttle_an_address_and_time_forgives_it() {
        let t0 = Instant::now();
        let mut g = Gate::new(256, Duration::from_secs(5));
        let bad = ip("203.0.113.9");
        for _ in 0..FAILURE_BURST as usize {
            let t = g.admit(bad, t0).unwrap();
            g.end(t.id, Outcome::Failed, t0);
        }
        assert_eq!(g.admit(bad, t0).unwrap_err(), Drop::Throttled);
        // Honest handshakes cost nothing, however many.
        let good = ip("198.51.100.1");
        for _ in 0..100 {
            let t = g.admit(good, t0).unwrap();
            g.end(t.id, Outcome::Done, t0);
        }
        assert!(g.admit(good, t0).is_ok());
        // One token back per FAILURE_REFILL.
        assert!(g.admit(bad, t0 + FAILURE_REFILL).is_ok());
    }

    #[test]
    fn a_full_budget_evicts_the_oldest_idle_and_keeps_those_that_spoke() {
        let t0 = Instant::now();
        let mut g = Gate::new(4, Duration::from_secs(5));
        let a = g.admit(ip("127.0.0.1"), t0).unwrap();
        let b = g.admit(ip("127.0.0.1"), t0).unwrap();
        assert_eq!(b.hello_timeout, Duration::from_secs(5));
        let c = g.admit(ip("127.0.0.1"), t0).unwrap();
        // Past half the budget, the hello must come sooner.
        assert_eq!(c.hello_timeout, PRESSURE_HELLO_TIMEOUT);
        let d = g.admit(ip("127.0.0.1"), t0).unwrap();
        g.hello(a.id);
        let e = g.admit(ip("127.0.0.1"), t0).unwrap();
        assert!(!a.evicted.is_cancelled(), "it spoke: not idle");
        assert!(b.evicted.is_cancelled(), "the oldest idle goes first");
        assert!(!c.evicted.is_cancelled() && !d.evicted.is_cancelled());
        // An evicted handshake that ends later is not counted twice.
        g.end(b.id, Outcome::Failed, t0);
        assert_eq!(g.stats().pending, 4);
        assert_eq!(g.stats().failed, 1);
        // Only when every pending one has spoken is a newcomer dropped.
        for t in [&c, &d, &e] {
            g.hello(t.id);
        }
        assert_eq!(g.admit(ip("127.0.0.1"), t0).unwrap_err(), Drop::Full);
    }

    #[test]
    fn a_subnet_shares_a_cap_and_ipv6_counts_by_slash_64() {
        let t0 = Instant::now();
        let mut g = Gate::new(1024, Duration::from_secs(5));
        for i in 0..PER_SUBNET {
            let a = ip(&format!("2001:db8:0:7::{:x}", i + 1));
            assert!(g.admit(a, t0).is_ok());
        }
        // The subnet's next socket evicts the subnet's oldest idle one, not another's.
        let other = g.admit(ip("2001:db8:0:8::1"), t0).unwrap();
        assert!(g.admit(ip("2001:db8:0:7::ffff"), t0).is_ok());
        assert!(!other.evicted.is_cancelled());
        assert_eq!(g.stats().evicted, 1);
    }
}
