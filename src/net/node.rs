//! A running node: a pool, the maintenance worker, the discovery worker, the TCP
//! transport and its listener, started together and stopped together.

use super::tcp::{NetConfig, NetStats, TcpTransport};
use crate::config::{Config, ConfigError};
use crate::discovery::{Discovery, DiscoveryStats, PointSource};
use crate::handle::PoolHandle;
use crate::maintenance::MaintainerStats;
use crate::pool::PeerId;
use crate::Maintainer;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What a node is started with.
#[derive(Clone)]
pub struct NodeOptions {
    /// Maintenance, pool and discovery settings (trusted points are the bootstrap points).
    pub config: Config,
    /// TCP settings.
    pub net: NetConfig,
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Seeds every random choice of the node (and its peer id unless `peer_id` is set).
    pub seed: u64,
    /// The node's peer id; drawn from `seed` when `None`.
    pub peer_id: Option<PeerId>,
    /// Other sources of points polled by discovery.
    pub sources: Vec<Arc<dyn PointSource>>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl NodeOptions {
    /// Options for `config`, listening on `listen`, default TCP settings, seed 0.
    pub fn new(config: Config, listen: SocketAddr) -> NodeOptions {
        NodeOptions {
            config,
            net: NetConfig::default(),
            listen,
            seed: 0,
            peer_id: None,
            sources: Vec::new(),
        }
    }
}

/// Counters of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    /// Connections in the pool.
    pub connections: usize,
    /// Points known.
    pub known_points: usize,
    /// Maintenance counters.
    pub maintenance: MaintainerStats,
    /// Discovery counters.
    pub discovery: DiscoveryStats,
    /// TCP counters.
    pub net: NetStats,
}

/// A running node. See the [module docs](self).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), peerkeeper::net::NodeError> {
/// use peerkeeper::{net::{Node, NodeOptions}, Config};
/// let node = Node::start(NodeOptions::new(Config::default(), "127.0.0.1:0".parse().unwrap())).await?;
/// println!("{} listening on {}", node.peer_id(), node.listen_addr());
/// node.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Node {
    pool: PoolHandle,
    transport: Arc<TcpTransport>,
    maintainer: Maintainer,
    discovery: Arc<Discovery>,
    listen: SocketAddr,
    peer: PeerId,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", &self.peer)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Validates the config, binds the listener, and starts the workers.
    pub async fn start(opts: NodeOptions) -> Result<Node, NodeError> {
        opts.config.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
        let peer = opts.peer_id.unwrap_or_else(|| PeerId(rng.gen()));
        let pool = PoolHandle::new(&opts.config);
        let transport =
            TcpTransport::new(opts.config.clone(), opts.net.clone(), pool.clone(), peer);
        let listen = transport
            .listen(opts.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: opts.listen,
                source,
            })?;
        let maintainer = Maintainer::start(
            opts.config.clone(),
            pool.clone(),
            transport.clone(),
            rng.gen(),
        );
        let discovery = Arc::new(Discovery::start(
            &opts.config,
            pool.clone(),
            transport.clone(),
            maintainer.want_points(),
            opts.sources,
            vec![listen],
            rng.gen(),
        ));
        transport.set_discovery(discovery.clone());
        tracing::info!(%peer, %listen, "node started");
        Ok(Node {
            pool,
            transport,
            maintainer,
            discovery,
            listen,
            peer,
        })
    }

    /// The bound listening address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The node's pool.
    pub fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// The node's transport.
    pub fn transport(&self) -> &Arc<TcpTransport> {
        &self.transport
    }

    /// The maintenance worker.
    pub fn maintainer(&self) -> &Maintainer {
        &self.maintainer
    }

    /// The discovery worker.
    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    /// Open connections (as the pool counts them).
    pub fn connection_count(&self) -> usize {
        self.pool.active_count()
    }

    /// The listening points this node is connected to.
    pub fn connected_points(&self) -> Vec<SocketAddr> {
        self.pool
            .read(|p| p.connections().map(|(a, _)| a).collect())
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            connections: self.pool.active_count(),
            known_points: self.pool.read(|p| p.len()),
            maintenance: self.maintainer.stats(),
            discovery: self.discovery.stats(),
            net: self.transport.stats(),
        }
    }

    /// Stops discovery, maintenance (and its dials), then every connection and the
    /// listener; returns when no task of the node is left.
    pub async fn shutdown(&self) {
        self.discovery.shutdown().await;
        self.maintainer.shutdown().await;
        self.transport.shutdown().await;
        tracing::info!(peer = %self.peer, "node stopped");
    }
}
