//! Planner and pool benchmarks: `cargo bench --bench planner`.
//!
//! * `plan_top_up/N`: `maintenance::plan` for a top-up (active connections below
//!   `min_threshold`) over a pool of N known points, a tenth of them backed off. The pool
//!   is built once; the plan is pure, so it is measured repeatedly on the same pool.
//! * `add_point/fresh_10k`: 10,000 new points into an empty pool (throughput).
//! * `add_point/at_capacity_100k`: new points into a full pool of 100,000, including the
//!   amortised garbage collection.
//! * `advance/...`: `Pool::advance` when nothing is due, and when 1,000 backed-off points
//!   become dialable in a pool of 100,000.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peerkeeper::maintenance::plan;
use peerkeeper::pool::{Direction, Pool, Source};
use peerkeeper::{Config, PeerId, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

fn addr(i: u32) -> SocketAddr {
    // Spread over many /16 groups, never 0.x.x.x.
    SocketAddr::from((Ipv4Addr::from(0x0100_0000u32.wrapping_add(i)), 9732))
}

fn config(max_points: usize) -> Config {
    Config {
        max_known_points: max_points + 1,
        known_points_gc_target: max_points,
        ..Config::default()
    }
}

/// A pool of `n` points, 4 connected (below min_threshold), a tenth backed off.
fn pool_of(n: u32, config: &Config) -> Pool {
    let mut pool = Pool::new(config);
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..n {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let now = Time::from_millis(1_000);
    for i in (0..n).step_by(10) {
        pool.dial_failed(addr(i), now, &mut rng);
    }
    for i in 1..=4u32 {
        let a = addr(i);
        pool.begin_dial(a, now);
        pool.connection_opened(a, PeerId(u64::from(i)), Direction::Outbound, now)
            .unwrap();
    }
    pool.advance(now);
    pool
}

fn bench_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_top_up");
    for n in [1_000u32, 100_000, 1_000_000] {
        let config = config(n as usize);
        let pool = pool_of(n, &config);
        let now = pool.clock();
        let mut rng = StdRng::seed_from_u64(7);
        let p = plan(&pool, &config, now, &mut rng);
        assert_eq!(p.dial.len(), config.max_concurrent_dials, "a top-up plan");
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| plan(black_box(&pool), &config, now, &mut rng))
        });
    }
    group.finish();
}

fn bench_add(c: &mut Criterion) {
    let mut group = c.benchmark_group("add_point");
    group.throughput(Throughput::Elements(10_000));
    let config = config(1_000_000);
    group.bench_function("fresh_10k", |b| {
        b.iter_batched(
            || Pool::new(&config),
            |mut pool| {
                for i in 0..10_000 {
                    pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
                }
                pool
            },
            BatchSize::SmallInput,
        )
    });
    // A full pool: every insertion of a new point counts its share of GC.
    let config = Config {
        max_known_points: 100_000,
        known_points_gc_target: 75_000,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    for i in 0..100_000 {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let mut next = 100_000u32;
    group.throughput(Throughput::Elements(1));
    group.bench_function("at_capacity_100k", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            pool.add_point(
                addr(next),
                Source::PeerSharing,
                Time::from_millis(next.into()),
            )
        })
    });
    group.finish();
}

fn bench_advance(c: &mut Criterion) {
    let mut group = c.benchmark_group("advance");
    let n = 100_000u32;
    let config = config(n as usize);
    let mut pool = pool_of(n, &config);
    let mut now = pool.clock();
    group.bench_function("nothing_due_100k", |b| {
        b.iter(|| {
            pool.advance(black_box(now));
        })
    });
    // Each iteration: (untimed) 1,000 points fail at `now`, then (timed) the clock passes
    // their backoff cap and they all move back to the candidates.
    let mut rng = StdRng::seed_from_u64(3);
    let cap = config.reconnection.cap + Duration::from_secs(1);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1k_due_of_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in (1_000..n).step_by(99).take(1_000) {
                    pool.dial_failed(addr(i), now, &mut rng);
                }
                now = now + cap;
                let start = Instant::now();
                pool.advance(now);
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_plan, bench_add, bench_advance);
criterion_main!(benches);
