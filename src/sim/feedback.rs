//! Peer feedback in the simulator: useless nodes, and the reports that find them out.
//!
//! With [`SimConfig::useless_fraction`](super::SimConfig::useless_fraction) `= F`, a
//! seeded fraction F of the nodes (bootstrap nodes excepted) is *useless*: it keeps its
//! connections like any node but never delivers anything. Every
//! [`REPORT_INTERVAL`], every other node reports on each of its peers through its core's
//! [`handle_report`](crate::core::NodeCore::handle_report) (a recorded input, so a traced
//! node's replay explains what the reports led to): a useless peer as
//! [`Report::Slow`], any other as [`Report::Useful`] with probability
//! [`USEFUL_PROBABILITY`] (it delivered something first). The report says, at the end,
//! the share of the honest nodes' connections that go to useless peers: with feedback on
//! (the default) the scores disconnect them and dialing prefers the useful; with
//! `feedback.enabled = false` (`simulate --no-feedback`) the share stays near F.

use crate::core::Report;
use crate::rng::SeededRng;
use serde::Serialize;
use std::time::Duration;

/// How often each node reports on its peers.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// The probability that a useful peer is reported useful at each round.
pub const USEFUL_PROBABILITY: f64 = 0.3;

/// The feedback section of [`SimReport`](super::SimReport).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FeedbackReport {
    /// Whether the nodes kept scores (`feedback.enabled`).
    pub enabled: bool,
    /// Useless nodes.
    pub useless_nodes: usize,
    /// Open connections of the alive useful nodes at the end.
    pub connections: usize,
    /// Of those, to useless peers.
    pub to_useless: usize,
    /// `to_useless / connections`: the share of connections to useless peers.
    pub useless_share: f64,
    /// Reports sent: useful.
    pub useful_reports: u64,
    /// Reports sent: slow.
    pub slow_reports: u64,
    /// Connections the scores closed (`feedback.disconnect_below`).
    pub disconnects: u64,
    /// Peers the scores banned (`feedback.ban_below`).
    pub bans: u64,
}

/// The scenario's state: who is useless, and its own RNG (the other draws stay as
/// without it).
pub(super) struct FeedbackState {
    pub useless: Vec<bool>,
    pub rng: SeededRng,
    pub useful_reports: u64,
    pub slow_reports: u64,
}

impl FeedbackState {
    pub fn new(useless: Vec<bool>, rng: SeededRng) -> FeedbackState {
        FeedbackState {
            useless,
            rng,
            useful_reports: 0,
            slow_reports: 0,
        }
    }

    /// What node `i` says of peer `j` this round, if anything.
    pub fn report(&mut self, j: usize) -> Option<Report> {
        use rand::Rng;
        if self.useless.get(j).copied().unwrap_or(false) {
            self.slow_reports += 1;
            Some(Report::Slow)
        } else if self.rng.gen_bool(USEFUL_PROBABILITY) {
            self.useful_reports += 1;
            Some(Report::Useful)
        } else {
            None
        }
    }
}

impl super::Simulation {
    /// Every alive useful node reports on each of its peers.
    pub(super) fn feedback_tick(&mut self) {
        let Some(mut st) = self.feedback.take() else {
            return;
        };
        let now = self.now;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive || st.useless[i] {
                continue;
            }
            let peers: Vec<(crate::pool::PeerId, std::net::SocketAddr)> = self.nodes[i]
                .core
                .pool()
                .connections()
                .map(|(a, c)| (c.peer, a))
                .collect();
            let mut any = false;
            for (peer, a) in peers {
                let Some(j) = self.resolve(&a).filter(|j| *j < self.nodes.len()) else {
                    continue;
                };
                if let Some(report) = st.report(j) {
                    self.tracer
                        .record(i, now, || crate::core::Input::Report { peer, report });
                    self.nodes[i].core.handle_report(peer, report, now);
                    any = true;
                }
            }
            if any {
                self.after(i);
            }
        }
        self.feedback = Some(st);
    }

    /// The scenario's figures at the end.
    pub(super) fn feedback_report(&self) -> Option<FeedbackReport> {
        let st = self.feedback.as_ref()?;
        let (mut connections, mut to_useless) = (0, 0);
        let (mut disconnects, mut bans) = (0, 0);
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.core.stats();
            disconnects += s.feedback.disconnects;
            bans += s.feedback.bans;
            if !n.alive || st.useless[i] {
                continue;
            }
            for (a, _) in n.core.pool().connections() {
                if let Some(j) = self.resolve(&a).filter(|j| *j < self.nodes.len()) {
                    connections += 1;
                    to_useless += usize::from(st.useless[j]);
                }
            }
        }
        Some(FeedbackReport {
            enabled: self.config.feedback.enabled,
            useless_nodes: st.useless.iter().filter(|u| **u).count(),
            connections,
            to_useless,
            useless_share: if connections == 0 {
                0.0
            } else {
                to_useless as f64 / connections as f64
            },
            useful_reports: st.useful_reports,
            slow_reports: st.slow_reports,
            disconnects,
            bans,
        })
    }
}
