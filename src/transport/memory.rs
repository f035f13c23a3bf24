//! An in-memory network for tests, examples and the library's own demos: links are pairs
//! of bounded channels, every message delivered one link latency after it was sent, on
//! tokio's clock (so a paused test clock drives them, and timings match the simulator's:
//! a handshake answer comes back two latencies after the dial).
//!
//! Messages are checked against the wire caps on delivery ([`Message::check`]), as the
//! TCP codec checks them, so over-cap messages are violations here too.

use super::Transport;
use crate::wire::{Message, WireError};
use futures::future::BoxFuture;
use futures::{FutureExt, Sink, Stream};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::PollSender;

/// Messages in flight per direction of a link.
const LINK_CAPACITY: usize = 64;
/// Incoming links waiting to be accepted.
const BACKLOG: usize = 64;

type LatencyFn = Arc<dyn Fn(SocketAddr, SocketAddr) -> Duration + Send + Sync>;

struct Stamped {
    at: Instant,
    msg: Message,
}

/// One end of an in-memory link.
pub struct MemoryLink {
    tx: PollSender<Stamped>,
    /// The other end is gone: what we send is lost, as on a TCP connection whose peer
    /// closed (we learn of the close from its messages, one latency later, not now).
    peer_gone: bool,
    rx: mpsc::Receiver<Stamped>,
    pending: Option<Stamped>,
    sleep: Option<Pin<Box<Sleep>>>,
    latency: Duration,
    /// The address the other side reached (set on the accepting end).
    local: Option<SocketAddr>,
}

impl std::fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLink")
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl MemoryLink {
    /// Two connected ends, each message taking `latency`.
    pub fn pair(latency: Duration) -> (MemoryLink, MemoryLink) {
        let (atx, brx) = mpsc::channel(LINK_CAPACITY);
        let (btx, arx) = mpsc::channel(LINK_CAPACITY);
        let end = |tx, rx| MemoryLink {
            tx: PollSender::new(tx),
            peer_gone: false,
            rx,
            pending: None,
            sleep: None,
            latency,
            local: None,
        };
        (end(atx, arx), end(btx, brx))
    }
}

impl super::Link for MemoryLink {
    /// Messages on an in-memory link never leave the process: nothing to seal.
    fn secure(&mut self, _keys: crate::secure::SessionKeys) {}

    fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

fn broken() -> WireError {
    WireError::Io(io::Error::from(io::ErrorKind::BrokenPipe))
}

impl Stream for MemoryLink {
    type Item = Result<Message, WireError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.pending.is_none() {
                match this.rx.poll_recv(cx) {
                    Poll::Ready(Some(m)) => this.pending = Some(m),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let at = this.pending.as_ref().map_or_else(Instant::now, |p| p.at);
            if Instant::now() >= at {
                this.sleep = None;
                let msg = this.pending.take().map(|p| p.msg);
                return Poll::Ready(msg.map(|m| m.check().map(|()| m)));
            }
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl Sink<Message> for MemoryLink {
    type Error = WireError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        if self.peer_gone {
            return Poll::Ready(Ok(()));
        }
        match self.tx.poll_reserve(cx) {
            Poll::Ready(Err(_)) => {
                self.peer_gone = true;
                Poll::Ready(Ok(()))
            }
            other => other.map_err(|_| broken()),
        }
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), WireError> {
        if self.peer_gone {
            return Ok(());
        }
        let at = Instant::now() + self.latency;
        if self.tx.send_item(Stamped { at, msg }).is_err() {
            self.peer_gone = true;
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

use std::future::Future;

struct NetState {
    listeners: BTreeMap<SocketAddr, mpsc::Sender<(MemoryLink, SocketAddr)>>,
    unreachable: BTreeSet<SocketAddr>,
    latency: LatencyFn,
    next_port: u16,
    connects: u64,
}

/// The network: a registry of listening addresses. Cheap to clone (shared state).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use futures::{SinkExt, StreamExt};
/// use peerkeeper::transport::{memory::MemoryNetwork, Transport};
/// use peerkeeper::wire::Message;
/// let net = MemoryNetwork::new();
/// let a = net.bind("10.0.0.1:1".parse().unwrap()).unwrap();
/// let b = net.bind("10.0.0.2:1".parse().unwrap()).unwrap();
/// let mut out = a.connect(b.local_addr()).await.unwrap();
/// let (mut inc, _from) = b.accept().await.unwrap();
/// out.send(Message::KeepAlive).await.unwrap();
/// assert_eq!(inc.next().await.unwrap().unwrap(), Message::KeepAlive); // 10 ms later
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        MemoryNetwork::new()
    }
}

impl MemoryNetwork {
    /// An empty network whose links all take 10 ms.
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::with_latency(|_, _| Duration::from_millis(10))
    }

    /// An empty network where a link between `a` and `b` takes `latency(a, b)` each way
    /// (called with the dialer's listening address first).
    pub fn with_latency(
        latency: impl Fn(SocketAddr, SocketAddr) -> Duration + Send + Sync + 'static,
    ) -> MemoryNetwork {
        MemoryNetwork {
            state: Arc::new(Mutex::new(NetState {
                listeners: BTreeMap::new(),
                unreachable: BTreeSet::new(),
                latency: Arc::new(latency),
                next_port: 40_000,
                connects: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens on `addr`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] if something listens there already.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<MemoryTransport> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let mut s = self.lock();
        if s.listeners.contains_key(&addr) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        s.listeners.insert(addr, tx);
        Ok(MemoryTransport {
            net: self.clone(),
            addr,
            incoming: tokio::sync::Mutex::new(rx),
        })
    }

    /// Makes `addr` unreachable (or reachable again): a connect fails as to a host that
    /// is down (`HostUnreachable`), not refused as by a host where nobody listens.
    pub fn set_unreachable(&self, addr: SocketAddr, unreachable: bool) {
        let mut s = self.lock();
        if unreachable {
            s.unreachable.insert(addr);
        } else {
            s.unreachable.remove(&addr);
        }
    }

    /// Connections opened so far.
    pub fn connects(&self) -> u64 {
        self.lock().connects
    }
}

/// One listening address on a [`MemoryNetwork`]. Dropping it stops the listening.
pub struct MemoryTransport {
    net: MemoryNetwork,
    addr: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<(MemoryLink, SocketAddr)>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.net.lock().listeners.remove(&self.addr);
    }
}

impl Transport for MemoryTransport {
    type Link = MemoryLink;

    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<MemoryLink>> {
        let net = self.net.clone();
        let me = self.addr;
        async move {
            let (listener, latency, remote) = {
                let mut s = net.lock();
                let unreachable = s.unreachable.contains(&point);
                let listener = s.listeners.get(&point).cloned();
                let latency = (s.latency)(me, point);
                s.next_port = s.next_port.checked_add(1).unwrap_or(40_000);
                s.connects += 1;
                if unreachable {
                    // No route: as a TCP connect to a host that is down, not one refused.
                    return Err(io::Error::from(io::ErrorKind::HostUnreachable));
                }
                (listener, latency, SocketAddr::new(me.ip(), s.next_port))
            };
            // Nobody listens there: refused at once, as a TCP connect to a closed port.
            let listener =
                listener.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            let (ours, mut theirs) = MemoryLink::pair(latency);
            theirs.local = Some(point);
            listener
                .send((theirs, remote))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(ours)
        }
        .boxed()
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(MemoryLink, SocketAddr)>> {
        async move {
            self.incoming
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
        }
        .boxed()
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}
