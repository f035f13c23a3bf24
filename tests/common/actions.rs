//! Reading what a node core asks its shell to do, for the tests that drive a core by
//! hand: include with `#[path = "common/actions.rs"] mod actions;`.

#![allow(dead_code)] // each test file uses what it needs

use peerkeeper::core::{Action, NodeCore};
use std::net::SocketAddr;

/// Every action the core has queued, in order.
pub fn drain(core: &mut NodeCore) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

/// The points of the dials among `actions`, in order.
pub fn dials(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial(p) => Some(*p),
            _ => None,
        })
        .collect()
}
