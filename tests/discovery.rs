//! Discovery: the pure state (whom to ask, when, what to accept, what to answer) with
//! explicit times, and the worker with a point source on a paused clock.

use futures::future::{BoxFuture, FutureExt};
use peerkeeper::discovery::{Discovery, DiscoveryState, PointSource, TooManyPoints};
use peerkeeper::pool::{Direction, PeerId, Pool, Source};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::{Config, Maintainer, PoolHandle, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 3, (i >> 8) as u8, i as u8], 9732))
}

fn config() -> Config {
    let mut c = Config::default();
    c.discovery.allow_private_addresses = true;
    c.discovery.fanout = 3;
    c.discovery.peer_ask_interval = Duration::from_secs(30);
    c.discovery.max_time_between_rounds = Duration::from_secs(60);
    c
}

fn connected_pool(config: &Config, n: u32) -> Pool {
    let mut pool = Pool::new(config);
    for i in 0..n {
        pool.connection_opened(addr(i), PeerId(i.into()), Direction::Outbound, Time::ZERO)
            .unwrap();
    }
    pool
}

#[test]
fn rounds_back_off_exponentially_and_stop_when_not_wanted() {
    let config = config();
    let pool = connected_pool(&config, 20);
    let mut d = DiscoveryState::new(&config, vec![]);
    let mut rng = StdRng::seed_from_u64(1);
    assert!(
        d.poll_round(&pool, Time::ZERO, &mut rng).is_empty(),
        "not wanted: no round"
    );
    d.set_wanted(true, Time::ZERO);
    let mut now = Time::ZERO;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let asked = d.poll_round(&pool, now, &mut rng);
        assert!(asked.len() <= 3, "fanout");
        let next = d.next_deadline().unwrap();
        gaps.push(next.saturating_since(now).as_secs_f64());
        now = next;
    }
    // 5 s, 10 s, 20 s, 40 s, then capped at 60 s, each within ±20 % jitter.
    for (gap, base) in gaps.iter().zip([5.0, 10.0, 20.0, 40.0, 60.0, 60.0]) {
        assert!(
            *gap >= base * 0.8 - 1e-9 && *gap <= base * 1.2 + 1e-9,
            "{gaps:?}"
        );
        assert!(*gap <= 60.0 + 1e-9, "capped: {gaps:?}");
    }
    d.set_wanted(false, now);
    assert_eq!(
        d.next_deadline(),
        None,
        "no more rounds once maintenance is satisfied"
    );
    assert!(d
        .poll_round(&pool, now + Duration::from_secs(3600), &mut rng)
        .is_empty());
}

#[test]
fn new_points_reset_the_backoff() {
    let config = config();
    let mut pool = connected_pool(&config, 5);
    let mut d = DiscoveryState::new(&config, vec![]);
    let mut rng = StdRng::seed_from_u64(2);
    d.set_wanted(true, Time::ZERO);
    let mut now = Time::ZERO;
    for _ in 0..4 {
        now = d.next_deadline().unwrap();
        d.poll_round(&pool, now, &mut rng);
    }
    // Four fruitless rounds: the next one is 40 s (± 20 %) away.
    assert!(d.next_deadline().unwrap().saturating_since(now) >= Duration::from_secs(30));
    let new = d
        .on_points(&[addr(100), addr(101)], Source::PeerSharing, &mut pool, now)
        .unwrap();
    assert_eq!(new, 2);
    assert!(
        d.next_deadline().unwrap() <= now + config.time_between_looking_for_peers,
        "back to the base interval"
    );
}

#[test]
fn a_peer_is_not_asked_again_within_the_interval() {
    let config = config();
    let pool = connected_pool(&config, 2);
    let mut d = DiscoveryState::new(&config, vec![]);
    let mut rng = StdRng::seed_from_u64(3);
    d.set_wanted(true, Time::ZERO);
    let first = d.poll_round(&pool, Time::ZERO, &mut rng);
    assert_eq!(first.len(), 2);
    // The next round comes after 5 s: both peers were asked 5 s ago, inside 30 s.
    let t = d.next_deadline().unwrap();
    assert!(d.poll_round(&pool, t, &mut rng).is_empty());
    assert!(d.poll_new_connections(&pool, t).is_empty());
    let later = Time::ZERO + Duration::from_secs(31);
    assert_eq!(d.poll_new_connections(&pool, later).len(), 2);
}

#[test]
fn received_points_are_validated_and_capped() {
    let config = {
        let mut c = config();
        c.discovery.allow_private_addresses = false;
        c
    };
    let me: SocketAddr = "8.8.8.8:9732".parse().unwrap();
    let mut pool = Pool::new(&config);
    let mut d = DiscoveryState::new(&config, vec![me]);
    let good: SocketAddr = "1.1.1.1:9732".parse().unwrap();
    let points: Vec<SocketAddr> = [
        "0.0.0.0:9732",
        "224.0.0.1:9732",
        "1.1.1.1:0",
        "127.0.0.1:9732",
        "10.0.0.1:9732",
        "[::]:9732",
        "8.8.8.8:9732",
        "1.1.1.1:9732",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let new = d
        .on_points(&points, Source::PeerSharing, &mut pool, Time::ZERO)
        .unwrap();
    assert_eq!(new, 1);
    assert_eq!(pool.len(), 1);
    assert!(pool.get(&good).is_some());
    assert_eq!(d.stats().points_rejected, 7);
    let flood: Vec<SocketAddr> = (0..101)
        .map(|i| SocketAddr::from(([1, 2, 3, i as u8], 1)))
        .collect();
    assert_eq!(
        d.on_points(&flood, Source::PeerSharing, &mut pool, Time::ZERO),
        Err(TooManyPoints { got: 101, max: 100 })
    );
    assert_eq!(pool.len(), 1, "nothing of an oversized message is taken");
}

#[test]
fn answers_share_good_points_never_the_requester_and_nothing_in_private_mode() {
    let config = config();
    let mut pool = connected_pool(&config, 10);
    pool.add_point(addr(50), Source::PeerSharing, Time::ZERO); // never connected: not good
    let mut d = DiscoveryState::new(&config, vec![]);
    let mut rng = StdRng::seed_from_u64(4);
    let answer = d.answer(&pool, addr(3), &mut rng);
    assert_eq!(answer.len(), 9);
    assert!(!answer.contains(&addr(3)) && !answer.contains(&addr(50)));
    let private = Config {
        private_mode: true,
        trusted_points: vec![addr(0)],
        ..config.clone()
    };
    let mut d = DiscoveryState::new(&private, vec![]);
    assert!(d.answer(&pool, addr(3), &mut rng).is_empty());
    d.set_wanted(true, Time::ZERO);
    assert!(!d.is_wanted(), "private mode never asks");
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
async fn a_point_source_feeds_a_starving_node() {
    let mut config = config();
    config.min_connections = 2;
    config.expected_connections = 2;
    config.max_connections = 4;
    let net = MemoryNetwork::new();
    let pool = PoolHandle::new(&config);
    let seeds: Vec<SocketAddr> = (1..=3).map(addr).collect();
    for (i, s) in seeds.iter().enumerate() {
        net.add_passive(*s, PeerId(i as u64 + 1), vec![]);
    }
    let m = Maintainer::start(config.clone(), pool.clone(), net.transport(&pool), 1);
    // A source that never answers comes first: it must not stall discovery.
    let sources: Vec<Arc<dyn PointSource>> = vec![Arc::new(Hangs), Arc::new(Seeds(seeds.clone()))];
    let d = Discovery::start(
        &config,
        pool.clone(),
        net.transport(&pool),
        m.want_points(),
        sources,
        vec![],
        2,
    );
    // The node knows nobody; the source's points arrive and maintenance dials them.
    let reach = async {
        let mut cycle = 0;
        while pool.active_count() < 2 {
            cycle = m.wait_for_cycle(cycle).await.cycle;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), reach)
        .await
        .expect("connected within 10 virtual minutes");
    assert!(pool.read(|p| seeds.iter().all(|s| p
        .get(s)
        .is_some_and(|i| i.sources.contains(Source::External)))));
    assert!(d.stats().points_new >= 3);
    d.shutdown().await;
    m.shutdown().await;
}
