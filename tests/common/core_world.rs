//! The world of the node core's state-machine test, shared by `tests/core_state_machine.rs`
//! (proptest strategies) and the fuzz target `fuzz/fuzz_targets/core_inputs.rs`
//! (`arbitrary` bytes): the inputs ([`Op`]), a shell that carries out the core's actions
//! checking each, and the invariants checked after every step ([`run`]).

use peerkeeper::core::{
    Action, Admission, DialFailure, DialResult, DialVerdict, Hello, NodeCore, Offender,
    RefuseReason,
};
use peerkeeper::pool::{CloseReason, ConnId, PeerId, PointState, Source};
use peerkeeper::trigger::TriggerKind;
use peerkeeper::{Config, Policy, Time};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The universe of points: 48 addresses over 6 /16 groups, public and LAN.
pub const POINTS: u8 = 48;

pub fn point(i: u8) -> SocketAddr {
    let i = i % POINTS;
    let group = i % 6;
    if group == 5 {
        SocketAddr::from(([192, 168, 1, i + 1], 9732))
    } else {
        SocketAddr::from(([11 + group * 20, 7, 0, i + 1], 9732))
    }
}

/// The peer that listens at point `i`.
/// The small configuration the property test and the fuzz target draw: targets
/// `min`/`min + e`/`min + e + m`, `dials` in flight, a pool of `pool` points, either policy,
/// private mode (with a trusted point to dial), room making, and trusted points among the
/// universe's. `validate()` accepts every one.
#[allow(clippy::too_many_arguments)]
pub fn small_config(
    (min, e, m): (usize, usize, usize),
    dials: usize,
    pool: usize,
    octez: bool,
    private: bool,
    room: bool,
    trusted: &[u8],
) -> Config {
    Config {
        min_connections: min,
        expected_connections: min + e,
        max_connections: min + e + m,
        max_concurrent_dials: dials,
        max_known_points: pool,
        known_points_gc_target: pool * 3 / 4,
        max_known_peers: pool,
        policy: if octez {
            Policy::Octez
        } else {
            Policy::Peerkeeper
        },
        private_mode: private,
        make_room_interval: room.then_some(Duration::from_secs(1)),
        // Private mode needs a trusted point to dial.
        trusted_points: if private && trusted.is_empty() {
            vec![point(0)]
        } else {
            trusted.iter().map(|&i| point(i)).collect()
        },
        ..Config::default()
    }
}

pub fn peer(i: u8) -> PeerId {
    PeerId::from_u64(1_000 + u64::from(i % POINTS))
}

#[derive(Clone, Debug)]
pub enum Op {
    Track {
        id_step: u8,
        primary: Vec<u8>,
        secondary: Vec<u8>,
    },
    Overwrite {
        peers: Vec<(u8, u8)>,
    },
    Protect {
        points: Vec<u8>,
        on: bool,
    },
    Learn {
        points: Vec<u8>,
        source: u8,
    },
    Inbound {
        point: u8,
        claim: Option<u8>,
    },
    DialEnds {
        which: u16,
        result: u8,
        refusal: Vec<u8>,
    },
    Closed {
        which: u16,
    },
    Dropped {
        which: u16,
    },
    PointsReceived {
        which: u16,
        points: Vec<u8>,
    },
    PointsAsked {
        which: u16,
    },
    Violation {
        which: u16,
        by_ip: bool,
    },
    Swap {
        which: u16,
        point: u8,
    },
    Maintain,
    Trigger {
        kind: u8,
        on: bool,
    },
    IdleTimer {
        on: bool,
    },
    Wait {
        ms: u32,
    },
    Shutdown,
}

/// What the test knows of the core's world, as a shell would.
pub struct World {
    core: NodeCore,
    now: Time,
    /// Dials the core asked for and that have not ended.
    dials: Vec<SocketAddr>,
    /// Open connections, by id, with their point and peer.
    conns: BTreeMap<ConnId, (SocketAddr, PeerId)>,
    next_conn: u64,
    /// The last peer-set id given (a step of 0 repeats it: a stale id).
    set_id: u64,
    /// The last id a `track` accepted.
    accepted_id: Option<u64>,
    /// Exploration dials already checked (they may go to a backed-off point).
    explorations: u64,
}

impl World {
    fn pick<T: Copy>(v: &[T], which: u16) -> Option<T> {
        (!v.is_empty()).then(|| v[usize::from(which) % v.len()])
    }

    fn conn(&self, which: u16) -> Option<ConnId> {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        Self::pick(&ids, which)
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Learn { points, source } => {
                let source = Source::ALL[usize::from(*source) % Source::ALL.len()];
                let points: Vec<SocketAddr> = points.iter().map(|&i| point(i)).collect();
                if source == Source::External {
                    self.core.handle_source_points(&points, now);
                } else {
                    self.core.add_points(&points, source, now);
                }
            }
            Op::Inbound { point: i, claim } => {
                let id = self.new_conn();
                let p = point(*i);
                let hello = Hello {
                    peer: peer(claim.unwrap_or(*i)),
                    listen_port: p.port(),
                };
                let remote = SocketAddr::new(p.ip(), 40_000 + u16::from(*i));
                if self.core.handle_inbound(id, remote, hello, now) == Admission::Accept {
                    self.conns.insert(id, (p, hello.peer));
                }
            }
            Op::DialEnds {
                which,
                result,
                refusal,
            } => {
                let Some(p) = Self::pick(&self.dials, *which) else {
                    return;
                };
                self.dials.retain(|d| *d != p);
                let i = self.index_of(p);
                let conn = self.new_conn();
                let result = match result {
                    0 | 1 => DialResult::Connected {
                        conn,
                        peer: peer(i),
                    },
                    2 => DialResult::Connected {
                        conn,
                        // A peer that answers at another's point (it moved, or lies).
                        peer: peer(i.wrapping_add(1)),
                    },
                    3 => DialResult::Refused {
                        reason: RefuseReason::Full,
                        points: refusal.iter().map(|&k| point(k)).collect(),
                    },
                    4 => DialResult::Refused {
                        reason: RefuseReason::AlreadyConnected,
                        points: vec![],
                    },
                    5 => DialResult::Failed(DialFailure::Timeout),
                    6 => DialResult::Failed(DialFailure::Io),
                    _ => DialResult::Failed(DialFailure::Protocol),
                };
                let connected = match result {
                    DialResult::Connected { peer, .. } => Some(peer),
                    _ => None,
                };
                let failures = self.core.pool().get(&p).map(|i| i.failures);
                let offline = self.core.stats().dials.offline;
                let verdict = self.core.handle_dial_result(p, result, now);
                if self.core.stats().dials.offline > offline {
                    // The offline rule: a dial that failed while offline costs the point
                    // nothing.
                    assert!(self.core.offline_since().is_some());
                    assert!(
                        self.core.pool().get(&p).map(|i| i.failures) <= failures,
                        "{p} penalised while offline"
                    );
                }
                if let (Some(q), DialVerdict::Keep) = (connected, verdict) {
                    self.conns.insert(conn, (p, q));
                }
            }
            Op::Closed { which } => {
                if let Some(c) = self.conn(*which) {
                    self.conns.remove(&c);
                    self.core.handle_closed(c, now);
                }
            }
            Op::Dropped { which } => {
                if let Some(c) = self.conn(*which) {
                    self.conns.remove(&c);
                    self.core.handle_dropped(c, CloseReason::Timeout, now);
                }
            }
            Op::PointsReceived { which, points } => {
                if let Some(c) = self.conn(*which) {
                    let points: Vec<SocketAddr> = points.iter().map(|&i| point(i)).collect();
                    self.core.handle_points(c, &points, now);
                }
            }
            Op::PointsAsked { which } => {
                if let Some(c) = self.conn(*which) {
                    self.core.handle_points_asked(c, now);
                }
            }
            Op::Violation { which, by_ip } => {
                if let Some(c) = self.conn(*which) {
                    let who = if *by_ip {
                        Offender::Ip(self.conns[&c].0.ip())
                    } else {
                        Offender::Conn(c)
                    };
                    self.core.handle_violation(who, now);
                }
            }
            Op::Swap { which, point: i } => {
                if let Some(c) = self.conn(*which) {
                    self.core.handle_swap_request(c, point(*i), now);
                }
            }
            Op::Track {
                id_step,
                primary,
                secondary,
            } => {
                self.set_id += u64::from(*id_step);
                let members = |v: &Vec<u8>| v.iter().map(|&i| (peer(i), point(i))).collect();
                let r =
                    self.core
                        .handle_track(self.set_id, members(primary), members(secondary), now);
                // A stale id is an error, never a panic.
                if self.accepted_id.is_some_and(|a| self.set_id <= a) {
                    assert!(r.is_err(), "stale id {} accepted", self.set_id);
                }
                if r.is_ok() {
                    self.accepted_id = Some(self.set_id);
                }
            }
            Op::Overwrite { peers } => {
                let moved = peers.iter().map(|&(i, to)| (peer(i), point(to))).collect();
                // Errors (a peer given two addresses) are fine; panics are not.
                let _ = self.core.handle_overwrite(moved, now);
            }
            Op::Protect { points, on } => {
                let points: Vec<SocketAddr> = points.iter().map(|&i| point(i)).collect();
                self.core.set_protected(&points, *on);
            }
            Op::Maintain => {
                self.core.maintain(now);
            }
            Op::Trigger { kind, on } => {
                let kind = if *kind == 0 {
                    TriggerKind::TooFewConnections
                } else {
                    TriggerKind::TooManyConnections
                };
                self.core.set_trigger(kind, *on);
            }
            Op::IdleTimer { on } => self.core.set_idle_timer(*on, now),
            Op::Wait { ms } => {
                // A shell wakes the core at each deadline on the way.
                let end = now + Duration::from_millis(u64::from(*ms));
                while let Some(d) = self.core.next_deadline().filter(|d| *d <= end) {
                    self.now = self.now.max(d);
                    self.core.handle_timeout(self.now);
                    self.check_actions();
                }
                self.now = end;
            }
            Op::Shutdown => {
                self.core.shutdown(now);
                // A shutdown cancels the dials in flight.
                self.dials.clear();
            }
        }
    }

    fn index_of(&self, p: SocketAddr) -> u8 {
        (0..POINTS)
            .find(|&i| point(i) == p)
            .expect("the core dials only points it was given")
    }

    /// Carries out the core's actions as a shell would, checking each.
    fn check_actions(&mut self) {
        let config = self.core.config().clone();
        // An exploration dial (at most one per batch) may go to a backed-off point.
        let total = self.core.stats().dials.explorations;
        let mut exploring = total - self.explorations;
        assert!(exploring <= 1, "{exploring} exploration dials at once");
        self.explorations = total;
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Dial(p) => {
                    let pool = self.core.pool();
                    let info = pool.get(&p).expect("a dial to a known point");
                    assert!(info.dialing, "{p} dialed without being marked");
                    assert_eq!(
                        info.state,
                        PointState::Disconnected,
                        "{p} dialed while {:?}",
                        info.state
                    );
                    let explored = info.next_dial > self.now && exploring > 0;
                    exploring -= u64::from(explored);
                    assert!(
                        explored || info.next_dial <= self.now,
                        "{p} dialed while backed off until {:?} (now {:?})",
                        info.next_dial,
                        self.now
                    );
                    assert!(
                        !pool.is_ip_greylisted(p.ip(), self.now),
                        "{p} dialed on a greylisted address"
                    );
                    assert!(!self.dials.contains(&p), "{p} dialed twice at once");
                    if config.private_mode {
                        assert!(
                            pool.is_trusted(&p)
                                || self.core.peer_sets().primaries().any(|(_, a)| a == p),
                            "{p} dialed in private mode, neither trusted nor a primary"
                        );
                    }
                    self.dials.push(p);
                }
                Action::Close { conn, reason } => {
                    // Ours never trims a trusted peer, a protected point or a primary of a
                    // tracked set; the octez model trims at random (its flaw, modelled).
                    if let Some((p, q)) = self.conns.remove(&conn) {
                        if reason == CloseReason::TooManyConnections
                            && config.policy == Policy::Peerkeeper
                        {
                            assert!(!self.core.pool().is_protected(&p), "protected {p} trimmed");
                            assert!(!self.core.peer_sets().is_primary(q), "primary {p} trimmed");
                        }
                    }
                }
                Action::SendPoints { points, .. } => {
                    assert!(points.len() <= peerkeeper::MAX_POINTS_PER_MESSAGE);
                    if config.private_mode {
                        for p in &points {
                            assert!(
                                config.trusted_points.contains(p) || self.core.pool().is_trusted(p),
                                "private mode shared {p}"
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn check(&self) {
        let config = self.core.config();
        self.core.check_invariants();
        let slack = usize::from(config.policy == Policy::Octez);
        assert!(
            self.core.connection_count() <= config.max_connections + slack,
            "{} connections > max_connections {}",
            self.core.connection_count(),
            config.max_connections
        );
        assert_eq!(
            self.core.connection_count(),
            self.conns.len(),
            "the core and its shell disagree on the open connections"
        );
        // The octez model dials every candidate it wants at once (its flaw, modelled).
        assert!(
            config.policy == Policy::Octez
                || self.core.dials_in_flight() <= config.max_concurrent_dials,
            "{} dials in flight > max_concurrent_dials {}",
            self.core.dials_in_flight(),
            config.max_concurrent_dials
        );
        assert_eq!(
            self.core.dials_in_flight(),
            self.dials.len(),
            "dials in flight disagree"
        );
        // The operator's trusted points are kept whatever the bound (the pool refuses the
        // network's points instead): what the network can fill stays within it.
        let pool = self.core.pool();
        assert!(
            pool.len() - pool.trusted_count() <= config.max_known_points,
            "pool over its bound: {} points, {} trusted, max_known_points {}",
            pool.len(),
            pool.trusted_count(),
            config.max_known_points
        );
    }
}

pub fn run(config: Config, seed: u64, ops: &[Op]) {
    config.validate().expect("the strategy draws valid configs");
    let mut w = World {
        core: NodeCore::new(config, PeerId::from_u64(1), seed),
        now: Time::ZERO,
        dials: Vec::new(),
        conns: BTreeMap::new(),
        next_conn: 0,
        set_id: 0,
        accepted_id: None,
        explorations: 0,
    };
    w.core
        .add_own_point(SocketAddr::from(([11, 7, 255, 1], 9732)));
    w.core.start(w.now);
    w.check_actions();
    w.check();
    for op in ops {
        w.apply(op);
        w.check_actions();
        w.check();
    }
    w.apply(&Op::Shutdown);
    w.check_actions();
    w.check();
    assert_eq!(
        w.core.connection_count(),
        0,
        "connections left after shutdown"
    );
}
