//! The one seam to the network: raw links that carry wire [`Message`]s.
//!
//! A [`Transport`] only opens links ([`connect`](Transport::connect)) and accepts them
//! ([`accept`](Transport::accept)); it decides nothing and knows no peer. Everything
//! above the link (the handshake, admission, keepalive, what each message means) is the
//! tokio shell's ([`crate::node`]), the same for every transport, and every decision in
//! it is the node core's ([`crate::core`]). Two transports: TCP ([`tcp::TcpTransport`])
//! and an in-memory network with per-link latency on tokio's clock
//! ([`memory::MemoryNetwork`]), so tests on a paused clock run the same shell code as a
//! real node.
//!
//! [`Message`]: crate::wire::Message

pub mod memory;
pub mod tcp;

use crate::secure::SessionKeys;
use crate::wire::{Message, WireError};
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::io;
use std::net::SocketAddr;

/// A bidirectional stream of wire messages: what a transport gives for each connection.
/// A stream error that [`WireError::is_violation`] is a peer's fault (garbage, oversized,
/// a sealed frame that does not open).
pub trait Link:
    Stream<Item = Result<Message, WireError>>
    + Sink<Message, Error = WireError>
    + Send
    + Unpin
    + 'static
{
    /// Seals every message from now on, both ways, with the keys the handshake agreed
    /// ([`crate::handshake`]). A link whose bytes never leave the process (the in-memory
    /// network) may ignore them.
    fn secure(&mut self, keys: SessionKeys);

    /// This end's own address, as the other side reached it (the acceptor checks that a
    /// dialer dialed it: [`crate::handshake::accept_hello`]). `None` when the transport
    /// cannot tell; the check is then skipped.
    fn local_addr(&self) -> Option<SocketAddr>;
}

/// Opens and accepts links. See the module docs.
pub trait Transport: Send + Sync + 'static {
    /// The links this transport makes.
    type Link: Link;

    /// Opens a link to `point` (no handshake: the shell does it). The caller applies its
    /// `dial_timeout` on top. Cancel-safe: dropping the future abandons the attempt.
    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<Self::Link>>;

    /// The next incoming link, with the remote address it came from. Cancel-safe: a
    /// link is never lost by dropping the future before it resolves.
    fn accept(&self) -> BoxFuture<'_, io::Result<(Self::Link, SocketAddr)>>;

    /// The address this transport listens on.
    fn local_addr(&self) -> SocketAddr;
}
