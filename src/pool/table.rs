//! The point table: every known point's [`PointInfo`], stored compactly.
//!
//! A `HashMap<SocketAddr, PointInfo>` costs about twice its entries' size at some sizes
//! (power-of-two buckets at most 7/8 full), and every index keyed by `SocketAddr` repeats
//! the 32-byte address. Here each point lives once in a slot of fixed-size chunks (no
//! doubling, no copy on growth) and is named everywhere else by its 4-byte slot id:
//!
//! * `heads` maps a 64-bit keyed hash of the address to the first slot with that hash
//!   (16 bytes a bucket: no address copy in the index); the rare slots sharing a hash are
//!   chained through `next`. The hash key is random per table, so nobody can choose
//!   colliding addresses.
//! * A removed point's slot goes to a free list and is reused by the next insertion.
//!
//! Nothing here iterates in hash order: lookups only. Iteration ([`PointTable::iter`]) is
//! in slot order, which depends only on the sequence of insertions and removals.
//!
//! The full `SocketAddr` is compared on lookup (IPv6 flow info and scope id included), so
//! two addresses that differ only there are two points, as they were with a
//! `HashMap<SocketAddr, _>`.

use super::point::PointInfo;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::SocketAddr;

/// The hasher of `heads`, whose keys are already keyed hashes of addresses (uniform, and
/// secret to this table): hashing them again would only cost time.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in, to stay correct.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A slot id: names a point inside the pool's indexes.
pub(crate) type Id = u32;

const NONE: Id = Id::MAX;
/// Slots per chunk: a chunk (but the first) is allocated whole and never grows, so
/// nothing large is ever copied, and at most one chunk is partly empty (a million points
/// need 3,907 chunks). Smaller chunks cost a cache miss more per lookup in large pools
/// (64 slots: +20% on `advance`).
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;
/// The first chunk's first size, and what it grows by.
const FIRST_GROWTH: usize = 32;

#[derive(Clone, Debug)]
struct Slot {
    addr: SocketAddr,
    info: PointInfo,
    /// The next slot whose address has the same hash, or `NONE`.
    next: Id,
}

/// Points by address, and by slot id. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct PointTable {
    hasher: RandomState,
    heads: HashMap<u64, Id, BuildHasherDefault<Prehashed>>,
    chunks: Vec<Vec<Option<Slot>>>,
    free: Vec<Id>,
    len: usize,
}

impl PointTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, addr: &SocketAddr) -> u64 {
        self.hasher.hash_one(addr)
    }

    fn slot(&self, id: Id) -> &Slot {
        self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
            .as_ref()
            .expect("a live slot id")
    }

    fn slot_mut(&mut self, id: Id) -> &mut Slot {
        self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
            .as_mut()
            .expect("a live slot id")
    }

    /// The slot of `addr`, if known.
    pub(crate) fn id(&self, addr: &SocketAddr) -> Option<Id> {
        let mut id = *self.heads.get(&self.hash(addr))?;
        loop {
            let s = self.slot(id);
            if s.addr == *addr {
                return Some(id);
            }
            if s.next == NONE {
                return None;
            }
            id = s.next;
        }
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&PointInfo> {
        self.id(addr).map(|id| &self.slot(id).info)
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.id(addr).is_some()
    }

    pub(crate) fn addr(&self, id: Id) -> SocketAddr {
        self.slot(id).addr
    }

    /// The point in slot `id`, if the slot is live.
    pub(crate) fn try_get(&self, id: Id) -> Option<(SocketAddr, &PointInfo)> {
        self.chunks
            .get((id >> CHUNK_BITS) as usize)?
            .get(id as usize & (CHUNK - 1))?
            .as_ref()
            .map(|s| (s.addr, &s.info))
    }

    /// The point's record, to change fields the indexes do not depend on.
    pub(crate) fn info_mut(&mut self, id: Id) -> &mut PointInfo {
        &mut self.slot_mut(id).info
    }

    pub(crate) fn info(&self, id: Id) -> &PointInfo {
        &self.slot(id).info
    }

    pub(crate) fn set_info(&mut self, id: Id, info: PointInfo) {
        self.slot_mut(id).info = info;
    }

    /// One past the largest slot id handed out so far.
    pub(crate) fn id_bound(&self) -> Id {
        let used =
            self.chunks.len().saturating_sub(1) * CHUNK + self.chunks.last().map_or(0, Vec::len);
        Id::try_from(used).unwrap_or(NONE)
    }

    /// Adds `addr`, which must not be present; returns its slot.
    pub(crate) fn insert(&mut self, addr: SocketAddr, info: PointInfo) -> Id {
        debug_assert!(!self.contains(&addr));
        let h = self.hash(&addr);
        let next = self.heads.get(&h).copied().unwrap_or(NONE);
        let slot = Some(Slot { addr, info, next });
        let id = if let Some(id) = self.free.pop() {
            self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)] = slot;
            id
        } else {
            if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                // The first chunk starts small and grows a few slots at a time (a simulated
                // node holds a few hundred points: its memory follows what it holds);
                // every later chunk is allocated whole.
                let first = self.chunks.is_empty();
                self.chunks
                    .push(Vec::with_capacity(if first { FIRST_GROWTH } else { CHUNK }));
            }
            let chunk = self.chunks.last_mut().expect("a chunk");
            if chunk.len() == chunk.capacity() {
                chunk.reserve_exact(FIRST_GROWTH.min(CHUNK - chunk.len()));
            }
            let id =
                ((self.chunks.len() - 1) << CHUNK_BITS) | self.chunks.last().map_or(0, Vec::len);
            let id = Id::try_from(id).expect("fewer than 2^32 points");
            assert!(id != NONE, "fewer than 2^32 - 1 points");
            self.chunks.last_mut().expect("a chunk").push(slot);
            id
        };
        self.heads.insert(h, id);
        self.len += 1;
        id
    }

    /// Removes `addr`; returns its former slot and info.
    pub(crate) fn remove(&mut self, addr: &SocketAddr) -> Option<(Id, PointInfo)> {
        let h = self.hash(addr);
        let mut prev = NONE;
        let mut id = *self.heads.get(&h)?;
        loop {
            let s = self.slot(id);
            if s.addr == *addr {
                break;
            }
            if s.next == NONE {
                return None;
            }
            prev = id;
            id = s.next;
        }
        let slot = self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
            .take()
            .expect("a live slot id");
        if prev != NONE {
            self.slot_mut(prev).next = slot.next;
        } else if slot.next == NONE {
            self.heads.remove(&h);
        } else {
            self.heads.insert(h, slot.next);
        }
        self.free.push(id);
        self.len -= 1;
        Some((id, slot.info))
    }

    /// Every point, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Id, SocketAddr, &PointInfo)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk.iter().enumerate().filter_map(move |(i, s)| {
                s.as_ref()
                    .map(|s| (((c << CHUNK_BITS) | i) as Id, s.addr, &s.info))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Source;
    use crate::Time;

    #[test]
    fn chained_slots_survive_removal_in_any_order() {
        let mut t = PointTable::default();
        let addrs: Vec<SocketAddr> = (0..10_000u32)
            .map(|i| SocketAddr::from((i.to_be_bytes(), 1)))
            .collect();
        for a in &addrs {
            t.insert(*a, PointInfo::new(Source::PeerSharing, Time::ZERO));
        }
        for a in addrs.iter().step_by(3) {
            assert!(t.remove(a).is_some());
            assert!(t.remove(a).is_none());
        }
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(t.contains(a), i % 3 != 0);
        }
        assert_eq!(t.len(), t.iter().count());
        // Freed slots are reused before new chunks are allocated.
        let chunks = t.chunks.len();
        for a in addrs.iter().step_by(3) {
            t.insert(*a, PointInfo::new(Source::PeerSharing, Time::ZERO));
        }
        assert_eq!(t.chunks.len(), chunks);
        assert_eq!(t.len(), addrs.len());
        for a in &addrs {
            assert_eq!(t.addr(t.id(a).unwrap()), *a);
        }
    }

    #[test]
    fn colliding_hashes_are_chained() {
        let mut t = PointTable::default();
        let a = SocketAddr::from(([1, 1, 1, 1], 1));
        let b = SocketAddr::from(([2, 2, 2, 2], 2));
        let c = SocketAddr::from(([3, 3, 3, 3], 3));
        let info = PointInfo::new(Source::PeerSharing, Time::ZERO);
        let ia = t.insert(a, info.clone());
        let ib = t.insert(b, info.clone());
        let ic = t.insert(c, info);
        // Rewire by hand as if all three hashes collided: one chain c -> b -> a, reached
        // from each address's bucket.
        t.slot_mut(ic).next = ib;
        t.slot_mut(ib).next = ia;
        t.slot_mut(ia).next = NONE;
        for x in [a, b, c] {
            let h = t.hash(&x);
            t.heads.insert(h, ic);
        }
        assert_eq!(
            (t.id(&a), t.id(&b), t.id(&c)),
            (Some(ia), Some(ib), Some(ic))
        );
        // Unlink the middle, then the head of the chain.
        assert_eq!(t.remove(&b).map(|r| r.0), Some(ib));
        assert_eq!(t.slot(ic).next, ia);
        assert_eq!((t.id(&a), t.id(&b), t.id(&c)), (Some(ia), None, Some(ic)));
        assert_eq!(t.remove(&c).map(|r| r.0), Some(ic));
        // The bucket now starts at the rest of the chain.
        assert_eq!(t.heads.get(&t.hash(&c)), Some(&ia));
        assert_eq!(t.len(), 1);
    }
}
