//! The real network: the wire protocol ([`wire`]), the TCP transport ([`TcpTransport`]),
//! a whole node ([`Node`]: pool, maintenance, discovery and transport together), and the
//! many-node demo ([`demo`]).

pub mod demo;
mod node;
mod transport;
pub mod wire;

pub use node::Node;
pub use transport::{new_connection_wins, NetConfig, TcpTransport, TransportStats};
