//! The tokio discovery worker: follows maintenance's "points wanted" signal, runs the
//! rounds [`DiscoveryState`] schedules, and polls the node's [`PointSource`]s.

use super::state::{DiscoveryState, DiscoveryStats, TooManyPoints};
use crate::config::Config;
use crate::handle::PoolHandle;
use crate::pool::Source;
use crate::transport::Transport;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Another source of points than peer sharing: DNS seeds, a ledger's relay list, a
/// static file. Polled once per discovery round while points are wanted.
pub trait PointSource: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// Fetches points. At most `max_points_per_message` are taken from one fetch; the
    /// rest are dropped. Failures are the source's to log; return an empty list.
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>>;
}

struct Shared {
    state: Mutex<DiscoveryState>,
    rng: Mutex<StdRng>,
}

/// A running discovery worker, and the entry point for peer-sharing messages from the
/// network (answers to our requests, other peers' requests).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use peerkeeper::{discovery::Discovery, transport::memory::MemoryNetwork, Config, PoolHandle};
/// let config = Config::default();
/// let pool = PoolHandle::new(&config);
/// let (_tx, want) = tokio::sync::watch::channel(false);
/// let net = MemoryNetwork::new().transport(&pool);
/// let d = Discovery::start(&config, pool, net, want, vec![], vec![], 1);
/// d.shutdown().await;
/// # }
/// ```
pub struct Discovery {
    shared: Arc<Shared>,
    pool: PoolHandle,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts the worker. `want` is maintenance's signal
    /// ([`Maintainer::want_points`](crate::Maintainer::want_points)); `me` our own points.
    pub fn start<T: Transport + ?Sized>(
        config: &Config,
        pool: PoolHandle,
        transport: Arc<T>,
        want: watch::Receiver<bool>,
        sources: Vec<Arc<dyn PointSource>>,
        me: Vec<SocketAddr>,
        seed: u64,
    ) -> Discovery {
        let shared = Arc::new(Shared {
            state: Mutex::new(DiscoveryState::new(config, me)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            shared.clone(),
            pool.clone(),
            transport,
            want,
            sources,
            cancel.clone(),
        ));
        Discovery {
            shared,
            pool,
            cancel,
            task: Mutex::new(Some(task)),
        }
    }

    fn state(&self) -> MutexGuard<'_, DiscoveryState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points received from the network (source: peer sharing). `Err` means a protocol
    /// violation: the caller drops the connection and greylists the sender.
    pub fn on_points(&self, points: &[SocketAddr]) -> Result<usize, TooManyPoints> {
        let now = self.pool.now();
        let mut state = self.state();
        self.pool
            .with(|pool| state.on_points(points, Source::PeerSharing, pool, now))
    }

    /// The answer to a peer at `requester` asking for points.
    pub fn answer(&self, requester: SocketAddr) -> Vec<SocketAddr> {
        let mut rng = self.shared.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state();
        self.pool
            .read(|pool| state.answer(pool, requester, &mut *rng))
    }

    /// Adds one of our own points (never accepted from peers).
    pub fn add_myself(&self, addr: SocketAddr) {
        self.state().add_myself(addr);
    }

    /// Counters.
    pub fn stats(&self) -> DiscoveryStats {
        self.state().stats()
    }

    /// Stops the worker and waits for it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run<T: Transport + ?Sized>(
    shared: Arc<Shared>,
    pool: PoolHandle,
    transport: Arc<T>,
    mut want: watch::Receiver<bool>,
    sources: Vec<Arc<dyn PointSource>>,
    cancel: CancellationToken,
) {
    let w = *want.borrow_and_update();
    lock(&shared).set_wanted(w, pool.now());
    let request_timeout = lock(&shared).request_timeout();
    let mut new_connection = pool
        .triggers()
        .subscribe(crate::trigger::TriggerKind::NewConnection);
    loop {
        let deadline = lock(&shared).next_deadline().map(|t| pool.instant(t));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = new_connection.wait() => {
                let now = pool.now();
                let ask = {
                    let mut st = lock(&shared);
                    pool.read(|p| st.poll_new_connections(p, now))
                };
                for peer in &ask {
                    transport.request_points(*peer);
                }
            }
            changed = want.changed() => {
                if changed.is_err() {
                    break;
                }
                let w = *want.borrow_and_update();
                lock(&shared).set_wanted(w, pool.now());
            }
            _ = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = pool.now();
                let ask = {
                    let mut rng = shared.rng.lock().unwrap_or_else(|e| e.into_inner());
                    let mut st = lock(&shared);
                    pool.read(|p| st.poll_round(p, now, &mut *rng))
                };
                let span = tracing::info_span!("discovery_round", asked = ask.len(), sources = sources.len());
                let _g = span.enter();
                for peer in &ask {
                    transport.request_points(*peer);
                }
                drop(_g);
                for source in &sources {
                    // A source that hangs costs one request_timeout, not the worker.
                    let points = tokio::select! {
                        _ = cancel.cancelled() => return,
                        p = tokio::time::timeout(request_timeout, source.fetch()) => match p {
                            Ok(points) => points,
                            Err(_) => {
                                tracing::debug!(source = source.name(), "point source timed out");
                                continue;
                            }
                        },
                    };
                    let now = pool.now();
                    let mut st = lock(&shared);
                    let cap = crate::MAX_POINTS_PER_MESSAGE;
                    let new = pool.with(|p| {
                        st.on_points(&points[..points.len().min(cap)], Source::External, p, now)
                    });
                    tracing::debug!(source = source.name(), got = points.len(), ?new, "point source polled");
                }
            }
        }
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, DiscoveryState> {
    s.state.lock().unwrap_or_else(|e| e.into_inner())
}
