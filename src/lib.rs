//! # peerkeeper
//!
//! Keeps a P2P node's connections healthy: a Tezos-style maintenance machine with
//! trigger-driven loops, a bounded point pool, and peer-sharing discovery, with octez's
//! known flaws fixed (see `docs/` and the README).
//!
//! Every decision lives in one sans-IO type, [`NodeCore`], which both the tokio node
//! ([`Node`]) and the deterministic simulator ([`sim`]) drive:
//!
//! * [`core`]: the node core: admission, refusals, point intake (the relay rule), dial
//!   outcomes, farewells, duplicates, trigger reactions; inputs `handle_*(…, now)`,
//!   outputs polled actions and a next deadline;
//! * [`pool`]: the point and peer tables, bounded, with an index of dialable candidates;
//! * [`maintenance`]: the pure planner and cycle machine, and the octez model;
//! * [`discovery`]: when and whom to ask for points;
//! * [`trigger`]: too few, too many, new point, new peer, new connection;
//! * [`node`]: the tokio shell; [`transport`]: TCP and in-memory links; [`wire`]: the
//!   protocol; [`identity`]: node keys, and what the handshake proves;
//! * [`sim`]: one core per simulated node, in virtual time;
//! * [`control`]: an operator's control socket (`peerkeeper ctl`) over [`Node`]'s operations.
//!
//! Every decision takes an explicit [`Time`] and a seeded RNG: one seed, one outcome.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
//! let config = Config { min_connections: 1, expected_connections: 2, max_connections: 3,
//!                       ..Config::default() };
//! let net = MemoryNetwork::new(); // or transport::tcp::TcpTransport::bind(addr).await
//! let seed = Node::builder(config.clone(), net.bind("10.0.0.1:9732".parse().unwrap()).unwrap())
//!     .identity(Keypair::from_seed(1)).seed(1).start().unwrap();
//! let node = Node::builder(config, net.bind("10.0.0.2:9732".parse().unwrap()).unwrap())
//!     .identity(Keypair::from_seed(2)).seed(2).bootstrap(vec![seed.local_addr()]).start().unwrap();
//! let report = node.maintain().await.unwrap(); // one full cycle, with what it did
//! println!("{} -> {} connections", report.connections_before, report.connections_after);
//! node.shutdown().await;
//! seed.shutdown().await;
//! # }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod core;
pub mod discovery;
mod files;
pub mod handshake;
pub mod identity;
pub mod maintenance;
pub mod metrics;
pub mod node;
pub mod pool;
pub mod report;
pub mod rng;
pub mod secure;
pub mod sim;
pub mod store;
mod time;
pub mod transport;
pub mod trigger;
pub mod wire;

pub use config::{
    BackoffConfig, Bounds, Config, ConfigError, Defences, DiscoveryConfig, FeedbackConfig,
    KindTarget, KindTargets, PeerSetConfig, Policy, RangeStatus,
};
pub use core::NodeCore;
pub use maintenance::CycleReport;
pub use node::{NetConfig, Node, NodeError};
pub use pool::PeerId;
pub use time::Time;

/// Most points one peer-sharing message may carry; more is a protocol violation.
pub const MAX_POINTS_PER_MESSAGE: usize = 100;
