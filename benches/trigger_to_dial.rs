//! Trigger to first dial: the time from a connection lost to the dial that replaces it,
//! in-process, on the memory transport (links of zero latency), on a real (not paused)
//! tokio runtime: multi-threaded (2 workers, as `#[tokio::main]` on this 2-core machine)
//! and current-thread. Figures in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench trigger_to_dial`.
//!
//! The node under test (targets 2/2/4: `min_threshold` 2) holds exactly two connections,
//! both opened by raw peers, and knows one candidate nobody has dialed, which listens.
//! Timed: from the moment a peer drops its end of a connection (a close from the peer's
//! side, as a crash or a reset would be) to the moment the candidate's listener accepts
//! the node's dial. In between: the connection task sees the link end, the actor feeds
//! the close to the core, the too-few trigger starts a cycle, the cycle plans the dial,
//! the actor spawns the dial task, which connects. Untimed: the candidate then answers
//! the handshake and becomes the node's second connection, asks the node for points and
//! waits for the answer (so that the node's task for that connection is known to be
//! reading it: a connection closed within the millisecond it opened is noticed only at
//! the next millisecond, when its task's first keepalive tick fires), a new candidate is
//! learned, and the next iteration closes the oldest connection again: the node always
//! starts from the same state (2 connections, 1 candidate, nothing in flight).

use criterion::{criterion_group, criterion_main, Criterion};
use futures::{SinkExt, StreamExt};
use peerkeeper::node::Node;
use peerkeeper::pool::Source;
use peerkeeper::transport::memory::{MemoryLink, MemoryNetwork, MemoryTransport};
use peerkeeper::transport::Transport;
use peerkeeper::wire::Message;
use peerkeeper::Config;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const NODE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 255, 255, 1)),
    9732,
);

/// Peer `k`'s listening point.
fn point(k: u32) -> SocketAddr {
    SocketAddr::from(([10, (k >> 16) as u8, (k >> 8) as u8, k as u8], 9732))
}

// The tests' raw peers: the two sides of the v3 handshake.
#[path = "../tests/common/mod.rs"]
mod common;

/// A raw peer with an open connection to the node: its listener (kept, so its point
/// exists) and its end of the link (held open; dropping it closes the connection).
struct Peer {
    _listener: MemoryTransport,
    _link: MemoryLink,
}

struct Bench {
    net: MemoryNetwork,
    node: Node,
    /// Open connections, oldest first.
    peers: VecDeque<Peer>,
    /// The candidate the node will dial next.
    candidate: MemoryTransport,
    next: u32,
}

impl Bench {
    async fn new() -> Bench {
        let net = MemoryNetwork::with_latency(|_, _| Duration::ZERO);
        let config = Config {
            min_connections: 2,
            expected_connections: 2,
            max_connections: 4,
            // A point whose connection ended is never a candidate again here: the next
            // dial always goes to the fresh candidate.
            disconnection_delay: Duration::from_secs(24 * 3600),
            ..Config::default()
        };
        assert_eq!(config.bounds().min_threshold, 2);
        let node = Node::builder(config, net.bind(NODE).expect("a free address"))
            .identity(peerkeeper::identity::Keypair::from_seed(u64::MAX))
            .seed(1)
            .start()
            .expect("a valid config");
        let mut peers = VecDeque::new();
        let mut next = 1;
        for _ in 0..2 {
            let listener = net.bind(point(next)).expect("a free address");
            let mut link = listener.connect(NODE).await.expect("the node listens");
            let reply =
                common::dial_handshake(&mut link, NODE, u64::from(next), 9732, "peerkeeper").await;
            assert!(matches!(reply, Message::Hello(_)));
            link.send(Message::AskForPoints).await.expect("sent");
            while !matches!(link.next().await, Some(Ok(Message::Advertise(_)))) {}
            peers.push_back(Peer {
                _listener: listener,
                _link: link,
            });
            next += 1;
        }
        let candidate = net.bind(point(next)).expect("a free address");
        let mut b = Bench {
            net,
            node,
            peers,
            candidate,
            next,
        };
        b.learn_candidate().await;
        b
    }

    /// Waits until the node has two connections, nothing in flight, and knows the
    /// candidate.
    async fn learn_candidate(&mut self) {
        let c = point(self.next);
        self.node
            .add_points(vec![c], Source::Bootstrap)
            .await
            .expect("running");
        let mut rx = self.node.status_watch();
        rx.wait_for(|s| s.connections == 2 && s.dialing == 0)
            .await
            .expect("running");
        // A consistent read of the core, after the points were learned (one mailbox).
        let ready = self
            .node
            .inspect(move |core| core.pool().candidates(false).any(|a| a == c))
            .await
            .expect("running");
        assert!(ready, "the candidate is dialable");
    }

    /// One timed replacement.
    async fn once(&mut self) -> Duration {
        let oldest = self.peers.pop_front().expect("two connections");
        let start = Instant::now();
        drop(oldest);
        let (mut link, _) = self.candidate.accept().await.expect("the node dials");
        let took = start.elapsed();
        // Untimed: answer the handshake; the candidate becomes a connection, whose task
        // at the node answers a request (it reads the link).
        common::accept_handshake_as(&mut link, u64::from(self.next), 9732).await;
        link.send(Message::AskForPoints).await.expect("sent");
        loop {
            match link.next().await {
                Some(Ok(Message::Advertise(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("the node closed the new connection: {other:?}"),
            }
        }
        self.next += 1;
        let fresh = self.net.bind(point(self.next)).expect("a free address");
        let listener = std::mem::replace(&mut self.candidate, fresh);
        self.peers.push_back(Peer {
            _listener: listener,
            _link: link,
        });
        self.learn_candidate().await;
        took
    }
}

fn run(c: &mut Criterion, name: &str, rt: tokio::runtime::Runtime) {
    let mut state = rt.block_on(Bench::new());
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += state.once().await;
                }
                total
            })
        })
    });
    rt.block_on(state.node.shutdown());
}

fn bench(c: &mut Criterion) {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    run(c, "trigger_to_dial/multi_thread", multi);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    run(c, "trigger_to_dial/current_thread", single);
}

criterion_group! {
    name = benches;
    // An iteration spends most of its wall time untimed (setting the next one up).
    config = Criterion::default().measurement_time(Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
