//! # peerkeeper
//!
//! Keeps a P2P node's connections healthy: a Tezos-style maintenance worker with
//! trigger-driven loops, a bounded point pool, and peer-sharing discovery, with octez's
//! known flaws fixed (see `docs/` and the README).
//!
//! The decisions are a pure core, driven by thin tokio shells:
//!
//! * [`pool`]: the point and peer tables, bounded, with an index of dialable candidates;
//! * [`maintenance`]: the pure planner, the sans-IO cycle machine, and the tokio worker;
//! * [`discovery`]: peer sharing: whom to ask, when, what to answer, what to accept;
//! * [`trigger`]: the async conditions (too few, too many, new point, new peer, new
//!   connection) and the switches tests use;
//! * [`transport`]: the one seam to the network, with an in-memory implementation.
//!
//! Every decision takes an explicit [`Time`] and a seeded RNG: one seed, one outcome.
//!
//! ```no_run
//! use peerkeeper::{transport::memory::MemoryNetwork, Config, Maintainer, PoolHandle};
//! # #[tokio::main] async fn main() {
//! let config = Config::default();
//! let net = MemoryNetwork::new();
//! let pool = PoolHandle::new(&config);
//! let maintainer = Maintainer::start(config, pool.clone(), net.transport(&pool), 42);
//! let report = maintainer.maintain().await; // one full cycle, with what it did
//! println!("{} -> {} connections", report.connections_before, report.connections_after);
//! maintainer.shutdown().await;
//! # }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod core;
pub mod discovery;
pub mod maintenance;
pub mod node;
pub mod pool;
pub mod report;
pub mod sim;
mod time;
pub mod transport;
pub mod trigger;
pub mod wire;

pub use config::{
    BackoffConfig, Bounds, Config, ConfigError, DiscoveryConfig, Policy, RangeStatus,
};
pub use core::NodeCore;
pub use maintenance::CycleReport;
pub use node::{NetConfig, Node, NodeError};
pub use pool::PeerId;
pub use time::Time;

/// Most points one peer-sharing message may carry; more is a protocol violation.
pub const MAX_POINTS_PER_MESSAGE: usize = 100;
