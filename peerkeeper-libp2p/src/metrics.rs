//! The behaviour's metrics, in the application's own `prometheus-client` registry.
//!
//! Names follow peerkeeper's own node (`docs/metrics.md`): connections by direction,
//! dials by outcome, cycles, bans, points known; plus what only the adapter knows:
//! multiaddrs refused as points and pending connections refused, by reason. Counters
//! mirror the core's exact counters (they are set from them, never estimated).

use crate::{Status, Unmapped};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// A counter that follows an exact count kept elsewhere.
#[derive(Debug, Default)]
struct Mirror {
    counter: Counter,
    last: AtomicU64,
}

impl Mirror {
    fn set(&self, v: u64) {
        let last = self.last.swap(v, Ordering::Relaxed);
        self.counter.inc_by(v.saturating_sub(last));
    }
}

fn mirror<L: Clone + std::hash::Hash + Eq>(
    f: &Family<L, Counter>,
    l: L,
    last: &mut Vec<(L, u64)>,
    v: u64,
) {
    let prev = last.iter_mut().find(|(k, _)| *k == l);
    let d = match prev {
        Some((_, p)) => {
            let d = v.saturating_sub(*p);
            *p = v;
            d
        }
        None => {
            last.push((l.clone(), v));
            v
        }
    };
    f.get_or_create(&l).inc_by(d);
}

/// The behaviour's metrics ([`crate::Behaviour::register_metrics`]).
#[derive(Debug)]
pub struct Metrics {
    connections: Family<Direction, Gauge>,
    dialing: Gauge,
    known_points: Gauge,
    foreign: Gauge,
    dials: Family<Outcome, Counter>,
    cycles: Mirror,
    bans: Mirror,
    violations: Mirror,
    unmapped: Family<Reason, Counter>,
    refused_pending: Family<Reason, Counter>,
    last: std::sync::Mutex<Last>,
}

#[derive(Debug, Default)]
struct Last {
    dials: Vec<(Outcome, u64)>,
    unmapped: Vec<(Reason, u64)>,
    refused: Vec<(Reason, u64)>,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            connections: Family::default(),
            dialing: Gauge::default(),
            known_points: Gauge::default(),
            foreign: Gauge::default(),
            dials: Family::default(),
            cycles: Mirror::default(),
            bans: Mirror::default(),
            violations: Mirror::default(),
            unmapped: Family::default(),
            refused_pending: Family::default(),
            last: Default::default(),
        };
        registry.register(
            "peerkeeper_connections",
            "Connections the core keeps, by direction",
            m.connections.clone(),
        );
        registry.register(
            "peerkeeper_dials_in_flight",
            "Dials in flight",
            m.dialing.clone(),
        );
        registry.register(
            "peerkeeper_known_points",
            "Points in the pool",
            m.known_points.clone(),
        );
        registry.register(
            "peerkeeper_libp2p_foreign_connections",
            "Connections other behaviours dialed (not managed)",
            m.foreign.clone(),
        );
        registry.register(
            "peerkeeper_dials",
            "Dials ended, by outcome",
            m.dials.clone(),
        );
        registry.register(
            "peerkeeper_cycles",
            "Maintenance cycles",
            m.cycles.counter.clone(),
        );
        registry.register(
            "peerkeeper_bans",
            "Points or addresses banned",
            m.bans.counter.clone(),
        );
        registry.register(
            "peerkeeper_violations",
            "Protocol violations",
            m.violations.counter.clone(),
        );
        registry.register(
            "peerkeeper_libp2p_unmapped_addresses",
            "Multiaddrs refused as points, by reason",
            m.unmapped.clone(),
        );
        registry.register(
            "peerkeeper_libp2p_refused_pending",
            "Pending inbound connections refused before their handshake, by reason",
            m.refused_pending.clone(),
        );
        m
    }

    /// Sets every metric from a status.
    pub fn update(&self, s: &Status) {
        let set = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(
            &self.connections.get_or_create(&Direction {
                direction: "outbound",
            }),
            s.outbound,
        );
        set(
            &self.connections.get_or_create(&Direction {
                direction: "inbound",
            }),
            s.connections.saturating_sub(s.outbound),
        );
        set(&self.dialing, s.dialing);
        set(&self.known_points, s.known_points);
        set(&self.foreign, s.foreign);
        self.cycles.set(s.stats.cycles);
        self.bans.set(s.stats.bans);
        self.violations.set(s.stats.violations);
        let d = &s.stats.dials;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let Last {
            dials,
            unmapped,
            refused,
        } = &mut *last;
        for outcome in peerkeeper::core::DialEnd::ALL {
            let v = d.count(outcome);
            mirror(
                &self.dials,
                Outcome {
                    outcome: outcome.name(),
                },
                dials,
                v,
            );
        }
        for r in Unmapped::ALL {
            mirror(
                &self.unmapped,
                Reason { reason: r.name() },
                unmapped,
                s.unmapped[r.index()],
            );
        }
        let p = &s.refused_pending;
        for (reason, v) in [
            ("greylisted", p.greylisted),
            ("per_address", p.per_address),
            ("busy", p.busy),
            ("unmapped", p.unmapped),
        ] {
            mirror(&self.refused_pending, Reason { reason }, refused, v);
        }
    }
}
