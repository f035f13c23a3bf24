//! Real libp2p swarms (TCP, Noise, Yamux, identify) on loopback, each in its own task,
//! kept connected by the behaviour. Waits are on the nodes' own state, polled through
//! their tasks, with a deadline; no sleep synchronises anything.

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, request_response, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use peerkeeper::pool::Source;
use peerkeeper_libp2p::{Behaviour, Config, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(NetworkBehaviour)]
struct TestNode {
    keeper: Behaviour,
    identify: identify::Behaviour,
}

/// A node's status and its peers (id, point, whether we dialed it).
type View = (Status, Vec<(PeerId, SocketAddr, bool)>);

enum Cmd {
    Status(oneshot::Sender<View>),
}

struct Handle {
    id: PeerId,
    addr: Multiaddr,
    point: SocketAddr,
    tx: mpsc::Sender<Cmd>,
}

impl Handle {
    async fn status(&self) -> View {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Status(tx))
            .await
            .expect("node task alive");
        rx.await.expect("node task answers")
    }
}

fn core_config(min: usize, expected: usize, max: usize) -> peerkeeper::Config {
    let mut c = peerkeeper::Config::default();
    (c.min_connections, c.expected_connections, c.max_connections) = (min, expected, max);
    c
}

/// Starts a node listening on a free loopback port; returns once it listens.
async fn spawn(core: peerkeeper::Config, seed: u64, bootstrap: &[Multiaddr]) -> Handle {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| TestNode {
            keeper: Behaviour::new(Config::new(core).with_seed(seed), key.public().to_peer_id())
                .unwrap(),
            identify: identify::Behaviour::new(identify::Config::new(
                "/test/1".into(),
                key.public(),
            )),
        })
        .unwrap()
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    if !bootstrap.is_empty() {
        swarm
            .behaviour_mut()
            .keeper
            .add_points(bootstrap, Source::Bootstrap)
            .unwrap();
    }
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let id = *swarm.local_peer_id();
    let (tx, mut rx) = mpsc::channel::<Cmd>(8);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(TestNodeEvent::Identify(identify::Event::Received { peer_id, info, .. })) = ev {
                        swarm.behaviour_mut().keeper.add_peer_addresses(&peer_id, &info.listen_addrs);
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Status(reply)) => {
                        let k = &swarm.behaviour().keeper;
                        let _ = reply.send((k.status(), k.peers()));
                    }
                    None => break,
                },
            }
        }
    });
    let point = peerkeeper_libp2p::to_point(&addr).unwrap().0;
    Handle {
        id,
        addr,
        point,
        tx,
    }
}

/// Polls `cond` over every node's status until it holds, or panics after `limit`.
async fn wait_until(
    nodes: &[&Handle],
    limit: Duration,
    what: &str,
    cond: impl Fn(&[View]) -> bool,
) -> Vec<View> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut all = Vec::new();
        for n in nodes {
            all.push(n.status().await);
        }
        if cond(&all) {
            return all;
        }
        if tokio::time::Instant::now() > deadline {
            let counts: Vec<usize> = all.iter().map(|(s, _)| s.connections).collect();
            panic!("{what}: not within {limit:?}; connections {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn components(nodes: &[&Handle], all: &[View]) -> usize {
    let index: BTreeMap<PeerId, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut x = x;
        while p[x] != x {
            x = p[x];
        }
        x
    }
    for (i, (_, peers)) in all.iter().enumerate() {
        for (peer, _, _) in peers {
            if let Some(&j) = index.get(peer) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    (0..nodes.len())
        .map(|i| find(&mut parent, i))
        .collect::<BTreeSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_nodes_that_know_only_a_seed_reach_their_minimum_in_one_component() {
    let core = core_config(2, 4, 6);
    let min = core.bounds().min_threshold;
    let seed = spawn(core.clone(), 0, &[]).await;
    let mut nodes = vec![seed];
    for i in 1..8 {
        let boot = [nodes[0].addr.clone()];
        nodes.push(spawn(core.clone(), i, &boot).await);
    }
    let refs: Vec<&Handle> = nodes.iter().collect();
    let all = wait_until(
        &refs,
        Duration::from_secs(60),
        "every node at min_threshold",
        |all| all.iter().all(|(s, _)| s.connections >= min),
    )
    .await;
    assert_eq!(components(&refs, &all), 1, "one overlay");
    for (s, peers) in &all {
        assert!(
            s.connections <= 6,
            "never above max_connections: {}",
            s.connections
        );
        // A peer's point is where it listens (the dialers' port reuse): every connected
        // peer's point is one of the nodes' listening points.
        for (id, point, _) in peers {
            let n = nodes.iter().find(|n| n.id == *id).expect("a known node");
            assert_eq!(*point, n.point, "the point of {id} is its listening point");
        }
        assert_eq!(s.malformed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_with_points_and_the_newcomer_joins_through_them() {
    // The seed takes at most 2 connections; A and B fill it. C knows only the seed: its
    // dial is refused as full, with A and B as points to try, and it connects to them.
    let mut seed_core = core_config(1, 2, 2);
    // No room made for newcomers within the test.
    seed_core.newcomer_grace = Duration::from_secs(3600);
    let seed = spawn(seed_core, 0, &[]).await;
    let boot = [seed.addr.clone()];
    let core = core_config(1, 2, 4);
    let a = spawn(core.clone(), 1, &boot).await;
    let b = spawn(core.clone(), 2, &boot).await;
    wait_until(&[&seed], Duration::from_secs(30), "the seed full", |all| {
        all[0].0.connections == 2
    })
    .await;
    let c = spawn(core, 3, &boot).await;
    let all = wait_until(
        &[&seed, &a, &b, &c],
        Duration::from_secs(30),
        "the newcomer joined",
        |all| all[3].0.connections >= 1,
    )
    .await;
    let (cs, cpeers) = &all[3];
    assert!(
        cpeers.iter().all(|(id, _, _)| *id == a.id || *id == b.id),
        "the newcomer is connected to the points it was given, not the full seed"
    );
    assert!(
        cs.stats.dials.refused >= 1,
        "its dial of the seed was a refusal"
    );
    assert!(
        all[0].0.stats.admission.refused_full >= 1,
        "the seed refused it as full"
    );
    assert_eq!(all[0].0.connections, 2, "the seed stayed at its maximum");
}

/// A peer that speaks `/peerkeeper/points/1` with garbage.
#[derive(Clone, Default)]
struct Garbage;

#[async_trait::async_trait]
impl request_response::Codec for Garbage {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(Vec::new())
    }
    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        use futures::AsyncReadExt;
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }
    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        use futures::AsyncWriteExt;
        io.write_all(&r).await?;
        io.close().await
    }
    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_oversized_peer_sharing_is_a_violation_that_closes_the_connection() {
    let node = spawn(core_config(1, 2, 4), 0, &[]).await;
    for garbage in [vec![1u8, 200, 4, 1], vec![1u8; 64 * 1024]] {
        let mut attacker = bare_swarm(|_| {
            request_response::Behaviour::with_codec(
                Garbage,
                [(
                    peerkeeper_libp2p::codec::PROTOCOL,
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        });
        attacker.dial(node.addr.clone()).unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut sent = false;
            loop {
                match attacker.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if !sent => {
                        attacker
                            .behaviour_mut()
                            .send_request(&peer_id, garbage.clone());
                        sent = true;
                    }
                    SwarmEvent::ConnectionClosed {
                        num_established: 0, ..
                    } if sent => break,
                    _ => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the node closed the connection of the peer that sent garbage"
        );
    }
    let (s, peers) = node.status().await;
    assert!(
        s.malformed >= 2,
        "malformed messages counted: {}",
        s.malformed
    );
    assert!(
        s.stats.violations >= 2,
        "violations: {}",
        s.stats.violations
    );
    assert!(peers.is_empty(), "no connection kept to the attackers");
}

/// A libp2p node without peerkeeper, with behaviour `make(key)`: TCP, Noise, Yamux,
/// connections kept a minute.
fn bare_swarm<B: NetworkBehaviour>(
    make: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(make)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A libp2p node without peerkeeper: identify only.
fn plain_swarm() -> libp2p::Swarm<identify::Behaviour> {
    bare_swarm(|key| {
        identify::Behaviour::new(identify::Config::new("/plain/1".into(), key.public()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_peers_that_do_not_speak_peerkeeper_are_kept_as_plain_peers() {
    // One dials us: no hello comes, and after the verdict wait it is admitted as a peer
    // listening where it dialed from.
    let node = spawn(core_config(1, 2, 4), 0, &[]).await;
    let mut inbound = plain_swarm();
    inbound.dial(node.addr.clone()).unwrap();
    let plain_id = *inbound.local_peer_id();
    tokio::spawn(async move {
        loop {
            inbound.select_next_some().await;
        }
    });
    let all = wait_until(
        &[&node],
        Duration::from_secs(30),
        "the plain dialer admitted",
        |all| all[0].0.connections == 1,
    )
    .await;
    assert_eq!(all[0].1[0].0, plain_id);
    assert!(!all[0].1[0].2, "it dialed us");

    // We dial one: it says it does not support the protocol, and we keep it.
    let mut outbound = plain_swarm();
    outbound
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = outbound.select_next_some().await {
            break address;
        }
    };
    let out_id = *outbound.local_peer_id();
    tokio::spawn(async move {
        loop {
            outbound.select_next_some().await;
        }
    });
    let dialer = spawn(core_config(1, 2, 4), 1, &[addr]).await;
    let all = wait_until(
        &[&dialer],
        Duration::from_secs(30),
        "the plain peer kept",
        |all| all[0].0.connections == 1,
    )
    .await;
    assert_eq!(all[0].1[0].0, out_id);
    assert!(all[0].1[0].2, "we dialed it");
    assert_eq!(all[0].0.stats.dials.succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_node_joins_the_others_through_the_points_of_its_farewell() {
    // Everyone knows only the seed (bounds 1/2/5: the seed trims above 4 down to 3). The
    // nodes it trims get points with the close, and connect to each other: the seed's
    // point waits out its disconnection delay (30 s), longer than this test allows.
    let core = core_config(1, 2, 5);
    let seed = spawn(core.clone(), 0, &[]).await;
    let boot = [seed.addr.clone()];
    let mut nodes = vec![seed];
    for i in 1..7 {
        nodes.push(spawn(core.clone(), i, &boot).await);
    }
    let refs: Vec<&Handle> = nodes.iter().collect();
    let all = wait_until(
        &refs,
        Duration::from_secs(20),
        "every node connected, one component",
        |all| {
            all[0].0.stats.closed.trimmed >= 1
                && all.iter().all(|(s, _)| s.connections >= 1)
                && components(&refs, all) == 1
        },
    )
    .await;
    assert!(
        all[0].0.connections <= 4,
        "the seed trimmed down: {}",
        all[0].0.connections
    );
}
