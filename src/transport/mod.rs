//! The one seam to the network.
//!
//! The maintenance worker dials and closes through a [`Transport`]; the discovery worker
//! sends peer-sharing requests through it. A transport reports what the network does on
//! its own (incoming connections, connections lost, points advertised) to the
//! [`PoolHandle`](crate::PoolHandle) it was given. Two implementations: the in-memory
//! [`memory::MemoryNetwork`] for tests, and TCP in [`crate::net`].

pub mod memory;

use crate::pool::PeerId;
use futures::future::BoxFuture;
use std::net::SocketAddr;

/// Why a dial did not give a connection. A failed dial is an event plus a backoff for the
/// point, not an error of the maintainer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// No answer within `dial_timeout`.
    #[error("dial timed out")]
    Timeout,
    /// The connection could not be made (refused, unreachable, reset).
    #[error("connection failed: {0}")]
    Io(String),
    /// The peer refused us (full, wrong network, wrong version...).
    #[error("refused by peer: {0}")]
    Refused(String),
    /// The peer broke the protocol during the handshake.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The point is ourselves.
    #[error("dialed ourselves")]
    Myself,
    /// The peer is already connected (through another point or an incoming connection).
    #[error("peer already connected")]
    AlreadyConnected,
}

impl DialError {
    /// Whether the failure counts against the point (grows its backoff). A dial that found
    /// the peer already connected does not.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, DialError::AlreadyConnected)
    }
}

/// Why we close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CloseReason {
    /// Maintenance trims above `max_threshold`.
    TooManyConnections,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// A second connection to a peer already connected.
    Duplicate,
    /// The node shuts down.
    Shutdown,
    /// The peer's address changed (the old connection is stale).
    AddressChanged,
}

/// The network, as the workers see it.
///
/// A transport registers every connection it opens or accepts in the node's
/// [`PoolHandle`](crate::PoolHandle), and every connection that ends, so the pool is the
/// one truth about what is connected. Implementations must be cheap to call: `dial` starts the work and returns a future,
/// `close` and `request_points` only queue.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `point` and completes the handshake, registers the connection in the
    /// node's pool (`connection_opened`, outbound; a refusal there, such as a duplicate
    /// peer, closes it and gives [`DialError::AlreadyConnected`]), and resolves with the
    /// peer's id. The caller applies its own `dial_timeout` on top. Cancel-safe: dropping
    /// the future abandons the dial.
    fn dial(&self, point: SocketAddr) -> BoxFuture<'static, Result<PeerId, DialError>>;

    /// Closes the connection at `point`, if any.
    fn close(&self, point: SocketAddr, reason: CloseReason);

    /// Sends a request for points to the peer connected at `point`. Answers come back
    /// through the pool handle (as new points).
    fn request_points(&self, point: SocketAddr);
}
