//! Driving `NodeCore` by hand: the third way to use peerkeeper (`docs/embedding.md`), for
//! a node on a stack that is neither peerkeeper's own `Node` nor rust-libp2p.
//!
//! Five cores in one thread, on a simulated clock, with an in-memory "network" that
//! stands for the embedding node's own I/O: every message takes [`LATENCY`] to arrive. A
//! dial is delivered to the target core's `handle_inbound`, and the admission goes back
//! to the dialer's `handle_dial_result`; closes go to `handle_closed`, requests and
//! points to `handle_points_asked` and `handle_points`. Node 0 is the seed, the others
//! know only it; it fills up and refuses the last one, with points to try instead. It runs
//! until every core has `min_threshold` connections and nothing is in flight, then prints
//! each node's connections. No tokio, no sockets, no wall clock: the same run every time.
//!
//! ```sh
//! cargo run --example drive_core
//! ```
//!
//! `tests/embedding.rs` runs it, checks the outcome, and checks that `docs/embedding.md`
//! quotes it as it is: this example cannot rot unnoticed.

use peerkeeper::core::{Action, Admission, DialFailure, DialResult, DialVerdict, Hello, NodeCore};
use peerkeeper::pool::{ConnId, Direction, PeerId, Source};
use peerkeeper::{Config, Time};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Nodes in the network.
pub const NODES: usize = 5;
/// How long every message takes between two nodes.
pub const LATENCY: Duration = Duration::from_millis(10);
/// When the example gives up.
pub const LIMIT: Time = Time::from_millis(10 * 60 * 1000);

/// What travels on a link. A connection is a link number, which both of its ends use as
/// their `ConnId` (never reused, so every core's ids stay unique).
enum Msg {
    /// A dial from node `.0` to the point `.1` (its handshake done) reaches the listener.
    Dial(usize, SocketAddr),
    /// The listener's answer to our dial of point `.0` reaches us.
    Answer(SocketAddr, DialResult),
    Ask,
    Points(Vec<SocketAddr>),
    Close,
}

/// The cores, the clock and the messages in flight.
#[derive(Default)]
pub struct Network {
    /// The simulated clock: every core's `now`.
    pub now: Time,
    /// Node `i`'s core.
    pub cores: Vec<NodeCore>,
    /// In flight, by arrival time, then in sending order.
    queue: BTreeMap<(Time, u64), (usize, u64, Msg)>,
    sent: u64,
    /// Open links: (dialer, listener).
    links: BTreeMap<u64, (usize, usize)>,
    next_link: u64,
}

/// Node `i` listens on 127.0.0.1:9000+i.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 9000 + i as u16)
}

/// Node `i`'s peer id (a real node proves its key in its handshake).
pub fn id(i: usize) -> PeerId {
    PeerId::from_u64(i as u64 + 1)
}

impl Network {
    /// `n` nodes with `config`; node 0 is everybody's bootstrap point.
    pub fn new(n: usize, config: &Config) -> Network {
        let mut net = Network::default();
        for i in 0..n {
            let mut core = NodeCore::new(config.clone(), id(i), i as u64);
            core.add_own_point(addr(i));
            if i > 0 {
                core.add_points(&[addr(0)], Source::Bootstrap, Time::ZERO);
            }
            core.start(Time::ZERO);
            net.cores.push(core);
            net.carry_out(i);
        }
        net
    }

    /// Whether every node has at least `min_threshold` connections and no message is in
    /// flight (both ends of every connection agree on it).
    pub fn settled(&self) -> bool {
        let in_range = |c: &NodeCore| c.connection_count() >= c.bounds().min_threshold;
        self.queue.is_empty() && self.cores.iter().all(in_range)
    }

    /// Runs until the network is settled (true), or until `limit` (false).
    pub fn run(&mut self, limit: Time) -> bool {
        while !self.settled() {
            if !self.step(limit) {
                return false;
            }
        }
        true
    }

    /// Does the next thing that happens, a message arriving or a core's timer, unless it
    /// comes after `limit` (false).
    pub fn step(&mut self, limit: Time) -> bool {
        let message = self.queue.keys().next().map(|&(at, _)| at);
        let timer = (0..self.cores.len())
            .filter_map(|i| self.cores[i].next_deadline().map(|at| (at, i)))
            .min();
        match (message, timer) {
            (Some(at), t) if t.is_none_or(|(due, _)| at <= due) && at <= limit => {
                let (_, (to, link, msg)) = self.queue.pop_first().expect("a message");
                self.now = self.now.max(at);
                self.deliver(to, link, msg);
            }
            (_, Some((due, i))) if due <= limit => {
                self.now = self.now.max(due);
                self.cores[i].handle_timeout(self.now);
                self.carry_out(i);
            }
            _ => return false,
        }
        true
    }

    fn send(&mut self, to: usize, link: u64, msg: Msg) {
        self.sent += 1;
        let at = self.now + LATENCY;
        self.queue.insert((at, self.sent), (to, link, msg));
    }

    /// The other end of a link, if it is open.
    fn peer(&self, i: usize, conn: ConnId) -> Option<usize> {
        let &(a, b) = self.links.get(&conn.0)?;
        Some(if a == i { b } else { a })
    }

    /// Does what core `i` asked for. Called after every input to it.
    fn carry_out(&mut self, i: usize) {
        while let Some(action) = self.cores[i].poll_action() {
            match action {
                Action::Dial(point) => match (0..self.cores.len()).find(|&j| addr(j) == point) {
                    Some(j) => {
                        self.next_link += 1;
                        self.send(j, self.next_link, Msg::Dial(i, point));
                    }
                    // Nobody there: every dial gets exactly one result, this one too.
                    None => {
                        let failed = DialResult::Failed(DialFailure::Io);
                        self.cores[i].handle_dial_result(point, failed, self.now);
                    }
                },
                Action::Close { conn, .. } => {
                    if let Some(j) = self.peer(i, conn) {
                        self.links.remove(&conn.0);
                        self.send(j, conn.0, Msg::Close);
                    }
                }
                Action::SendPoints { conn, points } => {
                    if let Some(j) = self.peer(i, conn) {
                        self.send(j, conn.0, Msg::Points(points));
                    }
                }
                Action::AskForPoints { conn } => {
                    if let Some(j) = self.peer(i, conn) {
                        self.send(j, conn.0, Msg::Ask);
                    }
                }
                // PollSources: this node has no point sources. Swaps: the octez policy
                // only. Triggers and cycles: for observers.
                _ => {}
            }
        }
    }

    /// A message arrives at node `to`: one input to its core, then its actions.
    fn deliver(&mut self, to: usize, link: u64, msg: Msg) {
        let (now, conn) = (self.now, ConnId(link));
        let core = &mut self.cores[to];
        match msg {
            Msg::Dial(from, point) => {
                // The dialer's socket has a port of its own; its point is its IP address
                // and the port its hello names.
                let remote = SocketAddr::new(addr(from).ip(), 40000 + (link % 20000) as u16);
                let hello = Hello {
                    peer: id(from),
                    listen_port: addr(from).port(),
                };
                let result = match core.handle_inbound(conn, remote, hello, now) {
                    Admission::Accept => {
                        self.links.insert(link, (from, to));
                        DialResult::Connected { conn, peer: id(to) }
                    }
                    Admission::Refuse { reason, points } => DialResult::Refused { reason, points },
                };
                // The answer goes first: whatever the listener sends next on this link
                // (a farewell, a close) comes after it.
                self.send(from, link, Msg::Answer(point, result));
            }
            Msg::Answer(point, result) => {
                let connected = matches!(result, DialResult::Connected { .. });
                if core.handle_dial_result(point, result, now) != DialVerdict::Keep && connected {
                    // Dropped (a duplicate, say): the listener hears of it.
                    if let Some((_, listener)) = self.links.remove(&link) {
                        self.send(listener, link, Msg::Close);
                    }
                }
            }
            Msg::Ask => core.handle_points_asked(conn, now),
            Msg::Points(points) => core.handle_points(conn, &points, now),
            Msg::Close => core.handle_closed(conn, now),
        }
        self.carry_out(to);
    }

    /// The nodes node `i` dialed, and those that dialed it.
    pub fn neighbours(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let (mut dialed, mut dialed_by) = (Vec::new(), Vec::new());
        for (point, c) in self.cores[i].pool().connections() {
            let j = (0..self.cores.len())
                .find(|&j| addr(j) == point)
                .expect("a node");
            match c.direction {
                Direction::Outbound => dialed.push(j),
                Direction::Inbound => dialed_by.push(j),
            }
        }
        (dialed, dialed_by)
    }
}

/// The example's settings: 2 to 3 connections (min_threshold 2, max_threshold 3), so
/// that the seed fills up and refuses the last node, with points to try instead.
pub fn config() -> Config {
    Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 3,
        ..Config::default()
    }
}

/// What the example prints: each node's connections, and whether every node got
/// `min_threshold` of them, and when.
pub fn summary(net: &Network, settled: bool) -> String {
    let mut out = String::new();
    for (i, core) in net.cores.iter().enumerate() {
        let (dialed, dialed_by) = net.neighbours(i);
        let n = core.connection_count();
        let line = format!("{n} connections, dialed {dialed:?}, dialed by {dialed_by:?}");
        out += &format!("node {i} ({}): {line}\n", addr(i));
    }
    let min = net.cores[0].bounds().min_threshold;
    let outcome = if settled { "every" } else { "NOT every" };
    let at = format!("at {} of simulated time", net.now);
    out + &format!("{outcome} node has {min} connections or more {at}\n")
}

fn main() {
    let mut net = Network::new(NODES, &config());
    let settled = net.run(LIMIT);
    print!("{}", summary(&net, settled));
}
