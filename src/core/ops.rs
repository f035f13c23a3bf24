//! The operator's operations on the core (issue 18's control interface): ban a point or
//! an IP address for a time of the operator's choosing and lift a ban, trust a point
//! (with the key it must prove, if given), and the listings an operator reads
//! (connections with their score and round-trip time, points by state).
//!
//! They are inputs like any other: pure functions of the core's state and `now`, whose
//! effects are actions and events drained as usual. The ones that change anything are
//! also [`Input`](super::Input) variants ([`Input::Ban`](super::Input::Ban),
//! [`Input::Unban`](super::Input::Unban), [`Input::Trust`](super::Input::Trust)), so a
//! trace records them and `peerkeeper replay` shows them; protecting a point and adding
//! one were inputs already ([`Input::SetProtected`](super::Input::SetProtected),
//! [`Input::AddPoints`](super::Input::AddPoints)). The listings change nothing.

use super::{canonical, Event, NodeCore};
use crate::pool::{CloseReason, Direction, PeerId, PointState, Source};
use crate::Time;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The longest ban an operator can give (longer ones are cut to it): ten years.
pub const MAX_BAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What an operator bans: one point, or every connection from an IP address (for IPv6,
/// its /64).
///
/// ```
/// use peerkeeper::core::BanTarget;
/// assert_eq!("192.0.2.7:9732".parse::<BanTarget>().unwrap(),
///            BanTarget::Point("192.0.2.7:9732".parse().unwrap()));
/// assert_eq!("192.0.2.7".parse::<BanTarget>().unwrap(),
///            BanTarget::Ip("192.0.2.7".parse().unwrap()));
/// assert!("nonsense".parse::<BanTarget>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanTarget {
    /// A point (`IP:PORT`): the point, and its IP address unless loopback (every local
    /// process shares it).
    Point(SocketAddr),
    /// An IP address: every point there, loopback included (the operator said so).
    Ip(IpAddr),
}

/// A string that is neither `IP:PORT` nor `IP`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither IP:PORT nor an IP address")]
pub struct BadBanTarget(pub String);

impl std::str::FromStr for BanTarget {
    type Err = BadBanTarget;

    fn from_str(s: &str) -> Result<BanTarget, BadBanTarget> {
        if let Ok(p) = s.parse::<SocketAddr>() {
            return Ok(BanTarget::Point(p));
        }
        s.parse::<IpAddr>()
            .map(BanTarget::Ip)
            .map_err(|_| BadBanTarget(s.chars().take(64).collect()))
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Point(p) => write!(f, "{p}"),
            BanTarget::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// An open connection, as an operator reads it ([`NodeCore::connections_at`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConnectionView {
    /// The peer's proven id.
    pub peer: PeerId,
    /// Its point (for an inbound peer: its address and the port it listens on).
    pub point: SocketAddr,
    /// Who dialed.
    pub direction: Direction,
    /// The kind of its point (its best source).
    pub kind: Source,
    /// When it opened, on the core's clock.
    pub since: Time,
    /// How long it has been open.
    pub connected_for: Duration,
    /// The peer's feedback score, if it has one (`[-100, 100]`).
    pub score: Option<f64>,
    /// The smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// Protected by the operator or a peer set: never trimmed.
    pub protected: bool,
}

/// The state of a point as an operator filters it ([`NodeCore::points_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PointFilter {
    /// Connected.
    Connected,
    /// A dial in flight.
    Dialing,
    /// Dialable now.
    Dialable,
    /// Waiting: backed off after failures, or just disconnected.
    Waiting,
    /// Banned (greylisted: a violation, a low score, or the operator), or on a banned IP.
    Banned,
}

impl PointFilter {
    /// Every state.
    pub const ALL: [PointFilter; 5] = [
        PointFilter::Connected,
        PointFilter::Dialing,
        PointFilter::Dialable,
        PointFilter::Waiting,
        PointFilter::Banned,
    ];

    /// Its name (lower case, as the control interface spells it).
    pub fn name(self) -> &'static str {
        match self {
            PointFilter::Connected => "connected",
            PointFilter::Dialing => "dialing",
            PointFilter::Dialable => "dialable",
            PointFilter::Waiting => "waiting",
            PointFilter::Banned => "banned",
        }
    }
}

impl std::str::FromStr for PointFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<PointFilter, String> {
        PointFilter::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = PointFilter::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "{:?}: the states are {}",
                    s.chars().take(32).collect::<String>(),
                    names.join(", ")
                )
            })
    }
}

/// A known point, as an operator reads it ([`NodeCore::points_at`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PointView {
    /// The point.
    pub point: SocketAddr,
    /// Its state now.
    pub state: PointFilter,
    /// Its kind (best source).
    pub kind: Source,
    /// Failed dials in a row.
    pub failures: u32,
    /// Until when it waits or is banned (banned: the later of the point's and its IP's
    /// ban), if it does.
    pub until: Option<Time>,
    /// The peer id it must prove (`KEY@`), if configured.
    pub expected: Option<PeerId>,
}

impl NodeCore {
    /// Bans `target` from `now` for `duration` (default `greylist_duration`; at most
    /// [`MAX_BAN`]): a point's connection is closed (as a violation) and the point is
    /// neither dialed nor admitted until then, nor is its IP address unless loopback; an
    /// IP address's connections are all closed and no point there is dialed or admitted.
    /// The ban is saved with the pool. Counted as a ban and told as [`Event::Banned`];
    /// not as a violation. Returns when it ends.
    ///
    /// ```
    /// use peerkeeper::core::{BanTarget, NodeCore};
    /// use peerkeeper::{pool::Source, Config, PeerId, Time};
    /// use std::time::Duration;
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// let p = "192.0.2.7:9732".parse().unwrap();
    /// core.add_points(&[p], Source::Bootstrap, Time::ZERO);
    /// let until = core.ban(BanTarget::Point(p), Some(Duration::from_secs(60)), Time::ZERO);
    /// assert_eq!(until, Time::from_millis(60_000));
    /// assert!(core.pool().is_ip_greylisted(p.ip(), Time::from_millis(59_000)));
    /// assert!(core.unban(BanTarget::Point(p), Time::from_millis(1_000)));
    /// assert!(!core.pool().is_ip_greylisted(p.ip(), Time::from_millis(1_000)));
    /// ```
    pub fn ban(&mut self, target: BanTarget, duration: Option<Duration>, now: Time) -> Time {
        self.tick(now);
        let until = now
            + duration
                .unwrap_or(self.config.greylist_duration)
                .min(MAX_BAN);
        if self.stopped {
            return until;
        }
        let (point, ip) = match target {
            BanTarget::Point(p) => {
                let p = canonical(p);
                (Some(p), p.ip())
            }
            BanTarget::Ip(ip) => (None, super::canonical_ip(ip)),
        };
        self.stats.bans += 1;
        self.emit(|| Event::Banned {
            at: now,
            point,
            ip,
            whole_ip: point.is_none(),
            until,
        });
        let closing: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, m)| match point {
                Some(p) => m.point == p,
                None => crate::pool::same_ban_key(m.point.ip(), ip),
            })
            .map(|(c, _)| *c)
            .collect();
        for conn in closing {
            self.stats.closed.violation += 1;
            self.close(conn, CloseReason::ProtocolViolation, now);
        }
        match point {
            Some(p) => {
                self.pool.ban_until(p, until);
            }
            None => self.pool.greylist_ip(ip, until),
        }
        self.settle(now);
        until
    }

    /// Lifts the ban of `target` (whatever caused it: a violation, a score, the
    /// operator): for a point, the point's and its IP address's; for an IP address, the
    /// address's and that of every point there. Returns whether anything was banned.
    /// See [`ban`](Self::ban) for an example.
    pub fn unban(&mut self, target: BanTarget, now: Time) -> bool {
        self.tick(now);
        if self.stopped {
            return false;
        }
        let lifted = match target {
            BanTarget::Point(p) => self.pool.unban(canonical(p), now),
            BanTarget::Ip(ip) => {
                let ip = super::canonical_ip(ip);
                let points: Vec<SocketAddr> = self
                    .pool
                    .iter()
                    .filter(|(a, p)| {
                        p.state == PointState::Greylisted && crate::pool::same_ban_key(a.ip(), ip)
                    })
                    .map(|(a, _)| a)
                    .collect();
                let mut lifted = self.pool.unban_ip(ip);
                for p in points {
                    lifted |= self.pool.unban(p, now);
                }
                lifted
            }
        };
        self.settle(now);
        lifted
    }

    /// Trusts `point` from now on, as a configured trusted point (dialed first, never
    /// trimmed, admitted in private mode); with `peer`, the point must also prove that
    /// key, dialed or dialing in ([`expect_peer`](Self::expect_peer)). Returns `false`
    /// when the point cannot be used (port 0, not unicast, our own) or its key cannot be
    /// recorded ([`MAX_EXPECTED_PEERS`](super::MAX_EXPECTED_PEERS) reached); the point
    /// is then not trusted either.
    ///
    /// ```
    /// use peerkeeper::core::NodeCore;
    /// use peerkeeper::{Config, PeerId, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// let p = "10.0.0.7:9732".parse().unwrap();
    /// assert!(core.trust(p, Some(PeerId::from_u64(9)), Time::ZERO));
    /// assert!(core.pool().is_trusted(&p));
    /// assert_eq!(core.expected_peer(&p), Some(PeerId::from_u64(9)));
    /// ```
    pub fn trust(&mut self, point: SocketAddr, peer: Option<PeerId>, now: Time) -> bool {
        self.tick(now);
        let point = canonical(point);
        if self.stopped
            || point.port() == 0
            || super::intake::scope(point.ip()).is_none()
            || self.own_points.contains(&point)
        {
            return false;
        }
        if let Some(peer) = peer {
            if !self.expect_peer(point, peer) {
                return false;
            }
        }
        self.add_points(&[point], Source::Trusted, now);
        self.pool.is_trusted(&point)
    }

    /// The open connections at `now`, ordered by peer id: what `peerkeeper ctl peers`
    /// shows. `O(connections)`.
    ///
    /// ```
    /// use peerkeeper::core::{Hello, NodeCore};
    /// use peerkeeper::pool::{ConnId, Direction, PeerId};
    /// use peerkeeper::{Config, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// let hello = Hello { peer: PeerId::from_u64(2), listen_port: 9000 };
    /// core.handle_inbound(ConnId(1), "10.0.0.2:40000".parse().unwrap(), hello, Time::ZERO);
    /// let peers = core.connections_at(Time::from_millis(5_000));
    /// assert_eq!(peers[0].peer, PeerId::from_u64(2));
    /// assert_eq!(peers[0].direction, Direction::Inbound);
    /// assert_eq!(peers[0].connected_for.as_secs(), 5);
    /// ```
    pub fn connections_at(&self, now: Time) -> Vec<ConnectionView> {
        let now = now.max(self.clock);
        let mut out: Vec<ConnectionView> = self
            .pool
            .connections()
            .map(|(point, c)| ConnectionView {
                peer: c.peer,
                point,
                direction: c.direction,
                kind: self.pool.kind_of(&point),
                since: c.since,
                connected_for: now.saturating_since(c.since),
                score: self.score_at(&c.peer, now),
                rtt: c.rtt_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                protected: self.pool.is_protected(&point),
            })
            .collect();
        out.sort_by_key(|c| c.peer);
        out
    }

    /// The known points at `now` in state `filter` (all with `None`), ordered by point,
    /// at most `limit` of them, and how many matched in all: what `peerkeeper ctl points`
    /// shows. `O(points)`: for an operator, never on a hot path.
    ///
    /// ```
    /// use peerkeeper::core::{NodeCore, PointFilter};
    /// use peerkeeper::{pool::Source, Config, PeerId, Time};
    /// let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    /// core.add_points(&["10.0.0.7:9732".parse().unwrap()], Source::Bootstrap, Time::ZERO);
    /// let (points, total) = core.points_at(Some(PointFilter::Dialable), 10, Time::ZERO);
    /// assert_eq!((points.len(), total), (1, 1));
    /// ```
    pub fn points_at(
        &self,
        filter: Option<PointFilter>,
        limit: usize,
        now: Time,
    ) -> (Vec<PointView>, usize) {
        let now = now.max(self.clock);
        let mut out: Vec<PointView> = Vec::new();
        for (addr, p) in self.pool.iter() {
            let ip_ban = self.pool.ip_banned_until(addr.ip(), now);
            let (state, until) = if p.state == PointState::Connected {
                (PointFilter::Connected, None)
            } else if p.dialing {
                (PointFilter::Dialing, None)
            } else if (p.state == PointState::Greylisted && p.next_dial > now) || ip_ban.is_some() {
                let point_ban = (p.state == PointState::Greylisted).then_some(p.next_dial);
                (PointFilter::Banned, point_ban.max(ip_ban))
            } else if p.next_dial > now {
                (PointFilter::Waiting, Some(p.next_dial))
            } else {
                (PointFilter::Dialable, None)
            };
            if filter.is_some_and(|f| f != state) {
                continue;
            }
            out.push(PointView {
                point: addr,
                state,
                kind: p.kind(),
                failures: p.failures,
                until,
                expected: self.expected_peer(&addr),
            });
        }
        let total = out.len();
        if total > limit {
            out.select_nth_unstable_by_key(limit, |v| v.point);
            out.truncate(limit);
        }
        out.sort_by_key(|v| v.point);
        (out, total)
    }
}
