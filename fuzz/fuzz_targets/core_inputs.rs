//! Arbitrary sequences of the node core's inputs, with the invariants checked after
//! every step: the world of `tests/core_state_machine.rs` (`tests/common/core_world.rs`:
//! a shell that carries out the core's actions checking each, `NodeCore::check_invariants`
//! and the user-facing bounds), fed from the fuzzer's bytes instead of proptest.

#![no_main]

#[path = "../../tests/common/core_world.rs"]
#[allow(dead_code)]
mod core_world;

use core_world::{run, small_config, Op, POINTS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use peerkeeper::Config;

/// A configuration `validate()` accepts, as the property test draws them.
fn config(u: &mut Unstructured) -> Result<Config> {
    let min = u.int_in_range(1usize..=5)?;
    let e = u.int_in_range(0usize..=7)?;
    let m = u.int_in_range(0usize..=7)?;
    let dials = u.int_in_range(1usize..=5)?;
    let pool = u.int_in_range(12usize..=39)?;
    let octez: bool = u.arbitrary()?;
    let private: bool = u.arbitrary()?;
    let room: bool = u.arbitrary()?;
    let n = u.int_in_range(0usize..=2)?;
    let mut trusted = Vec::new();
    for _ in 0..n {
        trusted.push(u.int_in_range(0..=POINTS - 1)?);
    }
    Ok(small_config(
        (min, e, m),
        dials,
        pool,
        octez,
        private,
        room,
        &trusted,
    ))
}

fn idxs(u: &mut Unstructured, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| u.arbitrary()).collect()
}

/// One input, weighted as the property test weighs them (dial outcomes most often).
fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.int_in_range(0u8..=35)? {
        0..=2 => Op::Learn {
            points: idxs(u, 7)?,
            source: u.int_in_range(0..=4)?,
        },
        3..=6 => Op::Inbound {
            point: u.arbitrary()?,
            claim: if u.ratio(1u8, 10)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
        },
        7..=14 => Op::DialEnds {
            which: u.arbitrary()?,
            result: u.int_in_range(0..=7)?,
            refusal: idxs(u, 7)?,
        },
        15..=16 => Op::Closed {
            which: u.arbitrary()?,
        },
        17 => Op::Dropped {
            which: u.arbitrary()?,
        },
        18..=19 => Op::PointsReceived {
            which: u.arbitrary()?,
            points: idxs(u, 7)?,
        },
        20 => Op::PointsAsked {
            which: u.arbitrary()?,
        },
        21 => Op::Violation {
            which: u.arbitrary()?,
            by_ip: u.arbitrary()?,
        },
        22 => Op::Swap {
            which: u.arbitrary()?,
            point: u.arbitrary()?,
        },
        23 => Op::Track {
            id_step: u.int_in_range(0..=2)?,
            primary: idxs(u, 4)?,
            secondary: idxs(u, 4)?,
        },
        24 => {
            let n = u.int_in_range(0..=2)?;
            let mut peers = Vec::new();
            for _ in 0..n {
                peers.push((u.arbitrary()?, u.arbitrary()?));
            }
            Op::Overwrite { peers }
        }
        25 => Op::Protect {
            points: idxs(u, 2)?,
            on: u.arbitrary()?,
        },
        26 => Op::Maintain,
        27 => Op::Trigger {
            kind: u.int_in_range(0..=1)?,
            on: u.arbitrary()?,
        },
        28 => Op::IdleTimer { on: u.arbitrary()? },
        _ => Op::Wait {
            ms: u.int_in_range(0..=59_999)?,
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else { return };
    let Ok(seed) = u.arbitrary::<u64>() else {
        return;
    };
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < 5_000 {
        match op(&mut u) {
            Ok(o) => ops.push(o),
            Err(_) => break,
        }
    }
    run(config, seed, &ops);
});
