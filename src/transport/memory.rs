//! An in-memory network for tests, examples and the library's own demos.
//!
//! A [`MemoryNetwork`] holds *nodes* (a point with a [`PoolHandle`]: connections to it
//! appear in its pool as inbound) and *passive peers* (a point that accepts and answers
//! peer-sharing requests with a fixed list, and has no pool). Every other point refuses.
//! Dials take `dial_latency` on tokio's clock, so a paused test clock controls them, and the
//! network counts dials in flight and the most ever in flight.

use crate::discovery::validate_point;
use crate::handle::PoolHandle;
use crate::pool::{Direction, PeerId, Source};
use crate::transport::{CloseReason, DialError, Transport};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Clone)]
enum Endpoint {
    Node {
        peer: PeerId,
        pool: PoolHandle,
    },
    Passive {
        peer: PeerId,
        shares: Vec<SocketAddr>,
    },
}

#[derive(Default)]
struct State {
    endpoints: BTreeMap<SocketAddr, Endpoint>,
    unreachable: BTreeSet<SocketAddr>,
    latency: Duration,
    in_flight: usize,
    max_in_flight: usize,
    dials: u64,
    requests: u64,
    closes: Vec<(SocketAddr, SocketAddr, CloseReason)>,
}

/// The network. Cheap to clone (shared state).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use peerkeeper::{transport::{memory::MemoryNetwork, Transport}, PeerId};
/// let net = MemoryNetwork::new();
/// let a = "10.0.0.1:1".parse().unwrap();
/// net.add_passive(a, PeerId(1), vec![]);
/// let pool = peerkeeper::PoolHandle::new(&peerkeeper::Config::default());
/// assert_eq!(net.transport(&pool).dial(a).await, Ok(PeerId(1)));
/// assert_eq!(pool.active_count(), 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

impl MemoryNetwork {
    /// An empty network, dials completing after 10 ms.
    pub fn new() -> MemoryNetwork {
        let net = MemoryNetwork::default();
        net.lock().latency = Duration::from_millis(10);
        net
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets how long a dial takes.
    pub fn set_dial_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Adds a passive peer at `addr` that accepts connections and answers peer-sharing
    /// requests with `shares`.
    pub fn add_passive(&self, addr: SocketAddr, peer: PeerId, shares: Vec<SocketAddr>) {
        self.lock()
            .endpoints
            .insert(addr, Endpoint::Passive { peer, shares });
    }

    /// Adds a node listening at `addr`: connections to it show in `pool` as inbound, and
    /// it answers peer-sharing requests from its pool.
    pub fn add_node(&self, addr: SocketAddr, peer: PeerId, pool: PoolHandle) {
        self.lock()
            .endpoints
            .insert(addr, Endpoint::Node { peer, pool });
    }

    /// Removes an endpoint (a node leaving); its connections are not closed by this.
    pub fn remove(&self, addr: SocketAddr) {
        self.lock().endpoints.remove(&addr);
    }

    /// Makes `addr` refuse (or accept again) every dial.
    pub fn set_unreachable(&self, addr: SocketAddr, unreachable: bool) {
        let mut s = self.lock();
        if unreachable {
            s.unreachable.insert(addr);
        } else {
            s.unreachable.remove(&addr);
        }
    }

    /// The transport of a node with no listening point (it dials, nobody dials it) whose
    /// connections are registered in `pool`.
    pub fn transport(&self, pool: &PoolHandle) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            net: self.clone(),
            me: None,
            pool: pool.clone(),
        })
    }

    /// The transport of the node registered at `addr` with [`add_node`](Self::add_node).
    ///
    /// # Panics
    ///
    /// If no node is registered at `addr` (a test set-up error).
    pub fn transport_for(&self, addr: SocketAddr) -> Arc<MemoryTransport> {
        let pool = match self.lock().endpoints.get(&addr) {
            Some(Endpoint::Node { pool, .. }) => pool.clone(),
            _ => panic!("no node registered at {addr}"),
        };
        Arc::new(MemoryTransport {
            net: self.clone(),
            me: Some(addr),
            pool,
        })
    }

    /// Dials in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most dials ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Dials started.
    pub fn dials(&self) -> u64 {
        self.lock().dials
    }

    /// Peer-sharing requests sent.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Closes done so far (the first 10,000): (by, to, reason); `by` is 0.0.0.0:0 for
    /// the transport of a node with no listening point.
    pub fn closes(&self) -> Vec<(SocketAddr, SocketAddr, CloseReason)> {
        self.lock().closes.clone()
    }
}

/// One node's view of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    net: MemoryNetwork,
    me: Option<SocketAddr>,
    pool: PoolHandle,
}

impl MemoryTransport {
    fn my_identity(&self) -> Option<(SocketAddr, PeerId, PoolHandle)> {
        let me = self.me?;
        match self.net.lock().endpoints.get(&me)? {
            Endpoint::Node { peer, pool } => Some((me, *peer, pool.clone())),
            Endpoint::Passive { .. } => None,
        }
    }
}

struct InFlight(MemoryNetwork);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

impl Transport for MemoryTransport {
    fn dial(&self, point: SocketAddr) -> BoxFuture<'static, Result<PeerId, DialError>> {
        let net = self.net.clone();
        let me = self.my_identity();
        let my_pool = self.pool.clone();
        async move {
            let latency = {
                let mut s = net.lock();
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                s.dials += 1;
                s.latency
            };
            let _guard = InFlight(net.clone());
            tokio::time::sleep(latency).await;
            let endpoint = {
                let s = net.lock();
                if s.unreachable.contains(&point) {
                    return Err(DialError::Io("unreachable".into()));
                }
                s.endpoints.get(&point).cloned()
            };
            let peer = match endpoint {
                None => return Err(DialError::Io("connection refused".into())),
                Some(Endpoint::Passive { peer, .. }) => peer,
                Some(Endpoint::Node { peer, pool }) => {
                    if let Some((my_addr, my_peer, _)) = &me {
                        if *my_addr == point {
                            return Err(DialError::Myself);
                        }
                        if pool.active_count() >= pool.max_connections() {
                            return Err(DialError::Refused("too many connections".into()));
                        }
                        pool.connection_opened(*my_addr, *my_peer, Direction::Inbound)
                            .map_err(|e| match e {
                                crate::pool::Refused::DuplicatePeer(_)
                                | crate::pool::Refused::AlreadyConnected => {
                                    DialError::AlreadyConnected
                                }
                                e => DialError::Refused(e.to_string()),
                            })?;
                    }
                    peer
                }
            };
            match my_pool.connection_opened(point, peer, Direction::Outbound) {
                Ok(_) => Ok(peer),
                Err(_) => Err(DialError::AlreadyConnected),
            }
        }
        .boxed()
    }

    fn close(&self, point: SocketAddr, reason: CloseReason) {
        let endpoint = {
            let mut s = self.net.lock();
            if s.closes.len() < 10_000 {
                let me = self.me.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                s.closes.push((me, point, reason));
            }
            s.endpoints.get(&point).cloned()
        };
        if let (Some(me), Some(Endpoint::Node { pool, .. })) = (self.me, endpoint) {
            pool.connection_closed(me);
        }
    }

    fn request_points(&self, point: SocketAddr) {
        let Some((me, _, my_pool)) = self.my_identity() else {
            return;
        };
        let endpoint = {
            let mut s = self.net.lock();
            s.requests += 1;
            s.endpoints.get(&point).cloned()
        };
        let shares = match endpoint {
            Some(Endpoint::Passive { shares, .. }) => shares,
            Some(Endpoint::Node { pool, .. }) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(pool.now().as_millis());
                pool.read(|p| p.sample_good(crate::MAX_POINTS_PER_MESSAGE / 2, Some(me), &mut rng))
            }
            None => Vec::new(),
        };
        for p in shares.into_iter().take(crate::MAX_POINTS_PER_MESSAGE) {
            if p != me && validate_point(&p, true).is_ok() {
                my_pool.add_point(p, Source::PeerSharing);
            }
        }
    }
}

use rand::SeedableRng;
