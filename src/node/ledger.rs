//! A ledger as a point source: the relays of the stake pools that hold most of the stake,
//! largest first, as [`Source::External`] points.
//!
//! This is what a Cardano relay calls its ledger peers (the big-ledger peers are the
//! largest pools that together hold 90% of the stake) and what Amaru's dynamic peer
//! selection feeds from the ledger: the embedding node, which follows the chain, hands the
//! stake distribution of each epoch to [`LedgerSource::update`]; the node polls the
//! source in every discovery round, and per-kind targets
//! ([`KindTargets::external`](crate::config::KindTargets::external)) keep a floor of
//! connections to these relays whatever peer sharing brings.
//!
//! ```
//! use peerkeeper::node::ledger::{LedgerSource, StakePool};
//! use peerkeeper::node::PointSource;
//! use peerkeeper::pool::Source;
//! let ledger = LedgerSource::new("ledger", 0.9);
//! ledger.update(vec![
//!     StakePool { stake: 10, relays: vec!["10.0.0.3:3001".parse().unwrap()] },
//!     StakePool { stake: 60, relays: vec!["10.0.0.1:3001".parse().unwrap()] },
//!     StakePool { stake: 30, relays: vec!["10.0.0.2:3001".parse().unwrap()] },
//! ]);
//! // 60 + 30 = 90% of the stake: the two largest pools' relays, largest first.
//! assert_eq!(ledger.relays(), vec!["10.0.0.1:3001".parse().unwrap(),
//!                                  "10.0.0.2:3001".parse().unwrap()]);
//! assert_eq!(ledger.kind(), Source::External);
//! ```

use super::PointSource;
use crate::pool::Source;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Most stake pools a distribution holds (the rest, the smallest, are dropped).
pub const MAX_STAKE_POOLS: usize = 10_000;

/// One stake pool of the distribution: its stake and its registered relays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakePool {
    /// Its active stake (any unit; only the proportions matter).
    pub stake: u64,
    /// Its relays, as registered on the ledger (resolved by the embedding node).
    pub relays: Vec<SocketAddr>,
}

/// A [`PointSource`] fed with a stake distribution (see the [module docs](self)).
#[derive(Debug)]
pub struct LedgerSource {
    name: String,
    share: f64,
    pools: Mutex<Vec<StakePool>>,
}

impl LedgerSource {
    /// A source named `name` that gives the relays of the largest pools holding together
    /// `share` of the stake (in `(0, 1]`; clamped), empty until the first
    /// [`update`](Self::update).
    pub fn new(name: impl Into<String>, share: f64) -> LedgerSource {
        let share = if share.is_finite() {
            share.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        };
        LedgerSource {
            name: name.into(),
            share,
            pools: Mutex::new(Vec::new()),
        }
    }

    /// A new stake distribution (a new epoch). Sorted here: largest stake first, ties by
    /// relays, so that the same distribution always gives the same points. At most
    /// [`MAX_STAKE_POOLS`] pools are kept.
    pub fn update(&self, mut pools: Vec<StakePool>) {
        pools.retain(|p| p.stake > 0 && !p.relays.is_empty());
        pools.sort_by(|a, b| b.stake.cmp(&a.stake).then_with(|| a.relays.cmp(&b.relays)));
        pools.truncate(MAX_STAKE_POOLS);
        *self.pools.lock().unwrap_or_else(|e| e.into_inner()) = pools;
    }

    /// The relays of the largest pools holding together the source's share of the stake,
    /// largest pool first, at most [`MAX_POINTS_PER_MESSAGE`](crate::MAX_POINTS_PER_MESSAGE).
    pub fn relays(&self) -> Vec<SocketAddr> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let total: u128 = pools.iter().map(|p| u128::from(p.stake)).sum();
        let mut out = Vec::new();
        let mut held: u128 = 0;
        for p in pools.iter() {
            if total > 0 && (held as f64) >= self.share * (total as f64) {
                break;
            }
            held += u128::from(p.stake);
            for r in &p.relays {
                if out.len() >= crate::MAX_POINTS_PER_MESSAGE {
                    return out;
                }
                if !out.contains(r) {
                    out.push(*r);
                }
            }
        }
        out
    }
}

impl PointSource for LedgerSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Source {
        Source::External
    }

    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        let relays = self.relays();
        async move { relays }.boxed()
    }
}
