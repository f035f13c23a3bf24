//! TCP links: a `TcpStream` framed by the wire codec.

use super::Transport;
use crate::wire::WireCodec;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;

/// A TCP link.
pub type TcpLink = Framed<TcpStream, WireCodec>;

/// The TCP transport: a listener, and outgoing connections with `TCP_NODELAY`.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// use peerkeeper::transport::{tcp::TcpTransport, Transport};
/// let t = TcpTransport::bind("127.0.0.1:0").await?;
/// println!("listening on {}", t.local_addr());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    local: SocketAddr,
}

impl TcpTransport {
    /// Listens on `addr` (port 0 picks one). Cancel-safe (nothing is bound if dropped
    /// before it resolves).
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpTransport> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok(TcpTransport { listener, local })
    }
}

impl super::Link for TcpLink {
    fn secure(&mut self, keys: crate::secure::SessionKeys) {
        self.codec_mut().secure(keys);
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.get_ref().local_addr().ok()
    }
}

fn framed(stream: TcpStream) -> TcpLink {
    let _ = stream.set_nodelay(true);
    Framed::new(stream, WireCodec::default())
}

impl Transport for TcpTransport {
    type Link = TcpLink;

    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<TcpLink>> {
        async move { TcpStream::connect(point).await.map(framed) }.boxed()
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(TcpLink, SocketAddr)>> {
        // `TcpListener::accept` is cancel-safe.
        async move {
            let (stream, remote) = self.listener.accept().await?;
            Ok((framed(stream), remote))
        }
        .boxed()
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
