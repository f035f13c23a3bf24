//! The pool file: where a node keeps its [`Snapshot`] across restarts, written crash-safe.
//!
//! [`PoolStore`] names the file (`DIR/pool.dat` with [`PoolStore::in_dir`]) and how often
//! a running node saves it. A save ([`PoolStore::save`]) never leaves a half-written file
//! in place, whatever moment the process dies at (`kill -9`, power loss): it writes a
//! temporary file in the same directory, flushes it to disk (`fsync`), renames it over the
//! old one (atomic on POSIX file systems), then flushes the directory so that the rename
//! itself survives. The file carries a version and a SHA-256 checksum
//! ([`crate::pool::snapshot`]).
//!
//! Loading ([`PoolStore::load`]) never fails the node: a missing file is a fresh start; a
//! damaged, truncated or foreign one is moved aside (`pool.dat.corrupt-<unix time>`, kept
//! for a post-mortem) and reported ([`Loaded::Corrupt`]), and the node starts from its
//! config alone (its trusted points are the config's in any case). A file that cannot be
//! read at all (permissions, an I/O error: [`Loaded::Unreadable`]) is left in place, and
//! no save replaces it while it stays unreadable ([`PoolStore::save`] fails instead).
//!
//! A [`Node`](crate::Node) given a store ([`NodeBuilder::persist`](crate::node::NodeBuilder::persist))
//! restores the file at start, dials the saved anchors first, rewrites the file without
//! them at once (consumed, as Bitcoin Core's `anchors.dat`: a crash loop cannot pin the node
//! to them), saves every [`save_interval`](PoolStore::save_interval) from a blocking task
//! (the actor only takes the snapshot), soon after the pool changes materially (the first
//! connections, a new anchor, many new points: debounced, at most one such save per
//! [`SAVE_MIN_INTERVAL`](crate::core::SAVE_MIN_INTERVAL); see
//! [`NodeCore::save_due`](crate::core::NodeCore::save_due)), and once more at shutdown. So
//! a node killed (`kill -9`) seconds after its first connections restarts with them.
//!
//! ```
//! use peerkeeper::pool::{Pool, Snapshot, Source};
//! use peerkeeper::store::{Loaded, PoolStore};
//! use peerkeeper::{Config, Time};
//! let dir = std::env::temp_dir().join(format!("pk-store-doc-{}", std::process::id()));
//! let store = PoolStore::in_dir(&dir).unwrap();
//! assert!(matches!(store.load(), Loaded::Missing));
//!
//! let mut pool = Pool::new(&Config::default());
//! pool.add_point("10.0.0.1:9732".parse().unwrap(), Source::PeerSharing, Time::ZERO);
//! store.save(&pool.snapshot(Time::ZERO)).unwrap();
//! let Loaded::Found { snapshot, .. } = store.load() else { panic!() };
//! assert_eq!(snapshot.points.len(), 1);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use crate::pool::snapshot::{SnapshotError, MAX_SNAPSHOT_BYTES};
use crate::pool::Snapshot;
use crate::pool::{AsMap, AsMapError, MAX_ASMAP_BYTES};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pool file's name in a data directory.
pub const POOL_FILE: &str = "pool.dat";
/// The node key's name in a data directory (`peerkeeper node --data-dir`).
pub const KEY_FILE: &str = "node.key";
/// How often a running node saves its pool by default.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(300);

/// Where a node keeps its pool, and how often it saves it. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStore {
    path: PathBuf,
    save_interval: Duration,
}

/// What [`PoolStore::load`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Loaded {
    /// No file: a fresh start.
    Missing,
    /// A snapshot, aged to now by the wall-clock time since it was saved.
    Found {
        /// The snapshot ([`Snapshot::aged`] already applied).
        snapshot: Snapshot,
        /// How long ago it was saved (zero if the clock went back).
        age: Duration,
    },
    /// A file that cannot be used: moved aside (to `moved_to`, when the rename worked).
    Corrupt {
        /// What is wrong with it.
        error: SnapshotError,
        /// Its size: what was lost.
        bytes: u64,
        /// Where it is now.
        moved_to: Option<PathBuf>,
    },
    /// The file exists but cannot be read (permissions, I/O error): left in place.
    Unreadable(std::io::Error),
}

/// The wall clock, in milliseconds since the Unix epoch (0 before it).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PoolStore {
    /// A store writing `path`, saving every [`DEFAULT_SAVE_INTERVAL`].
    pub fn new(path: impl Into<PathBuf>) -> PoolStore {
        PoolStore {
            path: path.into(),
            save_interval: DEFAULT_SAVE_INTERVAL,
        }
    }

    /// A store writing [`POOL_FILE`] in `dir`, which is created (owner-only, 0700 on
    /// unix) if missing.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn in_dir(dir: impl AsRef<Path>) -> std::io::Result<PoolStore> {
        create_private_dir(dir.as_ref())?;
        Ok(PoolStore::new(dir.as_ref().join(POOL_FILE)))
    }

    /// Saves this often while the node runs (and at shutdown). Zero is taken as one
    /// second.
    #[must_use]
    pub fn save_interval(mut self, every: Duration) -> PoolStore {
        self.save_interval = every.max(Duration::from_secs(1));
        self
    }

    /// The interval between saves.
    pub fn interval(&self) -> Duration {
        self.save_interval
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; see [`Loaded`]. A corrupt file is moved aside. Never panics.
    pub fn load(&self) -> Loaded {
        // A FIFO or a device is refused, not read (it could block or never end); one
        // byte over the cap tells an oversized file without reading it all.
        let bytes = match crate::files::read_capped(&self.path, MAX_SNAPSHOT_BYTES + 1) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Unreadable(e),
        };
        match Snapshot::decode(&bytes) {
            Ok((snapshot, saved_at)) => {
                let age = Duration::from_millis(unix_ms_now().saturating_sub(saved_at));
                Loaded::Found {
                    snapshot: snapshot.aged(age),
                    age,
                }
            }
            Err(error) => {
                let aside = PathBuf::from(format!(
                    "{}.corrupt-{}",
                    self.path.display(),
                    unix_ms_now() / 1000
                ));
                let moved_to = std::fs::rename(&self.path, &aside).ok().map(|()| aside);
                Loaded::Corrupt {
                    error,
                    bytes: bytes.len() as u64,
                    moved_to,
                }
            }
        }
    }

    /// Writes `snapshot`, stamped with the wall clock, crash-safe (see the module docs).
    /// A file already there that cannot be read (permissions, an I/O error) is never
    /// replaced: what it holds may be all the node knew, and it waits for its operator.
    ///
    /// # Errors
    ///
    /// An I/O error, or the file in place cannot be read; the old file is then left as
    /// it was.
    pub fn save(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        if let Err(e) = crate::files::check_readable_or_missing(&self.path) {
            return Err(std::io::Error::new(
                e.kind(),
                format!(
                    "{} cannot be read ({e}): left in place, not overwritten",
                    self.path.display()
                ),
            ));
        }
        write_atomic(&self.path, &snapshot.encode(unix_ms_now()))
    }
}

/// Creates `dir` (and its parents) if missing; a directory created here is owner-only
/// (0700) on unix.
///
/// # Errors
///
/// The directory cannot be created.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the new
/// one, whenever the process or the machine stops: a temporary file in the same
/// directory, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "pool".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is: fsync it (unix; elsewhere a
        // directory cannot be opened this way, and the rename is what we have).
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl AsMap {
    /// Reads an AS map file (the text format: see [`AsMap`]), refusing one larger than
    /// [`MAX_ASMAP_BYTES`] unread. (Here, with the other file code: the pool is pure.)
    ///
    /// # Errors
    ///
    /// [`AsMapError`]: the file cannot be read, or a line is bad.
    pub fn load(path: &std::path::Path) -> Result<AsMap, AsMapError> {
        let size = std::fs::metadata(path).map_err(AsMapError::Io)?.len();
        if size > MAX_ASMAP_BYTES as u64 {
            return Err(AsMapError::TooLarge(format!(
                "{size} bytes, at most {MAX_ASMAP_BYTES}"
            )));
        }
        let text =
            crate::files::read_text_capped(path, MAX_ASMAP_BYTES as u64).map_err(AsMapError::Io)?;
        AsMap::parse(&text)
    }
}
