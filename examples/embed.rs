//! A small node of its own that embeds peerkeeper: it keeps its connections healthy with
//! the library, learns extra points from a "ledger" of its own (a `PointSource`), follows
//! what happens through the event stream, and stops cleanly.
//!
//! ```sh
//! cargo run --example embed -- 127.0.0.1:9800                    # a first node
//! cargo run --example embed -- 127.0.0.1:9801 127.0.0.1:9800     # a second one, bootstrapping from it
//! ```
//!
//! Each prints the events of its node (connections, dial outcomes, cycles) and a status
//! line every ten seconds; Ctrl-C stops it.

use futures::future::BoxFuture;
use futures::FutureExt;
use peerkeeper::core::{Ended, Event};
use peerkeeper::identity::Keypair;
use peerkeeper::node::{Node, PointSource};
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The application's own source of points: here a fixed list, in a real node a ledger's
/// registered relays or a DNS seed.
struct Ledger(Vec<SocketAddr>);

impl PointSource for Ledger {
    fn name(&self) -> &str {
        "ledger"
    }
    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        futures::future::ready(self.0.clone()).boxed()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9800".into())
        .parse()?;
    let bootstrap: Vec<SocketAddr> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;

    // The application's own targets: a small overlay.
    let config = Config {
        min_connections: 2,
        expected_connections: 4,
        max_connections: 8,
        ..Config::default()
    };
    // The application's identity: here a new key at every start; a real node keeps its
    // key (`peerkeeper::identity::load_or_generate`), or plugs in its own `Identity`.
    let node = Node::builder(config, TcpTransport::bind(listen).await?)
        .identity(Keypair::generate())
        .seed(u64::from(listen.port()))
        .bootstrap(bootstrap)
        .source(Arc::new(Ledger(Vec::new())))
        .start()?;
    println!(
        "node {} listening on {}",
        node.peer_id().short(),
        node.local_addr()
    );

    let mut events = node.subscribe();
    let mut status = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            e = events.recv() => match e {
                Ok(Event::Connected { point, direction, .. }) => {
                    println!("connected {direction:?} to {point}");
                }
                Ok(Event::Disconnected { point, ended: Ended::ByUs(reason), .. }) => {
                    println!("closed {point}: {reason:?}");
                }
                Ok(Event::Disconnected { point, .. }) => println!("{point} went away"),
                Ok(Event::DialEnded { point, outcome, .. }) => {
                    println!("dial to {point}: {}", outcome.name());
                }
                Ok(Event::CycleEnded { report, .. }) => {
                    println!(
                        "maintenance ({}): {} -> {} connections",
                        report.reasons, report.connections_before, report.connections_after
                    );
                }
                Ok(_) => {}
                // A slow reader loses events, never slows the node: it is told how many.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    println!("missed {n} events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = status.tick() => {
                let s = node.status();
                println!(
                    "status: {} connections, {} known points, dials: {}",
                    s.connections,
                    s.known_points,
                    s.stats.dials.summary()
                );
            }
        }
    }
    node.shutdown().await;
    Ok(())
}
