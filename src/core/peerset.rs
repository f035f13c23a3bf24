//! Peer sets by epoch: commonware's `track(id, primary, secondary)` and
//! `overwrite(addresses)`, as plain data.
//!
//! A consensus engine tells its network who the peers of each epoch are. [`PeerSets`]
//! keeps what it was told and says what changes; the node core
//! ([`NodeCore::handle_track`](super::NodeCore::handle_track),
//! [`NodeCore::handle_overwrite`](super::NodeCore::handle_overwrite)) turns the changes
//! into dials and closes. The rules, after commonware's `lookup` tracker:
//!
//! * **Ids strictly increase.** A set is registered under an id (the epoch); an id at or
//!   below the latest one is an error ([`PeerSetError::StaleId`]), never a panic. The set
//!   with the highest id is the **active** set.
//! * **The last few sets are kept** ([`PeerSetConfig::kept_sets`], 4 by default as in
//!   commonware): a peer is **tracked** while it is in any kept set, so an epoch change
//!   does not drop the previous epoch's peers while they may still be needed (a
//!   reshare, the end of the previous epoch's work). A peer that leaves every kept set is
//!   **untracked**: the core closes its connection with
//!   [`CloseReason::Untracked`](crate::pool::CloseReason::Untracked).
//! * **Primaries and secondaries.** A peer that is a primary of any kept set is a primary
//!   (as commonware dials a peer with any primary membership); a peer in both lists of a
//!   set is a primary. Primaries are dialed (up to
//!   [`PeerSetConfig::primary_target`]) and never trimmed; secondaries are admitted and
//!   kept, never dialed.
//! * **One address per peer.** Each tracked peer has one address, the latest given (by
//!   `track` or `overwrite`). A changed address is a [`Readdressed`]: the core severs a
//!   connection on the old address
//!   ([`CloseReason::AddressChanged`](crate::pool::CloseReason::AddressChanged)), dials
//!   the new one if the peer is a primary, and admits the peer inbound from the new
//!   address's IP only ([`PeerSets::acceptable`]). `overwrite` changes addresses of
//!   tracked peers only (others are ignored and counted), without a new set.
//! * **Bounded.** At most `kept_sets` sets of at most `max_set_size` peers each (a larger
//!   set is an error), at most `max_overwrite` addresses per overwrite; a call that breaks
//!   a bound, or names a peer twice with two addresses, changes nothing.
//!
//! ```
//! use peerkeeper::core::peerset::{PeerSets, PeerSetError};
//! use peerkeeper::{PeerId, PeerSetConfig};
//! let a = |i: u8| std::net::SocketAddr::from(([10, 0, 0, i], 9000));
//! let mut sets = PeerSets::new(&PeerSetConfig { kept_sets: 2, ..PeerSetConfig::default() });
//! sets.track(1, vec![(PeerId::from_u64(1), a(1)), (PeerId::from_u64(2), a(2))], vec![]).unwrap();
//! // Epoch 2 drops peer 2: still tracked, the set of epoch 1 is kept.
//! sets.track(2, vec![(PeerId::from_u64(1), a(1))], vec![(PeerId::from_u64(3), a(3))]).unwrap();
//! assert!(sets.is_tracked(PeerId::from_u64(2)) && sets.is_primary(PeerId::from_u64(2)));
//! // Epoch 3: the set of epoch 1 goes, and peer 2 with it.
//! let c = sets.track(3, vec![(PeerId::from_u64(1), a(1))], vec![]).unwrap();
//! assert_eq!(c.untracked, vec![(PeerId::from_u64(2), a(2))]);
//! assert_eq!(sets.track(3, vec![], vec![]), Err(PeerSetError::StaleId { id: 3, latest: 3 }));
//! ```

use crate::config::PeerSetConfig;
use crate::pool::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Why a `track` or `overwrite` was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerSetError {
    /// The id is not above the latest one tracked.
    #[error("peer set id {id} is not above the latest one ({latest})")]
    StaleId {
        /// The id given.
        id: u64,
        /// The latest id tracked.
        latest: u64,
    },
    /// The set holds more peers than `peer_sets.max_set_size`.
    #[error("peer set of {size} peers is larger than peer_sets.max_set_size ({max})")]
    TooLarge {
        /// Peers given (primaries and secondaries, duplicates counted).
        size: usize,
        /// The bound.
        max: usize,
    },
    /// The overwrite holds more addresses than `peer_sets.max_overwrite`.
    #[error("overwrite of {size} addresses is larger than peer_sets.max_overwrite ({max})")]
    TooManyAddresses {
        /// Addresses given.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// The same peer was given two different addresses in one call.
    #[error("peer {peer} is given two addresses ({first} and {second})")]
    ConflictingAddresses {
        /// Which peer.
        peer: PeerId,
        /// One address.
        first: SocketAddr,
        /// The other.
        second: SocketAddr,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// A tracked peer whose address changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readdressed {
    /// Which peer.
    pub peer: PeerId,
    /// Its address until now.
    pub old: SocketAddr,
    /// Its address from now on.
    pub new: SocketAddr,
}

/// What a `track` or an `overwrite` changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SetChanges {
    /// Peers tracked now that were not before, ordered.
    pub added: Vec<PeerId>,
    /// Tracked peers whose address changed, ordered by peer.
    pub readdressed: Vec<Readdressed>,
    /// Peers no kept set holds any more, with their last address, ordered.
    pub untracked: Vec<(PeerId, SocketAddr)>,
    /// Ids of the sets dropped (the oldest, past `kept_sets`).
    pub dropped_sets: Vec<u64>,
    /// `overwrite`: addresses of peers not tracked, ignored.
    pub ignored: usize,
}

/// What is known of one tracked peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tracked {
    /// Its address (the latest given).
    pub address: SocketAddr,
    /// In how many kept sets it is a primary.
    pub primary_sets: u32,
    /// In how many kept sets it is a secondary only.
    pub secondary_sets: u32,
}

impl Tracked {
    /// Whether it is a primary of some kept set.
    pub fn is_primary(&self) -> bool {
        self.primary_sets > 0
    }
}

/// One tracked set: its id, its primaries, and its secondaries that are not primaries
/// (both sorted, without duplicates).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerSet {
    /// The id (epoch).
    pub id: u64,
    /// Its primaries.
    pub primary: Vec<PeerId>,
    /// Its secondaries (not primaries of this set).
    pub secondary: Vec<PeerId>,
}

/// The tracked peer sets. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct PeerSets {
    kept: usize,
    max_set_size: usize,
    max_overwrite: usize,
    sets: VecDeque<PeerSet>,
    peers: BTreeMap<PeerId, Tracked>,
    latest: Option<u64>,
}

impl PeerSets {
    /// No set tracked yet, with the bounds of `config`.
    pub fn new(config: &PeerSetConfig) -> PeerSets {
        PeerSets {
            kept: config.kept_sets.max(1),
            max_set_size: config.max_set_size,
            max_overwrite: config.max_overwrite,
            sets: VecDeque::new(),
            peers: BTreeMap::new(),
            latest: None,
        }
    }

    /// Registers a set under `id`, above every id so far; it becomes the active set. The
    /// oldest sets past `kept_sets` are dropped. Returns what changed; on an error nothing
    /// did.
    ///
    /// # Errors
    ///
    /// [`PeerSetError::StaleId`] for an id at or below the latest;
    /// [`PeerSetError::TooLarge`] for more than `max_set_size` peers;
    /// [`PeerSetError::ConflictingAddresses`] for a peer given two addresses.
    pub fn track(
        &mut self,
        id: u64,
        primary: Vec<(PeerId, SocketAddr)>,
        secondary: Vec<(PeerId, SocketAddr)>,
    ) -> Result<SetChanges, PeerSetError> {
        if let Some(latest) = self.latest.filter(|l| id <= *l) {
            return Err(PeerSetError::StaleId { id, latest });
        }
        let size = primary.len().saturating_add(secondary.len());
        if size > self.max_set_size {
            return Err(PeerSetError::TooLarge {
                size,
                max: self.max_set_size,
            });
        }
        // Every peer of the set with its address and whether it is a primary here.
        let mut given: BTreeMap<PeerId, (SocketAddr, bool)> = BTreeMap::new();
        for (list, is_primary) in [(&primary, true), (&secondary, false)] {
            for &(peer, addr) in list {
                match given.get_mut(&peer) {
                    Some((a, _)) if *a != addr => {
                        return Err(PeerSetError::ConflictingAddresses {
                            peer,
                            first: *a,
                            second: addr,
                        })
                    }
                    Some((_, p)) => *p |= is_primary,
                    None => {
                        given.insert(peer, (addr, is_primary));
                    }
                }
            }
        }
        let mut changes = SetChanges::default();
        let mut set = PeerSet {
            id,
            primary: Vec::new(),
            secondary: Vec::new(),
        };
        for (peer, (address, is_primary)) in given {
            let t = self.peers.entry(peer).or_insert_with(|| {
                changes.added.push(peer);
                Tracked {
                    address,
                    primary_sets: 0,
                    secondary_sets: 0,
                }
            });
            if t.address != address {
                changes.readdressed.push(Readdressed {
                    peer,
                    old: t.address,
                    new: address,
                });
                t.address = address;
            }
            if is_primary {
                t.primary_sets += 1;
                set.primary.push(peer);
            } else {
                t.secondary_sets += 1;
                set.secondary.push(peer);
            }
        }
        self.sets.push_back(set);
        self.latest = Some(id);
        while self.sets.len() > self.kept {
            let Some(old) = self.sets.pop_front() else {
                break;
            };
            changes.dropped_sets.push(old.id);
            for (list, is_primary) in [(old.primary, true), (old.secondary, false)] {
                for peer in list {
                    let Some(t) = self.peers.get_mut(&peer) else {
                        continue;
                    };
                    if is_primary {
                        t.primary_sets = t.primary_sets.saturating_sub(1);
                    } else {
                        t.secondary_sets = t.secondary_sets.saturating_sub(1);
                    }
                    if t.primary_sets == 0 && t.secondary_sets == 0 {
                        changes.untracked.push((peer, t.address));
                        self.peers.remove(&peer);
                    }
                }
            }
        }
        changes.untracked.sort_unstable();
        Ok(changes)
    }

    /// Changes the addresses of tracked peers, without a new set. Addresses of peers not
    /// tracked are ignored (counted in [`SetChanges::ignored`]); an unchanged address
    /// changes nothing. Returns the peers whose address changed.
    ///
    /// # Errors
    ///
    /// [`PeerSetError::TooManyAddresses`] for more than `max_overwrite` addresses;
    /// [`PeerSetError::ConflictingAddresses`] for a peer given two addresses.
    pub fn overwrite(
        &mut self,
        addresses: Vec<(PeerId, SocketAddr)>,
    ) -> Result<SetChanges, PeerSetError> {
        if addresses.len() > self.max_overwrite {
            return Err(PeerSetError::TooManyAddresses {
                size: addresses.len(),
                max: self.max_overwrite,
            });
        }
        let mut given: BTreeMap<PeerId, SocketAddr> = BTreeMap::new();
        for (peer, addr) in addresses {
            match given.get(&peer) {
                Some(a) if *a != addr => {
                    return Err(PeerSetError::ConflictingAddresses {
                        peer,
                        first: *a,
                        second: addr,
                    })
                }
                _ => {
                    given.insert(peer, addr);
                }
            }
        }
        let mut changes = SetChanges::default();
        for (peer, new) in given {
            match self.peers.get_mut(&peer) {
                None => changes.ignored += 1,
                Some(t) if t.address == new => {}
                Some(t) => {
                    changes.readdressed.push(Readdressed {
                        peer,
                        old: t.address,
                        new,
                    });
                    t.address = new;
                }
            }
        }
        Ok(changes)
    }

    /// The latest id tracked (the active set's), if any.
    pub fn latest_id(&self) -> Option<u64> {
        self.latest
    }

    /// The active set (the highest id), if any.
    pub fn active(&self) -> Option<&PeerSet> {
        self.sets.back()
    }

    /// The kept sets, oldest first.
    pub fn sets(&self) -> impl Iterator<Item = &PeerSet> + '_ {
        self.sets.iter()
    }

    /// What is known of `peer`, if it is tracked.
    pub fn get(&self, peer: PeerId) -> Option<&Tracked> {
        self.peers.get(&peer)
    }

    /// Whether `peer` is in a kept set.
    pub fn is_tracked(&self, peer: PeerId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// Whether `peer` is a primary of a kept set.
    pub fn is_primary(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(Tracked::is_primary)
    }

    /// The address of a tracked peer.
    pub fn address_of(&self, peer: PeerId) -> Option<SocketAddr> {
        self.peers.get(&peer).map(|t| t.address)
    }

    /// Whether `peer` may connect to us from `ip`: it is tracked and, with `check_ip`,
    /// `ip` is its address's IP.
    pub fn acceptable(&self, peer: PeerId, ip: IpAddr, check_ip: bool) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|t| !check_ip || t.address.ip() == ip)
    }

    /// The tracked peers, ordered.
    pub fn tracked(&self) -> impl Iterator<Item = (PeerId, &Tracked)> + '_ {
        self.peers.iter().map(|(p, t)| (*p, t))
    }

    /// The primaries with their addresses, ordered by peer.
    pub fn primaries(&self) -> impl Iterator<Item = (PeerId, SocketAddr)> + '_ {
        self.peers
            .iter()
            .filter(|(_, t)| t.is_primary())
            .map(|(p, t)| (*p, t.address))
    }

    /// How many peers are tracked.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Checks the counts against the kept sets (for tests; `O(n)`).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        assert!(self.sets.len() <= self.kept);
        let mut counts: BTreeMap<PeerId, (u32, u32)> = BTreeMap::new();
        let mut last = None;
        for s in &self.sets {
            assert!(last.is_none_or(|l| l < s.id), "set ids not increasing");
            last = Some(s.id);
            assert!(s.primary.len() + s.secondary.len() <= self.max_set_size);
            for p in &s.primary {
                counts.entry(*p).or_default().0 += 1;
                assert!(!s.secondary.contains(p), "{p} both primary and secondary");
            }
            for p in &s.secondary {
                counts.entry(*p).or_default().1 += 1;
            }
        }
        assert_eq!(last, self.sets.back().map(|s| s.id));
        assert!(self.sets.is_empty() || self.latest == last);
        assert_eq!(
            counts.len(),
            self.peers.len(),
            "tracked peers and sets disagree"
        );
        for (p, (prim, sec)) in counts {
            let t = self.peers.get(&p).expect("a peer of a set is tracked");
            assert_eq!((t.primary_sets, t.secondary_sets), (prim, sec), "{p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 9000))
    }

    fn sets(kept: usize) -> PeerSets {
        PeerSets::new(&PeerSetConfig {
            kept_sets: kept,
            max_set_size: 8,
            max_overwrite: 4,
            ..PeerSetConfig::default()
        })
    }

    #[test]
    fn ids_strictly_increase() {
        let mut s = sets(3);
        assert!(s
            .track(5, vec![(PeerId::from_u64(1), a(1))], vec![])
            .is_ok());
        assert_eq!(
            s.track(5, vec![], vec![]),
            Err(PeerSetError::StaleId { id: 5, latest: 5 })
        );
        assert_eq!(
            s.track(4, vec![], vec![]),
            Err(PeerSetError::StaleId { id: 4, latest: 5 })
        );
        // Gaps are fine.
        assert!(s.track(9, vec![], vec![]).is_ok());
        assert_eq!(s.latest_id(), Some(9));
        s.check_invariants();
    }

    #[test]
    fn the_highest_id_is_active() {
        let mut s = sets(3);
        s.track(1, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        s.track(
            2,
            vec![(PeerId::from_u64(2), a(2))],
            vec![(PeerId::from_u64(3), a(3))],
        )
        .unwrap();
        let active = s.active().unwrap();
        assert_eq!(active.id, 2);
        assert_eq!(active.primary, vec![PeerId::from_u64(2)]);
        assert_eq!(active.secondary, vec![PeerId::from_u64(3)]);
    }

    #[test]
    fn a_peer_in_both_lists_is_a_primary() {
        let mut s = sets(3);
        s.track(
            1,
            vec![(PeerId::from_u64(1), a(1))],
            vec![(PeerId::from_u64(1), a(1))],
        )
        .unwrap();
        assert!(s.is_primary(PeerId::from_u64(1)));
        assert!(s.active().unwrap().secondary.is_empty());
        s.check_invariants();
    }

    #[test]
    fn a_primary_of_an_older_kept_set_stays_primary() {
        let mut s = sets(2);
        s.track(1, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        s.track(2, vec![], vec![(PeerId::from_u64(1), a(1))])
            .unwrap();
        assert!(s.is_primary(PeerId::from_u64(1)));
        let c = s
            .track(3, vec![], vec![(PeerId::from_u64(1), a(1))])
            .unwrap();
        assert!(c.untracked.is_empty());
        assert!(s.is_tracked(PeerId::from_u64(1)) && !s.is_primary(PeerId::from_u64(1)));
        s.check_invariants();
    }

    #[test]
    fn leaving_every_kept_set_untracks() {
        let mut s = sets(2);
        s.track(
            1,
            vec![(PeerId::from_u64(1), a(1)), (PeerId::from_u64(2), a(2))],
            vec![],
        )
        .unwrap();
        let c = s
            .track(2, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        assert!(c.untracked.is_empty() && c.dropped_sets.is_empty());
        assert!(s.is_tracked(PeerId::from_u64(2)));
        let c = s
            .track(3, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        assert_eq!(c.dropped_sets, vec![1]);
        assert_eq!(c.untracked, vec![(PeerId::from_u64(2), a(2))]);
        assert!(!s.is_tracked(PeerId::from_u64(2)));
        s.check_invariants();
    }

    #[test]
    fn bounds_and_conflicts_change_nothing() {
        let mut s = sets(2);
        s.track(1, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        let big: Vec<_> = (1..=9).map(|i| (PeerId::from_u64(i), a(i as u8))).collect();
        assert_eq!(
            s.track(2, big, vec![]),
            Err(PeerSetError::TooLarge { size: 9, max: 8 })
        );
        assert!(matches!(
            s.track(
                2,
                vec![(PeerId::from_u64(2), a(2))],
                vec![(PeerId::from_u64(2), a(3))]
            ),
            Err(PeerSetError::ConflictingAddresses { .. })
        ));
        assert_eq!(s.latest_id(), Some(1));
        assert_eq!(s.len(), 1);
        let many: Vec<_> = (1..=5).map(|i| (PeerId::from_u64(i), a(i as u8))).collect();
        assert!(matches!(
            s.overwrite(many),
            Err(PeerSetError::TooManyAddresses { size: 5, max: 4 })
        ));
        assert_eq!(s.address_of(PeerId::from_u64(1)), Some(a(1)));
        s.check_invariants();
    }

    #[test]
    fn overwrite_readdresses_tracked_peers_only() {
        let mut s = sets(2);
        s.track(
            1,
            vec![(PeerId::from_u64(1), a(1))],
            vec![(PeerId::from_u64(2), a(2))],
        )
        .unwrap();
        let c = s
            .overwrite(vec![
                (PeerId::from_u64(1), a(11)),
                (PeerId::from_u64(2), a(2)),
                (PeerId::from_u64(7), a(7)),
            ])
            .unwrap();
        assert_eq!(
            c.readdressed,
            vec![Readdressed {
                peer: PeerId::from_u64(1),
                old: a(1),
                new: a(11)
            }]
        );
        assert_eq!(c.ignored, 1);
        assert_eq!(s.address_of(PeerId::from_u64(1)), Some(a(11)));
        assert!(s.acceptable(PeerId::from_u64(1), a(11).ip(), true));
        assert!(!s.acceptable(PeerId::from_u64(1), a(1).ip(), true));
        assert!(s.acceptable(PeerId::from_u64(1), a(1).ip(), false));
        assert!(!s.is_tracked(PeerId::from_u64(7)));
        s.check_invariants();
    }

    #[test]
    fn track_with_a_new_address_readdresses() {
        let mut s = sets(3);
        s.track(1, vec![(PeerId::from_u64(1), a(1))], vec![])
            .unwrap();
        let c = s
            .track(2, vec![(PeerId::from_u64(1), a(9))], vec![])
            .unwrap();
        assert_eq!(c.readdressed.len(), 1);
        assert!(c.added.is_empty());
        assert_eq!(s.address_of(PeerId::from_u64(1)), Some(a(9)));
    }
}
