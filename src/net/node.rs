//! A whole node on TCP: pool, maintenance worker, discovery worker and transport.

use super::transport::{NetConfig, TcpTransport};
use crate::config::Config;
use crate::discovery::{Discovery, PointSource};
use crate::handle::PoolHandle;
use crate::maintenance::Maintainer;
use crate::pool::{PeerId, Source};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A running node. [`shutdown`](Node::shutdown) stops every task it started.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// use peerkeeper::{net::{NetConfig, Node}, Config, PeerId};
/// let node = Node::start(Config::default(), NetConfig::default(),
///                        "127.0.0.1:0".parse().unwrap(), PeerId(1), vec![], vec![], 7).await?;
/// println!("listening on {}", node.local_addr());
/// node.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Node {
    pool: PoolHandle,
    maintainer: Maintainer,
    discovery: Arc<Discovery>,
    transport: TcpTransport,
    local_addr: SocketAddr,
    peer_id: PeerId,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("local_addr", &self.local_addr)
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Binds `listen` (port 0 picks one), learns `bootstrap` points (source: bootstrap;
    /// the config's trusted points are trusted), and starts the workers. `seed` seeds
    /// every random choice of the node.
    pub async fn start(
        config: Config,
        net: NetConfig,
        listen: SocketAddr,
        peer_id: PeerId,
        bootstrap: Vec<SocketAddr>,
        sources: Vec<Arc<dyn PointSource>>,
        seed: u64,
    ) -> std::io::Result<Node> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let pool = PoolHandle::new(&config);
        pool.with(|p| p.set_salt(seed));
        for p in bootstrap {
            if p != local_addr {
                pool.add_point(p, Source::Bootstrap);
            }
        }
        let config_arc = Arc::new(config.clone());
        let transport =
            TcpTransport::new(config_arc, net, peer_id, local_addr.port(), pool.clone());
        // The maintainer may dial before discovery is attached to the transport; points
        // received meanwhile are validated by the transport's fallback path.
        let maintainer = Maintainer::start(
            config.clone(),
            pool.clone(),
            Arc::new(transport.clone()),
            seed,
        );
        let discovery = Arc::new(Discovery::start(
            &config,
            pool.clone(),
            Arc::new(transport.clone()),
            maintainer.want_points(),
            sources,
            vec![local_addr],
            seed ^ 0x6469_7363,
        ));
        transport.set_discovery(discovery.clone());
        transport.serve(listener);
        Ok(Node {
            pool,
            maintainer,
            discovery,
            transport,
            local_addr,
            peer_id,
        })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's pool.
    pub fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// The maintenance worker.
    pub fn maintainer(&self) -> &Maintainer {
        &self.maintainer
    }

    /// The discovery worker.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The transport.
    pub fn transport(&self) -> &TcpTransport {
        &self.transport
    }

    /// Stops the workers, closes every connection, and waits for every task to end.
    pub async fn shutdown(&self) {
        self.maintainer.shutdown().await;
        self.discovery.shutdown().await;
        self.transport.shutdown().await;
    }
}
