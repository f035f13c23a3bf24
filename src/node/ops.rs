//! The operator's operations on a running [`Node`]: what `peerkeeper ctl` asks a node
//! through its control socket ([`crate::control`]), and what an embedding node puts
//! behind its own RPC. Each is one message to the node's actor; those that change
//! anything are core inputs ([`crate::core::Input`]), recorded in a trace like every
//! other, and all are cancel-safe in the sense of [`Node::track`]: once queued, dropping
//! the future loses only the answer.

use super::{Cmd, Node, NodeError};
use crate::core::{BanTarget, ConnectionView, Input, NodeCore, PointFilter, PointView, Reply};
use crate::pool::{PeerId, Source};
use crate::Time;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

impl Node {
    /// The node's clock now (what its core's times count from: [`Node::wall_clock`]
    /// turns one into a wall-clock time).
    pub fn now(&self) -> Time {
        Time::from_duration(
            tokio::time::Instant::now().saturating_duration_since(self.inner.origin.0),
        )
    }

    /// The wall-clock time of a time on the node's clock (as events and views give them).
    pub fn wall_clock(&self, at: Time) -> SystemTime {
        self.inner.origin.1 + at.as_duration()
    }

    /// The network name the node's handshakes carry.
    pub fn network(&self) -> &str {
        &self.inner.network
    }

    /// The maintenance policy of the node's core.
    pub fn policy(&self) -> crate::Policy {
        self.inner.policy
    }

    /// Feeds an operator's input and reads the core after it.
    async fn apply<R: Send + 'static>(
        &self,
        input: Input,
        then: impl FnOnce(&NodeCore, Reply) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.ask(|tx| {
            Cmd::Apply(
                input,
                Box::new(move |core: &NodeCore, reply: Reply| {
                    let _ = tx.send(then(core, reply));
                }),
            )
        })
        .await
    }

    /// The open connections (ordered by peer id) with their kind, age, feedback score
    /// and round-trip time: `peerkeeper ctl peers`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
    /// let net = MemoryNetwork::new();
    /// let config = Config { min_connections: 1, expected_connections: 2, max_connections: 3,
    ///                       ..Config::default() };
    /// let a = Node::builder(config.clone(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(1)).seed(1).start().unwrap();
    /// let b = Node::builder(config, net.bind("10.0.0.2:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(2)).seed(2).bootstrap(vec![a.local_addr()]).start().unwrap();
    /// b.status_watch().wait_for(|s| s.connections == 1).await.unwrap();
    /// let peers = b.connections().await.unwrap();
    /// assert_eq!(peers[0].peer, a.peer_id());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn connections(&self) -> Result<Vec<ConnectionView>, NodeError> {
        let now = self.now();
        self.inspect(move |core| core.connections_at(now)).await
    }

    /// The known points in state `filter` (all with `None`), ordered by point, at most
    /// `limit`, and how many matched in all: `peerkeeper ctl points`.
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn points(
        &self,
        filter: Option<PointFilter>,
        limit: usize,
    ) -> Result<(Vec<PointView>, usize), NodeError> {
        let now = self.now();
        self.inspect(move |core| core.points_at(filter, limit, now))
            .await
    }

    /// Bans a point or an IP address for `duration` (default: the config's
    /// `greylist_duration`; at most [`MAX_BAN`](crate::core::MAX_BAN)); its connections
    /// are closed at once ([`NodeCore::ban`]). Returns when the ban ends. Saved with the
    /// pool (`--data-dir`): it holds across a restart.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use peerkeeper::core::BanTarget;
    /// use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
    /// use std::time::Duration;
    /// let net = MemoryNetwork::new();
    /// let node = Node::builder(Config::default(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
    ///     .identity(Keypair::from_seed(1)).start().unwrap();
    /// let bad = BanTarget::Ip("192.0.2.66".parse().unwrap());
    /// node.ban(bad, Some(Duration::from_secs(3600))).await.unwrap();
    /// assert!(node.unban(bad).await.unwrap());  // it was banned
    /// assert!(!node.unban(bad).await.unwrap()); // no longer
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn ban(
        &self,
        target: BanTarget,
        duration: Option<Duration>,
    ) -> Result<SystemTime, NodeError> {
        let until = self
            .apply(Input::Ban { target, duration }, |_, r| match r {
                Reply::Banned(t) => t,
                _ => Time::ZERO,
            })
            .await?;
        Ok(self.wall_clock(until))
    }

    /// Lifts the ban of a point or an IP address, whatever caused it (a violation, a
    /// score, the operator). Returns whether anything was banned. See
    /// [`ban`](Self::ban) for an example.
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn unban(&self, target: BanTarget) -> Result<bool, NodeError> {
        self.apply(Input::Unban { target }, |_, r| r == Reply::Done(true))
            .await
    }

    /// Protects (or stops protecting) a point: its connection is never trimmed nor
    /// closed to make room, and it is admitted inbound beyond `max_inbound`. Returns
    /// whether the point is protected now (the set of protected points is bounded).
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn protect(&self, point: SocketAddr, on: bool) -> Result<bool, NodeError> {
        let input = Input::SetProtected {
            points: vec![point],
            on,
        };
        self.apply(input, move |core, _| core.pool().is_protected(&point))
            .await
    }

    /// Trusts a point from now on, as a `--trusted` one: dialed first, never trimmed,
    /// admitted in private mode; with `peer`, it must prove that key ([`NodeCore::trust`]).
    /// Returns `false` when it cannot be (an undialable address, our own, too many keys
    /// expected).
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn trust(&self, point: SocketAddr, peer: Option<PeerId>) -> Result<bool, NodeError> {
        self.apply(Input::Trust { point, peer }, |_, r| r == Reply::Done(true))
            .await
    }

    /// Adds a point as the operator's (a bootstrap point: dialed when the node needs
    /// connections, shared like any other). Returns whether the pool knows it now (an
    /// undialable address or our own is dropped).
    ///
    /// # Errors
    ///
    /// [`NodeError::Stopped`] if the node has stopped.
    pub async fn add_point(&self, point: SocketAddr) -> Result<bool, NodeError> {
        let input = Input::AddPoints {
            points: vec![point],
            source: Source::Bootstrap,
        };
        self.apply(input, move |core, _| {
            core.pool()
                .get(&SocketAddr::new(
                    crate::core::intake::canonical_ip(point.ip()),
                    point.port(),
                ))
                .is_some()
        })
        .await
    }
}
