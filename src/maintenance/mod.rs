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
//!
//! # Kinds, targets and budgets
//!
//! Every connection has a kind, its point's best source
//! ([`Sources::kind`](crate::pool::Sources::kind)), and
//! [`KindTargets`](crate::config::KindTargets) give each kind a
//! floor, a weight and a cap. A top-up ([`top_up_dials`]) picks its dials in three
//! passes over the candidates (best first, as the pool ranks them):
//!
//! 1. **floors**: for each kind below its floor (best kind first), its best candidates;
//! 2. **shares**: candidates of kinds below their quota: floor plus their share by weight
//!    of the rest of `min_target`
//!    ([`KindTargets::quotas`](crate::config::KindTargets::quotas), largest remainder);
//! 3. **spill**: any candidate whose kind is below its cap (a kind with no candidate left
//!    gives its share to the others).
//!
//! Counts include both directions and the dials in flight. The outbound budget
//! ([`Config::outbound_budget`](crate::Config::outbound_budget)) caps every top-up; a
//! floor is dialed for even while the count is in range, and kept: while a kind is below
//! its floor, discovery and the node's sources keep being asked, and when the budget is
//! spent on other kinds [`floor_evictions`] makes room. A trim ([`trim_for`]) cuts inbound
//! connections first, then outbound ones, each time from the kind furthest over its quota
//! of `max_target` (a kind above its cap before any other), never a kind at its floor,
//! never a protected peer ([`Pool::is_protected`](crate::pool::Pool::is_protected):
//! trusted, or a peer set's primary). With the default targets (no floor, no weight, no
//! cap) both are exactly the kind-blind rules: best candidates first, and the
//! group-spreading trim.

mod cycle;
pub mod evict;
pub mod octez;
mod plan;

pub use cycle::{
    Action, CycleOutcome, CycleReport, DialOutcome, Maintenance, WakeReason, WakeReasons,
};
pub use plan::{
    diverse, floor_evictions, floors_dialable, floors_short, floors_unmet,
    outbound_floor_evictions, outbound_need, plan, top_up_dials, trim, trim_for, trim_where, Plan,
};
