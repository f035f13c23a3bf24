//! Maintenance: keeps the connection count within the configured bounds.
//!
//! Three layers, from pure to async:
//!
//! * [`plan`](plan()): a pure function of the pool, the config, `now` and a seeded RNG that
//!   says what to dial, what to close and whether to ask for points;
//! * [`Maintenance`]: the sans-IO cycle state machine (when to dial more, when to ask for
//!   points, when a cycle ends, when the next timer is due), fed events with an explicit
//!   `now`; the simulator drives thousands of them without tokio;
//! * [`Maintainer`]: the tokio worker that waits on triggers, the `maintain()` mailbox,
//!   the idle deadline and dial completions, and carries out what the machine decides.

mod cycle;
mod plan;
mod worker;

pub use cycle::{
    record_dial, Action, CycleOutcome, CycleReport, DialOutcome, Maintenance, WakeReason,
    WakeReasons,
};
pub use plan::{plan, top_up_dials, trim, Plan};
pub use worker::{Maintainer, MaintainerStats};
