//! No config value panics: extreme values (0, 1, the largest of each type, a nanosecond,
//! centuries) are either refused by `validate()` with the field's name, or run: a
//! simulated network of nodes with that config, in virtual time, and a real node started
//! and stopped. The command's flags are checked the same way in `tests/cli.rs`.

use peerkeeper::config::{MAX_CONNECTIONS_SETTING, MAX_DURATION};
use peerkeeper::sim::{SimConfig, Simulation};
use peerkeeper::{Config, Policy};
use proptest::prelude::*;
use std::time::Duration;

fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(3),
        Just(MAX_CONNECTIONS_SETTING),
        Just(MAX_CONNECTIONS_SETTING + 1),
        Just(1 << 24),
        Just(usize::MAX / 2),
        Just(usize::MAX),
        0usize..64,
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(10)),
        Just(Duration::from_secs(1)),
        Just(MAX_DURATION),
        Just(MAX_DURATION + Duration::from_secs(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        (0u64..600_000).prop_map(Duration::from_millis),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(0.0),
        Just(0.5),
        Just(1.0),
        Just(2.0),
        Just(f64::MAX),
        Just(-100.0),
        Just(-50.0),
    ]
}

prop_compose! {
    fn extreme_config()(
        counts in proptest::collection::vec(count(), 12),
        durations in proptest::collection::vec(duration(), 13),
        floats in proptest::collection::vec(float(), 4),
        some in proptest::collection::vec(any::<bool>(), 6),
    ) -> Config {
        let mut c = Config {
            min_connections: counts[0],
            expected_connections: counts[1],
            max_connections: counts[2],
            max_concurrent_dials: counts[3],
            max_known_points: counts[4],
            known_points_gc_target: counts[5],
            max_known_peers: counts[6],
            max_incoming_connections: counts[7],
            max_outbound: some[0].then_some(counts[8]),
            max_inbound: some[1].then_some(counts[9]),
            min_outbound: some[2].then_some(counts[10]),
            max_inbound_per_group: some[3].then_some(counts[11]),
            ..Config::default()
        };
        c.discovery.fanout = counts[11];
        c.maintenance_idle_time = some[4].then_some(durations[0]);
        c.time_between_looking_for_peers = durations[1];
        c.dial_timeout = durations[2];
        c.make_room_interval = some[5].then_some(durations[3]);
        c.newcomer_grace = durations[4];
        c.disconnection_delay = durations[5];
        c.greylist_duration = durations[6];
        c.reconnection.initial = durations[7];
        c.reconnection.cap = durations[8];
        c.discovery.peer_ask_interval = durations[9];
        c.discovery.max_time_between_rounds = durations[10];
        c.discovery.request_timeout = durations[11];
        c.feedback.half_life = durations[12];
        c.reconnection.factor = floats[0];
        c.reconnection.jitter = floats[1];
        c.feedback.disconnect_below = floats[2];
        c.feedback.ban_below = floats[3];
        c
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Refused with a named field, or a network of such nodes runs without a panic.
    #[test]
    fn an_extreme_config_is_refused_or_runs(config in extreme_config(), seed in 0u64..4) {
        match config.validate() {
            Err(e) => prop_assert!(e.field().is_some(), "{e}"),
            Ok(()) => {
                let mut cfg = SimConfig::new(8, seed, Duration::from_secs(600), Policy::Peerkeeper);
                cfg.node_config = config;
                let out = Simulation::new(cfg).run(|_| {});
                prop_assert!(out.report.network.dials.adds_up());
            }
        }
    }
}

/// The values that crashed or hung a node before: refused, each naming its field.
#[test]
fn the_values_that_crashed_a_node_are_refused_by_name() {
    let cases: [(&str, Config); 4] = [
        (
            "max_incoming_connections",
            Config {
                max_incoming_connections: 1 << 61,
                ..Config::default()
            },
        ),
        (
            "maintenance_idle_time",
            Config {
                maintenance_idle_time: Some(Duration::from_nanos(1)),
                ..Config::default()
            },
        ),
        (
            "greylist_duration",
            Config {
                greylist_duration: Duration::from_secs(u64::MAX),
                ..Config::default()
            },
        ),
        (
            "max_connections",
            Config {
                max_connections: usize::MAX,
                ..Config::default()
            },
        ),
    ];
    for (field, config) in cases {
        assert_eq!(config.validate().unwrap_err().field(), Some(field));
    }
}

/// The largest accepted values start a real node, which runs and stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_values_start_and_stop_a_real_node() {
    let config = Config {
        max_incoming_connections: peerkeeper::config::MAX_INCOMING_SETTING,
        max_connections: MAX_CONNECTIONS_SETTING,
        expected_connections: MAX_CONNECTIONS_SETTING,
        max_concurrent_dials: MAX_CONNECTIONS_SETTING,
        greylist_duration: MAX_DURATION,
        newcomer_grace: MAX_DURATION,
        disconnection_delay: MAX_DURATION,
        reconnection: peerkeeper::config::BackoffConfig {
            cap: MAX_DURATION,
            ..Default::default()
        },
        feedback: peerkeeper::config::FeedbackConfig {
            half_life: MAX_DURATION,
            ..Default::default()
        },
        ..Config::default()
    };
    config.validate().unwrap();
    let net = peerkeeper::node::NetConfig {
        handshake_timeout: MAX_DURATION,
        keepalive_interval: MAX_DURATION - Duration::from_secs(1),
        keepalive_timeout: MAX_DURATION,
        ..Default::default()
    };
    net.validate().unwrap();
    let transport = peerkeeper::transport::tcp::TcpTransport::bind(
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    let node = peerkeeper::node::Node::builder(config, transport)
        .net(net)
        .seed(1)
        .start()
        .unwrap();
    node.maintain().await.unwrap();
    let s = node.status();
    assert_eq!(s.connections, 0);
    node.shutdown().await;
}
