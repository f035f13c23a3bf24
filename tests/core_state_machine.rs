//! The node core driven by random sequences of every input, with the invariants checked
//! after each step: a state-machine property test (issue 10, item 5).
//!
//! Each case draws a configuration (targets, dial concurrency, a small pool, either
//! policy, private mode, room making on or off, trusted points) and a sequence of inputs:
//! points learned from every source, inbound handshakes (some claiming a connected peer's
//! id), outcomes for the dials the core asked for (connected, refused with points, every
//! failure), connections closed and dropped, points received and asked for, violations,
//! swap requests, peer sets tracked (stale ids included) and overwritten, points
//! protected, `maintain()`, trigger switches, timers, time passing, and shutdown.
//! After every step it checks what a user relies on:
//!
//! * never more connections than `max_connections` (the octez model: one more, its
//!   random extra slot), never more dials in flight than `max_concurrent_dials` (ours:
//!   the octez model dials every candidate it wants at once, as octez does);
//! * the pool within `max_known_points` (the operator's trusted points aside: they are
//!   kept whatever the bound);
//! * no dial to a point that is connected, greylisted (banned), on a greylisted address,
//!   backed off, or already being dialed;
//! * a trusted peer never closed to trim (ours: the octez model trims at random), nor a
//!   primary of a tracked peer set;
//! * no failure counted against a point for a dial that failed while the node was
//!   offline (the offline rule);
//! * the core's tables agree with each other and with the pool, dial outcomes add up
//!   (`NodeCore::check_invariants`).
//!
//! The world (inputs, shell, checks) is in `tests/common/core_world.rs`, shared with the
//! fuzz target `fuzz/fuzz_targets/core_inputs.rs`.
//!
//! `cargo test --test core_state_machine` runs 64 configurations of 2,500 inputs each;
//! `cargo test --release --test core_state_machine -- --ignored` runs 50 of 25,000 (as
//! Substrate's peerset fuzz does), in about ten seconds (9.2 s on the 2-core CI machine type).

#[path = "common/core_world.rs"]
mod core_world;

use core_world::{run, small_config, Op, POINTS};
use peerkeeper::Config;
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let idxs = || prop::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        3 => (idxs(), 0u8..5).prop_map(|(points, source)| Op::Learn { points, source }),
        4 => (any::<u8>(), prop::option::weighted(0.1, any::<u8>()))
            .prop_map(|(point, claim)| Op::Inbound { point, claim }),
        8 => (any::<u16>(), 0u8..8, idxs())
            .prop_map(|(which, result, refusal)| Op::DialEnds { which, result, refusal }),
        2 => any::<u16>().prop_map(|which| Op::Closed { which }),
        1 => any::<u16>().prop_map(|which| Op::Dropped { which }),
        2 => (any::<u16>(), idxs()).prop_map(|(which, points)| Op::PointsReceived { which, points }),
        1 => any::<u16>().prop_map(|which| Op::PointsAsked { which }),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(which, by_ip)| Op::Violation { which, by_ip }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(which, point)| Op::Swap { which, point }),
        1 => (0u8..3, prop::collection::vec(any::<u8>(), 0..5), prop::collection::vec(any::<u8>(), 0..5))
            .prop_map(|(id_step, primary, secondary)| Op::Track { id_step, primary, secondary }),
        1 => prop::collection::vec((any::<u8>(), any::<u8>()), 0..3).prop_map(|peers| Op::Overwrite { peers }),
        1 => (prop::collection::vec(any::<u8>(), 0..3), any::<bool>()).prop_map(|(points, on)| Op::Protect { points, on }),
        1 => Just(Op::Maintain),
        1 => (0u8..2, any::<bool>()).prop_map(|(kind, on)| Op::Trigger { kind, on }),
        1 => any::<bool>().prop_map(|on| Op::IdleTimer { on }),
        6 => (0u32..60_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// A configuration `validate()` accepts: small targets and a small pool, so that the
/// bounds are reached often.
fn config() -> impl Strategy<Value = Config> {
    (
        (1usize..6, 0usize..8, 0usize..8),
        1usize..6,
        (12usize..40, any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(0u8..POINTS, 0..3),
    )
        .prop_map(|(targets, dials, (pool, octez, private, room), trusted)| {
            small_config(targets, dials, pool, octez, private, room, &trusted)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_invariants_under_any_inputs(
        config in config(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 2_500),
    ) {
        run(config, seed, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 50, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// 50 configurations of 25,000 inputs: `cargo test --release --test core_state_machine -- --ignored`.
    #[test]
    #[ignore = "long: 50 x 25,000 inputs; run with --release -- --ignored"]
    fn the_core_keeps_its_invariants_over_long_runs(
        config in config(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 25_000),
    ) {
        run(config, seed, &ops);
    }
}
