//! Maintenance in a running node, on the memory network with a paused clock: each wake
//! reason starts a cycle at the instant it happens and a switched-off trigger or timer
//! does not, dials in flight stay under the cap, a trim stops at exactly `max_target`
//! and spares trusted points, `maintain()` returns after exactly one full cycle, and
//! private mode dials only trusted points.
//!
//! Every peer is a real node ([`passive_config`]: it never dials or trims), or a raw peer
//! when a test reads what the node sends. Cycle reports come from the node's action tap,
//! so no cycle is missed; times are the nodes' shared core time ([`Lab::now`]).

mod common;

use common::*;
use futures::StreamExt;
use peerkeeper::core::Action;
use peerkeeper::maintenance::{CycleOutcome, WakeReason};
use peerkeeper::node::Node;
use peerkeeper::pool::{CloseReason, Source};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::trigger::TriggerKind;
use peerkeeper::wire::{CloseCode, Message, RefuseCode};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::time::Duration;

/// The node under test.
const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    9732,
);

/// Peer `i` (10.1.x.x: one address group).
fn addr(i: u32) -> SocketAddr {
    ip4(1, (i >> 8) as u8, i as u8)
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

/// min 1 / expected 1 / max 4: one connection is enough.
fn tiny_config() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..Config::default()
    }
}

struct Setup {
    lab: Lab,
    node: Node,
    tap: Tap,
    peers: Vec<Node>,
}

impl Setup {
    /// Passive peers at `addr(1..=n)`, all bootstrap points of the node.
    fn new(lab: Lab, config: Config, n: u32, seed: u64) -> Setup {
        let peers: Vec<Node> = (1..=n)
            .map(|i| lab.passive(addr(i), 100 + u64::from(i)))
            .collect();
        let (tx, tap) = tap();
        let node = lab
            .builder(config, ME, seed)
            .bootstrap((1..=n).map(addr).collect())
            .action_tap(tx)
            .start()
            .unwrap();
        Setup {
            lab,
            node,
            tap,
            peers,
        }
    }

    /// Waits for the activation cycle to end.
    async fn settled(&mut self) -> peerkeeper::CycleReport {
        let r = self.tap.cycle_after(0).await;
        assert!(r.reasons.contains(WakeReason::Activation), "{r:?}");
        r
    }

    /// Shuts down the peer at `point` and waits until the node has seen its connection end.
    async fn lose(&self, point: SocketAddr) {
        let before = self.node.status().connections;
        node_at(&self.peers, point).shutdown().await;
        wait_status(&self.node, VIRTUAL_DEADLINE, "the connection ends", |s| {
            s.connections < before
        })
        .await;
    }

    async fn shutdown(self) {
        self.node.shutdown().await;
        for p in &self.peers {
            p.shutdown().await;
        }
    }
}

fn reasons(r: &peerkeeper::CycleReport) -> Vec<WakeReason> {
    r.reasons.iter().collect()
}

#[tokio::test(start_paused = true)]
async fn activation_tops_up_to_exactly_min_target() {
    let config = small_config();
    let bounds = config.bounds();
    let mut s = Setup::new(Lab::new(), config, 30, 1);
    let r = s.settled().await;
    assert_eq!(r.outcome, CycleOutcome::ToppedUp);
    assert_eq!(
        r.started,
        peerkeeper::Time::ZERO,
        "the first cycle runs at start"
    );
    assert_eq!(
        r.connections_after, bounds.min_target,
        "a top-up stops at min_target"
    );
    assert_eq!(s.node.status().connections, bounds.min_target);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn falling_just_under_min_threshold_dials_at_once() {
    let config = small_config();
    let bounds = config.bounds();
    let mut s = Setup::new(Lab::new(), config, 30, 2);
    let last = s.settled().await.cycle;
    // Lose connections until the count is exactly min_threshold: still in range.
    let mut open = connections(&s.node).await.into_iter();
    while s.node.status().connections > bounds.min_threshold {
        s.lose(open.next().unwrap()).await;
    }
    s.tap
        .assert_no_cycle_within(last, Duration::from_secs(60), "in range: no cycle expected")
        .await;
    // One more: just under min_threshold. octez would wait for its 120 s timer.
    s.lose(open.next().unwrap()).await;
    let r = s.tap.cycle_after(last).await;
    assert!(r.reasons.contains(WakeReason::TooFewConnections), "{r:?}");
    let fired = s
        .tap
        .times_of(|a| *a == Action::Trigger(TriggerKind::TooFewConnections));
    assert_eq!(
        fired,
        vec![r.started],
        "the cycle starts at the instant of the fall"
    );
    assert!(r.dialed > 0);
    assert!(r.connections_after >= bounds.min_target, "{r:?}");
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_switched_off_too_few_trigger_does_not_wake_and_switched_on_does() {
    let config = small_config();
    let bounds = config.bounds();
    let mut s = Setup::new(Lab::new(), config, 30, 3);
    let last = s.settled().await.cycle;
    s.node
        .set_trigger(TriggerKind::TooFewConnections, false)
        .await
        .unwrap();
    let observer = s.node.triggers().subscribe(TriggerKind::TooFewConnections);
    let mut open = connections(&s.node).await.into_iter();
    while s.node.status().connections > bounds.min_threshold - 2 {
        s.lose(open.next().unwrap()).await;
    }
    s.tap
        .assert_no_cycle_within(
            last,
            Duration::from_secs(100),
            "too-few is off: nothing but the idle timer may wake maintenance",
        )
        .await;
    assert!(
        !observer.has_fired(),
        "a switched-off trigger does not fire"
    );
    // The idle timer (120 s) still does.
    let r = s.tap.cycle_after(last).await;
    assert_eq!(reasons(&r), vec![WakeReason::Idle]);
    assert!(r.connections_after >= bounds.min_target, "{r:?}");
    // Switched on again, the trigger works.
    s.node
        .set_trigger(TriggerKind::TooFewConnections, true)
        .await
        .unwrap();
    let mut open = connections(&s.node).await.into_iter();
    while s.node.status().connections >= bounds.min_threshold {
        s.lose(open.next().unwrap()).await;
    }
    let r2 = s.tap.cycle_after(r.cycle).await;
    assert!(r2.reasons.contains(WakeReason::TooFewConnections), "{r2:?}");
    assert!(observer.has_fired());
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_idle_timer_wakes_and_switched_off_stays_silent_for_hours() {
    let mut s = Setup::new(Lab::new(), tiny_config(), 3, 4);
    let first = s.settled().await;
    let r = s.tap.cycle_after(first.cycle).await;
    assert_eq!(reasons(&r), vec![WakeReason::Idle]);
    assert_eq!(
        r.started.saturating_since(first.ended),
        Duration::from_secs(120),
        "maintenance_idle_time after the previous cycle"
    );
    assert_eq!(r.outcome, CycleOutcome::NothingToDo);

    s.node.set_idle_timer(false).await.unwrap();
    s.tap
        .assert_no_cycle_within(
            r.cycle,
            Duration::from_secs(6 * 3600),
            "no idle cycle in six hours with the timer off",
        )
        .await;
    assert_eq!(s.node.status().stats.cycles, r.cycle);
    // Switched on again, it runs again.
    s.node.set_idle_timer(true).await.unwrap();
    let r2 = s.tap.cycle_after(r.cycle).await;
    assert_eq!(reasons(&r2), vec![WakeReason::Idle]);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_time_none_means_no_idle_cycles() {
    let config = Config {
        maintenance_idle_time: None,
        ..tiny_config()
    };
    let mut s = Setup::new(Lab::new(), config, 3, 5);
    let last = s.settled().await.cycle;
    s.tap
        .assert_no_cycle_within(
            last,
            Duration::from_secs(24 * 3600),
            "no idle cycle in a day",
        )
        .await;
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn too_many_trims_exactly_to_max_target_sparing_trusted_and_saying_why() {
    // Trusted peers in 10.2/16, bootstrap peers in 10.1/16, inbound raw peers in 10.3/16.
    let trusted: Vec<SocketAddr> = (1..=4).map(|i| ip4(2, 0, i)).collect();
    let config = Config {
        trusted_points: trusted.clone(),
        ..small_config()
    };
    let bounds = config.bounds();
    let lab = Lab::new();
    let mut trusted_peers: Vec<Node> = trusted
        .iter()
        .enumerate()
        .map(|(i, t)| lab.passive(*t, 1000 + i as u64))
        .collect();
    let mut s = Setup::new(lab, config, 2, 6);
    s.peers.append(&mut trusted_peers);
    let first = s.settled().await;
    assert_eq!(first.connections_after, bounds.min_target);
    // Inbound connections push the count above max_threshold.
    let mut raw = Vec::new();
    for i in 1..=6u8 {
        let (p, reply) = mem_peer(&s.lab, ip4(3, 0, i), 3000 + u64::from(i), ME).await;
        assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
        raw.push(p);
    }
    let r = s.tap.cycle_after(first.cycle).await;
    assert_eq!(reasons(&r), vec![WakeReason::TooManyConnections]);
    assert_eq!(r.outcome, CycleOutcome::Trimmed);
    assert_eq!(r.connections_before, bounds.max_threshold + 1);
    assert_eq!(r.connections_after, bounds.max_target);
    assert_eq!(r.closed, r.connections_before - bounds.max_target);
    assert_eq!(s.node.status().connections, bounds.max_target);
    for t in &trusted {
        assert!(connected(&s.node, *t).await, "trusted {t} was cut");
    }
    // The largest address group loses first: the trimmed are raw peers, told points first,
    // then why.
    let reads = futures::future::join_all(
        raw.iter_mut()
            .map(|p| read_until_closed(&mut p.link, Duration::from_secs(1))),
    )
    .await;
    let told: Vec<&Vec<Message>> = reads
        .iter()
        .filter(|(_, closed)| *closed)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(told.len(), r.closed, "{reads:?}");
    for msgs in told {
        assert!(
            matches!(msgs.as_slice(), [Message::Advertise(p), Message::Close(CloseCode::TooManyConnections)] if !p.is_empty()),
            "{msgs:?}"
        );
    }
    let closes = s.tap.times_of(|a| {
        matches!(
            a,
            Action::Close {
                reason: CloseReason::TooManyConnections,
                ..
            }
        )
    });
    assert_eq!(closes, vec![r.started; r.closed]);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_switched_off_too_many_trigger_leaves_the_trim_to_the_idle_timer() {
    let config = small_config();
    let bounds = config.bounds();
    let mut s = Setup::new(Lab::new(), config, 6, 7);
    let last = s.settled().await.cycle;
    s.node
        .set_trigger(TriggerKind::TooManyConnections, false)
        .await
        .unwrap();
    // Nodes content with one connection dial in until the count is above max_threshold.
    let dialer = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..Config::default()
    };
    let mut dialers = Vec::new();
    for i in 1..=6u8 {
        dialers.push(
            s.lab
                .node(&dialer, ip4(4, 0, i), 4000 + u64::from(i), vec![ME]),
        );
        let want = bounds.min_target + usize::from(i);
        wait_status(&s.node, VIRTUAL_DEADLINE, "a dialer connects", |st| {
            st.connections == want
        })
        .await;
    }
    assert!(s.node.status().connections > bounds.max_threshold);
    let r = s.tap.cycle_after(last).await;
    assert_eq!(
        reasons(&r),
        vec![WakeReason::Idle],
        "only the idle timer trims"
    );
    assert_eq!(r.outcome, CycleOutcome::Trimmed);
    assert_eq!(r.connections_after, bounds.max_target);
    assert!(s
        .tap
        .times_of(|a| *a == Action::Trigger(TriggerKind::TooManyConnections))
        .is_empty());
    for d in &dialers {
        d.shutdown().await;
    }
    s.shutdown().await;
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
    let lab = Lab::new();
    // 45 points; a third have nobody listening, so the top-up keeps dialing as dials fail.
    let points: Vec<SocketAddr> = (1..=45).map(addr).collect();
    let peers: Vec<Node> = (1..=45u32)
        .filter(|i| i % 3 != 1)
        .map(|i| lab.passive(addr(i), 100 + u64::from(i)))
        .collect();
    let transport = Counting::new(lab.bind(ME), Duration::from_millis(50));
    let counter = transport.counter.clone();
    let (tx, mut tap) = tap();
    let node = lab
        .builder_on(config, transport, 8)
        .bootstrap(points)
        .action_tap(tx)
        .start()
        .unwrap();
    let r = tap.cycle_after(0).await;
    assert_eq!(r.outcome, CycleOutcome::ToppedUp, "{r:?}");
    assert!(r.connections_after >= bounds.min_target);
    assert!(r.failed > 0, "{r:?}");
    assert_eq!(counter.max(), 3, "the cap is used and never exceeded");
    let stats = node.status().stats.dials;
    assert_eq!(stats.attempted as usize, counter.total());
    assert!(stats.adds_up(), "{stats:?}");
    node.shutdown().await;
    for p in &peers {
        p.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn maintain_in_range_returns_after_one_cycle_begun_at_the_call() {
    let mut s = Setup::new(Lab::new(), small_config(), 30, 9);
    let last = s.settled().await.cycle;
    let t0 = s.lab.now();
    let r = s.node.maintain().await.unwrap();
    assert_eq!(r.cycle, last + 1);
    assert_eq!(reasons(&r), vec![WakeReason::Maintain]);
    assert_eq!(r.outcome, CycleOutcome::NothingToDo);
    assert_eq!(r.started, t0, "no waiting for a later cycle (octez waits)");
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn concurrent_maintain_calls_in_range_coalesce_into_one_cycle() {
    let mut s = Setup::new(Lab::new(), small_config(), 30, 10);
    let last = s.settled().await.cycle;
    let node = &s.node;
    let reports = futures::future::join_all((0..50).map(|_| node.maintain())).await;
    let cycles: Vec<u64> = reports.into_iter().map(|r| r.unwrap().cycle).collect();
    assert_eq!(cycles, vec![last + 1; 50]);
    s.tap
        .assert_no_cycle_within(last + 1, Duration::from_secs(60), "no extra cycle follows")
        .await;
    assert_eq!(s.node.status().stats.cycles, last + 1);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn maintain_calls_during_a_cycle_get_one_later_cycle_together() {
    // 5 s links: the activation cycle is still dialing when maintain() is called.
    let lab = Lab::with(MemoryNetwork::with_latency(|_, _| Duration::from_secs(5)));
    let mut s = Setup::new(lab, small_config(), 30, 11);
    let st = wait_status(&s.node, VIRTUAL_DEADLINE, "the first cycle dials", |st| {
        st.dialing > 0
    })
    .await;
    assert_eq!((st.stats.cycles, st.last_report.as_ref()), (1, None));
    let t_call = s.lab.now();
    let node = &s.node;
    let reports = futures::future::join_all((0..50).map(|_| node.maintain())).await;
    let first = reports[0].as_ref().unwrap().clone();
    assert_eq!(first.cycle, 2, "{first:?}");
    assert!(
        first.started >= t_call,
        "the cycle began at or after the call"
    );
    assert!(first.reasons.contains(WakeReason::Maintain));
    for r in &reports {
        assert_eq!(r.as_ref().unwrap(), &first, "one cycle answers every call");
    }
    let activation = s.tap.cycle_after(0).await;
    assert_eq!(activation.cycle, 1);
    assert!(
        activation.ended > t_call,
        "the calls came during the first cycle"
    );
    assert_eq!(s.tap.cycle_after(1).await, first);
    // No extra cycle for the calls. Other cycles may follow: with 5 s links every dial
    // times out, so the node counts itself offline and wakes to probe (the offline rule).
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut after = 2;
    while let Ok(r) = tokio::time::timeout_at(until, s.tap.cycle_after(after)).await {
        assert!(
            !r.reasons.contains(WakeReason::Maintain),
            "an extra cycle for the calls: {r:?}"
        );
        after = r.cycle;
    }
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_starving_node_asks_for_points_and_dials_a_new_point_at_once() {
    let config = small_config();
    let mut s = Setup::new(Lab::new(), config, 2, 12);
    let r = s.settled().await;
    assert_eq!(r.outcome, CycleOutcome::Short);
    assert!(r.asked_for_points);
    assert!(s.node.status().wants_points, "discovery looks for points");
    // A new point arrives: the starving node dials it at once.
    let newcomer = s.lab.passive(addr(50), 150);
    let t0 = s.lab.now();
    s.node
        .add_points(vec![addr(50)], Source::PeerSharing)
        .await
        .unwrap();
    let r2 = s.tap.cycle_after(r.cycle).await;
    assert!(r2.reasons.contains(WakeReason::NewPoints), "{r2:?}");
    assert_eq!(r2.started, t0);
    assert_eq!((r2.dialed, r2.succeeded), (1, 1), "{r2:?}");
    assert!(connected(&s.node, addr(50)).await);
    newcomer.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_switched_off_new_point_trigger_does_not_wake_a_starving_node() {
    let mut s = Setup::new(Lab::new(), small_config(), 2, 13);
    let r = s.settled().await;
    assert_eq!(r.outcome, CycleOutcome::Short);
    s.node
        .set_trigger(TriggerKind::NewPoint, false)
        .await
        .unwrap();
    let newcomer = s.lab.passive(addr(50), 150);
    let t0 = s.lab.now();
    s.node
        .add_points(vec![addr(50)], Source::PeerSharing)
        .await
        .unwrap();
    // Dialed later, by a timer (the next check for dialable points), not by the trigger.
    let r2 = s.tap.cycle_after(r.cycle).await;
    assert!(r2.started > t0, "{r2:?}");
    assert!(!r2.reasons.contains(WakeReason::NewPoints), "{r2:?}");
    assert!(s
        .tap
        .times_of(|a| *a == Action::Trigger(TriggerKind::NewPoint))
        .iter()
        .all(|t| *t < t0));
    newcomer.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_peer_wakes_a_starving_node_unless_its_trigger_is_off() {
    let mut s = Setup::new(Lab::new(), small_config(), 2, 17);
    let r = s.settled().await;
    assert_eq!(r.outcome, CycleOutcome::Short);
    // New points are not what wakes it here: only the new peer id.
    s.node
        .set_trigger(TriggerKind::NewPoint, false)
        .await
        .unwrap();
    // Three link latencies: hello, hello back, the newcomer's signature; then admitted.
    let arrives = s.lab.now() + Duration::from_millis(30);
    let (_p1, reply) = mem_peer(&s.lab, ip4(3, 0, 1), 3001, ME).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let r2 = s.tap.cycle_after(r.cycle).await;
    assert_eq!(r2.started, arrives, "{r2:?}");
    assert!(r2.reasons.contains(WakeReason::NewPoints), "{r2:?}");
    // Both off: another newcomer wakes nothing.
    s.node
        .set_trigger(TriggerKind::NewPeer, false)
        .await
        .unwrap();
    let (_p2, reply) = mem_peer(&s.lab, ip4(3, 0, 2), 3002, ME).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    assert_eq!(s.node.status().connections, 4);
    s.tap
        .assert_no_cycle_within(r2.cycle, Duration::from_secs(20), "a cycle woke")
        .await;
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn points_stop_being_wanted_once_in_range() {
    let config = small_config();
    let bounds = config.bounds();
    let s = Setup::new(Lab::new(), config, 3, 14);
    wait_status(&s.node, VIRTUAL_DEADLINE, "points wanted", |st| {
        st.wants_points
    })
    .await;
    let more: Vec<Node> = (10..20)
        .map(|i| s.lab.passive(addr(i), 100 + u64::from(i)))
        .collect();
    s.node
        .add_points((10..20).map(addr).collect(), Source::PeerSharing)
        .await
        .unwrap();
    let st = wait_status(&s.node, VIRTUAL_DEADLINE, "no more points wanted", |st| {
        !st.wants_points
    })
    .await;
    assert!(st.connections >= bounds.min_threshold, "{st:?}");
    for n in &more {
        n.shutdown().await;
    }
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failed_points_are_not_redialed_before_their_backoff() {
    let mut config = small_config();
    config.reconnection.initial = Duration::from_secs(60);
    let lab = Lab::new();
    // Nobody listens at the two points. Peer-shared points: configured ones (bootstrap,
    // trusted) back off a second at most, whatever `reconnection` says.
    let (tx, mut tap) = tap();
    let node = lab.builder(config, ME, 15).action_tap(tx).start().unwrap();
    node.add_points(vec![addr(1), addr(2)], Source::PeerSharing)
        .await
        .unwrap();
    let mut cycle = 0;
    let r = loop {
        let r = tap.cycle_after(cycle).await;
        cycle = r.cycle;
        if r.dialed > 0 {
            break r;
        }
    };
    assert_eq!(r.failed, 2);
    let dials_after_first = lab.net.connects();
    assert_eq!(dials_after_first, 2);
    let (next, failed_at) = query(&node, |c| {
        let p = c.pool().get(&addr(1)).unwrap();
        (p.next_dial, p.last_failure().unwrap())
    })
    .await;
    assert!(next > failed_at);
    // Maintain before the backoff ends: no redial.
    let r2 = node.maintain().await.unwrap();
    assert_eq!(r2.dialed, 0);
    assert_eq!(lab.net.connects(), dials_after_first);
    let first_due = query(&node, |c| {
        [addr(1), addr(2)]
            .iter()
            .map(|a| c.pool().get(a).unwrap().next_dial)
            .min()
            .unwrap()
    })
    .await;
    // Once the backoff ends the node redials on its own (backoff-expired wake).
    let mut cycle = r2.cycle;
    loop {
        let r = tap.cycle_after(cycle).await;
        cycle = r.cycle;
        if r.dialed > 0 {
            assert!(r.reasons.contains(WakeReason::BackoffExpired), "{r:?}");
            assert!(r.started >= first_due, "redialed before the backoff ended");
            break;
        }
    }
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn private_mode_dials_only_trusted_points_and_admits_only_them() {
    let trusted: Vec<SocketAddr> = (1..=3).map(|i| ip4(2, 0, i)).collect();
    let config = Config {
        private_mode: true,
        trusted_points: trusted.clone(),
        ..small_config()
    };
    let lab = Lab::new();
    let mut trusted_peers: Vec<Node> = trusted
        .iter()
        .enumerate()
        .map(|(i, t)| lab.passive(*t, 1000 + i as u64))
        .collect();
    let mut s = Setup::new(lab, config, 30, 16);
    s.peers.append(&mut trusted_peers);
    let r = s.settled().await;
    assert_eq!(
        s.lab.net.connects(),
        3,
        "only the trusted points are dialed"
    );
    assert_eq!(r.connections_after, 3);
    let mut open = connections(&s.node).await;
    open.sort();
    assert_eq!(open, trusted);
    assert!(
        !r.asked_for_points && !s.node.status().wants_points,
        "private mode never asks"
    );
    // An untrusted node dialing in is refused.
    let (mut p, reply) = mem_peer(&s.lab, ip4(3, 0, 1), 3001, ME).await;
    assert!(refused_with(&reply, RefuseCode::PrivateMode), "{reply:?}");
    assert!(p.link.next().await.is_none(), "and dropped");
    assert_eq!(s.node.status().stats.admission.refused_private, 1);
    s.shutdown().await;
}
