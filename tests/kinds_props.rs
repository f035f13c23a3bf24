//! Properties of the kind-aware planner over random targets, pools and connections: a
//! top-up never pushes a kind above its cap, never dials past the outbound budget or the
//! dial cap, dials a short floor before anything else, and goes past `min_target` only for
//! floors; a trim never takes a protected peer or a kind below its floor, and takes
//! inbound connections before outbound ones.

use peerkeeper::config::{KindTarget, KindTargets};
use peerkeeper::maintenance::{top_up_dials, trim_for};
use peerkeeper::pool::{ConnId, Direction, PeerId, Pool, Source};
use peerkeeper::{Config, Time};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::net::SocketAddr;

fn pt(kind: Source, i: u8) -> SocketAddr {
    SocketAddr::from(([10, kind.rank() + 1, i % 4, i], 9000))
}

fn target() -> impl Strategy<Value = KindTarget> {
    (0usize..3, 0u32..4, prop::option::of(0usize..6)).prop_map(|(floor, weight, cap)| KindTarget {
        floor,
        weight,
        cap: cap.map(|c| floor + c),
    })
}

/// Per kind: points known, connections open (of them), of which inbound.
fn kind_pool() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..10, 0u8..4, 0u8..4).prop_map(|(n, c, i)| (n, c.min(n), i.min(c.min(n))))
}

#[derive(Debug)]
struct Case {
    config: Config,
    pool: Pool,
    protected: Vec<SocketAddr>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::array::uniform5(target()),
        prop::array::uniform5(kind_pool()),
        1usize..12,
        prop::option::of(0usize..4),
        prop::collection::vec((0usize..5, 1u8..10), 0..3),
    )
        .prop_map(|(t, kinds, dials, extra_out, protect)| {
            let mut config = Config {
                min_connections: 4,
                expected_connections: 8,
                max_connections: 12,
                max_concurrent_dials: dials,
                max_outbound: extra_out.map(|e| 6 + e),
                trusted_points: (1..=kinds[0].0).map(|i| pt(Source::Trusted, i)).collect(),
                ..Config::default()
            };
            config.targets = KindTargets {
                trusted: t[0],
                bootstrap: t[1],
                external: t[2],
                peer_sharing: t[3],
                incoming: t[4],
            };
            let mut pool = Pool::new(&config);
            let mut id = 0;
            for (k, (n, c, inbound)) in Source::BY_RANK.into_iter().zip(kinds) {
                for i in 1..=n {
                    pool.add_point(pt(k, i), k, Time::ZERO);
                    if i <= c {
                        id += 1;
                        let dir = if i <= inbound {
                            Direction::Inbound
                        } else {
                            Direction::Outbound
                        };
                        let _ = pool.connection_opened(
                            ConnId(id),
                            pt(k, i),
                            PeerId::from_u64(id),
                            dir,
                            Time::ZERO,
                        );
                    }
                }
            }
            let protected: Vec<SocketAddr> = protect
                .into_iter()
                .map(|(k, i)| pt(Source::BY_RANK[k], i))
                .collect();
            for p in &protected {
                pool.protect(*p, true);
            }
            pool.advance(Time::ZERO);
            Case {
                config,
                pool,
                protected,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn top_ups_keep_caps_budgets_and_floors_first(c in case()) {
        prop_assume!(c.config.validate().is_ok());
        let (config, pool) = (&c.config, &c.pool);
        let dials = top_up_dials(pool, config, Time::ZERO);
        let set: BTreeSet<SocketAddr> = dials.iter().copied().collect();
        prop_assert_eq!(set.len(), dials.len(), "dialed twice");
        let candidates: BTreeSet<SocketAddr> = pool.candidates(false).collect();
        for d in &dials {
            prop_assert!(candidates.contains(d), "{} is no candidate", d);
        }
        prop_assert!(dials.len() <= config.max_concurrent_dials);
        prop_assert!(pool.outbound_count() + dials.len() <= config.outbound_budget().max(pool.outbound_count()));
        let before = pool.kind_counts();
        let outbound_need = peerkeeper::maintenance::outbound_need(pool, config);
        let mut after = before;
        for d in &dials {
            after[pool.kind_of(d).index()] += 1;
        }
        let t = &config.targets;
        let mut floor_dials = 0;
        for k in Source::ALL {
            let i = k.index();
            if let Some(cap) = t.get(k).cap {
                prop_assert!(after[i] <= cap.max(before[i]), "{:?} pushed over its cap", k);
            }
            floor_dials += after[i].min(t.get(k).floor).saturating_sub(before[i]);
        }
        // Past min_target only for floors.
        let b = config.bounds();
        let active = pool.active_count();
        prop_assert!(
            active + dials.len() <= b.min_target.max(active) + floor_dials.max(outbound_need),
            "{} + {} dials past min_target {} with {} for floors", active, dials.len(), b.min_target, floor_dials
        );
        // Floors first: if anything else is dialed, every short kind got what it could.
        let others = dials.len() - floor_dials;
        if others > 0 {
            for k in Source::ALL {
                let i = k.index();
                let short = t.get(k).floor.saturating_sub(before[i]);
                let available = candidates.iter().filter(|a| pool.kind_of(a) == k).count();
                prop_assert!(
                    after[i] - before[i] >= short.min(available),
                    "{:?} short by {} with {} candidates, got {}", k, short, available, after[i] - before[i]
                );
            }
        }
    }

    #[test]
    fn trims_spare_protected_peers_and_floors_and_take_inbound_first(
        c in case(),
        count in 0usize..14,
        seed in any::<u64>(),
    ) {
        prop_assume!(c.config.validate().is_ok());
        let (config, pool) = (&c.config, &c.pool);
        let cut = trim_for(pool, config, count, Time::ZERO, |_, _| true, &mut StdRng::seed_from_u64(seed));
        prop_assert!(cut.len() <= count);
        let set: BTreeSet<SocketAddr> = cut.iter().copied().collect();
        prop_assert_eq!(set.len(), cut.len());
        let mut left = [0usize; 5];
        for (a, _) in pool.connections() {
            if !set.contains(&a) {
                left[pool.kind_of(&a).index()] += 1;
            }
        }
        for a in &cut {
            prop_assert!(!pool.is_trusted(a) && !c.protected.contains(a), "{} is protected", a);
        }
        let t = &config.targets;
        for k in Source::ALL {
            let i = k.index();
            let had = pool.connections().filter(|(a, _)| pool.kind_of(a) == k).count();
            prop_assert!(left[i] >= t.get(k).floor.min(had), "{:?} cut below its floor", k);
        }
        let outbound_cut = cut.iter().any(|a| pool.connection(a).unwrap().direction == Direction::Outbound);
        if outbound_cut && !config.targets.is_neutral() {
            // Every inbound connection left is protected or holds its kind at its floor.
            for (a, conn) in pool.connections() {
                if conn.direction == Direction::Inbound && !set.contains(&a) {
                    let k = pool.kind_of(&a);
                    prop_assert!(
                        pool.is_protected(&a) || left[k.index()] <= t.get(k).floor,
                        "outbound cut while inbound {} ({:?}) stays", a, k
                    );
                }
            }
        }
    }
}
