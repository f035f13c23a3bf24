//! The keys `peerkeeper demo --json` and `peerkeeper simulate --json` share (one
//! `NetworkReport`, filled from the same node core counters), and the simulator's own.

#![allow(dead_code)] // each test crate uses its own subset

/// The keys of a `NetworkReport`.
pub const NETWORK_REPORT_KEYS: [&str; 12] = [
    "nodes",
    "seed",
    "converged",
    "converged_at_ms",
    "connections",
    "components",
    "max_observed_connections",
    "dials",
    "points_dropped",
    "peer_sharing",
    "maintenance_cycles",
    "wall_ms",
];

/// The keys of the `dials` object: every outcome, adding up to `attempted`.
pub const DIAL_KEYS: [&str; 13] = [
    "attempted",
    "succeeded",
    "refused",
    "timed_out",
    "failed",
    "protocol",
    "already_connected",
    "myself",
    "dropped",
    "cancelled",
    "wrong_peer",
    "offline",
    "in_flight",
];

/// The keys of the `points_dropped` object: why peer-shared points were dropped (the
/// relay rule's reasons and the pool's).
pub const POINTS_DROPPED_KEYS: [&str; 7] = [
    "port_zero",
    "not_unicast",
    "loopback_from_remote",
    "private_from_public",
    "private_refused",
    "myself",
    "pool_full",
];

/// The keys `peerkeeper simulate --json` adds to a `NetworkReport`.
pub const SIM_REPORT_KEYS: [&str; 13] = [
    "policy",
    "virtual_ms",
    "events",
    "messages",
    "event_log_hash",
    "alive",
    "short_nodes",
    "short_reason",
    "late_joiners",
    "late_joiners_in_range",
    "late_cycles_per_node_hour",
    "late_dials_per_node_hour",
    "approx_bytes_per_node",
];

/// Checks that a JSON `NetworkReport` has every documented key, and that its dial
/// outcomes add up to the attempts. Returns the dials object's `attempted`.
pub fn check_network_report(v: &serde_json::Value) -> u64 {
    for k in NETWORK_REPORT_KEYS {
        assert!(v.get(k).is_some(), "missing key {k} in {v}");
    }
    for k in ["min", "median", "max"] {
        assert!(v["connections"].get(k).is_some(), "missing connections.{k}");
    }
    for k in POINTS_DROPPED_KEYS {
        assert!(
            v["points_dropped"][k].is_u64(),
            "missing points_dropped.{k} in {v}"
        );
    }
    let dials = &v["dials"];
    let count = |k: &str| {
        dials[k]
            .as_u64()
            .unwrap_or_else(|| panic!("missing dials.{k} in {dials}"))
    };
    let outcomes: u64 = DIAL_KEYS[1..].iter().map(|k| count(k)).sum();
    assert_eq!(
        count("attempted"),
        outcomes,
        "dial outcomes must add up to the attempts: {dials}"
    );
    count("attempted")
}
