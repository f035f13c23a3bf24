//! One application channel between two nodes on 127.0.0.1, beside a plain TCP socket in
//! the same run: MB/s and messages/s at 1 KiB and 64 KiB.
//!
//! `cargo bench --bench channel_throughput` prints a markdown table (BENCHMARKS.md). The
//! plain socket is the fairest fast baseline we can write: the same messages, each with a
//! 4-byte length, through a buffered writer and a buffered reader (one system call for
//! many small messages), no encryption. The channel's path adds everything a node does:
//! the per-connection queue, the connection task's priorities, postcard framing,
//! ChaCha20-Poly1305, and the receiving channel's checks and backlog.
//!
//! Options: `--quick` (fewer messages, for a smoke run), `--threads N` (tokio worker
//! threads; 1 by default: a current-thread runtime).

use bytes::Bytes;
use peerkeeper::identity::Keypair;
use peerkeeper::node::{ChannelConfig, Node};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::Config;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Bytes moved per case (so each case runs a comparable while).
const BYTES: usize = 256 << 20;

async fn raw_tcp(size: usize, count: usize) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut r = BufReader::with_capacity(256 * 1024, s);
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            let len = r.read_u32().await.unwrap() as usize;
            r.read_exact(&mut buf[..len]).await.unwrap();
        }
    });
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = vec![7u8; size];
    let start = Instant::now();
    let mut w = BufWriter::with_capacity(256 * 1024, s);
    for _ in 0..count {
        w.write_u32(size as u32).await.unwrap();
        w.write_all(&msg).await.unwrap();
    }
    w.flush().await.unwrap();
    reader.await.unwrap();
    start.elapsed()
}

async fn channel(size: usize, count: usize) -> Duration {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 2,
        ..Config::default()
    };
    let a = Node::builder(
        config.clone(),
        TcpTransport::bind("127.0.0.1:0").await.unwrap(),
    )
    .identity(Keypair::from_seed(1))
    .seed(1)
    .start()
    .unwrap();
    let b = Node::builder(config, TcpTransport::bind("127.0.0.1:0").await.unwrap())
        .identity(Keypair::from_seed(2))
        .seed(2)
        .bootstrap(vec![a.local_addr()])
        .start()
        .unwrap();
    let limits = ChannelConfig {
        max_message: size,
        rate: u32::MAX,
        burst: u32::MAX,
        backlog: 4096,
    };
    let (_atx, mut arx) = a.channel(1, limits).unwrap();
    let (btx, _brx) = b.channel(1, limits).unwrap();
    b.status_watch()
        .wait_for(|s| s.connections == 1)
        .await
        .unwrap();
    while b.peers().is_empty() || a.peers().is_empty() {
        tokio::task::yield_now().await;
    }
    let to = a.peer_id();
    let reader = tokio::spawn(async move {
        for _ in 0..count {
            arx.recv().await.unwrap();
        }
    });
    let msg = Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    for _ in 0..count {
        // Waits for room in the peer's queue (backpressure, as a bulk sender wants).
        btx.send_wait(to, msg.clone()).await.unwrap();
    }
    reader.await.unwrap();
    let took = start.elapsed();
    b.shutdown().await;
    a.shutdown().await;
    took
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // One thread: the two nodes' connection tasks and the application tasks wake each
    // other for every message, and on one thread a wake is a queue push, not a futex
    // (`--threads 2` for the multi-threaded runtime).
    let threads = std::env::args()
        .skip_while(|a| a != "--threads")
        .nth(1)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    println!("| message | path | messages | MB/s | messages/s | channel / TCP |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for size in [1024usize, 64 * 1024] {
        let count = if quick { 2_000 } else { BYTES / size };
        let tcp = rt.block_on(raw_tcp(size, count));
        let ch = rt.block_on(channel(size, count));
        let row = |path: &str, t: Duration, ratio: String| {
            let secs = t.as_secs_f64();
            println!(
                "| {} KiB | {path} | {count} | {:.0} | {:.0} | {ratio} |",
                size / 1024,
                (size * count) as f64 / secs / 1e6,
                count as f64 / secs,
            );
        };
        row("plain TCP", tcp, String::new());
        row(
            "channel",
            ch,
            format!("{:.2}", tcp.as_secs_f64() / ch.as_secs_f64()),
        );
    }
}
