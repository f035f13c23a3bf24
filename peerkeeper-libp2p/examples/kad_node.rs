//! The comparison: the same libp2p node kept connected with rust-libp2p's own means, as
//! its examples do it: identify feeds Kademlia (server mode), Kademlia bootstraps from
//! the `--peer` addresses and every 10 s, every peer Kademlia discovers is dialed while
//! the node has fewer than `--max` connections, and `connection-limits` refuses past
//! `--max` established connections. Connections are kept (a one-hour idle timeout).
//!
//! Same flags and status lines as `examples/node.rs`, so that `benches/libp2p.py`
//! measures both from outside the processes in the same way:
//!
//! ```sh
//! cargo run --release -p peerkeeper-libp2p --example kad_node -- --listen /ip4/127.0.0.1/tcp/4001
//! ```

use clap::Parser;
use futures::StreamExt;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{dial_opts::DialOpts, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr};
use std::time::{Duration, Instant};

/// A libp2p node kept connected by Kademlia and connection-limits.
#[derive(Parser, Debug)]
struct Args {
    /// The address to listen on.
    #[arg(long)]
    listen: Multiaddr,
    /// A bootstrap peer's address (repeatable).
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// Not used by Kademlia (accepted for the same command line as `node`).
    #[arg(long, default_value_t = 3)]
    min: usize,
    /// Not used by Kademlia (accepted for the same command line as `node`).
    #[arg(long, default_value_t = 6)]
    expected: usize,
    /// The most established connections (connection-limits), and where dialing stops.
    #[arg(long, default_value_t = 10)]
    max: usize,
    /// Seconds between status lines (0: none but the final one).
    #[arg(long, default_value_t = 2.0)]
    status_interval: f64,
    /// Status lines as JSON objects.
    #[arg(long)]
    json: bool,
    /// Without connection-limits: dialing still stops at `--max`, but inbound
    /// connections are not refused.
    #[arg(long)]
    no_limits: bool,
}

#[derive(NetworkBehaviour)]
struct KadBehaviour {
    limits: connection_limits::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let max = u32::try_from(args.max)?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::new(id, MemoryStore::new(id));
            kad.set_mode(Some(kad::Mode::Server));
            Ok(KadBehaviour {
                limits: connection_limits::Behaviour::new(
                    ConnectionLimits::default()
                        .with_max_established((!args.no_limits).then_some(max)),
                ),
                kad,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/peerkeeper-example/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.listen_on(args.listen.clone())?;
    // Dials counted once each: ours when made (Swarm::dial reports no `Dialing` event for
    // some of them), the behaviours' (Kademlia's queries) by their `Dialing` event.
    let mut dials = 0u64;
    let mut ours = std::collections::HashSet::new();
    for p in &args.peer {
        let opts = DialOpts::from(p.clone());
        ours.insert(opts.connection_id());
        dials += 1;
        swarm.dial(opts)?;
    }
    let started = Instant::now();
    let mut max_seen = 0usize;
    let period = Duration::from_secs_f64(if args.status_interval > 0.0 {
        args.status_interval
    } else {
        3600.0
    });
    let mut status = tokio::time::interval(period);
    status.tick().await;
    let mut bootstrap = tokio::time::interval(Duration::from_secs(10));
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let line = |n: usize, dials: u64, max_seen: usize, fin: bool| {
        let t = started.elapsed().as_secs_f64();
        if args.json {
            format!("{{\"t\":{t:.2},\"connections\":{n},\"dials\":{dials},\"max_connections_seen\":{max_seen},\"final\":{fin}}}")
        } else {
            format!("status t={t:.1}s connections={n} dials={dials} max_seen={max_seen}")
        }
    };
    loop {
        #[cfg(unix)]
        let terminated = term.recv();
        #[cfg(not(unix))]
        let terminated = futures::future::pending::<Option<()>>();
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(KadBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                    for a in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
                SwarmEvent::Behaviour(KadBehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, is_new_peer: true, .. })) => {
                    let n = swarm.network_info().connection_counters().num_established() as usize;
                    if n < args.max && !swarm.is_connected(&peer) {
                        let opts = DialOpts::from(peer);
                        ours.insert(opts.connection_id());
                        dials += 1;
                        let _ = swarm.dial(opts);
                    }
                }
                SwarmEvent::ConnectionEstablished { .. } => {
                    let n = swarm.network_info().connection_counters().num_established() as usize;
                    max_seen = max_seen.max(n);
                }
                SwarmEvent::Dialing { connection_id, .. } if !ours.remove(&connection_id) => {
                    dials += 1;
                }
                _ => {}
            },
            _ = bootstrap.tick() => {
                let _ = swarm.behaviour_mut().kad.bootstrap();
            }
            _ = status.tick(), if args.status_interval > 0.0 => {
                let n = swarm.network_info().connection_counters().num_established() as usize;
                println!("{}", line(n, dials, max_seen, false));
            }
            _ = terminated => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let n = swarm.network_info().connection_counters().num_established() as usize;
    println!("{}", line(n, dials, max_seen, true));
    Ok(())
}
