//! `peerkeeper node`: one real long-running node. Logs through `RUST_LOG`, prints a status
//! line at an interval, stops cleanly on SIGINT or SIGTERM.

use peerkeeper::net::{NetConfig, Node, NodeOptions};
use peerkeeper::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `peerkeeper node`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9732")]
    listen: SocketAddr,
    /// A trusted bootstrap point (repeatable).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// A TOML config file (the keys of `peerkeeper::Config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// min_connections (overrides the config file).
    #[arg(long)]
    min: Option<usize>,
    /// expected_connections (overrides the config file).
    #[arg(long)]
    expected: Option<usize>,
    /// max_connections (overrides the config file).
    #[arg(long)]
    max: Option<usize>,
    /// The network name exchanged in the handshake.
    #[arg(long, default_value = "peerkeeper")]
    network: String,
    /// Seconds between two status lines (0: none).
    #[arg(long, default_value_t = 10)]
    status_interval: u64,
    /// Seed of the node's random choices (and its peer id); random by default.
    #[arg(long)]
    seed: Option<u64>,
}

/// Installs the tracing subscriber (stderr; `RUST_LOG` or `default` as the filter).
pub(crate) fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn build_config(args: &Args) -> Result<Config, peerkeeper::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.min {
        config.min_connections = v;
    }
    if let Some(v) = args.expected {
        config.expected_connections = v;
    }
    if let Some(v) = args.max {
        config.max_connections = v;
    }
    for p in &args.peers {
        if !config.trusted_points.contains(p) {
            config.trusted_points.push(*p);
        }
    }
    config.validate()?;
    Ok(config)
}

/// Runs `peerkeeper node`; returns the process exit code (2: bad flag or config).
pub fn run(args: Args) -> i32 {
    init_logs("info");
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peerkeeper node: {e}");
            return 2;
        }
    };
    if args.network.is_empty()
        || args.network.len() > peerkeeper::net::protocol::MAX_NETWORK_NAME_LEN
    {
        eprintln!(
            "peerkeeper node: invalid `--network`: must be 1 to {} bytes",
            peerkeeper::net::protocol::MAX_NETWORK_NAME_LEN
        );
        return 2;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peerkeeper node: cannot start the runtime: {e}");
            return 1;
        }
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let opts = NodeOptions {
        config,
        net: NetConfig {
            network: args.network.clone(),
            ..NetConfig::default()
        },
        listen: args.listen,
        seed,
        peer_id: None,
        sources: Vec::new(),
    };
    rt.block_on(async move {
        let node = match Node::start(opts).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("peerkeeper node: {e}");
                return 1;
            }
        };
        eprintln!(
            "peerkeeper node {} listening on {}",
            node.peer_id(),
            node.listen_addr()
        );
        let interval = Duration::from_secs(args.status_interval.max(1));
        let mut status = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = status.tick(), if args.status_interval > 0 => {
                    let s = node.stats();
                    eprintln!(
                        "status: connections {} | known points {} | dials {} ok {} failed {} | cycles {} | sharing requests {} points {} | violations {}",
                        s.connections, s.known_points, s.maintenance.dials, s.maintenance.dials_succeeded,
                        s.maintenance.dials_failed, s.maintenance.cycles, s.discovery.requests,
                        s.discovery.points_received, s.net.violations
                    );
                }
            }
        }
        eprintln!("peerkeeper node: shutting down");
        node.shutdown().await;
        0
    })
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
