//! Planning a top-up over pools of 1 thousand, 100 thousand and 1 million points, plus the
//! pool operations the planner relies on: adding points (with and without GC) and
//! `Pool::advance` (nothing due; 1,000 backoffs ending at once). Figures in BENCHMARKS.md.
//!
//! Run: `cargo bench --bench planner`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peerkeeper::maintenance::plan;
use peerkeeper::pool::{ConnId, Direction, PeerId, Pool, Source};
use peerkeeper::{Config, Time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn point(i: u32) -> SocketAddr {
    SocketAddr::from(((i | 0x0100_0000).to_be_bytes(), 9732))
}

/// A pool of `n` points: a tenth failed once at various times (some still backed off),
/// 15 connections (below the default min_threshold of 23), so `plan` tops up.
pub fn pool_of(n: u32) -> (Pool, Config) {
    let config = Config {
        max_known_points: n as usize + 1,
        known_points_gc_target: n as usize,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..n {
        pool.add_point(point(i), Source::PeerSharing, Time::ZERO);
    }
    for i in (0..n).step_by(10) {
        let now = Time::from_millis(rng.gen_range(0..60_000));
        if pool.begin_dial(point(i), now) {
            pool.end_dial(point(i), true, now, &mut rng);
        }
    }
    for i in 0..15 {
        let _ = pool.connection_opened(
            ConnId(i.into()),
            point(i * 7 + 1),
            PeerId::from_u64(i.into()),
            Direction::Outbound,
            Time::ZERO,
        );
    }
    pool.advance(Time::ZERO + Duration::from_secs(30));
    (pool, config)
}

fn bench_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_top_up");
    for n in [1_000u32, 100_000, 1_000_000] {
        let (pool, config) = pool_of(n);
        let now = Time::ZERO + Duration::from_secs(30);
        let mut rng = StdRng::seed_from_u64(7);
        let p = plan(&pool, &config, now, &mut rng);
        assert_eq!(p.dial.len(), config.max_concurrent_dials);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(plan(black_box(&pool), &config, now, &mut rng)))
        });
    }
    group.finish();
}

fn bench_trim(c: &mut Criterion) {
    let config = Config::default();
    let mut pool = Pool::new(&config);
    for i in 0..100u32 {
        pool.connection_opened(
            ConnId(i.into()),
            point(i * 977),
            PeerId::from_u64(i.into()),
            Direction::Inbound,
            Time::ZERO,
        )
        .unwrap();
    }
    let mut rng = StdRng::seed_from_u64(3);
    c.bench_function("plan_trim_100_connections", |b| {
        b.iter(|| black_box(plan(&pool, &config, Time::ZERO, &mut rng)))
    });
}

fn bench_pool_ops(c: &mut Criterion) {
    // Room to grow: no GC while measuring.
    let config = Config {
        max_known_points: 10_000_000,
        known_points_gc_target: 9_000_000,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    for i in 0..100_000 {
        pool.add_point(point(i), Source::PeerSharing, Time::ZERO);
    }
    let mut i = 200_000u32;
    c.bench_function("add_point_into_100k", |b| {
        b.iter(|| {
            i += 1;
            black_box(pool.add_point(point(i), Source::PeerSharing, Time::ZERO))
        })
    });
    // A full pool of 100k with a GC target of 75%: the GC cost, amortised over insertions.
    let config = Config {
        max_known_points: 100_000,
        known_points_gc_target: 75_000,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    let mut i = 0u32;
    c.bench_function("add_point_full_100k_with_gc", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(pool.add_point(point(i), Source::PeerSharing, Time::ZERO))
        })
    });
    let (mut pool, _) = pool_of(100_000);
    let mut rng = StdRng::seed_from_u64(5);
    let mut t = 60_000u64;
    c.bench_function("dial_fail_advance_cycle_100k", |b| {
        b.iter(|| {
            t += 1_000;
            let now = Time::from_millis(t);
            pool.advance(now);
            let a = pool.candidates(false).next().unwrap();
            pool.begin_dial(a, now);
            pool.end_dial(a, true, now, &mut rng);
        })
    });
}

fn bench_advance(c: &mut Criterion) {
    let mut group = c.benchmark_group("advance");
    let n = 100_000u32;
    let (mut pool, config) = pool_of(n);
    let mut now = pool.clock();
    group.bench_function("nothing_due_100k", |b| {
        b.iter(|| {
            pool.advance(black_box(now));
        })
    });
    // Each iteration: (untimed) 1,000 points are dialed and fail at `now`, then (timed)
    // the clock passes their backoff cap and they all move back to the candidates.
    let mut rng = StdRng::seed_from_u64(3);
    let cap = config.reconnection.cap + Duration::from_secs(1);
    // Every backoff from `pool_of` is over: each of the 1,000 points is dialable.
    now = now + cap;
    pool.advance(now);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1k_due_of_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in (1_000..n).step_by(99).take(1_000) {
                    assert!(pool.begin_dial(point(i), now));
                    pool.end_dial(point(i), true, now, &mut rng);
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

criterion_group!(
    benches,
    bench_plan,
    bench_trim,
    bench_pool_ops,
    bench_advance
);
criterion_main!(benches);
