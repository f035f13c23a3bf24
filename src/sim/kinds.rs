//! Per-kind targets in the simulator: a simulated ledger source and what the nodes keep of
//! each kind's floor ([`crate::config::KindTargets`]).
//!
//! With [`SimConfig::ledger`](super::SimConfig::ledger) `= K`, K nodes (a seeded choice)
//! are the relays of a stake distribution: every node is given their points as
//! [`Source::External`] points when it starts and again each time its core polls its
//! sources ([`Action::PollSources`](crate::core::Action::PollSources)), as
//! [`crate::node::ledger::LedgerSource`] does for `peerkeeper node`. The nodes' config
//! sets the floors (`[targets.external] floor = N`); the report says, for each kind with a
//! floor, how many alive nodes keep it at the end and the spread of that kind's
//! connections.

use crate::pool::{Pool, Source};
use crate::report::Spread;
use serde::Serialize;

/// One kind's figures at the end of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KindFigures {
    /// The kind (`trusted`, `bootstrap`, `external`, `peer_sharing`, `incoming`).
    pub kind: &'static str,
    /// Its floor in the nodes' config.
    pub floor: usize,
    /// Alive nodes with at least `floor` open connections of the kind.
    pub nodes_at_floor: usize,
    /// `nodes_at_floor` over the alive nodes.
    pub fraction_at_floor: f64,
    /// Open connections of the kind per alive node.
    pub connections: Spread,
}

/// The kinds section of [`SimReport`](super::SimReport): present when the run has a ledger
/// or a floor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KindsReport {
    /// Relays in the simulated ledger.
    pub ledger_relays: usize,
    /// Every kind with a floor, and external whenever there is a ledger.
    pub kinds: Vec<KindFigures>,
}

/// Open connections of each kind ([`Source::index`] order) in `pool`.
pub(super) fn open_by_kind(pool: &Pool) -> [usize; 5] {
    let mut n = [0; 5];
    for (a, _) in pool.connections() {
        n[pool.kind_of(&a).index()] += 1;
    }
    n
}

/// The report of the kinds, from each alive node's counts.
pub(super) fn report(
    config: &crate::Config,
    ledger: usize,
    per_node: &[[usize; 5]],
) -> Option<KindsReport> {
    if ledger == 0 && config.targets.floor_sum() == 0 {
        return None;
    }
    let kinds = Source::BY_RANK
        .into_iter()
        .filter(|k| config.targets.get(*k).floor > 0 || (ledger > 0 && *k == Source::External))
        .map(|k| {
            let floor = config.targets.get(k).floor;
            let counts: Vec<usize> = per_node.iter().map(|c| c[k.index()]).collect();
            let at = counts.iter().filter(|c| **c >= floor).count();
            KindFigures {
                kind: k.name(),
                floor,
                nodes_at_floor: at,
                fraction_at_floor: if counts.is_empty() {
                    0.0
                } else {
                    at as f64 / counts.len() as f64
                },
                connections: Spread::of(&counts),
            }
        })
        .collect();
    Some(KindsReport {
        ledger_relays: ledger,
        kinds,
    })
}
