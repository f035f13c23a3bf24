//! Configuration: defaults, TOML loading, derived bounds, and one test per validation rule
//! checking that the error names the field that breaks it.

use peerkeeper::{Bounds, Config, ConfigError, Policy, MAX_POINTS_PER_MESSAGE};
use std::time::Duration;

#[test]
fn defaults_are_valid_and_match_octez_bounds() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(
        (c.min_connections, c.expected_connections, c.max_connections),
        (10, 50, 100)
    );
    assert_eq!(
        c.bounds(),
        Bounds {
            min_threshold: 23,
            min_target: 36,
            max_target: 68,
            max_threshold: 84
        }
    );
    assert_eq!(c.maintenance_idle_time, Some(Duration::from_secs(120)));
    assert_eq!(c.time_between_looking_for_peers, Duration::from_secs(5));
    // A local testnet, a LAN or a container network forms with the defaults: private
    // addresses are accepted under the relay rule.
    assert!(c.discovery.allow_private_addresses);
    // A full node makes room for newcomers, once a second, sparing the young.
    assert_eq!(c.make_room_interval, Some(Duration::from_secs(1)));
    assert_eq!(c.newcomer_grace, Duration::from_secs(10));
    assert_eq!(c.policy, Policy::Peerkeeper);
    // An honest answer always fits in one message.
    assert!(c.discovery.answer_size <= MAX_POINTS_PER_MESSAGE);
}

#[test]
fn bounds_are_ordered_for_every_valid_triple() {
    for min in 0..20 {
        for exp in min..30 {
            for max in exp.max(1)..40 {
                let b = Bounds::new(min, exp, max);
                assert!(min <= b.min_threshold && b.min_threshold <= b.min_target);
                assert!(b.min_target <= exp && exp <= b.max_target);
                assert!(b.max_target <= b.max_threshold && b.max_threshold <= max);
            }
        }
    }
}

#[test]
fn loads_toml_with_durations_nested_tables_and_none() {
    let c = Config::from_toml(
        r#"
        min_connections = 4
        expected_connections = 8
        max_connections = 12
        maintenance_idle_time = "none"
        time_between_looking_for_peers = "2s"
        dial_timeout = "500ms"
        trusted_points = ["127.0.0.1:9732"]
        make_room_interval = "none"
        newcomer_grace = "3s"
        policy = "octez"
        [reconnection]
        initial = "2s"
        factor = 1.5
        [discovery]
        fanout = 3
        allow_private_addresses = false
    "#,
    )
    .unwrap();
    assert_eq!(c.maintenance_idle_time, None);
    assert_eq!(c.make_room_interval, None, "\"none\" never makes room");
    assert_eq!(c.newcomer_grace, Duration::from_secs(3));
    assert_eq!(c.policy, Policy::Octez);
    assert!(!c.discovery.allow_private_addresses);
    assert_eq!(c.dial_timeout, Duration::from_millis(500));
    assert_eq!(c.reconnection.initial, Duration::from_secs(2));
    assert_eq!(
        c.reconnection.cap,
        Duration::from_secs(600),
        "unset keys keep defaults"
    );
    assert_eq!(c.discovery.fanout, 3);
    assert_eq!(c.trusted_points.len(), 1);
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (text, key) in [
        ("min_conections = 3", "min_conections"),
        ("[reconnection]\ninitial_delay = \"1s\"", "initial_delay"),
        ("[discovery]\nfan_out = 3", "fan_out"),
        // Gone: the wire limit is the only cap, so a config cannot disagree with it.
        (
            "[discovery]\nmax_points_per_message = 100",
            "max_points_per_message",
        ),
    ] {
        let e = Config::from_toml(text).unwrap_err();
        assert!(matches!(e, ConfigError::Parse(_)), "{text}: {e}");
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
}

#[test]
fn bad_values_in_toml_are_errors_not_panics() {
    for text in [
        "min_connections = -1",
        "dial_timeout = \"soon\"",
        "maintenance_idle_time = 5",
        "trusted_points = [\"not an address\"]",
        "make_room_interval = \"sometimes\"",
        "newcomer_grace = \"none\"",
        "policy = \"bitcoin\"",
        "policy = \"Octez\"",
    ] {
        assert!(Config::from_toml(text).is_err(), "{text}");
    }
}

fn field_of(mutate: impl FnOnce(&mut Config)) -> &'static str {
    let mut c = Config::default();
    mutate(&mut c);
    let e = c.validate().expect_err("config should be invalid");
    let field = e.field().expect("the error names a field");
    assert!(e.to_string().contains(field), "{e}");
    field
}

#[test]
fn every_rule_names_its_field() {
    assert_eq!(field_of(|c| c.max_connections = 0), "max_connections");
    assert_eq!(
        field_of(|c| c.min_connections = c.expected_connections + 1),
        "min_connections"
    );
    assert_eq!(
        field_of(|c| c.expected_connections = c.max_connections + 1),
        "expected_connections"
    );
    assert_eq!(
        field_of(|c| c.maintenance_idle_time = Some(Duration::ZERO)),
        "maintenance_idle_time"
    );
    assert_eq!(
        field_of(|c| c.time_between_looking_for_peers = Duration::ZERO),
        "time_between_looking_for_peers"
    );
    assert_eq!(
        field_of(|c| c.max_concurrent_dials = 0),
        "max_concurrent_dials"
    );
    assert_eq!(
        field_of(|c| c.dial_timeout = Duration::ZERO),
        "dial_timeout"
    );
    assert_eq!(field_of(|c| c.private_mode = true), "trusted_points");
    assert_eq!(field_of(|c| c.max_known_points = 0), "max_known_points");
    assert_eq!(
        field_of(|c| c.known_points_gc_target = c.max_known_points),
        "known_points_gc_target"
    );
    assert_eq!(field_of(|c| c.max_known_peers = 0), "max_known_peers");
    assert_eq!(
        field_of(|c| c.max_incoming_connections = 0),
        "max_incoming_connections"
    );
    assert_eq!(
        field_of(|c| c.reconnection.initial = Duration::ZERO),
        "reconnection.initial"
    );
    assert_eq!(
        field_of(|c| c.reconnection.factor = 0.5),
        "reconnection.factor"
    );
    assert_eq!(
        field_of(|c| c.reconnection.factor = f64::NAN),
        "reconnection.factor"
    );
    assert_eq!(
        field_of(|c| c.reconnection.cap = Duration::from_millis(1)),
        "reconnection.cap"
    );
    assert_eq!(
        field_of(|c| c.reconnection.jitter = 1.0),
        "reconnection.jitter"
    );
    assert_eq!(
        field_of(|c| c.greylist_duration = Duration::ZERO),
        "greylist_duration"
    );
    assert_eq!(field_of(|c| c.discovery.fanout = 0), "discovery.fanout");
    assert_eq!(
        field_of(|c| c.discovery.request_timeout = Duration::ZERO),
        "discovery.request_timeout"
    );
    assert_eq!(
        field_of(|c| c.discovery.max_time_between_rounds = Duration::from_secs(1)),
        "discovery.max_time_between_rounds"
    );
    assert_eq!(
        field_of(|c| c.make_room_interval = Some(Duration::ZERO)),
        "make_room_interval"
    );
    // Exploration swaps: 1 minute to 1 day; shorter than exploration_interval is accepted
    // (a swap is made by an exploration, so never closer together than one).
    for bad in [Duration::from_secs(59), Duration::from_secs(86_401)] {
        assert_eq!(
            field_of(|c| c.exploration_swap_interval = bad),
            "exploration_swap_interval"
        );
    }
    assert_eq!(
        Config::default().exploration_swap_interval,
        Duration::from_secs(600)
    );
    let c = Config::from_toml("exploration_interval = \"1h\"\nexploration_swap_interval = \"1m\"")
        .unwrap();
    assert_eq!(c.exploration_swap_interval, Duration::from_secs(60));
    assert_eq!(
        field_of(|c| c.discovery.answer_size = 101),
        "discovery.answer_size"
    );
    assert_eq!(
        field_of(|c| {
            c.max_known_points = 4;
            c.known_points_gc_target = 2;
            c.trusted_points = (1..=3)
                .map(|i| format!("127.0.0.{i}:1").parse().unwrap())
                .collect();
        }),
        "trusted_points"
    );
}

#[test]
fn load_reports_a_missing_file() {
    let e = Config::load("/nonexistent/peerkeeper.toml").unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/peerkeeper.toml"));
}

#[test]
fn make_room_interval_zero_is_refused_by_name_and_none_is_accepted() {
    let e = Config::from_toml("make_room_interval = \"0s\"").unwrap_err();
    assert_eq!(e.field(), Some("make_room_interval"), "{e}");
    assert!(
        e.to_string().contains("none"),
        "the error says how to switch it off: {e}"
    );
    for off in ["none", "off"] {
        let c = Config::from_toml(&format!("make_room_interval = \"{off}\"")).unwrap();
        assert_eq!(c.make_room_interval, None);
    }
    let c = Config::from_toml("make_room_interval = \"250ms\"").unwrap();
    assert_eq!(c.make_room_interval, Some(Duration::from_millis(250)));
}

#[test]
fn policy_reads_both_names_and_refuses_others_by_name() {
    for (text, policy) in [("peerkeeper", Policy::Peerkeeper), ("octez", Policy::Octez)] {
        let c = Config::from_toml(&format!("policy = \"{text}\"")).unwrap();
        assert_eq!(c.policy, policy);
        // The CLI's --policy spells it the same way.
        assert_eq!(text.parse::<Policy>().unwrap(), policy);
        assert_eq!(policy.to_string(), text);
    }
    let e = Config::from_toml("policy = \"bitcoin\"").unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e}");
    assert!(e.to_string().contains("bitcoin"), "{e}");
    assert!("bitcoin".parse::<Policy>().unwrap_err().contains("bitcoin"));
}

#[test]
fn answer_size_may_fill_a_message_but_not_exceed_it() {
    let at_limit = Config::from_toml(&format!(
        "[discovery]\nanswer_size = {MAX_POINTS_PER_MESSAGE}"
    ))
    .unwrap();
    assert_eq!(at_limit.discovery.answer_size, MAX_POINTS_PER_MESSAGE);
    let e = Config::from_toml(&format!(
        "[discovery]\nanswer_size = {}",
        MAX_POINTS_PER_MESSAGE + 1
    ))
    .unwrap_err();
    assert_eq!(e.field(), Some("discovery.answer_size"));
}

#[test]
fn a_config_survives_a_round_trip_through_toml() {
    let c = Config {
        min_connections: 3,
        expected_connections: 6,
        max_connections: 9,
        maintenance_idle_time: None,
        make_room_interval: None,
        newcomer_grace: Duration::from_millis(1500),
        policy: Policy::Octez,
        trusted_points: vec![
            "127.0.0.1:9732".parse().unwrap(),
            "[::1]:9733".parse().unwrap(),
        ],
        ..Config::default()
    };
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::from_toml(&text).unwrap(), c, "{text}");
    let d = Config::default();
    assert_eq!(Config::from_toml(&toml::to_string(&d).unwrap()).unwrap(), d);
}
