//! A saved pool: what a node keeps across restarts ([`Snapshot`]), and its file format.
//!
//! A snapshot holds every known point with its sources (so its kind), its failures, its
//! last success, when it was last heard of, and how long it is still backed off or banned
//! (greylisted); the greylisted IP addresses with the time their ban has left; and the
//! **anchors**: the peers we had outbound connections to (point and proven peer id,
//! longest-connected first, at most [`MAX_ANCHORS`]), which a restarted node dials before
//! anything else, as Bitcoin Core does with `anchors.dat`.
//!
//! # Time
//!
//! The core's [`Time`] counts from the node's start, so a snapshot stores no `Time`:
//! every moment is an age ("failed 5 min ago") and every ban a remaining duration ("banned
//! for 20 min more"), relative to the moment it was taken. The shell writes the wall-clock
//! time of the save in the file; at load it ages the snapshot by the wall-clock time that
//! passed ([`Snapshot::aged`]), so a ban keeps its end and a failure its age across the
//! restart (and a ban that ended while the node was down is gone).
//!
//! # File format (version 2)
//!
//! ```text
//! magic     8 bytes   "PKPOOL\r\n"
//! version   4 bytes   u32, little endian (2; version 1 had no address-book positions)
//! saved at  8 bytes   u64, little endian: Unix time of the save, in milliseconds
//! length    8 bytes   u64, little endian: payload bytes
//! payload   length    the snapshot, postcard-encoded
//! checksum  32 bytes  SHA-256 of everything before it
//! ```
//!
//! [`Snapshot::decode`] checks the size cap, magic, version, length and checksum before it
//! decodes the payload, and the payload's own bounds after: a truncated, corrupt or hostile
//! file gives a [`SnapshotError`] that names what is wrong, never a panic, and never more
//! memory than the file's size allows. The pool takes at most `max_known_points` points
//! from it ([`Pool::restore`]).
//!
//! Pure: no clock, no files (the tokio shell's [`crate::store`] writes and reads them).

use super::{Direction, PeerId, PointInfo, PointState, Pool, Source, MAX_GREYLISTED_IPS};
use crate::Time;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Most anchors a snapshot keeps (Bitcoin Core keeps 2 block-relay peers).
pub const MAX_ANCHORS: usize = 4;
/// Most points a snapshot file may hold (a pool keeps at most `max_known_points` of them).
pub const MAX_SNAPSHOT_POINTS: usize = 1 << 20;
/// The largest snapshot file read (bigger ones are refused unread).
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;
/// The file's first bytes.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PKPOOL\r\n";
/// The file format's version.
pub const SNAPSHOT_VERSION: u32 = 2;

const HEADER: usize = 8 + 4 + 8 + 8;
const CHECKSUM: usize = 32;

/// One saved point. Times are ages at the moment the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SavedPoint {
    /// The point.
    pub addr: SocketAddr,
    /// Its sources, a bit per [`Source::index`] (trusted is never restored: the config
    /// decides what is trusted).
    pub sources: u8,
    /// Consecutive failed dials.
    pub failures: u32,
    /// How long ago it last failed, if ever.
    pub failed_ago: Option<Duration>,
    /// How long ago a connection to it last succeeded, if ever (zero: connected when saved).
    pub succeeded_ago: Option<Duration>,
    /// How long ago it was last heard of.
    pub seen_ago: Duration,
    /// How long it is still not to be dialed (backoff, or ban when `banned`).
    pub wait: Duration,
    /// Greylisted (banned) for `wait` more.
    pub banned: bool,
    /// Its address-book position ([`super::book`]; `u32::MAX`: none).
    pub place: u32,
}

/// A greylisted IP address and how long its ban has left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BannedIp {
    /// The address.
    pub ip: IpAddr,
    /// The ban's remaining time.
    pub left: Duration,
}

/// A peer we had an outbound connection to: dialed first at the next start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Its point.
    pub addr: SocketAddr,
    /// The peer id it proved.
    pub peer: PeerId,
}

/// What a pool keeps across restarts; see the module docs. Taken with
/// [`Pool::snapshot`] (or [`crate::NodeCore::snapshot`]), restored with [`Pool::restore`]
/// (or [`crate::NodeCore::restore`], which also dials the anchors).
///
/// ```
/// use peerkeeper::pool::{Pool, Snapshot, Source};
/// use peerkeeper::{Config, Time};
/// use std::time::Duration;
/// let mut pool = Pool::new(&Config::default());
/// let a = "10.0.0.1:9732".parse().unwrap();
/// pool.add_point(a, Source::PeerSharing, Time::ZERO);
/// let bytes = pool.snapshot(Time::from_millis(5_000)).encode(1_700_000_000_000);
/// let (snap, saved_at) = Snapshot::decode(&bytes).unwrap();
/// assert_eq!(saved_at, 1_700_000_000_000);
///
/// // A restarted node: its clock starts again at zero, an hour later.
/// let mut fresh = Pool::new(&Config::default());
/// fresh.restore(&snap.aged(Duration::from_secs(3600)), Time::ZERO);
/// assert_eq!(fresh.get(&a).unwrap().kind(), Source::PeerSharing);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The known points.
    pub points: Vec<SavedPoint>,
    /// The greylisted IP addresses.
    pub banned_ips: Vec<BannedIp>,
    /// The last outbound peers, longest-connected first.
    pub anchors: Vec<Anchor>,
    /// The secret key of the address book's positions ([`Pool::book_key`]).
    pub book_key: u64,
}

/// Why a snapshot file cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Shorter than a header and a checksum, or than its header says.
    #[error("truncated: {len} bytes, {need} expected")]
    Truncated {
        /// The file's size.
        len: u64,
        /// The size its header announces (or the least a file can have).
        need: u64,
    },
    /// Bigger than [`MAX_SNAPSHOT_BYTES`], or its length field disagrees with its size.
    #[error("bad size: {0} bytes")]
    BadSize(u64),
    /// Not a peerkeeper pool file.
    #[error("not a pool file (bad magic)")]
    BadMagic,
    /// A version this build cannot read.
    #[error("unsupported version {0} (this build reads version {SNAPSHOT_VERSION})")]
    Version(u32),
    /// The checksum does not match: the file was damaged.
    #[error("checksum mismatch (the file is damaged)")]
    Checksum,
    /// The payload does not decode (or not exactly).
    #[error("malformed payload")]
    Malformed(#[source] postcard::Error),
    /// The payload breaks a bound (too many points, bans or anchors).
    #[error("{what}: {count}, at most {max}")]
    TooMany {
        /// What.
        what: &'static str,
        /// How many the file holds.
        count: usize,
        /// The bound.
        max: usize,
    },
}

impl Snapshot {
    /// The file's bytes (see the module docs), with `saved_at_unix_ms`, the wall-clock
    /// time of the save, in the header.
    pub fn encode(&self, saved_at_unix_ms: u64) -> Vec<u8> {
        let payload = postcard::to_allocvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER + payload.len() + CHECKSUM);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&saved_at_unix_ms.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Reads a file's bytes: the snapshot and the Unix time (ms) it was saved at.
    ///
    /// # Errors
    ///
    /// A [`SnapshotError`] saying what is wrong; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<(Snapshot, u64), SnapshotError> {
        let len = bytes.len() as u64;
        if len > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::BadSize(len));
        }
        if bytes.len() < SNAPSHOT_MAGIC.len() || bytes[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if bytes.len() < HEADER + CHECKSUM {
            return Err(SnapshotError::Truncated {
                len,
                need: (HEADER + CHECKSUM) as u64,
            });
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or([0; 4]));
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let saved_at = word(12);
        let payload_len = word(20);
        let need = payload_len.saturating_add((HEADER + CHECKSUM) as u64);
        if need > len {
            return Err(SnapshotError::Truncated { len, need });
        }
        if need < len {
            return Err(SnapshotError::BadSize(len));
        }
        let body = bytes.len() - CHECKSUM;
        if Sha256::digest(&bytes[..body])[..] != bytes[body..] {
            return Err(SnapshotError::Checksum);
        }
        let (snap, rest): (Snapshot, &[u8]) =
            postcard::take_from_bytes(&bytes[HEADER..body]).map_err(SnapshotError::Malformed)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Malformed(
                postcard::Error::DeserializeBadEncoding,
            ));
        }
        for (what, count, max) in [
            ("points", snap.points.len(), MAX_SNAPSHOT_POINTS),
            ("banned IPs", snap.banned_ips.len(), MAX_GREYLISTED_IPS),
            ("anchors", snap.anchors.len(), MAX_ANCHORS),
        ] {
            if count > max {
                return Err(SnapshotError::TooMany { what, count, max });
            }
        }
        Ok((snap, saved_at))
    }

    /// The snapshot as it stands `elapsed` later: every age grows by `elapsed`, every
    /// backoff and ban shrinks by it (a ban that ended is dropped). What a node restarted
    /// `elapsed` after the save restores.
    #[must_use]
    pub fn aged(mut self, elapsed: Duration) -> Snapshot {
        for p in &mut self.points {
            p.failed_ago = p.failed_ago.map(|d| d.saturating_add(elapsed));
            p.succeeded_ago = p.succeeded_ago.map(|d| d.saturating_add(elapsed));
            p.seen_ago = p.seen_ago.saturating_add(elapsed);
            p.wait = p.wait.saturating_sub(elapsed);
            p.banned &= !p.wait.is_zero();
        }
        self.banned_ips.retain_mut(|b| {
            b.left = b.left.saturating_sub(elapsed);
            !b.left.is_zero()
        });
        self
    }

    /// The snapshot without its anchors (what is written back once they are loaded, so
    /// that a crash loop cannot pin the node to them).
    #[must_use]
    pub fn without_anchors(mut self) -> Snapshot {
        self.anchors.clear();
        self
    }
}

/// What [`Pool::restore`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// Points added to the pool.
    pub points: usize,
    /// Saved points already known (trusted or bootstrap from the config): merged.
    pub merged: usize,
    /// Saved points not taken (the pool full, or an undialable address).
    pub skipped: usize,
    /// IP bans restored.
    pub banned_ips: usize,
}

fn sources_bits(info: &PointInfo) -> u8 {
    info.sources
        .iter()
        .filter(|s| *s != Source::Trusted)
        .fold(0, |b, s| b | 1 << s.index())
}

fn ago(now: Time, t: Time) -> Option<Duration> {
    (t != Time::MAX).then(|| now.saturating_since(t))
}

fn at(now: Time, ago: Option<Duration>) -> Time {
    ago.map_or(Time::MAX, |d| now - d)
}

impl Pool {
    /// The pool as a [`Snapshot`] at `now`: every point (a connected one as just
    /// succeeded, a dialing one as it stands), the IP bans still running, and up to
    /// [`MAX_ANCHORS`] outbound connections as anchors, longest-connected first. Trusted
    /// is not saved as a source (the config decides it). `O(n)`.
    pub fn snapshot(&self, now: Time) -> Snapshot {
        let now = now.max(self.clock);
        let points = self
            .points
            .iter()
            .map(|(_, addr, p)| {
                let connected = p.state == PointState::Connected;
                let banned = p.state == PointState::Greylisted && p.next_dial > now;
                SavedPoint {
                    addr,
                    sources: sources_bits(p),
                    failures: p.failures,
                    failed_ago: ago(now, p.failed_at),
                    succeeded_ago: if connected {
                        Some(Duration::ZERO)
                    } else {
                        ago(now, p.succeeded_at)
                    },
                    seen_ago: now.saturating_since(p.last_seen),
                    wait: if connected {
                        Duration::ZERO
                    } else {
                        p.next_dial.saturating_since(now)
                    },
                    banned,
                    place: p.place,
                }
            })
            .collect();
        let banned_ips = self
            .ip_greylist
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(ip, until)| BannedIp {
                ip: *ip,
                left: until.saturating_since(now),
            })
            .collect();
        let mut out: Vec<(Time, SocketAddr, PeerId)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.direction == Direction::Outbound)
            .map(|(a, c)| (c.since, *a, c.peer))
            .collect();
        out.sort_unstable();
        let anchors = out
            .into_iter()
            .take(MAX_ANCHORS)
            .map(|(_, addr, peer)| Anchor { addr, peer })
            .collect();
        Snapshot {
            points,
            banned_ips,
            anchors,
            book_key: self.book.key(),
        }
    }

    /// Adds the points and bans of `snapshot` (aged to the restart already, see
    /// [`Snapshot::aged`]) at `now`. A point the pool knows (a configured one) keeps its
    /// state and gains the saved sources; new points come with their failures, backoff,
    /// ban and times, up to `max_known_points` (the rest is skipped). Nothing saved makes
    /// a point trusted: the config decides. The anchors get their peer's tag, so a
    /// candidate at another point of a connected anchor is skipped as usual; dialing them
    /// is the caller's ([`crate::NodeCore::restore`]).
    pub fn restore(&mut self, snapshot: &Snapshot, now: Time) -> Restored {
        if snapshot.book_key != 0 {
            // Only while the book is empty (a fresh node): positions depend on the key.
            self.book.set_key(snapshot.book_key);
        }
        self.advance(now);
        let now = self.clock;
        let mut r = Restored::default();
        let max_wait = self
            .limits
            .greylist_duration
            .max(Duration::from_secs(86_400));
        for s in &snapshot.points {
            let mut sources = super::Sources::default();
            for src in Source::ALL {
                if src != Source::Trusted && s.sources & (1 << src.index()) != 0 {
                    sources.insert(src);
                }
            }
            if sources == super::Sources::default() {
                sources.insert(Source::PeerSharing);
            }
            if self.points.id(&s.addr).is_some() {
                self.update(s.addr, |p| {
                    for src in sources.iter() {
                        p.sources.insert(src);
                    }
                    p.last_seen = p.last_seen.max(now - s.seen_ago);
                    if p.succeeded_at == Time::MAX {
                        p.succeeded_at = at(now, s.succeeded_ago);
                    }
                });
                r.merged += 1;
                continue;
            }
            if self.points.len() >= self.limits.max_points || s.addr.port() == 0 {
                r.skipped += 1;
                continue;
            }
            let Some(place) = self.restore_place(s) else {
                r.skipped += 1;
                continue;
            };
            let mut info = PointInfo::new(sources.kind(), now);
            info.sources = sources;
            info.failures = s.failures;
            info.failed_at = at(now, s.failed_ago);
            info.succeeded_at = at(now, s.succeeded_ago);
            info.last_seen = now - s.seen_ago;
            // A hostile file's "banned for a century" is held to the longest wait the
            // config could have made (a day, or the greylisting if longer).
            info.next_dial = now + s.wait.min(max_wait);
            if s.banned && !s.wait.is_zero() {
                info.state = PointState::Greylisted;
            }
            info.place = place;
            let id = self.points.insert(s.addr, info.clone());
            if place != super::NOWHERE {
                self.book.put(place, id);
            }
            self.index(id, s.addr, &info);
            self.changes.new_point = true;
            r.points += 1;
        }
        for b in snapshot.banned_ips.iter().take(MAX_GREYLISTED_IPS) {
            if !b.left.is_zero() {
                self.greylist_ip(b.ip, now + b.left.min(max_wait));
                r.banned_ips += 1;
            }
        }
        for a in &snapshot.anchors {
            let tag = a.peer.tag();
            if self.connected_tags.contains_key(&tag) {
                continue;
            }
            self.update(a.addr, |p| {
                if p.state != PointState::Connected {
                    p.peer_tag = tag;
                }
            });
        }
        r
    }

    /// Where a saved point goes in the address book: its saved position when it is one
    /// of this book's, free and (on the tried side) where the key puts the point; else,
    /// for a point heard from the network, its new-side position as its own source;
    /// `None` when that is held (the point is skipped). A hostile file cannot put a point
    /// anywhere a point could not be.
    fn restore_place(&self, s: &SavedPoint) -> Option<u32> {
        use super::book::{is_tried, NOWHERE};
        if !self.book.on || !super::book::bucketed(&s.addr) {
            return Some(NOWHERE);
        }
        let network = (1 << Source::PeerSharing.index()) | (1 << Source::Incoming.index());
        if s.place == NOWHERE && s.sources & !network != 0 {
            return Some(NOWHERE); // the operator's (bootstrap, external)
        }
        let fits = self.book.valid(s.place)
            && self.book.at(s.place).is_none()
            && (!is_tried(s.place)
                || self.book.tried_place(&s.addr, self.group(&s.addr)) == s.place);
        if fits {
            return Some(s.place);
        }
        let group = self.group(&s.addr);
        let place = self.book.new_place(&s.addr, group, group);
        self.book.at(place).is_none().then_some(place)
    }
}
