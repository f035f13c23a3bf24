//! The point table: a slab of `(address, info)` slots plus a hash index from a compact
//! address key to the slot. The ordered indexes of the pool hold 4-byte slot ids instead
//! of 32-byte socket addresses, which keeps a known point under 200 bytes all told (see
//! BENCHMARKS.md).

use super::point::PointInfo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// A socket address in 20 bytes: IPv6 octets (IPv4 mapped), port, family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl From<&SocketAddr> for Key {
    fn from(a: &SocketAddr) -> Key {
        match a.ip() {
            IpAddr::V4(v4) => Key {
                ip: v4.to_ipv6_mapped().octets(),
                port: a.port(),
                v6: false,
            },
            IpAddr::V6(v6) => Key {
                ip: v6.octets(),
                port: a.port(),
                v6: true,
            },
        }
    }
}

/// A slot id.
pub(crate) type Id = u32;

#[derive(Clone, Debug, Default)]
pub(crate) struct PointTable {
    index: HashMap<Key, Id>,
    slots: Vec<Option<(SocketAddr, PointInfo)>>,
    free: Vec<Id>,
}

impl PointTable {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn id(&self, addr: &SocketAddr) -> Option<Id> {
        self.index.get(&Key::from(addr)).copied()
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&PointInfo> {
        self.id(addr).map(|id| self.info(id))
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.index.contains_key(&Key::from(addr))
    }

    /// The slot of a live id.
    ///
    /// # Panics
    ///
    /// On a dead id: the pool's indexes hold only live ids (a broken invariant).
    fn slot(&self, id: Id) -> &(SocketAddr, PointInfo) {
        self.slots[id as usize]
            .as_ref()
            .expect("pool index holds a dead slot id")
    }

    pub(crate) fn addr(&self, id: Id) -> SocketAddr {
        self.slot(id).0
    }

    pub(crate) fn info(&self, id: Id) -> &PointInfo {
        &self.slot(id).1
    }

    pub(crate) fn set_info(&mut self, id: Id, info: PointInfo) {
        if let Some(slot) = self.slots[id as usize].as_mut() {
            slot.1 = info;
        }
    }

    /// Inserts a new point (the caller checked it is not there).
    pub(crate) fn insert(&mut self, addr: SocketAddr, info: PointInfo) -> Id {
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some((addr, info));
                id
            }
            None => {
                let id = Id::try_from(self.slots.len()).expect("fewer than 2^32 points");
                self.slots.push(Some((addr, info)));
                id
            }
        };
        self.index.insert(Key::from(&addr), id);
        id
    }

    pub(crate) fn remove(&mut self, addr: &SocketAddr) -> Option<(Id, PointInfo)> {
        let id = self.index.remove(&Key::from(addr))?;
        let (_, info) = self.slots[id as usize].take()?;
        self.free.push(id);
        Some((id, info))
    }

    /// Every point, in no particular order (callers that decide sort what they collect).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Id, SocketAddr, &PointInfo)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|(a, p)| (i as Id, *a, p)))
    }

    /// One past the largest slot id.
    pub(crate) fn id_bound(&self) -> Id {
        self.slots.len() as Id
    }
}
