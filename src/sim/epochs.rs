//! The epoch-rotation scenario: a validator set of `validators` of the simulated nodes,
//! rotated every `epoch`, told to its members through
//! [`NodeCore::handle_track`](crate::core::NodeCore::handle_track) (commonware's
//! `track(id, primary, secondary)`), with some members changing address mid-epoch
//! ([`NodeCore::handle_overwrite`](crate::core::NodeCore::handle_overwrite)) and
//! outsiders trying to connect to members under a member's peer id.
//!
//! # Model
//!
//! * The nodes run a validator network ([`PeerSetConfig::only`](crate::PeerSetConfig)):
//!   only tracked peers are admitted, only primaries are dialed, nothing is shared. This
//!   is commonware's authenticated network, where the consensus engine names the peers of
//!   each epoch and nobody else gets in; the nodes outside the set are the candidates of
//!   later epochs and the would-be impersonators.
//! * Epoch 1 starts at [`FIRST_EPOCH`] (every node has started by then) and picks
//!   `validators` nodes; each next epoch replaces `rotate` members by as many outsiders
//!   (a seeded choice). At the start of epoch `e`, every member of the new set is told
//!   `track(e, set, [])`: all members are primaries (each dials every other); no
//!   secondaries (followers are not modelled). Nodes out of the set are not told.
//! * A member is **dropped** when it leaves every set a node keeps
//!   (`peer_sets.kept_sets`, 4 by default, as commonware): with `kept_sets = k`, the
//!   members of epoch `e - k` in none of epochs `e - k + 1 ..= e` are dropped at epoch `e`.
//! * **Overwrite**: half-way through each epoch, `overwrite` members move to a new address
//!   (a new IP in 100.64/10 and a new port, [`moved_addr`]): the old address stops answering at once, and
//!   every member is told `overwrite(moved)`.
//! * **Impersonation**: a quarter of the way through each epoch, `impersonations`
//!   outsiders each dial a member from their own IP with a hello claiming another
//!   member's peer id (and port); and right after each overwrite, for each mover, a dial
//!   from its old address (someone who took it over) claiming its id. `peer_sets.check_ip`
//!   must refuse them all: the allowed inbound address follows the overwrite (the real
//!   node also checks the handshake's signature, which the simulator does not model).
//!
//! # Measured, per epoch
//!
//! Checked every [`CHECK_EVERY`] of virtual time while something is pending:
//! * `mesh_ms`: from the epoch's `track` until every alive member is connected to every
//!   other alive member (or to `primary_target` of them);
//! * `dropped_ms`: until no alive member and no dropped node holds a connection between
//!   them (both ends have closed);
//! * `overwrite_ms`: from the overwrite until the mesh is whole again (the moved members
//!   reconnected at their new addresses).
//!
//! A figure not reached before the next epoch starts (or the run ends) is `None` and the
//! epoch counts as incomplete.

use super::{Ev, Msg, Simulation};
use crate::config::Config;
use crate::core::{Admission, Hello, Input};
use crate::pool::{ConnId, PeerId};
use crate::Time;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// When epoch 1 starts: the nodes start within the first five seconds.
pub const FIRST_EPOCH: Duration = Duration::from_secs(10);

/// How often the epoch figures are checked while pending (their resolution).
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The epoch-rotation scenario ([`SimConfig::epochs`](super::SimConfig::epochs)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EpochConfig {
    /// Members of the validator set.
    pub validators: usize,
    /// How long an epoch lasts.
    pub epoch: Duration,
    /// Members replaced at each new epoch.
    pub rotate: usize,
    /// Members that move to a new address half-way through each epoch.
    pub overwrite: usize,
    /// Impersonation attempts per epoch.
    pub impersonations: usize,
}

impl EpochConfig {
    /// `validators` members, epochs of `epoch`, a fifth of the set (at least one) replaced
    /// each epoch, no overwrite, 4 impersonation attempts per epoch.
    pub fn new(validators: usize, epoch: Duration) -> EpochConfig {
        EpochConfig {
            validators,
            epoch,
            rotate: (validators / 5).max(1),
            overwrite: 0,
            impersonations: 4,
        }
    }

    /// Makes `config` a validator network's: `peer_sets.only`, and `max_connections`
    /// raised (if below) to hold every primary of the kept sets (`validators + rotate *
    /// (kept_sets - 1)`).
    pub fn prepare(&self, config: &mut Config) {
        config.peer_sets.only = true;
        let kept = config.peer_sets.kept_sets.max(1);
        let need = self.validators + self.rotate * (kept - 1);
        config.max_connections = config.max_connections.max(need);
    }

    /// Whether the scenario fits `nodes` nodes; the error names the flag.
    ///
    /// # Errors
    ///
    /// A set larger than the network, a rotation larger than the set or than the
    /// outsiders, an overwrite larger than the set, an epoch under a second.
    pub fn check(&self, nodes: usize) -> Result<(), String> {
        if self.validators < 2 || self.validators > nodes {
            return Err(format!(
                "--validators must be in 2..=--nodes ({nodes}), got {}",
                self.validators
            ));
        }
        if self.rotate > self.validators || self.rotate > nodes - self.validators {
            return Err(format!(
                "--rotate must be at most the validators and the other nodes, got {}",
                self.rotate
            ));
        }
        if self.overwrite > self.validators {
            return Err(format!(
                "--overwrite must be at most --validators, got {}",
                self.overwrite
            ));
        }
        if self.epoch < Duration::from_secs(1) {
            return Err("--epoch must be at least 1s".into());
        }
        Ok(())
    }
}

/// Min, median and max of a figure over the epochs that reached it, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Epochs that reached it.
    pub count: usize,
    /// Smallest, ms.
    pub min_ms: Option<u64>,
    /// Median (the upper one of an even count), ms.
    pub median_ms: Option<u64>,
    /// Largest, ms.
    pub max_ms: Option<u64>,
}

impl Summary {
    /// Of the given values.
    pub fn of(values: impl IntoIterator<Item = u64>) -> Summary {
        let mut v: Vec<u64> = values.into_iter().collect();
        v.sort_unstable();
        Summary {
            count: v.len(),
            min_ms: v.first().copied(),
            median_ms: v.get(v.len() / 2).copied(),
            max_ms: v.last().copied(),
        }
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EpochRecord {
    /// The set's id (1, 2, ...).
    pub id: u64,
    /// When it started, virtual ms.
    pub start_ms: u64,
    /// Members new in this set.
    pub joined: usize,
    /// Nodes dropped at this epoch (out of every kept set).
    pub dropped: usize,
    /// Time until the new set is a full mesh, ms.
    pub mesh_ms: Option<u64>,
    /// Time until every dropped node is disconnected from the set, ms (0 when none).
    pub dropped_ms: Option<u64>,
    /// Members that moved to a new address in this epoch.
    pub overwritten: usize,
    /// Time from the overwrite until the mesh is whole again, ms.
    pub overwrite_ms: Option<u64>,
    /// The run ended before this epoch's figures were all reached (not counted as
    /// incomplete).
    pub cut_by_end: bool,
}

/// The epoch scenario's section of [`SimReport`](super::SimReport).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EpochReport {
    /// Members of each set.
    pub validators: usize,
    /// Epoch length, ms.
    pub epoch_ms: u64,
    /// Members replaced per epoch.
    pub rotate: usize,
    /// Sets each node keeps (`peer_sets.kept_sets`).
    pub kept_sets: usize,
    /// Every epoch started in the run.
    pub epochs: Vec<EpochRecord>,
    /// `mesh_ms` over the epochs.
    pub mesh: Summary,
    /// `dropped_ms` over the epochs that dropped nodes.
    pub dropped: Summary,
    /// `overwrite_ms` over the epochs with an overwrite.
    pub overwrite: Summary,
    /// Epochs where a figure was not reached before the next epoch (an epoch cut by the
    /// end of the run is not counted: see [`EpochRecord::cut_by_end`]).
    pub incomplete_epochs: usize,
    /// Impersonation attempts: outsiders claiming a member's id, and (counted here too)
    /// dials from a moved member's old address claiming its id.
    pub impersonation_attempts: u64,
    /// Of `impersonation_attempts`, those from a moved member's old address, right after
    /// the overwrite (someone who took the old address over).
    pub old_address_attempts: u64,
    /// Impersonation attempts admitted (must be 0).
    pub impersonations_admitted: u64,
}

/// What is pending in the current epoch.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub mesh: bool,
    pub dropped: Vec<usize>,
    pub overwrite_at: Option<Time>,
}

/// The scenario's running state.
#[derive(Debug)]
pub(super) struct EpochState {
    pub cfg: EpochConfig,
    /// The latest sets, newest last (at most `kept_sets`), sorted node indexes.
    pub sets: std::collections::VecDeque<Vec<usize>>,
    pub kept_sets: usize,
    pub records: Vec<EpochRecord>,
    pub pending: Pending,
    pub checking: bool,
    pub attempts: u64,
    pub old_address_attempts: u64,
    pub admitted: u64,
    /// Moves so far (each move gets the next port).
    pub moves: u32,
}

impl EpochState {
    pub fn new(cfg: EpochConfig, kept_sets: usize) -> EpochState {
        EpochState {
            cfg,
            sets: Default::default(),
            kept_sets: kept_sets.max(1),
            records: Vec::new(),
            pending: Pending::default(),
            checking: false,
            attempts: 0,
            old_address_attempts: 0,
            admitted: 0,
            moves: 0,
        }
    }

    /// The current set.
    pub fn current(&self) -> &[usize] {
        self.sets.back().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Closes the current epoch's record: what is still pending is not reached.
    pub fn close_epoch(&mut self) {
        self.pending = Pending::default();
    }

    /// The run ends: the current epoch's pending figures are cut by the end.
    pub fn end(&mut self) {
        if self.pending.any() {
            if let Some(r) = self.records.last_mut() {
                r.cut_by_end = true;
            }
        }
        self.close_epoch();
    }

    pub fn report(&self) -> EpochReport {
        let incomplete = self
            .records
            .iter()
            .filter(|r| !r.cut_by_end)
            .filter(|r| {
                r.mesh_ms.is_none()
                    || r.dropped_ms.is_none()
                    || (r.overwritten > 0 && r.overwrite_ms.is_none())
            })
            .count();
        EpochReport {
            validators: self.cfg.validators,
            epoch_ms: self.cfg.epoch.as_millis() as u64,
            rotate: self.cfg.rotate,
            kept_sets: self.kept_sets,
            mesh: Summary::of(self.records.iter().filter_map(|r| r.mesh_ms)),
            dropped: Summary::of(
                self.records
                    .iter()
                    .filter(|r| r.dropped > 0)
                    .filter_map(|r| r.dropped_ms),
            ),
            overwrite: Summary::of(self.records.iter().filter_map(|r| r.overwrite_ms)),
            epochs: self.records.clone(),
            incomplete_epochs: incomplete,
            impersonation_attempts: self.attempts,
            old_address_attempts: self.old_address_attempts,
            impersonations_admitted: self.admitted,
        }
    }
}

/// The address of the `n`-th move in a run (`n` from 1): a fresh IP in 100.64/10 per
/// move (so that a move always changes the IP, as `check_ip` compares IPs only) and the
/// port `9732 + n % 1000`.
pub fn moved_addr(n: u32) -> SocketAddr {
    SocketAddr::from((
        [100, 64 | ((n >> 16) & 0x3f) as u8, (n >> 8) as u8, n as u8],
        9732 + (n % 1000) as u16,
    ))
}

impl Pending {
    fn any(&self) -> bool {
        self.mesh || !self.dropped.is_empty() || self.overwrite_at.is_some()
    }
}

impl Simulation {
    /// `(id, current address)` of `members`.
    fn entries(&self, members: &[usize]) -> Vec<(PeerId, SocketAddr)> {
        members
            .iter()
            .map(|&m| (self.nodes[m].peer, self.addr(m)))
            .collect()
    }

    /// Epoch `e` starts: a new set, told to every node (members: as primaries; the
    /// others: as secondaries, so that every node keeps the same sets, as nodes following
    /// one chain do).
    pub(super) fn new_epoch(&mut self, e: u64) {
        let Some(mut st) = self.epochs.take() else {
            return;
        };
        st.close_epoch();
        let n = self.nodes.len();
        let prev: Vec<usize> = st.current().to_vec();
        let mut set: Vec<usize> = if prev.is_empty() {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(&mut self.epoch_rng);
            all.truncate(st.cfg.validators);
            all
        } else {
            let mut keep = prev.clone();
            keep.shuffle(&mut self.epoch_rng);
            keep.truncate(prev.len().saturating_sub(st.cfg.rotate));
            let mut outsiders: Vec<usize> =
                (0..n).filter(|i| prev.binary_search(i).is_err()).collect();
            outsiders.shuffle(&mut self.epoch_rng);
            keep.extend(outsiders.into_iter().take(st.cfg.rotate));
            keep
        };
        set.sort_unstable();
        let joined = set
            .iter()
            .filter(|m| prev.binary_search(m).is_err())
            .count();
        st.sets.push_back(set.clone());
        let mut dropped = Vec::new();
        if st.sets.len() > st.kept_sets {
            if let Some(old) = st.sets.pop_front() {
                dropped = old
                    .into_iter()
                    .filter(|m| !st.sets.iter().any(|s| s.binary_search(m).is_ok()))
                    .collect();
            }
        }
        let now = self.now;
        let members = self.entries(&set);
        for i in 0..n {
            if !self.nodes[i].alive {
                continue;
            }
            let (primary, secondary) = if set.binary_search(&i).is_ok() {
                (members.clone(), Vec::new())
            } else {
                (Vec::new(), members.clone())
            };
            self.tracer.record(i, now, || Input::Track {
                id: e,
                primary: primary.clone(),
                secondary: secondary.clone(),
            });
            // Ids increase by construction; a refusal (a stopped core) changes nothing.
            let _ = self.nodes[i].core.handle_track(e, primary, secondary, now);
            self.after(i);
        }
        st.records.push(EpochRecord {
            id: e,
            start_ms: now.as_millis(),
            joined,
            dropped: dropped.len(),
            mesh_ms: None,
            dropped_ms: dropped.is_empty().then_some(0),
            overwritten: 0,
            overwrite_ms: None,
            cut_by_end: false,
        });
        st.pending = Pending {
            mesh: true,
            dropped,
            overwrite_at: None,
        };
        // Impersonators: outsiders of every kept set, each claiming a member's id.
        let outsiders: Vec<usize> = (0..n)
            .filter(|i| self.nodes[*i].alive && !st.sets.iter().any(|s| s.binary_search(i).is_ok()))
            .collect();
        let at = now + st.cfg.epoch / 4;
        if set.len() >= 2 && !outsiders.is_empty() {
            for _ in 0..st.cfg.impersonations {
                let from = *outsiders.choose(&mut self.epoch_rng).unwrap_or(&0);
                let pair: Vec<usize> = set
                    .choose_multiple(&mut self.epoch_rng, 2)
                    .copied()
                    .collect();
                let (to, claim) = (pair[0], pair[1]);
                self.schedule_impersonation(at, from, to, claim, self.addr(from));
            }
        }
        if st.cfg.overwrite > 0 {
            self.push(now + st.cfg.epoch / 2, Ev::Overwrite(e));
        }
        self.push(now + st.cfg.epoch, Ev::Epoch(e + 1));
        self.epochs = Some(st);
        self.ensure_check();
    }

    /// At `at` (plus the link's latency), `from` dials member `to` from `remote`,
    /// claiming `claim`'s id and port.
    fn schedule_impersonation(
        &mut self,
        at: Time,
        from: usize,
        to: usize,
        claim: usize,
        remote: SocketAddr,
    ) {
        let link = self.next_link;
        self.next_link += 1;
        self.links.insert(link, (from as u32, to as u32));
        if self.cfg.record_actions {
            // The member knows the impersonator at its IP and the claimed port.
            let claimed = SocketAddr::new(remote.ip(), self.addr(claim).port());
            self.link_points.insert(link, (claimed, self.addr(to)));
        }
        self.messages += 1;
        let t = at + self.latency(from, to);
        self.push(
            t,
            Ev::Impersonate {
                from,
                to,
                claim,
                link,
                remote,
            },
        );
    }

    /// Half-way through epoch `e`: `overwrite` members move; every node is told.
    pub(super) fn overwrite(&mut self, e: u64) {
        let Some(mut st) = self.epochs.take() else {
            return;
        };
        let current = st.records.last().is_some_and(|r| r.id == e);
        let alive: Vec<usize> = st
            .current()
            .iter()
            .copied()
            .filter(|m| self.nodes[*m].alive)
            .collect();
        if !current || alive.is_empty() {
            self.epochs = Some(st);
            return;
        }
        let mut movers: Vec<usize> = alive
            .choose_multiple(&mut self.epoch_rng, st.cfg.overwrite.min(alive.len()))
            .copied()
            .collect();
        movers.sort_unstable();
        let now = self.now;
        let mut old_addresses = Vec::with_capacity(movers.len());
        for &m in &movers {
            st.moves += 1;
            old_addresses.push(self.addr(m));
            let new = moved_addr(st.moves);
            if let Some(old) = self.moved[m] {
                self.moved_to.remove(&old);
            }
            self.moved[m] = Some(new);
            self.moved_to.insert(new, m);
            self.tracer
                .record(m, now, || Input::AddOwnPoint { point: new });
            self.nodes[m].core.add_own_point(new);
        }
        let addresses = self.entries(&movers);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            self.tracer.record(i, now, || Input::Overwrite {
                addresses: addresses.clone(),
            });
            let _ = self.nodes[i].core.handle_overwrite(addresses.clone(), now);
            self.after(i);
        }
        if let Some(r) = st.records.last_mut() {
            r.overwritten = movers.len();
        }
        // Whoever takes over a mover's old address claims its id to another member.
        for (&m, &old) in movers.iter().zip(&old_addresses) {
            let others: Vec<usize> = alive.iter().copied().filter(|j| *j != m).collect();
            if let Some(&to) = others.choose(&mut self.epoch_rng) {
                st.old_address_attempts += 1;
                self.schedule_impersonation(now, m, to, m, old);
            }
        }
        st.pending.overwrite_at = Some(now);
        self.epochs = Some(st);
        self.ensure_check();
    }

    /// An outsider's hello claiming `claim`'s id reaches member `to`.
    pub(super) fn impersonate(
        &mut self,
        from: usize,
        to: usize,
        claim: usize,
        link: u64,
        remote: SocketAddr,
    ) {
        let now = self.now;
        let hello = Hello {
            peer: self.nodes[claim].peer,
            listen_port: self.addr(claim).port(),
        };
        let Some(st) = self.epochs.as_mut() else {
            return;
        };
        st.attempts += 1;
        if !self.nodes[to].alive {
            self.links.remove(&link);
            return;
        }
        let conn = ConnId(link);
        self.tracer.record(to, now, || Input::Inbound {
            conn,
            remote,
            hello,
        });
        match self.nodes[to].core.handle_inbound(conn, remote, hello, now) {
            Admission::Accept => {
                st.admitted += 1;
                // The impersonator has made its point: it hangs up.
                self.send_msg(from, to, link, Msg::Close);
            }
            Admission::Refuse { .. } => {
                self.links.remove(&link);
            }
        }
        self.after(to);
    }

    /// Schedules a check if something is pending and none is scheduled.
    fn ensure_check(&mut self) {
        let now = self.now;
        if let Some(st) = self.epochs.as_mut() {
            if !st.checking && st.pending.any() {
                st.checking = true;
                self.push(now + CHECK_EVERY, Ev::EpochCheck);
            }
        }
    }

    /// Whether every alive member is connected, at its current address, to every other
    /// alive member (or to `primary_target` of them).
    fn meshed(&self, set: &[usize]) -> bool {
        let alive: Vec<usize> = set
            .iter()
            .copied()
            .filter(|m| self.nodes[*m].alive)
            .collect();
        let want = alive
            .len()
            .saturating_sub(1)
            .min(self.config.peer_sets.primary_target.unwrap_or(usize::MAX));
        alive.iter().all(|&m| {
            let pool = self.nodes[m].core.pool();
            alive
                .iter()
                .filter(|&&j| {
                    j != m && pool.connected_point_of(self.nodes[j].peer) == Some(self.addr(j))
                })
                .count()
                >= want
        })
    }

    /// Whether no alive member and no dropped node hold a connection between them, at
    /// either end.
    fn dropped_gone(&self, set: &[usize], dropped: &[usize]) -> bool {
        dropped.iter().all(|&d| {
            let dp = self.nodes[d].core.pool();
            set.iter().all(|&m| {
                let mp = self.nodes[m].core.pool();
                mp.connected_point_of(self.nodes[d].peer).is_none()
                    && dp.connected_point_of(self.nodes[m].peer).is_none()
            })
        })
    }

    pub(super) fn epoch_check(&mut self) {
        let Some(mut st) = self.epochs.take() else {
            return;
        };
        st.checking = false;
        let now = self.now;
        let start = st.records.last().map_or(0, |r| r.start_ms);
        let set = st.current().to_vec();
        if (st.pending.mesh || st.pending.overwrite_at.is_some()) && self.meshed(&set) {
            let r = st.records.last_mut();
            if let Some(r) = r {
                if st.pending.mesh {
                    r.mesh_ms = Some(now.as_millis() - start);
                }
                if let Some(t) = st.pending.overwrite_at {
                    r.overwrite_ms = Some(now.as_millis() - t.as_millis());
                }
            }
            st.pending.mesh = false;
            st.pending.overwrite_at = None;
        }
        if !st.pending.dropped.is_empty() && self.dropped_gone(&set, &st.pending.dropped) {
            if let Some(r) = st.records.last_mut() {
                r.dropped_ms = Some(now.as_millis() - start);
            }
            st.pending.dropped.clear();
        }
        self.epochs = Some(st);
        self.ensure_check();
    }
}
