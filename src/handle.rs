//! The shared pool of a running node: the [`Pool`] behind a mutex, plus the [`Triggers`]
//! its changes fire.
//!
//! Every mutation goes through [`PoolHandle::with`], which fires the matching triggers
//! afterwards (new point, new peer, new connection, and too few / too many at the
//! thresholds the worker acts on). The lock is a `std::sync::Mutex` held only for the
//! pure, short pool operation, never across an `.await`.

use crate::config::{Bounds, Config};
use crate::pool::{Added, Connection, Direction, PeerId, Pool, Refused, Source};
use crate::trigger::{TriggerKind, Triggers};
use crate::Time;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

struct Inner {
    pool: Mutex<Pool>,
    triggers: Triggers,
    bounds: Bounds,
    max_connections: usize,
    origin: tokio::time::Instant,
}

/// A cloneable handle to a node's pool and triggers. See the module docs.
///
/// ```
/// use peerkeeper::{pool::Source, Config, PoolHandle};
/// let pool = PoolHandle::new(&Config::default());
/// pool.add_point("10.0.0.1:9732".parse().unwrap(), Source::PeerSharing);
/// assert_eq!(pool.read(|p| p.len()), 1);
/// ```
#[derive(Clone)]
pub struct PoolHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolHandle")
            .field("bounds", &self.inner.bounds)
            .finish_non_exhaustive()
    }
}

impl PoolHandle {
    /// A pool for `config` (holding its trusted points), with fresh triggers. Its clock
    /// starts now (tokio's clock, so a paused test clock drives it).
    pub fn new(config: &Config) -> PoolHandle {
        PoolHandle {
            inner: Arc::new(Inner {
                pool: Mutex::new(Pool::new(config)),
                triggers: Triggers::new(),
                bounds: config.bounds(),
                max_connections: config.max_connections,
                origin: tokio::time::Instant::now(),
            }),
        }
    }

    /// The pool's time now.
    pub fn now(&self) -> Time {
        Time::from_duration(self.inner.origin.elapsed())
    }

    /// The tokio instant of a pool time.
    pub fn instant(&self, t: Time) -> tokio::time::Instant {
        self.inner.origin + t.as_duration()
    }

    /// The triggers fired by this pool's changes.
    pub fn triggers(&self) -> &Triggers {
        &self.inner.triggers
    }

    /// The bounds the count triggers use.
    pub fn bounds(&self) -> Bounds {
        self.inner.bounds
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A panic while holding the lock is a broken invariant already reported; the pool
        // itself stays consistent between operations, so keep going.
        self.inner.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the pool.
    pub fn read<T>(&self, f: impl FnOnce(&Pool) -> T) -> T {
        f(&self.lock())
    }

    /// Changes the pool, then fires the triggers for what changed.
    pub fn with<T>(&self, f: impl FnOnce(&mut Pool) -> T) -> T {
        let (out, changes) = {
            let mut pool = self.lock();
            let out = f(&mut pool);
            (out, pool.take_changes())
        };
        let t = &self.inner.triggers;
        if changes.new_point {
            t.fire(TriggerKind::NewPoint);
        }
        if changes.new_peer {
            t.fire(TriggerKind::NewPeer);
        }
        if changes.new_connection {
            t.fire(TriggerKind::NewConnection);
        }
        t.connections_changed(
            changes.count_before,
            changes.count_after,
            &self.inner.bounds,
        );
        out
    }

    /// Learns a point.
    pub fn add_point(&self, addr: SocketAddr, source: Source) -> Added {
        let now = self.now();
        self.with(|p| p.add_point(addr, source, now))
    }

    /// A connection opened (for transports: an accepted or dialed connection).
    pub fn connection_opened(
        &self,
        addr: SocketAddr,
        peer: PeerId,
        direction: Direction,
    ) -> Result<bool, Refused> {
        let now = self.now();
        self.with(|p| p.connection_opened(addr, peer, direction, now))
    }

    /// A connection ended.
    pub fn connection_closed(&self, addr: SocketAddr) -> Option<Connection> {
        let now = self.now();
        self.with(|p| p.connection_closed(addr, now))
    }

    /// Greylists a misbehaving point and its IP address; returns its connection, if it had
    /// one, for the caller to close.
    pub fn greylist(&self, addr: SocketAddr) -> Option<Connection> {
        let now = self.now();
        self.with(|p| p.greylist(addr, now))
    }

    /// `max_connections` of the config: a transport refuses connections past it.
    pub fn max_connections(&self) -> usize {
        self.inner.max_connections
    }

    /// Open connections.
    pub fn active_count(&self) -> usize {
        self.read(Pool::active_count)
    }
}
