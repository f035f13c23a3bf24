//! Discovery: the pure state (when to run a round, whom to ask) with explicit times, and
//! discovery in a running node on the memory network with a paused clock: a new
//! connection is asked at once while points are wanted, rounds stop once the node is in
//! range, answers feed the pool, and point sources (a hanging one among them) feed a
//! node that knows nobody.

mod common;

use common::*;
use futures::future::{BoxFuture, FutureExt};
use peerkeeper::core::Action;
use peerkeeper::discovery::DiscoveryState;
use peerkeeper::node::{Node, PointSource};
use peerkeeper::pool::{ConnId, Direction, PeerId, Pool, Source};
use peerkeeper::trigger::TriggerKind;
use peerkeeper::wire::Message;
use peerkeeper::{Config, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    ip4(3, (i >> 8) as u8, i as u8)
}

fn config() -> Config {
    let mut c = Config::default();
    c.discovery.fanout = 3;
    c.discovery.peer_ask_interval = Duration::from_secs(30);
    c.discovery.max_time_between_rounds = Duration::from_secs(60);
    c
}

fn connected_pool(config: &Config, n: u32) -> Pool {
    let mut pool = Pool::new(config);
    for i in 0..n {
        pool.connection_opened(
            ConnId(i.into()),
            addr(i),
            PeerId::from_u64(i.into()),
            Direction::Outbound,
            Time::ZERO,
        )
        .unwrap();
    }
    pool
}

// ----- the pure state -------------------------------------------------------------------

#[test]
fn rounds_back_off_exponentially_and_stop_when_not_wanted() {
    let config = config();
    let pool = connected_pool(&config, 20);
    let mut d = DiscoveryState::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    assert_eq!(
        d.poll_round(&pool, Time::ZERO, &mut rng),
        None,
        "not wanted: no round"
    );
    d.set_wanted(true, Time::ZERO);
    let mut now = Time::ZERO;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let asked = d.poll_round(&pool, now, &mut rng).expect("a round is due");
        assert_eq!(asked.len(), 3, "fanout");
        let next = d.next_deadline().unwrap();
        gaps.push(next.saturating_since(now).as_secs_f64());
        now = next;
    }
    // 5 s, 10 s, 20 s, 40 s, then capped at 60 s, each within ±20 % jitter.
    for (gap, base) in gaps.iter().zip([5.0, 10.0, 20.0, 40.0, 60.0, 60.0]) {
        assert!(
            *gap >= base * 0.8 - 1e-3 && *gap <= base * 1.2 + 1e-3,
            "{gaps:?}"
        );
        assert!(*gap <= 60.0 + 1e-9, "capped: {gaps:?}");
    }
    assert_eq!(d.stats().rounds, 6);
    d.set_wanted(false, now);
    assert_eq!(
        d.next_deadline(),
        None,
        "no more rounds once maintenance is satisfied"
    );
    assert_eq!(
        d.poll_round(&pool, now + Duration::from_secs(3600), &mut rng),
        None
    );
}

#[test]
fn new_points_reset_the_backoff() {
    let config = config();
    let pool = connected_pool(&config, 5);
    let mut d = DiscoveryState::new(&config);
    let mut rng = StdRng::seed_from_u64(2);
    d.set_wanted(true, Time::ZERO);
    let mut now = Time::ZERO;
    for _ in 0..4 {
        now = d.next_deadline().unwrap();
        assert!(d.poll_round(&pool, now, &mut rng).is_some());
    }
    // Four fruitless rounds: the next one is 40 s (± 20 %) away.
    assert!(d.next_deadline().unwrap().saturating_since(now) >= Duration::from_secs(30));
    // Nothing new: no change.
    d.points_learned(0, now);
    assert!(d.next_deadline().unwrap().saturating_since(now) >= Duration::from_secs(30));
    d.points_learned(2, now);
    assert!(
        d.next_deadline().unwrap() <= now + config.time_between_looking_for_peers,
        "back to the base interval"
    );
}

#[test]
fn a_peer_is_not_asked_again_within_the_interval() {
    let config = config();
    let pool = connected_pool(&config, 2);
    let mut d = DiscoveryState::new(&config);
    let mut rng = StdRng::seed_from_u64(3);
    d.set_wanted(true, Time::ZERO);
    let first = d.poll_round(&pool, Time::ZERO, &mut rng).unwrap();
    assert_eq!(first, vec![addr(0), addr(1)]);
    // The next round comes after 5 s: both peers were asked 5 s ago, inside 30 s.
    let t = d.next_deadline().unwrap();
    assert_eq!(d.poll_round(&pool, t, &mut rng), Some(vec![]));
    assert!(d.poll_new_connections(&pool, t).is_empty());
    let later = Time::ZERO + Duration::from_secs(31);
    assert_eq!(d.poll_new_connections(&pool, later).len(), 2);
}

#[test]
fn new_connections_are_asked_only_while_points_are_wanted_and_never_in_private_mode() {
    let config = config();
    let pool = connected_pool(&config, 5);
    let mut d = DiscoveryState::new(&config);
    assert!(
        d.poll_new_connections(&pool, Time::ZERO).is_empty(),
        "not wanted"
    );
    d.set_wanted(true, Time::ZERO);
    assert_eq!(
        d.poll_new_connections(&pool, Time::ZERO).len(),
        3,
        "up to fanout, at once"
    );
    assert_eq!(d.stats().rounds, 0, "not a round: the backoff is untouched");
    assert_eq!(d.next_deadline(), Some(Time::ZERO));

    let private = Config {
        private_mode: true,
        trusted_points: vec![addr(0)],
        ..config
    };
    let mut d = DiscoveryState::new(&private);
    d.set_wanted(true, Time::ZERO);
    assert!(!d.is_wanted(), "private mode never asks");
    assert!(d.poll_new_connections(&pool, Time::ZERO).is_empty());
    assert_eq!(d.next_deadline(), None);
}

// ----- in a running node ----------------------------------------------------------------

const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);

/// min 4 / expected 8 / max 12 (min_target 6).
fn small_config() -> Config {
    Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        ..Config::default()
    }
}

/// A node at `ME` knowing two passive peers: short of connections, it wants points.
async fn starving(lab: &Lab, seed: u64) -> (Node, Tap, Vec<Node>) {
    let peers: Vec<Node> = (1..=2)
        .map(|i| lab.passive(addr(i), 100 + u64::from(i)))
        .collect();
    let (tx, tap) = tap();
    let node = lab
        .builder(small_config(), ME, seed)
        .bootstrap(vec![addr(1), addr(2)])
        .action_tap(tx)
        .start()
        .unwrap();
    wait_status(&node, VIRTUAL_DEADLINE, "points wanted", |s| {
        s.wants_points && s.connections == 2
    })
    .await;
    (node, tap, peers)
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_is_asked_for_points_at_once_while_points_are_wanted() {
    let lab = Lab::new();
    let (node, mut tap, peers) = starving(&lab, 1).await;
    // A peer dials in; the node asks it on the spot, not at its next round.
    let (mut p, reply) = mem_peer(&lab, ip4(4, 0, 1), 401, ME).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    assert_eq!(next_message(&mut p.link).await, Some(Message::AskForPoints));
    tap.drain();
    let opened = tap.times_of(|a| *a == Action::Trigger(TriggerKind::NewConnection));
    let asked: Vec<Time> = tap
        .log
        .iter()
        .filter(|t| matches!(t.action, Action::AskForPoints { .. }) && t.peer == Some(p.point))
        .map(|t| t.at)
        .collect();
    assert_eq!(asked.len(), 1);
    assert!(
        opened.contains(&asked[0]),
        "asked at the instant it connected"
    );
    node.shutdown().await;
    for n in &peers {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn with_the_new_connection_trigger_off_a_newcomer_waits_for_the_next_round() {
    let lab = Lab::new();
    let (node, mut tap, peers) = starving(&lab, 2).await;
    node.set_trigger(TriggerKind::NewConnection, false)
        .await
        .unwrap();
    let t0 = lab.now();
    let (mut p, reply) = mem_peer(&lab, ip4(4, 0, 1), 401, ME).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    // Asked eventually (by a round), but not when it connected.
    assert_eq!(
        read_first_request(&mut p).await,
        Some(Message::AskForPoints)
    );
    tap.drain();
    let asked: Vec<Time> = tap
        .log
        .iter()
        .filter(|t| matches!(t.action, Action::AskForPoints { .. }) && t.peer == Some(p.point))
        .map(|t| t.at)
        .collect();
    let connected_at = t0 + Duration::from_millis(10);
    assert_eq!(asked.len(), 1);
    assert!(asked[0] > connected_at, "{asked:?}");
    assert!(tap
        .times_of(|a| *a == Action::Trigger(TriggerKind::NewConnection))
        .iter()
        .all(|t| *t <= t0));
    node.shutdown().await;
    for n in &peers {
        n.shutdown().await;
    }
}

/// The first message other than a keepalive.
async fn read_first_request(p: &mut MemPeer) -> Option<Message> {
    loop {
        match next_message(&mut p.link).await? {
            Message::KeepAlive => {}
            m => return Some(m),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn answers_feed_the_pool_and_rounds_stop_once_in_range() {
    let lab = Lab::new();
    // A hub that knows ten other nodes; the node knows only the hub.
    let others: Vec<Node> = (10..20)
        .map(|i| lab.passive(addr(i), 100 + u64::from(i)))
        .collect();
    let hub = lab.passive(addr(1), 101);
    hub.add_points((10..20).map(addr).collect(), Source::Bootstrap)
        .await
        .unwrap();
    let config = small_config();
    let b = config.bounds();
    let node = lab.node(&config, ME, 3, vec![addr(1)]);
    let s = wait_status(
        &node,
        VIRTUAL_DEADLINE,
        "in range, points no longer wanted",
        |s| s.connections >= b.min_threshold && !s.wants_points,
    )
    .await;
    assert!(
        s.stats.sharing.requests >= 1 && s.stats.sharing.rounds >= 1,
        "{s:?}"
    );
    let learned = {
        let mut n = 0;
        for i in 10..20 {
            n += usize::from(learned_from(&node, addr(i), Source::PeerSharing).await);
        }
        n
    };
    assert_eq!(
        learned, 10,
        "every point the hub knows came by peer sharing"
    );
    // In range: no more rounds, no more requests, for an hour.
    let (rounds, requests) = (s.stats.sharing.rounds, s.stats.sharing.requests);
    assert_never_within(
        &node,
        Duration::from_secs(3600),
        "discovery in range",
        |s| s.stats.sharing.rounds > rounds || s.stats.sharing.requests > requests,
    )
    .await;
    node.shutdown().await;
    hub.shutdown().await;
    for n in &others {
        n.shutdown().await;
    }
}

struct Seeds(Vec<SocketAddr>);

impl PointSource for Seeds {
    fn name(&self) -> &str {
        "test seeds"
    }
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        futures::future::ready(self.0.clone()).boxed()
    }
}

struct Hangs;

impl PointSource for Hangs {
    fn name(&self) -> &str {
        "never answers"
    }
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        futures::future::pending().boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn point_sources_feed_a_node_that_knows_nobody_even_past_a_hanging_one() {
    let config = Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 4,
        ..config()
    };
    let lab = Lab::new();
    let seeds: Vec<SocketAddr> = (1..=3).map(addr).collect();
    let peers: Vec<Node> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| lab.passive(*s, 100 + i as u64))
        .collect();
    // A source that never answers comes first: it must not stall discovery.
    let node = lab
        .builder(config.clone(), ME, 4)
        .source(Arc::new(Hangs))
        .source(Arc::new(Seeds(seeds.clone())))
        .start()
        .unwrap();
    let s = wait_status(&node, Duration::from_secs(600), "two connections", |s| {
        s.connections >= 2
    })
    .await;
    assert!(s.stats.points.new >= 3, "{s:?}");
    for p in &seeds {
        assert!(learned_from(&node, *p, Source::External).await, "{p}");
    }
    node.shutdown().await;
    for n in &peers {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_peers_are_all_gone_still_learns_points_from_its_source() {
    let lab = Lab::new();
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..config()
    };
    // The source names points nobody listens at: the node stays at zero connections, and
    // still learns every one of them, round after round.
    let listed: Vec<SocketAddr> = (50..60).map(addr).collect();
    let node = lab
        .builder(config, ME, 5)
        .source(Arc::new(Seeds(listed.clone())))
        .start()
        .unwrap();
    let s = wait_status(&node, VIRTUAL_DEADLINE, "the listed points known", |s| {
        s.known_points == listed.len()
    })
    .await;
    assert_eq!(s.connections, 0);
    assert!(s.stats.dials.failed > 0, "and dials them: {s:?}");
    node.shutdown().await;
}
