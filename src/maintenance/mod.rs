//! Maintenance: keeps the connection count within the configured bounds.
//!
//! Two layers, both pure (no tokio, no clock, no I/O):
//!
//! * [`plan`](plan()): a pure function of the pool, the config, `now` and a seeded RNG that
//!   says what to dial, what to close and whether to ask for points;
//! * [`Maintenance`]: the sans-IO cycle state machine (when to dial more, when to ask for
//!   points, when a cycle ends, when the next timer is due), fed events with an explicit
//!   `now`.
//!
//! [`octez::OctezModel`] is the same machine's octez counterpart. The node core
//! ([`crate::core::NodeCore`]) runs one of them, and the tokio shell and the simulator
//! drive the node core.

mod cycle;
pub mod octez;
mod plan;

pub use cycle::{
    Action, CycleOutcome, CycleReport, DialOutcome, Maintenance, WakeReason, WakeReasons,
};
pub use plan::{
    floor_evictions, floors_dialable, floors_short, floors_unmet, plan, top_up_dials, trim, trim_for,
    trim_where, Plan,
};
