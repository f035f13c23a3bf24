//! Bytes per known point: `cargo bench --bench pool_memory`.
//!
//! A counting global allocator tracks the live heap; the pool is built with 100,000 and
//! 1,000,000 points (a tenth backed off, a few connected) and the heap it holds is divided
//! by the number of points. Prints one line per size; no timing.

use peerkeeper::pool::{ConnId, Direction, Pool, Source};
use peerkeeper::{Config, PeerId, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;

#[path = "common/counting.rs"]
mod counting;
use counting::{LIVE, PEAK};

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0100_0000u32.wrapping_add(i)), 9732))
}

fn measure(n: u32) {
    let config = Config {
        max_known_points: n as usize + 1,
        known_points_gc_target: n as usize,
        ..Config::default()
    };
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut pool = Pool::new(&config);
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..n {
        pool.add_point(addr(i), Source::PeerSharing, Time::ZERO);
    }
    let now = Time::from_millis(1_000);
    for i in (0..n).step_by(10) {
        if pool.begin_dial(addr(i), now) {
            pool.end_dial(addr(i), true, now, &mut rng);
        }
    }
    for i in 1..=8u32 {
        // Dialed and connected, as the node core records it.
        if pool.begin_dial(addr(i), now) {
            pool.end_dial(addr(i), false, now, &mut rng);
        }
        let _ = pool.connection_opened(
            ConnId(u64::from(i)),
            addr(i),
            PeerId::from_u64(u64::from(i)),
            Direction::Outbound,
            now,
        );
    }
    pool.advance(now);
    let held = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "pool_memory/{n}: {:.1} bytes per known point held ({} bytes), peak while building {:.1} bytes per point",
        held as f64 / f64::from(n),
        held,
        peak as f64 / f64::from(n),
    );
    assert_eq!(pool.len(), n as usize);
    assert_eq!((pool.active_count(), pool.dialing_count()), (8, 0));
    drop(pool);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    for n in [100_000, 1_000_000] {
        measure(n);
    }
}
