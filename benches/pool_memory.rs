//! Bytes per known point: a counting global allocator measures the heap growth of a pool
//! holding 100 thousand and 1 million points (with a tenth of them failed, so both
//! indexes are populated). Prints one line per size.
//!
//! Run: `cargo bench --bench pool_memory`.

use peerkeeper::pool::{Pool, PoolLimits, Source};
use peerkeeper::{Config, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run either way.
    for n in [100_000u32, 1_000_000] {
        let config = Config::default();
        let limits = PoolLimits {
            max_points: n as usize + 1,
            gc_target: n as usize,
            ..PoolLimits::from(&config)
        };
        let before = LIVE.load(Ordering::Relaxed);
        let mut pool = Pool::with_limits(limits);
        let mut rng = StdRng::seed_from_u64(1);
        for i in 0..n {
            let a = SocketAddr::from(((i | 0x0100_0000).to_be_bytes(), 9732));
            pool.add_point(a, Source::PeerSharing, Time::ZERO);
            if i % 10 == 0 && pool.begin_dial(a, Time::ZERO) {
                pool.dial_failed(a, Time::ZERO, &mut rng);
            }
        }
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "pool of {n} points: {bytes} bytes on the heap, {:.1} bytes per point",
            bytes as f64 / f64::from(n)
        );
        drop(pool);
    }
}
