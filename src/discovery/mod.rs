//! Discovery: finding more points when maintenance has none left to dial.
//!
//! Maintenance says when points are wanted ([`Maintainer::want_points`]); discovery then
//! asks connected peers for points in *rounds*: each round asks up to `fanout` connected
//! peers that were not asked within `peer_ask_interval`. Rounds follow an exponential
//! backoff with jitter that starts at `time_between_looking_for_peers` and is capped at
//! `max_time_between_rounds`; it resets when new points arrive, and rounds stop as soon as
//! maintenance no longer wants points (octez asks every 5 s forever).
//!
//! Every point received is hostile input: [`DiscoveryState::on_points`] refuses a message
//! over the per-message cap (the caller drops and greylists the sender) and
//! [`validate_point`] drops unspecified, multicast, broadcast, documentation and port-0
//! addresses, and loopback or private ones unless the config allows them.
//!
//! [`DiscoveryState`] is pure (explicit `now`, seeded RNG) so that the simulator drives it;
//! [`Discovery`] is the tokio worker around it.
//!
//! [`Maintainer::want_points`]: crate::Maintainer::want_points

mod state;
mod worker;

pub use state::{validate_point, DiscoveryState, DiscoveryStats, PointRejected, TooManyPoints};
pub use worker::{Discovery, PointSource};
