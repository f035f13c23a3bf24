//! Discovery: when and whom to ask for points when maintenance has none left to dial.
//!
//! Maintenance says when points are wanted; discovery then asks connected peers for
//! points in *rounds*: each round asks up to `fanout` connected peers that were not asked
//! within `peer_ask_interval`, and polls the node's own point sources. Rounds follow an
//! exponential backoff with jitter that starts at `time_between_looking_for_peers` and is
//! capped at `max_time_between_rounds`; it resets when new points arrive, and rounds stop
//! as soon as maintenance no longer wants points (octez asks every 5 s forever).
//!
//! [`DiscoveryState`] is pure (explicit `now`, seeded RNG) and owned by the node core
//! ([`crate::core::NodeCore`]), which also applies the one rule for what points are
//! accepted and shared ([`crate::core::intake`]).

mod state;

pub use state::{DiscoveryState, DiscoveryStats};
