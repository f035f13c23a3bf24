//! The address book's partition: where each point learned from the network may sit.
//!
//! Whoever controls the points a node dials controls what it sees (an eclipse). A flat
//! pool lets one source fill it, or push out, by sheer volume and freshness, everything
//! other sources taught us. Bitcoin Core's address manager answers with fixed positions,
//! and this module is the same idea (the layout, not its code):
//!
//! * The **new** side holds points only heard of. A point's position is a keyed hash of
//!   the *sender's* network group ([`super::netgroup`]) and the point's own group: one
//!   sender group reaches only `1/16` of the new side's buckets (one bucket per pair of
//!   groups), whatever it sends. A point that hashes onto an occupied position takes it
//!   only if the occupant is worthless (it failed [`TERRIBLE_FAILURES`] times, or was not
//!   heard of for [`STALE_AFTER`]); otherwise the newcomer is dropped, so an old point is
//!   not pushed out by a fresh flood.
//! * The **tried** side holds points that worked when we dialed them (a connection we
//!   made, not one made to us). A point's position is a keyed hash of its own group and
//!   address (a group reaches `1/32` of the tried buckets). When a point that just worked
//!   hashes onto an occupied position, the occupant is *tested* before it is evicted:
//!   the node dials it ([`super::Pool::collision_tests`]); if it answers, it stays and the
//!   newcomer stays on the new side; if it fails, or cannot be tested within
//!   [`TEST_TIMEOUT`], it goes back to the new side and the newcomer takes its place.
//!
//! The key is secret (drawn from the node's seed and kept in its saved pool), so an
//! attacker cannot choose addresses that land where it wants. Positions are 64 to a
//! bucket; the new side has room for half of `max_known_points`, the tried side for a
//! quarter, so that a book filled to the last position (by a flood) still leaves room
//! for the points that are not bucketed and never makes the pool garbage-collect what
//! the book holds. Hash positions collide: an honest network of `n` points fills about
//! `1 - e^(-n/positions)` of a side. The operator's points (trusted, bootstrap,
//! external) are never bucketed, nor are loopback and private addresses ([`bucketed`]).
//! Candidates on the tried side are dialed before those on the
//! new side ([`super::PointInfo`]'s rank).

use super::table::Id;
use super::Time;
use crate::rng::Fold;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Positions in a bucket.
pub const BUCKET: u32 = 64;
/// `place` of a point that is not in the book.
pub const NOWHERE: u32 = u32::MAX;
/// The bit of a `place` on the tried side.
pub const TRIED: u32 = 1 << 31;
/// Most tried-side collisions waiting for their test (Bitcoin Core keeps 10).
pub const MAX_COLLISIONS: usize = 16;
/// A collision whose occupant could not be tested within this time is resolved as if
/// the test had failed.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// An occupant that worked within this time is kept without a test.
pub const RECENTLY_GOOD: Duration = Duration::from_secs(4 * 3600);
/// A new-side point that failed this many times in a row gives its position to a newcomer.
pub const TERRIBLE_FAILURES: u32 = 3;
/// A new-side point not heard of for this long gives its position to a newcomer.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 86_400);
/// Buckets of the new side one sender group reaches: `1/NEW_SHARE` of them.
const NEW_SHARE: u32 = 16;
/// Buckets of the tried side one group reaches: `1/TRIED_SHARE` of them.
const TRIED_SHARE: u32 = 32;

/// Whether a point heard from the network at `addr` goes into the book: public addresses
/// only. A group of loopback or private addresses says nothing about who controls them
/// (a whole LAN, or every process of a machine, is one group), so such points, accepted
/// only where `allow_private_addresses` is on, stay in the flat pool.
pub fn bucketed(addr: &SocketAddr) -> bool {
    crate::core::intake::scope(addr.ip()) == Some(crate::core::intake::Scope::Public)
}

/// Whether `place` is on the new side.
pub fn is_new(place: u32) -> bool {
    place & TRIED == 0
}

/// Whether `place` is on the tried side.
pub fn is_tried(place: u32) -> bool {
    place != NOWHERE && place & TRIED != 0
}

/// A tried-side position waiting for its occupant's test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The point that worked and wants the position.
    pub(crate) newcomer: Id,
    /// When the collision was seen.
    pub(crate) since: Time,
}

/// The two sides' positions. Plain data: the pool keeps each point's `place` and this
/// table in step.
#[derive(Clone, Debug)]
pub(crate) struct Book {
    pub(crate) on: bool,
    key: u64,
    new_buckets: u32,
    tried_buckets: u32,
    /// Occupants of the new side's positions, then the tried side's; allocated at the
    /// first placement (a pool that never learns from the network pays nothing).
    slots: Vec<Id>,
    pub(crate) new_count: usize,
    pub(crate) tried_count: usize,
    /// By occupant (the tried point to test).
    pub(crate) collisions: BTreeMap<Id, Collision>,
}

const EMPTY: Id = Id::MAX;

impl Book {
    /// A book for a pool of `max_points` points; `on` false keeps it empty.
    pub(crate) fn new(max_points: usize, on: bool) -> Book {
        // Positions must stay below the TRIED bit on each side.
        const MAX_BUCKETS: usize = (TRIED / BUCKET) as usize / 2;
        let buckets = |share: usize| {
            (max_points / share)
                .div_ceil(BUCKET as usize)
                .clamp(1, MAX_BUCKETS) as u32
        };
        Book {
            on,
            key: 0,
            new_buckets: buckets(2),
            tried_buckets: buckets(4),
            slots: Vec::new(),
            new_count: 0,
            tried_count: 0,
            collisions: BTreeMap::new(),
        }
    }

    /// The secret key of the positions.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Sets the key. Only while the book is empty: positions depend on it.
    pub(crate) fn set_key(&mut self, key: u64) -> bool {
        if self.new_count + self.tried_count > 0 {
            return false;
        }
        self.key = key;
        true
    }

    fn new_len(&self) -> u32 {
        self.new_buckets * BUCKET
    }

    /// Positions on each side (new, tried).
    pub(crate) fn capacity(&self) -> (usize, usize) {
        (
            self.new_len() as usize,
            (self.tried_buckets * BUCKET) as usize,
        )
    }

    /// The new-side position of `addr` (in `group`) heard of from a sender in
    /// `sender_group`.
    pub(crate) fn new_place(&self, addr: &SocketAddr, group: u64, sender_group: u64) -> u32 {
        let per_sender = (self.new_buckets / NEW_SHARE).max(1);
        let k = Fold::new(self.key)
            .add(1)
            .add(group)
            .add(sender_group)
            .finish()
            % u64::from(per_sender);
        let bucket = Fold::new(self.key).add(2).add(sender_group).add(k).finish()
            % u64::from(self.new_buckets);
        let slot = position(self.key, 3, bucket, addr);
        bucket as u32 * BUCKET + slot
    }

    /// The tried-side position of `addr` (in `group`).
    pub(crate) fn tried_place(&self, addr: &SocketAddr, group: u64) -> u32 {
        let per_group = (self.tried_buckets / TRIED_SHARE).max(1);
        let k = super::point::scramble(addr, self.key ^ 4) % u64::from(per_group);
        let bucket =
            Fold::new(self.key).add(5).add(group).add(k).finish() % u64::from(self.tried_buckets);
        let slot = position(self.key, 6, bucket, addr);
        TRIED | (bucket as u32 * BUCKET + slot)
    }

    /// Whether `place` is a position of this book.
    pub(crate) fn valid(&self, place: u32) -> bool {
        if place == NOWHERE {
            return false;
        }
        let (new, tried) = self.capacity();
        if is_tried(place) {
            ((place & !TRIED) as usize) < tried
        } else {
            (place as usize) < new
        }
    }

    fn index(&self, place: u32) -> usize {
        if is_tried(place) {
            self.new_len() as usize + (place & !TRIED) as usize
        } else {
            place as usize
        }
    }

    /// Who sits at `place`.
    pub(crate) fn at(&self, place: u32) -> Option<Id> {
        if !self.valid(place) || self.slots.is_empty() {
            return None;
        }
        let id = self.slots[self.index(place)];
        (id != EMPTY).then_some(id)
    }

    /// Puts `id` at the free position `place`.
    pub(crate) fn put(&mut self, place: u32, id: Id) {
        debug_assert!(self.valid(place) && self.at(place).is_none());
        if self.slots.is_empty() {
            let (new, tried) = self.capacity();
            self.slots = vec![EMPTY; new + tried];
        }
        let i = self.index(place);
        self.slots[i] = id;
        if is_tried(place) {
            self.tried_count += 1;
        } else {
            self.new_count += 1;
        }
    }

    /// Frees `place` (held by `id`), and forgets the collisions `id` is part of.
    pub(crate) fn clear(&mut self, place: u32, id: Id) {
        if self.at(place) == Some(id) {
            let i = self.index(place);
            self.slots[i] = EMPTY;
            if is_tried(place) {
                self.tried_count -= 1;
            } else {
                self.new_count -= 1;
            }
        }
        self.collisions.remove(&id);
        self.collisions.retain(|_, c| c.newcomer != id);
    }

    /// Every occupied position and its occupant (for checks).
    pub(crate) fn occupied(&self) -> impl Iterator<Item = (u32, Id)> + '_ {
        let new = self.new_len() as usize;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, id)| **id != EMPTY)
            .map(move |(i, id)| {
                let place = if i < new {
                    i as u32
                } else {
                    TRIED | (i - new) as u32
                };
                (place, *id)
            })
    }
}

impl super::Pool {
    /// How many points sit on each side of the address book (new, tried).
    pub fn book_counts(&self) -> (usize, usize) {
        (self.book.new_count, self.book.tried_count)
    }

    /// Tried-side collisions waiting for their test.
    pub fn collisions_pending(&self) -> usize {
        self.book.collisions.len()
    }

    /// Whether a tried point waiting for its test is being dialed (its test is running).
    pub fn collision_test_running(&self) -> bool {
        self.book
            .collisions
            .keys()
            .any(|id| self.points.info(*id).dialing)
    }

    /// The secret key of the address book's positions (kept in snapshots, so that a
    /// restarted node finds its points where it left them).
    pub fn book_key(&self) -> u64 {
        self.book.key()
    }

    /// A connection we dialed to `addr` opened: a point on the new side moves to the tried
    /// side, or, when its tried position is held by a point not connected now, a
    /// collision is recorded for that point to be tested ([`Self::collision_tests`]).
    pub(super) fn promote(&mut self, addr: SocketAddr, now: Time) {
        let Some(id) = self.points.id(&addr) else {
            return;
        };
        if !self.book.on || !is_new(self.points.info(id).place) {
            return;
        }
        let place = self.book.tried_place(&addr, self.group(&addr));
        match self.book.at(place) {
            None => self.move_to(addr, id, place),
            Some(held) if held == id => {}
            Some(held) => {
                let busy = self.points.info(held).state == super::PointState::Connected;
                if !busy
                    && self.book.collisions.len() < MAX_COLLISIONS
                    && !self.book.collisions.contains_key(&held)
                {
                    self.book.collisions.insert(
                        held,
                        Collision {
                            newcomer: id,
                            since: now,
                        },
                    );
                }
            }
        }
    }

    /// Moves point `id` (at `addr`) to the free position `place`.
    fn move_to(&mut self, addr: SocketAddr, id: Id, place: u32) {
        let old = self.points.info(id).place;
        if old != NOWHERE {
            self.book.clear(old, id);
        }
        self.book.put(place, id);
        self.update(addr, |p| p.place = place);
    }

    /// Settles the tried-side collisions at `now` and returns the occupants to test now
    /// (dial them: if the dial connects the occupant stays; if it fails, the next call
    /// evicts it). An occupant connected, or that worked within [`RECENTLY_GOOD`], stays
    /// untested; one that failed since the collision, or could not be tested within
    /// [`TEST_TIMEOUT`], goes back to the new side (or is dropped when its new position is
    /// held) and the newcomer takes its place. At most [`MAX_COLLISIONS`] are pending.
    pub fn collision_tests(&mut self, now: Time) -> Vec<SocketAddr> {
        if self.book.collisions.is_empty() {
            return Vec::new();
        }
        let now = now.max(self.clock);
        let pending: Vec<(Id, Collision)> =
            self.book.collisions.iter().map(|(k, c)| (*k, *c)).collect();
        let mut tests = Vec::new();
        for (held, c) in pending {
            if self.book.collisions.get(&held) != Some(&c) {
                continue; // settled meanwhile (a point removed by an eviction)
            }
            let new_addr = self.points.addr(c.newcomer);
            let place = self.book.tried_place(&new_addr, self.group(&new_addr));
            if !is_new(self.points.info(c.newcomer).place) || self.book.at(place) != Some(held) {
                self.book.collisions.remove(&held);
                continue;
            }
            let p = self.points.info(held);
            let since = c.since;
            let alive = p.state == super::PointState::Connected
                || p.last_success()
                    .is_some_and(|t| t >= since || now.saturating_since(t) < RECENTLY_GOOD);
            if alive {
                self.book.collisions.remove(&held);
                self.stats.tried_kept += 1;
                continue;
            }
            if p.dialing {
                continue;
            }
            let failed = p.last_failure().is_some_and(|t| t >= since);
            if failed || now.saturating_since(since) >= TEST_TIMEOUT {
                self.book.collisions.remove(&held);
                self.evict_tried(held, now);
                if self.book.at(place).is_none() && self.points.id(&new_addr) == Some(c.newcomer) {
                    self.move_to(new_addr, c.newcomer, place);
                }
                continue;
            }
            let held_addr = self.points.addr(held);
            if p.state == super::PointState::Disconnected
                && p.next_dial <= now
                && !self.is_ip_greylisted(held_addr.ip(), now)
            {
                tests.push(held_addr);
            }
        }
        tests
    }

    /// The tried point `id` failed its test: back to the new side (as its own source), or
    /// dropped when that position is held by a point worth keeping.
    fn evict_tried(&mut self, id: Id, now: Time) {
        self.stats.tried_evicted += 1;
        let addr = self.points.addr(id);
        let group = self.group(&addr);
        let place = self.book.new_place(&addr, group, group);
        if let Some(held) = self.book.at(place) {
            if !self.worthless(held, now) {
                self.remove_point(addr);
                return;
            }
            let old = self.points.addr(held);
            self.remove_point(old);
        }
        self.move_to(addr, id, place);
    }
}

fn position(key: u64, what: u64, bucket: u64, addr: &SocketAddr) -> u32 {
    (super::point::scramble(addr, Fold::new(key).add(what).add(bucket).finish())
        % u64::from(BUCKET)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::netgroup;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_sender_group_reaches_a_sixteenth_of_the_new_side() {
        let mut book = Book::new(400_000, true);
        book.set_key(7);
        let (new, _) = book.capacity();
        let mut buckets = std::collections::BTreeSet::new();
        let sender = netgroup(&a("203.0.113.9:1"));
        for i in 0..20_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i * 4099);
            let a = SocketAddr::from((ip, 9732));
            let p = book.new_place(&a, netgroup(&a), sender);
            assert!(book.valid(p) && is_new(p));
            buckets.insert(p / BUCKET);
        }
        let total = new as u32 / BUCKET;
        assert!(
            buckets.len() as u32 <= (total / NEW_SHARE).max(1),
            "{}",
            buckets.len()
        );
    }

    #[test]
    fn positions_depend_on_the_key() {
        let mut x = Book::new(4000, true);
        let mut y = Book::new(4000, true);
        x.set_key(1);
        y.set_key(2);
        let differ = (0..64u8)
            .filter(|i| {
                let p = a(&format!("198.51.{i}.1:9732"));
                x.tried_place(&p, netgroup(&p)) != y.tried_place(&p, netgroup(&p))
            })
            .count();
        assert!(differ > 48);
    }

    #[test]
    fn put_at_clear_keep_counts() {
        let mut b = Book::new(4000, true);
        let p = b.tried_place(&a("198.51.100.1:1"), 7);
        assert!(is_tried(p) && b.valid(p));
        assert_eq!(b.at(p), None);
        b.put(p, 5);
        assert_eq!((b.at(p), b.tried_count), (Some(5), 1));
        b.clear(p, 5);
        assert_eq!((b.at(p), b.tried_count), (None, 0));
        assert!(!b.valid(NOWHERE) && !is_tried(NOWHERE) && !is_new(NOWHERE));
    }
}
