//! The real network: the wire protocol over TCP ([`protocol`]), the TCP transport
//! ([`TcpTransport`]), a whole running [`Node`], and [`demo`]: N nodes in one process
//! converging from one bootstrap point. The protocol and its design choices are described
//! in `docs/network.md`.

pub mod demo;
mod node;
pub mod protocol;
mod tcp;

pub use node::{Node, NodeError, NodeOptions, NodeStats};
pub use tcp::{NetConfig, NetStats, TcpTransport};
