//! Configuration: defaults, TOML loading, derived bounds, and one test per validation rule
//! checking that the error names the field that breaks it.

use peerkeeper::{Bounds, Config, ConfigError};
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
        [reconnection]
        initial = "2s"
        factor = 1.5
        [discovery]
        fanout = 3
        allow_private_addresses = true
    "#,
    )
    .unwrap();
    assert_eq!(c.maintenance_idle_time, None);
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
        field_of(|c| c.discovery.max_points_per_message = 101),
        "discovery.max_points_per_message"
    );
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
