//! A real application on top of peerkeeper: a flooding chat over the connections it keeps.
//!
//! ```sh
//! cargo run --release --example gossip -- --listen 127.0.0.1:9000
//! cargo run --release --example gossip -- --listen 127.0.0.1:9001 --peer 127.0.0.1:9000
//! ```
//!
//! Each line read on stdin is flooded to the whole overlay on channel 1: sent to every
//! connected peer, and forwarded by every node that sees it for the first time to its own
//! peers (except the one it came from), de-duplicated by message id (the author's peer id
//! and a sequence number). Each line received is printed once on stdout as
//! `RECV <author-peer-id-short> <line>`. It exits cleanly on EOF or SIGTERM/SIGINT.
//!
//! On stderr: `peers=N` each time the number of connected peers changes, and the logs
//! (`RUST_LOG`, warnings by default). Everything on the wire is sealed (protocol v4), and
//! the connections are peerkeeper's: kept between the config's bounds, trimmed, topped
//! up, with discovery and bans, while the application only sends and receives.

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use peerkeeper::identity::{load_or_generate, Keypair};
use peerkeeper::node::{ChannelConfig, NetConfig, Node, Recipients, WhenFull};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::{Config, PeerId};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The channel the lines travel on.
const CHANNEL: u16 = 1;
/// Message ids remembered for de-duplication (the oldest are forgotten first).
const SEEN: usize = 1 << 20;
/// Longest line, bytes.
const MAX_LINE: usize = 16 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Floods stdin lines to a peerkeeper overlay and prints what it receives")]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// A peer to start from (repeatable).
    #[arg(long)]
    peer: Vec<SocketAddr>,
    /// Key file (created if missing); without it, a new identity each run.
    #[arg(long)]
    key: Option<PathBuf>,
    /// An address this node is reachable at besides its own socket's (a port mapping).
    #[arg(long)]
    external: Vec<SocketAddr>,
    /// Messages a second one peer may send us (the channel's rate limit).
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
}

/// A message: the author's id (32 bytes), its sequence number (8), then the line.
fn encode(author: &PeerId, seq: u64, line: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(40 + line.len());
    b.put_slice(author.as_bytes());
    b.put_u64(seq);
    b.put_slice(line);
    b.freeze()
}

fn decode(msg: &[u8]) -> Option<(PeerId, u64, &[u8])> {
    if msg.len() < 40 {
        return None;
    }
    let author = PeerId::from_bytes(msg[..32].try_into().ok()?);
    let seq = u64::from_be_bytes(msg[32..40].try_into().ok()?);
    Some((author, seq, &msg[40..]))
}

/// The ids seen, bounded.
#[derive(Default)]
struct Seen {
    set: HashSet<(PeerId, u64)>,
    order: VecDeque<(PeerId, u64)>,
}

impl Seen {
    /// Whether `id` is new (and remembers it).
    fn first(&mut self, id: (PeerId, u64)) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = run(args).await;
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let key = match &args.key {
        Some(path) => match load_or_generate(path) {
            Ok((k, _)) => k,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        None => Keypair::generate(),
    };
    let transport = match TcpTransport::bind(args.listen).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --listen {}: {e}", args.listen);
            return 2;
        }
    };
    let net = NetConfig {
        external_addrs: args.external.clone(),
        ..NetConfig::default()
    };
    let node = match Node::builder(Config::default(), transport)
        .identity(key)
        .net(net)
        .seed(rand::random())
        .bootstrap(args.peer.clone())
        .start()
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let config = ChannelConfig {
        max_message: MAX_LINE + 40,
        rate: args.rate,
        burst: args.rate.saturating_mul(5),
        backlog: 65_536,
    };
    let (tx, mut rx) = match node.channel(CHANNEL, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let me = node.peer_id();
    eprintln!("gossip listen={} peer_id={}", node.local_addr(), me);
    let mut seen = Seen::default();
    let mut seq = 0u64;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut status = node.status_watch();
    let mut peers = usize::MAX;
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    loop {
        #[cfg(unix)]
        let terminated = term.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated => break,
            line = stdin.next_line() => match line {
                Ok(Some(line)) => {
                    let line = line.as_bytes();
                    if line.len() > MAX_LINE {
                        eprintln!("a line over {MAX_LINE} bytes is not sent");
                        continue;
                    }
                    seq += 1;
                    seen.first((me, seq));
                    // Sent to every peer; a peer whose queue is full misses it (counted):
                    // flooding reaches it through the others.
                    let sent = tx.send(Recipients::All, encode(&me, seq, line), WhenFull::Drop);
                    tracing::debug!(seq, ?sent, "line sent");
                }
                // EOF (or unreadable input): let what is queued go out, then stop.
                _ => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            },
            msg = rx.recv() => {
                let Some((from, msg)) = msg else { break };
                let Some((author, n, line)) = decode(&msg) else { continue };
                tracing::debug!(from = %from.short(), author = %author.short(), n, "message");
                if author == me || !seen.first((author, n)) {
                    continue;
                }
                println!("RECV {} {}", author.short(), String::from_utf8_lossy(line));
                let others: Vec<PeerId> = node
                    .peers()
                    .into_iter()
                    .map(|p| p.peer)
                    .filter(|p| *p != from && *p != author)
                    .collect();
                let _ = tx.send(Recipients::Some(others), msg, WhenFull::Drop);
            }
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let n = status.borrow_and_update().connections;
                if n != peers {
                    peers = n;
                    eprintln!("peers={n}");
                }
            }
        }
    }
    node.shutdown().await;
    0
}
