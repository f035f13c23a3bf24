//! The point table: every known point's [`PointInfo`], stored compactly.
//!
//! A `HashMap<SocketAddr, PointInfo>` costs about twice its entries' size at some sizes
//! (power-of-two buckets at most 7/8 full), and every index keyed by `SocketAddr` repeats
//! the 32-byte address. Here each point lives once in a slot of fixed-size chunks (no
//! doubling, no copy on growth) and is named everywhere else by its 4-byte slot id:
//!
//! * A slot is the point's record and its address packed in 8 bytes: an IPv4 address and
//!   port inline, an IPv6 one (28 bytes with its flow info and scope id) as an index into
//!   a side table of IPv6 addresses. 56 bytes a slot, where a `SocketAddr` alone is 32 (a
//!   peer's 32-byte id is not kept here: a 64-bit tag of it is, see [`PointInfo`]).
//! * `index` (`hashbrown`'s `HashTable`) holds only slot ids, found by a keyed hash of the
//!   address and confirmed against the slot: 5 bytes a bucket (a slot id and a control
//!   byte) where a map from hash to slot takes 17. The hash key is random per table, so
//!   nobody can choose colliding addresses.
//! * A removed point's slot goes to a free list and is reused by the next insertion.
//!
//! Nothing here iterates in hash order: lookups only. Iteration ([`PointTable::iter`]) is
//! in slot order, which depends only on the sequence of insertions and removals.
//!
//! The full `SocketAddr` is compared on lookup (IPv6 flow info and scope id included), so
//! two addresses that differ only there are two points, as they were with a
//! `HashMap<SocketAddr, _>`.

use super::point::PointInfo;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// A slot id: names a point inside the pool's indexes.
pub(crate) type Id = u32;

/// An entry of an ordered index of slots: a 64-bit key (a rank, a time) and a slot id,
/// ordered by key then id, in 12 bytes where a `(u64, u32)` takes 16. A B-tree node holds
/// eleven entries whatever their size, so its nodes shrink by a quarter.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
pub(crate) struct Entry {
    key: u64,
    id: Id,
}

impl Entry {
    pub(crate) fn new(key: u64, id: Id) -> Entry {
        Entry { key, id }
    }

    pub(crate) fn key(self) -> u64 {
        self.key
    }

    pub(crate) fn id(self) -> Id {
        self.id
    }
}

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        (self.key(), self.id()) == (o.key(), o.id())
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Entry {
    fn cmp(&self, o: &Entry) -> std::cmp::Ordering {
        (self.key(), self.id()).cmp(&(o.key(), o.id()))
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.key(), self.id())
    }
}

/// Slots per chunk: a chunk (but the first) is allocated whole and never grows, so
/// nothing large is ever copied, and at most one chunk is partly empty (a million points
/// need 3,907 chunks). Smaller chunks cost a cache miss more per lookup in large pools
/// (64 slots: +20% on `advance`).
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;
/// The first chunk's first size, and what it grows by: 16 slots (1 KB), so that a small
/// pool (a simulated node holds about a hundred points) wastes half a kilobyte on average.
const FIRST_GROWTH: usize = 16;

/// An address in 8 bytes: an IPv4 one as `ip << 16 | port`; an IPv6 one as [`V6`] plus
/// its index in the table's IPv6 side table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed(u64);

const V6: u64 = 1 << 63;

impl Packed {
    fn v4(a: &SocketAddrV4) -> Packed {
        Packed(u64::from(u32::from(*a.ip())) << 16 | u64::from(a.port()))
    }

    /// The IPv6 side-table index, for an IPv6 address.
    fn v6_index(self) -> Option<usize> {
        (self.0 & V6 != 0).then_some((self.0 & u64::from(u32::MAX)) as usize)
    }
}

#[derive(Clone, Debug)]
struct Slot {
    addr: Packed,
    info: PointInfo,
}

/// IPv6 addresses of the table's points, by index; freed indexes are reused.
#[derive(Clone, Debug, Default)]
struct V6Table {
    addrs: Vec<SocketAddrV6>,
    free: Vec<u32>,
}

impl V6Table {
    fn insert(&mut self, a: SocketAddrV6) -> Packed {
        let i = match self.free.pop() {
            Some(i) => {
                self.addrs[i as usize] = a;
                i
            }
            None => {
                self.addrs.push(a);
                u32::try_from(self.addrs.len() - 1).expect("fewer than 2^32 IPv6 points")
            }
        };
        Packed(V6 | u64::from(i))
    }
}

/// Whether the packed address `p` is `addr`, given the side table.
fn is(p: Packed, v6: &V6Table, addr: &SocketAddr) -> bool {
    match (addr, p.v6_index()) {
        (SocketAddr::V4(a), None) => p == Packed::v4(a),
        (SocketAddr::V6(a), Some(i)) => v6.addrs[i] == *a,
        _ => false,
    }
}

/// The keyed hash of the packed address `p`: of the packed form for IPv4, of the whole
/// `SocketAddrV6` for IPv6 (what a slot holds either way, so that the index can be rehashed
/// from the slots).
fn hash_of(hasher: &RandomState, p: Packed, v6: &V6Table) -> u64 {
    match p.v6_index() {
        Some(i) => hasher.hash_one(v6.addrs[i]),
        None => hasher.hash_one(p.0),
    }
}

/// What a slot's address is, given the side table.
fn unpack(p: Packed, v6: &V6Table) -> SocketAddr {
    match p.v6_index() {
        Some(i) => SocketAddr::V6(v6.addrs[i]),
        None => SocketAddr::V4(SocketAddrV4::new(((p.0 >> 16) as u32).into(), p.0 as u16)),
    }
}

/// Points by address, and by slot id. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct PointTable {
    hasher: RandomState,
    index: HashTable<Id>,
    chunks: Vec<Vec<Option<Slot>>>,
    v6: V6Table,
    free: Vec<Id>,
    len: usize,
}

/// The slot `id` of `chunks`, if live.
fn slot_of(chunks: &[Vec<Option<Slot>>], id: Id) -> Option<&Slot> {
    chunks
        .get((id >> CHUNK_BITS) as usize)?
        .get(id as usize & (CHUNK - 1))?
        .as_ref()
}

impl PointTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The keyed hash of an address ([`hash_of`] its packed form).
    fn hash(&self, addr: &SocketAddr) -> u64 {
        match addr {
            SocketAddr::V4(a) => self.hasher.hash_one(Packed::v4(a).0),
            SocketAddr::V6(a) => self.hasher.hash_one(a),
        }
    }

    fn slot(&self, id: Id) -> &Slot {
        slot_of(&self.chunks, id).expect("a live slot id")
    }

    fn slot_mut(&mut self, id: Id) -> &mut Slot {
        self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
            .as_mut()
            .expect("a live slot id")
    }

    /// The slot of `addr`, if known.
    pub(crate) fn id(&self, addr: &SocketAddr) -> Option<Id> {
        self.index
            .find(self.hash(addr), |id| {
                is(self.slot(*id).addr, &self.v6, addr)
            })
            .copied()
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&PointInfo> {
        self.id(addr).map(|id| &self.slot(id).info)
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.id(addr).is_some()
    }

    pub(crate) fn addr(&self, id: Id) -> SocketAddr {
        unpack(self.slot(id).addr, &self.v6)
    }

    /// The point in slot `id`, if the slot is live.
    pub(crate) fn try_get(&self, id: Id) -> Option<(SocketAddr, &PointInfo)> {
        slot_of(&self.chunks, id).map(|s| (unpack(s.addr, &self.v6), &s.info))
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
        Id::try_from(used).unwrap_or(Id::MAX)
    }

    /// Adds `addr`, which must not be present; returns its slot.
    pub(crate) fn insert(&mut self, addr: SocketAddr, info: PointInfo) -> Id {
        debug_assert!(!self.contains(&addr));
        let h = self.hash(&addr);
        let packed = match addr {
            SocketAddr::V4(a) => Packed::v4(&a),
            SocketAddr::V6(a) => self.v6.insert(a),
        };
        let slot = Some(Slot { addr: packed, info });
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
            self.chunks.last_mut().expect("a chunk").push(slot);
            id
        };
        // Growing the index rehashes every point from its slot.
        let (hasher, chunks, v6) = (&self.hasher, &self.chunks, &self.v6);
        self.index.insert_unique(h, id, |id| {
            hash_of(
                hasher,
                slot_of(chunks, *id).expect("a live slot id").addr,
                v6,
            )
        });
        self.len += 1;
        id
    }

    /// Removes `addr`; returns its former slot and info.
    pub(crate) fn remove(&mut self, addr: &SocketAddr) -> Option<(Id, PointInfo)> {
        let h = self.hash(addr);
        let (chunks, v6) = (&self.chunks, &self.v6);
        let holds = |id: &Id| is(slot_of(chunks, *id).expect("a live slot id").addr, v6, addr);
        let (id, _) = self.index.find_entry(h, holds).ok()?.remove();
        let slot = self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
            .take()
            .expect("a live slot id");
        if let Some(i) = slot.addr.v6_index() {
            self.v6.free.push(i as u32);
        }
        self.free.push(id);
        self.len -= 1;
        Some((id, slot.info))
    }

    /// Every point, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Id, SocketAddr, &PointInfo)> + '_ {
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            chunk.iter().enumerate().filter_map(move |(i, s)| {
                s.as_ref().map(|s| {
                    (
                        ((c << CHUNK_BITS) | i) as Id,
                        unpack(s.addr, &self.v6),
                        &s.info,
                    )
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Source;
    use crate::Time;
    use std::net::Ipv6Addr;

    fn info() -> PointInfo {
        PointInfo::new(Source::PeerSharing, Time::ZERO)
    }

    #[test]
    fn slots_survive_removal_in_any_order() {
        let mut t = PointTable::default();
        let addrs: Vec<SocketAddr> = (0..10_000u32)
            .map(|i| SocketAddr::from((i.to_be_bytes(), (i % 7) as u16)))
            .collect();
        for a in &addrs {
            t.insert(*a, info());
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
            t.insert(*a, info());
        }
        assert_eq!(t.chunks.len(), chunks);
        assert_eq!(t.len(), addrs.len());
        for a in &addrs {
            assert_eq!(t.addr(t.id(a).unwrap()), *a);
        }
    }

    #[test]
    fn ipv6_points_keep_their_whole_address_and_free_their_side_slot() {
        let mut t = PointTable::default();
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let plain = SocketAddr::V6(SocketAddrV6::new(ip, 9732, 0, 0));
        let scoped = SocketAddr::V6(SocketAddrV6::new(ip, 9732, 0, 3));
        let flow = SocketAddr::V6(SocketAddrV6::new(ip, 9732, 7, 0));
        // The IPv4 address whose packed form is that of the first IPv6 slot but for the
        // tag bit must not be mistaken for it.
        let v4 = SocketAddr::from(([0, 0, 0, 0], 0));
        for a in [plain, scoped, flow, v4] {
            t.insert(a, info());
        }
        for a in [plain, scoped, flow, v4] {
            assert_eq!(t.addr(t.id(&a).unwrap()), a);
        }
        assert_eq!(t.v6.addrs.len(), 3);
        assert!(t.remove(&scoped).is_some());
        assert!(!t.contains(&scoped) && t.contains(&plain) && t.contains(&flow));
        let other = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 0, 0));
        t.insert(other, info());
        assert_eq!(t.v6.addrs.len(), 3, "the freed IPv6 side slot is reused");
        let mut seen: Vec<SocketAddr> = t.iter().map(|(_, a, _)| a).collect();
        seen.sort();
        let mut want = vec![plain, flow, v4, other];
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_slot_is_56_bytes_and_an_index_entry_12() {
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 56);
        assert_eq!(std::mem::size_of::<Entry>(), 12);
        let mut e = [Entry::new(2, 0), Entry::new(1, 5), Entry::new(1, 3)];
        e.sort();
        assert_eq!(e.map(|e| (e.key(), e.id())), [(1, 3), (1, 5), (2, 0)]);
    }
}
