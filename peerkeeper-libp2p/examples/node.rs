//! A rust-libp2p node kept between a minimum and a maximum of peers by peerkeeper.
//!
//! TCP, Noise, Yamux, identify and ping, plus [`peerkeeper_libp2p::Behaviour`]:
//!
//! ```sh
//! cargo run --release -p peerkeeper-libp2p --example node -- --listen /ip4/127.0.0.1/tcp/4001
//! cargo run --release -p peerkeeper-libp2p --example node -- --listen /ip4/127.0.0.1/tcp/4002 \
//!     --peer /ip4/127.0.0.1/tcp/4001 --min 3 --expected 6 --max 10
//! ```
//!
//! It prints a status line every `--status-interval` seconds (JSON with `--json`) and,
//! on SIGTERM or Ctrl-C, a final one with `"final":true`, then exits 0.

use clap::Parser;
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr};
use peerkeeper::pool::Source;
use peerkeeper_libp2p::{Behaviour, Config};
use std::time::{Duration, Instant};

/// A libp2p node kept connected by peerkeeper.
#[derive(Parser, Debug)]
struct Args {
    /// The address to listen on, e.g. /ip4/127.0.0.1/tcp/4001.
    #[arg(long)]
    listen: Multiaddr,
    /// A bootstrap peer's address (repeatable).
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// min_connections.
    #[arg(long, default_value_t = 3)]
    min: usize,
    /// expected_connections.
    #[arg(long, default_value_t = 6)]
    expected: usize,
    /// max_connections.
    #[arg(long, default_value_t = 10)]
    max: usize,
    /// Seconds between status lines (0: none but the final one).
    #[arg(long, default_value_t = 2.0)]
    status_interval: f64,
    /// Status lines as JSON objects.
    #[arg(long)]
    json: bool,
    /// The seed of peerkeeper's random choices (default: from the listen address).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(NetworkBehaviour)]
struct NodeBehaviour {
    keeper: Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn line(k: &Behaviour, started: Instant, json: bool, fin: bool) -> String {
    let s = k.status();
    // Every dial the core made (identify and ping dial nobody).
    let dials = s.stats.dials.attempted;
    let t = started.elapsed().as_secs_f64();
    let inbound = s.connections - s.outbound;
    let seen = s.stats.max_connections_seen;
    if json {
        let peers: Vec<String> = k
            .peers()
            .iter()
            .map(|(_, p, _)| format!("\"{p}\""))
            .collect();
        format!(
            "{{\"t\":{t:.2},\"connections\":{},\"outbound\":{},\"inbound\":{inbound},\"dialing\":{},\"known_points\":{},\"dials\":{dials},\"cycles\":{},\"max_connections_seen\":{seen},\"foreign\":{},\"peers\":[{}],\"final\":{fin}}}",
            s.connections, s.outbound, s.dialing, s.known_points, s.stats.cycles, s.foreign, peers.join(",")
        )
    } else {
        format!(
            "status t={t:.1}s connections={} (out {}, in {inbound}) dialing={} known={} dials={dials} cycles={} max_seen={seen}{}",
            s.connections,
            s.outbound,
            s.dialing,
            s.known_points,
            s.stats.cycles,
            if fin { " final" } else { "" }
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let mut core = peerkeeper::Config::default();
    (
        core.min_connections,
        core.expected_connections,
        core.max_connections,
    ) = (args.min, args.expected, args.max);
    let seed = args.seed.unwrap_or_else(|| {
        peerkeeper_libp2p::to_point(&args.listen).map_or(0, |(p, _)| u64::from(p.port()))
    });
    let config = Config::new(core).with_seed(seed);
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let keeper = Behaviour::new(config, key.public().to_peer_id())?;
            Ok(NodeBehaviour {
                keeper,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/peerkeeper-example/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            })
        })?
        .build();
    swarm.listen_on(args.listen.clone())?;
    if !args.peer.is_empty() {
        swarm
            .behaviour_mut()
            .keeper
            .add_points(&args.peer, Source::Bootstrap)?;
    }
    let started = Instant::now();
    let period = Duration::from_secs_f64(if args.status_interval > 0.0 {
        args.status_interval
    } else {
        3600.0
    });
    let mut status = tokio::time::interval(period);
    status.tick().await;
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        #[cfg(unix)]
        let terminated = term.recv();
        #[cfg(not(unix))]
        let terminated = futures::future::pending::<Option<()>>();
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                    swarm.behaviour_mut().keeper.add_peer_addresses(&peer_id, &info.listen_addrs);
                }
                SwarmEvent::NewListenAddr { address, .. } if !args.json => {
                    println!("listening on {address}/p2p/{}", swarm.local_peer_id());
                }
                _ => {}
            },
            _ = status.tick(), if args.status_interval > 0.0 => {
                println!("{}", line(&swarm.behaviour().keeper, started, args.json, false));
            }
            _ = terminated => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    swarm.behaviour_mut().keeper.shutdown();
    println!(
        "{}",
        line(&swarm.behaviour().keeper, started, args.json, true)
    );
    Ok(())
}
