//! The keys `peerkeeper demo --json` and `peerkeeper simulate --json` share (one
//! `NetworkReport`, filled from the same node core counters).

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
pub const DIAL_KEYS: [&str; 11] = [
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
    "in_flight",
];
