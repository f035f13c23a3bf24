//! A node against scripted collaborators (mockall): exactly which points it dials, and
//! exactly when it polls its point source. The test plays every peer the node reaches:
//! each scripted dial hands the test the far end of an in-memory link.
//!
//! An unscripted call panics in the node's own task, where the panic alone would go
//! unseen; so every mock sits behind a mutex the test keeps: the panic poisons it, and
//! [`verify`], after the node has stopped, fails on a poisoned mock or on a call count
//! short of the script (`checkpoint`).

mod common;

use common::*;
use futures::future::{BoxFuture, FutureExt};
use futures::SinkExt;
use mockall::automock;
use mockall::predicate::eq;
use peerkeeper::node::PointSource;
use peerkeeper::pool::Source;
use peerkeeper::transport::memory::MemoryLink;
use peerkeeper::transport::Transport;
use peerkeeper::wire::{Message, RefuseCode};
use peerkeeper::Config;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);

/// What a scripted transport does when the node dials.
#[automock]
trait Dialer {
    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<MemoryLink>>;
}

/// Checks that the node made exactly the scripted calls: none unscripted (the mock would
/// be poisoned by the panic), none missing.
fn verify<M>(mock: &Mutex<M>, checkpoint: impl FnOnce(&mut M)) {
    let mut m = mock
        .lock()
        .expect("an unscripted call (its panic is printed above)");
    checkpoint(&mut m);
}

/// A transport whose dials follow a script and which nobody dials.
struct Scripted {
    dialer: Arc<Mutex<MockDialer>>,
}

impl Transport for Scripted {
    type Link = MemoryLink;

    fn connect(&self, point: SocketAddr) -> BoxFuture<'static, io::Result<MemoryLink>> {
        self.dialer.lock().unwrap().connect(point)
    }

    fn accept(&self) -> BoxFuture<'_, io::Result<(MemoryLink, SocketAddr)>> {
        futures::future::pending().boxed()
    }

    fn local_addr(&self) -> SocketAddr {
        ME
    }
}

/// The far ends of scripted dials, with the point dialed.
type Answered = mpsc::UnboundedReceiver<(SocketAddr, MemoryLink)>;

/// The next scripted dial (an unscripted one fails in the node's task: nothing comes).
async fn next_dial(answered: &mut Answered) -> (SocketAddr, MemoryLink) {
    tokio::time::timeout(VIRTUAL_DEADLINE, answered.recv())
        .await
        .expect("a scripted dial")
        .unwrap()
}

/// A scripted dial: opens a link and hands its far end to the test.
fn answer(
    tx: &mpsc::UnboundedSender<(SocketAddr, MemoryLink)>,
) -> impl FnMut(SocketAddr) -> BoxFuture<'static, io::Result<MemoryLink>> + Send + 'static {
    let tx = tx.clone();
    move |point| {
        let (ours, theirs) = MemoryLink::pair(Duration::from_millis(10));
        tx.send((point, theirs)).unwrap();
        futures::future::ready(Ok(ours)).boxed()
    }
}

/// Plays a peer on `link`: sends a keepalive every 5 s, answers nothing, and returns what
/// it received (keepalives left out) once the link ends.
fn play_quiet_peer(mut link: MemoryLink) -> tokio::task::JoinHandle<Vec<Message>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                m = next_message(&mut link) => match m {
                    Some(Message::KeepAlive | Message::Ping(_) | Message::Pong(_)) => {}
                    Some(m) => seen.push(m),
                    None => return seen,
                },
                _ = tick.tick() => {
                    if link.send(Message::KeepAlive).await.is_err() {
                        return seen;
                    }
                }
            }
        }
    })
}

/// Reads the node's handshake on `link` and answers as peer `id`.
async fn accept_handshake(link: &mut MemoryLink, id: u64) {
    accept_handshake_as(link, id, 9732).await;
}

#[tokio::test(start_paused = true)]
async fn private_mode_dials_exactly_the_trusted_point_and_never_asks_or_answers() {
    let trusted = ip4(2, 0, 1);
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 6,
        private_mode: true,
        trusted_points: vec![trusted],
        ..Config::default()
    };
    let (tx, mut answered): (_, Answered) = mpsc::unbounded_channel();
    let mut dialer = MockDialer::new();
    dialer
        .expect_connect()
        .with(eq(trusted))
        .times(1)
        .returning(answer(&tx));
    let dialer = Arc::new(Mutex::new(dialer));
    let lab = Lab::new();
    // Untrusted points are known, and must not be dialed.
    let node = lab
        .builder_on(
            config,
            Scripted {
                dialer: dialer.clone(),
            },
            1,
        )
        .bootstrap((1..=18).map(|i| ip4(1, 0, i)).collect())
        .start()
        .unwrap();
    let (point, mut link) = next_dial(&mut answered).await;
    assert_eq!(point, trusted);
    accept_handshake(&mut link, 50).await;
    // The trusted peer asks for points: private mode never answers.
    link.send(Message::AskForPoints).await.unwrap();
    let peer = play_quiet_peer(link);
    wait_status(&node, VIRTUAL_DEADLINE, "connected", |s| s.connections == 1).await;
    let r = node.maintain().await.unwrap();
    assert_eq!(r.dialed, 0);
    assert!(!r.asked_for_points);
    // Ten minutes of a short node in private mode: still no other dial.
    assert_never_within(&node, Duration::from_secs(600), "another dial", |s| {
        s.stats.dials.attempted > 1
    })
    .await;
    let s = node.status();
    assert_eq!((s.stats.sharing.requests, s.stats.sharing.answers), (0, 0));
    node.shutdown().await;
    let received = peer.await.unwrap();
    assert_eq!(
        received,
        vec![Message::Close(peerkeeper::wire::CloseCode::Shutdown)],
        "neither a request nor an answer, only the farewell"
    );
    verify(&dialer, MockDialer::checkpoint);
}

#[tokio::test(start_paused = true)]
async fn a_full_peer_s_refusal_gives_the_points_the_node_dials_next() {
    let full = ip4(1, 0, 1);
    let other = ip4(1, 0, 2);
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 2,
        // The exact dials are the refusal's: no exploration dial within the test.
        exploration_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let (tx, mut answered): (_, Answered) = mpsc::unbounded_channel();
    let mut dialer = MockDialer::new();
    let mut seq = mockall::Sequence::new();
    dialer
        .expect_connect()
        .with(eq(full))
        .times(1)
        .in_sequence(&mut seq)
        .returning(answer(&tx));
    dialer
        .expect_connect()
        .with(eq(other))
        .times(1)
        .in_sequence(&mut seq)
        .returning(answer(&tx));
    let dialer = Arc::new(Mutex::new(dialer));
    let lab = Lab::new();
    let node = lab
        .builder_on(
            config,
            Scripted {
                dialer: dialer.clone(),
            },
            1,
        )
        .bootstrap(vec![full])
        .start()
        .unwrap();

    // The full peer refuses, naming another point (and two the node must not take: a
    // loopback address from a LAN peer, and port 0).
    let (point, mut link) = next_dial(&mut answered).await;
    assert_eq!(point, full);
    let m = next_message(&mut link).await;
    assert!(matches!(m, Some(Message::Hello(_))), "{m:?}");
    let junk: Vec<SocketAddr> = vec![
        SocketAddr::from(([127, 0, 0, 1], 9732)),
        SocketAddr::from(([10, 1, 0, 3], 0)),
    ];
    let mut points = vec![other];
    points.extend(&junk);
    link.send(Message::Refused {
        reason: RefuseCode::Full,
        points,
    })
    .await
    .unwrap();

    // The node dials the point it was given, at once.
    let (point, mut link) = next_dial(&mut answered).await;
    assert_eq!(point, other);
    accept_handshake(&mut link, 60).await;
    let peer = play_quiet_peer(link);
    let s = wait_status(&node, VIRTUAL_DEADLINE, "connected", |s| s.connections == 1).await;
    let d = s.stats.dials;
    assert_eq!((d.attempted, d.refused, d.succeeded), (2, 1, 1), "{d:?}");
    assert_eq!(s.stats.points.dropped.loopback_from_remote, 1);
    assert_eq!(s.stats.points.dropped.port_zero, 1);
    assert!(learned_from(&node, other, Source::PeerSharing).await);
    let full_failures = query(&node, move |c| c.pool().get(&full).map(|p| p.failures)).await;
    assert_eq!(full_failures, Some(1), "a refusal is the refuser's failure");
    // In range: nothing more is dialed, not even the full peer once its backoff ends
    // (for 20 minutes: the first exploration dial comes 30 to 90 minutes in here).
    assert_never_within(&node, Duration::from_secs(1200), "another dial", |s| {
        s.stats.dials.attempted > 2
    })
    .await;
    node.shutdown().await;
    peer.await.unwrap();
    verify(&dialer, MockDialer::checkpoint);
}

/// What a scripted point source returns when polled.
#[automock]
trait Fetch {
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>>;
}

struct ScriptedSource(Arc<Mutex<MockFetch>>);

impl PointSource for ScriptedSource {
    fn name(&self) -> &str {
        "scripted"
    }
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        self.0.lock().unwrap().fetch()
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_with_no_connection_polls_its_source_once_per_discovery_round() {
    let (polled_tx, mut polled) = mpsc::unbounded_channel();
    let mut source = MockFetch::new();
    source.expect_fetch().times(4).returning(move || {
        polled_tx.send(()).unwrap();
        futures::future::ready(vec![]).boxed()
    });
    let source = Arc::new(Mutex::new(source));
    let lab = Lab::new();
    let node = lab
        .builder(Config::default(), ME, 2)
        .source(Arc::new(ScriptedSource(source.clone())))
        .start()
        .unwrap();
    for round in 1..=4 {
        tokio::time::timeout(VIRTUAL_DEADLINE, polled.recv())
            .await
            .expect("a poll")
            .unwrap();
        assert_eq!(
            node.status().stats.sharing.rounds,
            round,
            "one poll per round"
        );
    }
    // Stopped before a fifth round.
    node.shutdown().await;
    verify(&source, MockFetch::checkpoint);
}

#[tokio::test(start_paused = true)]
async fn a_source_is_no_longer_polled_once_its_points_bring_the_node_in_range() {
    let lab = Lab::new();
    let peer = lab.passive(ip4(1, 0, 1), 101);
    let mut source = MockFetch::new();
    source
        .expect_fetch()
        .times(1)
        .returning(move || futures::future::ready(vec![ip4(1, 0, 1)]).boxed());
    let source = Arc::new(Mutex::new(source));
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 2,
        ..Config::default()
    };
    let node = lab
        .builder(config, ME, 3)
        .source(Arc::new(ScriptedSource(source.clone())))
        .start()
        .unwrap();
    let s = wait_status(&node, VIRTUAL_DEADLINE, "in range", |s| {
        s.connections == 1 && !s.wants_points
    })
    .await;
    let rounds = s.stats.sharing.rounds;
    assert_never_within(&node, Duration::from_secs(3600), "another round", |s| {
        s.stats.sharing.rounds > rounds
    })
    .await;
    node.shutdown().await;
    peer.shutdown().await;
    verify(&source, MockFetch::checkpoint);
}
