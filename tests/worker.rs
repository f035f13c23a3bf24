//! The tokio maintenance worker on a paused clock with the in-memory network: each wake
//! reason wakes it, switched-off triggers and timers do not, dials stay bounded, trims stop
//! at `max_target`, and `maintain()` returns after exactly one cycle.

use peerkeeper::maintenance::{CycleOutcome, WakeReason};
use peerkeeper::pool::{Direction, Source};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::transport::CloseReason;
use peerkeeper::trigger::TriggerKind;
use peerkeeper::{Config, Maintainer, PeerId, PoolHandle};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9732))
}

/// min 4 / expected 8 / max 12: thresholds 5 and 11, targets 6 and 10.
fn small_config() -> Config {
    Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        max_concurrent_dials: 4,
        ..Config::default()
    }
}

/// A network of `n` passive peers at addr(1..=n), all known to the pool.
fn network(config: &Config, n: u32) -> (MemoryNetwork, PoolHandle) {
    let net = MemoryNetwork::new();
    let pool = PoolHandle::new(config);
    for i in 1..=n {
        net.add_passive(addr(i), PeerId(i.into()), vec![]);
        pool.add_point(addr(i), Source::PeerSharing);
    }
    (net, pool)
}

/// Waits (virtual time) for the activation cycle to end and returns its number.
async fn settled(m: &Maintainer) -> u64 {
    let r = m.wait_for_cycle(0).await;
    assert!(r.reasons.contains(WakeReason::Activation));
    r.cycle
}

#[tokio::test(start_paused = true)]
async fn activation_tops_up_to_min_target() {
    let config = small_config();
    let bounds = config.bounds();
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 1);
    let r = m.wait_for_cycle(0).await;
    assert_eq!(r.outcome, CycleOutcome::ToppedUp);
    assert!(pool.active_count() >= bounds.min_target);
    assert!(pool.active_count() <= bounds.max_target);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn falling_just_under_min_threshold_dials_at_once() {
    let config = small_config();
    let bounds = config.bounds();
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 2);
    let last = settled(&m).await;
    // Close connections until the count is exactly min_threshold: still in range.
    let open: Vec<SocketAddr> = pool.read(|p| p.connections().map(|(a, _)| a).collect());
    let mut to_close = open.into_iter();
    while pool.active_count() > bounds.min_threshold {
        pool.connection_closed(to_close.next().unwrap());
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(60), m.wait_for_cycle(last))
            .await
            .is_err(),
        "in range: no cycle expected"
    );
    // One more: just under min_threshold. octez would wait for its 120 s timer.
    let t0 = pool.now();
    pool.connection_closed(to_close.next().unwrap());
    let r = m.wait_for_cycle(last).await;
    assert!(r.reasons.contains(WakeReason::TooFewConnections));
    assert_eq!(r.started, t0, "the cycle starts at the instant of the fall");
    assert!(r.dialed > 0);
    assert!(pool.active_count() >= bounds.min_target);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn switched_off_too_few_trigger_does_not_wake() {
    let config = small_config();
    let bounds = config.bounds();
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 3);
    let last = settled(&m).await;
    pool.triggers()
        .set_enabled(TriggerKind::TooFewConnections, false);
    let open: Vec<SocketAddr> = pool.read(|p| p.connections().map(|(a, _)| a).collect());
    for a in open
        .into_iter()
        .take(pool.active_count() - (bounds.min_threshold - 2))
    {
        pool.connection_closed(a);
    }
    assert!(pool.active_count() < bounds.min_threshold);
    assert!(
        tokio::time::timeout(Duration::from_secs(100), m.wait_for_cycle(last))
            .await
            .is_err(),
        "too-few is off: nothing but the idle timer may wake the worker"
    );
    // The idle timer (120 s) still does.
    let r = m.wait_for_cycle(last).await;
    assert_eq!(r.reasons.iter().collect::<Vec<_>>(), vec![WakeReason::Idle]);
    assert!(pool.active_count() >= bounds.min_target);
    // And switched on again, the trigger works.
    pool.triggers()
        .set_enabled(TriggerKind::TooFewConnections, true);
    let open: Vec<SocketAddr> = pool.read(|p| p.connections().map(|(a, _)| a).collect());
    let n = pool.active_count() - (bounds.min_threshold - 1);
    let t0 = pool.now();
    for a in open.into_iter().take(n) {
        pool.connection_closed(a);
    }
    let r2 = m.wait_for_cycle(r.cycle).await;
    assert!(r2.reasons.contains(WakeReason::TooFewConnections));
    assert_eq!(r2.started, t0);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_timer_wakes_and_switched_off_stays_silent_for_hours() {
    let config = small_config();
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 4);
    let last = settled(&m).await;
    let t0 = pool.now();
    let r = m.wait_for_cycle(last).await;
    assert_eq!(r.reasons.iter().collect::<Vec<_>>(), vec![WakeReason::Idle]);
    assert_eq!(r.started.saturating_since(t0), Duration::from_secs(120));
    assert_eq!(r.outcome, CycleOutcome::NothingToDo);

    pool.triggers().set_idle_timer(false);
    assert!(
        tokio::time::timeout(Duration::from_secs(6 * 3600), m.wait_for_cycle(r.cycle))
            .await
            .is_err(),
        "no idle cycle in six hours with the timer off"
    );
    assert_eq!(m.stats().cycles, r.cycle);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_time_none_means_no_idle_cycles() {
    let config = Config {
        maintenance_idle_time: None,
        ..small_config()
    };
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 5);
    let last = settled(&m).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(24 * 3600), m.wait_for_cycle(last))
            .await
            .is_err()
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn too_many_trims_exactly_to_max_target_sparing_trusted() {
    let trusted: Vec<SocketAddr> = (100..104).map(addr).collect();
    let config = Config {
        trusted_points: trusted.clone(),
        ..small_config()
    };
    let bounds = config.bounds();
    let (net, pool) = network(&config, 0);
    for (i, t) in trusted.iter().enumerate() {
        net.add_passive(*t, PeerId(1000 + i as u64), vec![]);
    }
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 6);
    let last = settled(&m).await;
    // Incoming connections push the count above max_threshold.
    let mut i = 200;
    while pool.active_count() <= bounds.max_threshold {
        pool.connection_opened(addr(i), PeerId(i.into()), Direction::Inbound)
            .unwrap();
        i += 1;
    }
    let r = m.wait_for_cycle(last).await;
    assert!(r.reasons.contains(WakeReason::TooManyConnections));
    assert_eq!(r.outcome, CycleOutcome::Trimmed);
    assert_eq!(pool.active_count(), bounds.max_target);
    assert_eq!(r.closed, r.connections_before - bounds.max_target);
    for t in &trusted {
        assert!(
            pool.read(|p| p.connection(t).is_some()),
            "trusted {t} was cut"
        );
    }
    let closes = net.closes();
    assert_eq!(closes.len(), r.closed);
    assert!(closes
        .iter()
        .all(|(_, to, why)| !trusted.contains(to) && *why == CloseReason::TooManyConnections));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dials_in_flight_never_exceed_the_cap() {
    let config = Config {
        min_connections: 20,
        expected_connections: 30,
        max_connections: 40,
        max_concurrent_dials: 3,
        ..Config::default()
    };
    let bounds = config.bounds();
    let (net, pool) = network(&config, 100);
    // A third of the points fail, so the top-up has to keep dialing as dials finish.
    for i in (1..=100).step_by(3) {
        net.set_unreachable(addr(i), true);
    }
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 7);
    let r = m.wait_for_cycle(0).await;
    assert!(pool.active_count() >= bounds.min_target);
    assert!(r.failed > 0);
    assert_eq!(net.max_in_flight(), 3, "the cap is used and never exceeded");
    assert_eq!(m.stats().max_dials_in_flight, 3);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn maintain_in_range_returns_after_one_cycle() {
    let config = small_config();
    let (net, pool) = network(&config, 30);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 8);
    let last = settled(&m).await;
    let t0 = pool.now();
    let r = m.maintain().await;
    assert_eq!(r.cycle, last + 1);
    assert_eq!(
        r.reasons.iter().collect::<Vec<_>>(),
        vec![WakeReason::Maintain]
    );
    assert_eq!(r.outcome, CycleOutcome::NothingToDo);
    assert_eq!(r.started, t0, "no waiting for a later cycle (octez waits)");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn concurrent_maintain_calls_coalesce_into_one_cycle() {
    let config = small_config();
    let (net, pool) = network(&config, 30);
    let m = std::sync::Arc::new(Maintainer::start(
        config,
        pool.clone(),
        net.transport(&pool),
        9,
    ));
    let last = settled(&m).await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.maintain().await })
        })
        .collect();
    let reports = futures::future::join_all(calls).await;
    for r in &reports {
        assert_eq!(r.as_ref().unwrap().cycle, last + 1);
    }
    // And no extra cycle follows.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), m.wait_for_cycle(last + 1))
            .await
            .is_err()
    );
    assert_eq!(m.stats().cycles, last + 1);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn maintain_during_a_cycle_gets_a_later_cycle() {
    let config = small_config();
    let (net, pool) = network(&config, 30);
    net.set_dial_latency(Duration::from_secs(5));
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 10);
    // maintain() is called while the activation cycle is dialing (5 s per dial): wait for
    // the event "dials in flight", not for an amount of time.
    for _ in 0..1000 {
        if net.in_flight() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        net.in_flight() > 0 && m.stats().cycles == 0,
        "the first cycle is under way"
    );
    let t_call = pool.now();
    let r = m.maintain().await;
    assert!(r.cycle >= 2);
    assert!(r.started >= t_call, "the cycle began at or after the call");
    assert!(r.reasons.contains(WakeReason::Maintain));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn starving_worker_asks_for_points_and_wakes_on_a_new_point() {
    let config = small_config();
    let (net, pool) = network(&config, 2);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 11);
    let mut want = m.want_points();
    let r = m.wait_for_cycle(0).await;
    assert_eq!(r.outcome, CycleOutcome::Short);
    assert!(r.asked_for_points);
    assert!(
        *want.borrow_and_update(),
        "discovery is told to look for points"
    );
    // A new point arrives: the starving worker dials it at once.
    net.add_passive(addr(50), PeerId(50), vec![]);
    let t0 = pool.now();
    pool.add_point(addr(50), Source::PeerSharing);
    let r2 = m.wait_for_cycle(r.cycle).await;
    assert!(r2.reasons.contains(WakeReason::NewPoints));
    assert_eq!(r2.started, t0);
    assert!(pool.read(|p| p.connection(&addr(50)).is_some()));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn points_wanted_stops_once_in_range() {
    let config = small_config();
    let bounds = config.bounds();
    let (net, pool) = network(&config, 3);
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 12);
    let mut want = m.want_points();
    let r = m.wait_for_cycle(0).await;
    assert!(*want.borrow_and_update());
    for i in 10..20 {
        net.add_passive(addr(i), PeerId(i.into()), vec![]);
        pool.add_point(addr(i), Source::PeerSharing);
    }
    let mut cycle = r.cycle;
    while pool.active_count() < bounds.min_threshold {
        cycle = m.wait_for_cycle(cycle).await.cycle;
    }
    want.wait_for(|w| !*w).await.unwrap();
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failed_points_are_not_redialed_before_their_backoff() {
    let mut config = small_config();
    config.reconnection.initial = Duration::from_secs(60);
    let (net, pool) = network(&config, 2);
    for i in 1..=2 {
        net.set_unreachable(addr(i), true);
    }
    let m = Maintainer::start(config.clone(), pool.clone(), net.transport(&pool), 13);
    let r = m.wait_for_cycle(0).await;
    assert_eq!(r.failed, 2);
    let dials_after_first = net.dials();
    let next = pool.read(|p| p.get(&addr(1)).unwrap().next_dial);
    let failed_at = pool.read(|p| p.get(&addr(1)).unwrap().last_failure.unwrap());
    assert!(next > failed_at);
    // Maintain repeatedly before the backoff ends: no redial.
    let r2 = m.maintain().await;
    assert_eq!(r2.dialed, 0);
    assert_eq!(net.dials(), dials_after_first);
    let first_due = next.min(pool.read(|p| p.get(&addr(2)).unwrap().next_dial));
    // Once the backoff ends the worker redials on its own (backoff-expired wake).
    let mut cycle = r2.cycle;
    loop {
        let r = m.wait_for_cycle(cycle).await;
        cycle = r.cycle;
        if r.dialed > 0 {
            assert!(r.reasons.contains(WakeReason::BackoffExpired), "{r:?}");
            assert!(r.started >= first_due, "redialed before the backoff ended");
            break;
        }
    }
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn private_mode_dials_only_trusted_points() {
    let trusted: Vec<SocketAddr> = (100..103).map(addr).collect();
    let config = Config {
        private_mode: true,
        trusted_points: trusted.clone(),
        ..small_config()
    };
    let (net, pool) = network(&config, 30);
    for (i, t) in trusted.iter().enumerate() {
        net.add_passive(*t, PeerId(1000 + i as u64), vec![]);
    }
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 14);
    let mut want = m.want_points();
    let r = m.wait_for_cycle(0).await;
    assert_eq!(net.dials(), 3);
    assert_eq!(pool.active_count(), 3);
    assert!(pool.read(|p| p.connections().all(|(a, _)| trusted.contains(&a))));
    assert!(
        !r.asked_for_points && !*want.borrow_and_update(),
        "private mode never asks"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_no_task_running() {
    let config = small_config();
    let (net, pool) = network(&config, 30);
    net.set_dial_latency(Duration::from_secs(3600));
    let m = Maintainer::start(config, pool.clone(), net.transport(&pool), 15);
    tokio::task::yield_now().await;
    assert_eq!(net.in_flight(), 4, "dials are in flight");
    m.shutdown().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 0);
    assert_eq!(net.in_flight(), 0, "in-flight dials were abandoned");
}
