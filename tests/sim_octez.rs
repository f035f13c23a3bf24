//! The octez model (`peerkeeper::maintenance::octez`), one node at a time, fed explicit
//! events: it must behave as the reference notes describe octez, flaws included, or the
//! side-by-side comparison means nothing. It plugs into the node core through
//! `Config::policy`; the core adds octez's admission (one random extra slot). Targets
//! 4/8/12 give thresholds 5 and 11, targets 6 and 10.

use peerkeeper::core::{Admission, Hello, NodeCore, RefuseReason};
use peerkeeper::maintenance::octez::{
    octez_backoff, octez_config, octez_trigger, OctezModel, OCTEZ_LOOKING_FOR_PEERS,
};
use peerkeeper::maintenance::{Action, DialOutcome, WakeReason};
use peerkeeper::pool::{ConnId, Direction, PeerId, Pool, PoolLimits, Source};
use peerkeeper::trigger::{count_trigger, TriggerKind};
use peerkeeper::{Config, Policy, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The node's default config with targets 4/8/12, as the octez policy runs it.
fn targets() -> Config {
    Config {
        min_connections: 4,
        expected_connections: 8,
        max_connections: 12,
        policy: Policy::Octez,
        ..Config::default()
    }
}

fn config() -> Arc<Config> {
    Arc::new(octez_config(&targets()))
}

/// Opens a connection in the pool as the node core would.
fn open(pool: &mut Pool, k: usize, p: SocketAddr, dir: Direction, t: Time) {
    pool.connection_opened(
        ConnId(k as u64 + 1),
        p,
        PeerId::from_u64(k as u64 + 1),
        dir,
        t,
    )
    .unwrap();
}

fn point(i: usize) -> SocketAddr {
    format!("10.1.{}.{}:9732", i / 250, i % 250 + 1)
        .parse()
        .unwrap()
}

fn pool_with(config: &Config, points: usize) -> Pool {
    let mut pool = Pool::with_limits(PoolLimits::from(config));
    for i in 0..points {
        pool.add_point(point(i), Source::PeerSharing, Time::ZERO);
    }
    pool
}

fn dials(out: &[Action]) -> Vec<SocketAddr> {
    out.iter()
        .filter_map(|a| match a {
            Action::Dial(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn asks(out: &[Action]) -> usize {
    out.iter()
        .filter(|a| matches!(a, Action::WantPoints(true)))
        .count()
}

#[test]
fn triggers_fire_at_min_and_max_not_at_the_thresholds() {
    let c = config();
    let b = c.bounds();
    assert_eq!((b.min_threshold, b.max_threshold), (5, 11));
    // Falling to 4 (= min, below min_threshold): ours fires, the octez model does not.
    assert_eq!(
        count_trigger(5, 4, &b),
        Some(TriggerKind::TooFewConnections)
    );
    assert_eq!(octez_trigger(5, 4, &c), None);
    assert_eq!(
        octez_trigger(4, 3, &c),
        Some(TriggerKind::TooFewConnections)
    );
    // Rising to 12 (= max): both; to 11... neither; ours at 12 only because 12 > 11.
    assert_eq!(
        octez_trigger(11, 12, &c),
        Some(TriggerKind::TooManyConnections)
    );
    assert_eq!(octez_trigger(10, 11, &c), None);
    assert_eq!(count_trigger(10, 11, &b), None);
}

#[test]
fn a_top_up_dials_every_candidate_at_once_up_to_max_target() {
    for seed in [1, 2, 3] {
        let c = config();
        let mut pool = pool_with(&c, 40);
        let mut m = OctezModel::new(c.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        m.wake(
            WakeReason::Activation,
            Time::ZERO,
            &mut pool,
            &mut rng,
            &mut out,
        );
        let d = dials(&out);
        // max_target - 0 = 10 at once, above our max_concurrent_dials (8 by default).
        assert_eq!(d.len(), c.bounds().max_target, "seed {seed}");
        assert!(d.len() > c.max_concurrent_dials);
        assert_eq!(pool.dialing_count(), d.len());
    }
}

#[test]
fn the_contact_loop_goes_on_to_min_target_after_a_batch() {
    let c = config();
    let b = c.bounds();
    let mut pool = pool_with(&c, 40);
    let mut m = OctezModel::new(c.clone());
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    let now = Time::ZERO;
    m.wake(WakeReason::Activation, now, &mut pool, &mut rng, &mut out);
    let batch = dials(&out);
    // Exactly min_threshold (5) of the batch succeed: in range, but below min_target (6).
    let mut out = Vec::new();
    let t = Time::from_millis(100);
    for (k, p) in batch.iter().enumerate() {
        // The node core records the dial in the pool, then tells the model.
        let outcome = if k < b.min_threshold {
            assert!(pool.end_dial(*p, false, t, &mut rng));
            open(&mut pool, k, *p, Direction::Outbound, t);
            DialOutcome::Succeeded
        } else {
            assert!(pool.end_dial(*p, true, t, &mut rng));
            DialOutcome::Failed
        };
        m.dial_finished(outcome, t, &mut pool, &mut rng, &mut out);
    }
    assert_eq!(pool.active_count(), b.min_threshold);
    let again = dials(&out);
    assert_eq!(
        again.len(),
        b.max_target - b.min_threshold,
        "octez's try_to_contact loop dials again below min_target"
    );
    assert!(again.iter().all(|p| !batch.contains(p)));
}

#[test]
fn short_of_candidates_it_asks_every_5_s_forever_with_no_backoff() {
    let c = config();
    let mut pool = pool_with(&c, 0);
    // Two connections, no candidate: short, nothing to dial.
    for k in 0..2 {
        open(&mut pool, k, point(100 + k), Direction::Inbound, Time::ZERO);
    }
    let mut m = OctezModel::new(c);
    let mut rng = StdRng::seed_from_u64(3);
    let mut out = Vec::new();
    m.wake(
        WakeReason::Activation,
        Time::ZERO,
        &mut pool,
        &mut rng,
        &mut out,
    );
    let mut total = asks(&out);
    let mut deadlines = Vec::new();
    // An hour of virtual time, driven only by the model's own deadlines.
    for _ in 0..10_000 {
        let Some(t) = m.next_deadline(&pool) else {
            break;
        };
        if t > Time::ZERO + Duration::from_secs(3600) {
            break;
        }
        deadlines.push(t);
        let mut out = Vec::new();
        m.handle_timeout(t, &mut pool, &mut rng, &mut out);
        total += asks(&out);
    }
    // One request every 5 s for the hour: 720 (plus the first).
    assert_eq!(total, 3600 / OCTEZ_LOOKING_FOR_PEERS.as_secs() as usize + 1);
    for w in deadlines.windows(2) {
        assert_eq!(w[1].saturating_since(w[0]), OCTEZ_LOOKING_FOR_PEERS);
    }
}

#[test]
fn in_range_it_sleeps_for_the_120_s_idle_timer_and_a_trim_is_uniform() {
    let c = config();
    let b = c.bounds();
    // Twelve connections (above max_threshold): the trim closes down to max_target,
    // and over many seeds every connection is sometimes the one closed (uniform, no
    // preference for inbound or address groups).
    let mut closed_ever = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut pool = pool_with(&c, 0);
        for k in 0..12 {
            open(&mut pool, k, point(k), Direction::Outbound, Time::ZERO);
        }
        let mut m = OctezModel::new(c.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        m.wake(
            WakeReason::TooManyConnections,
            Time::ZERO,
            &mut pool,
            &mut rng,
            &mut out,
        );
        assert_eq!(pool.active_count(), b.max_target);
        for a in &out {
            if let Action::Close(p, _, _) = a {
                closed_ever.insert(*p);
            }
        }
        // Then it sleeps until the idle timer, and nothing else.
        assert_eq!(
            m.next_deadline(&pool),
            Some(Time::ZERO + Duration::from_secs(120))
        );
    }
    assert_eq!(closed_ever.len(), 12);
}

#[test]
fn backoff_is_one_second_times_1_2() {
    let b = octez_backoff();
    assert_eq!(b.base_delay(1), Duration::from_secs(1));
    assert_eq!(b.base_delay(2), Duration::from_millis(1200));
    assert_eq!(b.base_delay(3), Duration::from_millis(1440));
    assert_eq!(b.jitter, 0.0);
    // The 2-day cap is reached (1 s x 1.2^k passes 172,800 s at k = 67). The exponent used to be
    // clamped at 64, which froze the delay at 1.2^64 s, about 32.6 hours.
    assert_eq!(b.base_delay(80), Duration::from_secs(2 * 24 * 3600));
    assert_eq!(b.base_delay(u32::MAX), b.cap);
    assert!(b.base_delay(66) < b.cap);
}

#[test]
fn the_policy_plugs_into_the_node_core_with_octez_timers_and_one_extra_slot() {
    // Config::policy chooses the model; the core then runs octez's timers.
    let core = NodeCore::new(targets(), PeerId::from_u64(1), 1);
    assert_eq!(core.config().reconnection, octez_backoff());
    assert_eq!(
        core.config().time_between_looking_for_peers,
        OCTEZ_LOOKING_FOR_PEERS
    );
    // At max_connections (12), octez's older admission rule admits one random extra
    // inbound connection, never two; over seeds, both answers happen. (The too-many
    // trigger is switched off while the node fills, or it would trim at 12 at once.)
    let max = targets().max_connections;
    let (mut admitted, mut refused) = (0, 0);
    for seed in 0..40 {
        let mut core = NodeCore::new(targets(), PeerId::from_u64(1), seed);
        core.set_trigger(TriggerKind::TooManyConnections, false);
        core.start(Time::ZERO);
        let t = Time::from_millis(10);
        let inbound = |core: &mut NodeCore, k: usize| {
            let hello = Hello {
                peer: PeerId::from_u64(k as u64 + 100),
                listen_port: 9732,
            };
            core.handle_inbound(ConnId(k as u64 + 1), point(k), hello, t)
        };
        for k in 0..max {
            assert_eq!(inbound(&mut core, k), Admission::Accept, "seed {seed}");
        }
        assert_eq!(core.connection_count(), max);
        match inbound(&mut core, max) {
            Admission::Accept => {
                admitted += 1;
                assert_eq!(core.connection_count(), max + 1);
                // Never a second extra one.
                assert!(matches!(
                    inbound(&mut core, max + 1),
                    Admission::Refuse {
                        reason: RefuseReason::Full,
                        ..
                    }
                ));
            }
            Admission::Refuse { reason, points } => {
                refused += 1;
                assert_eq!(reason, RefuseReason::Full);
                assert!(!points.is_empty(), "seed {seed}: a refusal carries points");
                assert_eq!(core.connection_count(), max);
            }
        }
        // The next pass trims back to max_target, uniformly at random.
        while core.poll_action().is_some() {}
        core.maintain(t);
        let closes = std::iter::from_fn(|| core.poll_action())
            .filter(|a| matches!(a, peerkeeper::core::Action::Close { .. }))
            .count();
        assert_eq!(core.connection_count(), core.bounds().max_target);
        assert!(closes >= max - core.bounds().max_target, "seed {seed}");
    }
    assert!(
        admitted > 0 && refused > 0,
        "{admitted} admitted, {refused} refused"
    );
}
