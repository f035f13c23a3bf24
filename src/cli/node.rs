//! `peerkeeper node`: one real long-running node. Logs through tracing-subscriber
//! (`RUST_LOG`), prints a status line at an interval, shuts down cleanly on SIGINT or
//! SIGTERM. A bad flag or config file exits 2 with a message naming the field.

use peerkeeper::identity::{Identity, Keypair};
use peerkeeper::node::dns::{DnsSource, HostPort};
use peerkeeper::node::PointSource;
use peerkeeper::pool::Source;
use peerkeeper::transport::tcp::TcpTransport;
use peerkeeper::{Config, NetConfig, Node, PeerId, Policy};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `peerkeeper node`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9732")]
    listen: SocketAddr,
    /// A bootstrap point: dialed at start, shared like any other (repeatable). HOST is an
    /// IP address or a name (resolved at start and again whenever the node looks for
    /// points; one that does not resolve is a warning). As KEY@IP:PORT (KEY: the peer id,
    /// 64 hex characters), the point must prove that key in the handshake, or the
    /// connection is dropped.
    #[arg(long = "peer", value_name = "[KEY@]HOST:PORT", value_parser = parse_peer_spec)]
    peers: Vec<PeerSpec>,
    /// The node's key file: loaded, or generated on first run (written with owner-only
    /// permissions). Without it, a new key at every start: another peer id each time.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Keep the node's state in DIR (created owner-only if missing): its key
    /// (DIR/node.key, unless --key names another file) and its pool (DIR/pool.dat: the
    /// known points, bans and last outbound peers, saved crash-safe every
    /// --save-interval and at shutdown, restored at start).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How often the pool is saved to --data-dir.
    #[arg(long, default_value = "5m", value_parser = crate::cli::duration)]
    save_interval: Duration,
    /// A trusted point: dialed first, never trimmed (repeatable; added to the config's).
    /// As KEY@HOST:PORT, the point must prove that key, dialed or dialing in: another key
    /// claiming it is refused (in private mode, the only way to admit it by its identity).
    #[arg(long = "trusted", value_name = "[KEY@]HOST:PORT", value_parser = parse_peer_spec)]
    trusted: Vec<PeerSpec>,
    /// A DNS seed: a name whose addresses are points to try (external points),
    /// resolved at start and again whenever the node looks for points (repeatable).
    /// NAME:PORT, or NAME for --listen's port.
    #[arg(long = "dns-seed", value_name = "NAME[:PORT]", value_parser = parse_dns_seed)]
    dns_seeds: Vec<(String, Option<u16>)>,
    /// Refuse loopback and private (LAN) addresses from peers, whatever the sender (for a
    /// node on the public internet). By default they are accepted under the relay rule.
    #[arg(long)]
    refuse_private: bool,
    /// The maintenance policy: peerkeeper, or octez (a model, for comparison).
    #[arg(long)]
    policy: Option<Policy>,
    /// A TOML config file (the library's `Config`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    targets: super::Targets,
    /// An address this node is reachable at besides its socket's own: a NAT's port
    /// mapping or a proxy (repeatable). A dialer must have dialed one of the node's
    /// addresses, or the handshake is refused (a relay cannot splice two nodes).
    #[arg(long = "external", value_name = "IP:PORT")]
    external: Vec<SocketAddr>,
    /// The network name; peers of other networks are refused.
    #[arg(long, default_value = "peerkeeper")]
    network: String,
    /// Seed of the node's random choices (default: from the clock). Not of its key.
    #[arg(long)]
    seed: Option<u64>,
    /// Interval of the status line ("0s" switches it off).
    #[arg(long, default_value = "10s", value_parser = crate::cli::duration)]
    status_interval: Duration,
    /// Print the status as one JSON object per line on stdout (listen address, peers,
    /// counts, dial outcomes, points dropped), once at start and then at each interval,
    /// instead of the human status line on stderr.
    #[arg(long)]
    status_json: bool,
    /// Record every input of the node's core to FILE (JSON lines), for `peerkeeper
    /// replay FILE`.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9100 (docs/metrics.md lists them).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Serve a control socket at PATH for `peerkeeper ctl` (a Unix socket, mode 0600,
    /// removed at shutdown; a stale one left by a dead node is replaced). Default with
    /// --data-dir DIR: DIR/control.sock.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// No control socket, even with --data-dir.
    #[arg(long, conflicts_with = "control")]
    no_control: bool,
}

/// A `--peer` or `--trusted`: a point or a host name, and maybe the key it must prove.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    /// The expected peer id, if given (only with a point given by address).
    pub key: Option<PeerId>,
    /// The point, or a name resolved at start and in every discovery round.
    pub at: Target,
}

/// Where a `--peer` is: an address, or a host name.
#[derive(Clone, Debug)]
pub enum Target {
    /// `IP:PORT`.
    Point(SocketAddr),
    /// `HOST:PORT`.
    Name(HostPort),
}

impl PeerSpec {
    /// The point, when given by address.
    fn point(&self) -> Option<SocketAddr> {
        match &self.at {
            Target::Point(p) => Some(*p),
            Target::Name(_) => None,
        }
    }

    /// The host name, when given by name.
    fn name(&self) -> Option<&HostPort> {
        match &self.at {
            Target::Point(_) => None,
            Target::Name(n) => Some(n),
        }
    }
}

/// Parses `HOST:PORT` or `KEY@HOST:PORT` (HOST an IP address or a name).
pub fn parse_peer_spec(s: &str) -> Result<PeerSpec, String> {
    let (key, point) = match s.split_once('@') {
        Some((k, p)) => (
            Some(
                k.parse::<PeerId>()
                    .map_err(|e| format!("{k:?} before '@': {e}"))?,
            ),
            p,
        ),
        None => (None, s),
    };
    let at = match point.parse::<SocketAddr>() {
        Ok(p) => Target::Point(p),
        Err(_) if key.is_some() => {
            return Err(format!("{point:?}: KEY@ takes IP:PORT, not a host name"))
        }
        Err(_) => Target::Name(point.parse::<HostPort>().map_err(|e| e.to_string())?),
    };
    Ok(PeerSpec { key, at })
}

/// Parses a `--dns-seed`: `NAME:PORT`, or `NAME` (the port then is `--listen`'s).
fn parse_dns_seed(s: &str) -> Result<(String, Option<u16>), String> {
    match s.parse::<HostPort>() {
        Ok(hp) => Ok((hp.host, Some(hp.port))),
        Err(_) => format!("{s}:1")
            .parse::<HostPort>()
            .map(|hp| (hp.host, None))
            .map_err(|_| format!("{s:?} is not NAME or NAME:PORT")),
    }
}

/// Every host name of the flags, as point sources: `--peer` names (bootstrap),
/// `--trusted` names (trusted), `--dns-seed` names (external; `--listen`'s port unless
/// one is given).
fn dns_sources(args: &Args) -> Vec<DnsSource> {
    let names = |specs: &[PeerSpec]| -> Vec<HostPort> {
        specs.iter().filter_map(PeerSpec::name).cloned().collect()
    };
    let seeds: Vec<HostPort> = args
        .dns_seeds
        .iter()
        .map(|(host, port)| HostPort {
            host: host.clone(),
            port: port.unwrap_or(args.listen.port()),
        })
        .collect();
    [
        (names(&args.peers), Source::Bootstrap),
        (names(&args.trusted), Source::Trusted),
        (seeds, Source::External),
    ]
    .into_iter()
    .filter(|(n, _)| !n.is_empty())
    .map(|(n, kind)| DnsSource::new(n, kind))
    .collect()
}

/// The node's key: from `--key FILE` (generated there on first run), or a new one.
fn load_key(path: Option<&PathBuf>) -> Result<Keypair, String> {
    match path {
        None => Ok(Keypair::generate()),
        Some(path) => {
            let (key, created) =
                peerkeeper::identity::load_or_generate(path).map_err(|e| e.to_string())?;
            if created {
                tracing::info!(file = %path.display(), peer_id = %key.peer_id(), "generated a new node key");
            }
            Ok(key)
        }
    }
}

/// The command's own timers: `--save-interval` at least 1 s, `--status-interval` 0 (off)
/// or at least 100 ms, both at most [`peerkeeper::config::MAX_DURATION`].
fn check_intervals(args: &Args) -> Result<(), peerkeeper::ConfigError> {
    use peerkeeper::config::check_duration;
    let floor = |field: &'static str, d: Duration, min: Duration| {
        if !d.is_zero() && d < min || d.is_zero() && field == "--save-interval" {
            Err(peerkeeper::ConfigError::Invalid {
                field,
                rule: format!(
                    "must be at least {} (got {})",
                    humantime::format_duration(min),
                    humantime::format_duration(d)
                ),
            })
        } else {
            Ok(())
        }
    };
    check_duration("--save-interval", args.save_interval, true)?;
    floor(
        "--save-interval",
        args.save_interval,
        Duration::from_secs(1),
    )?;
    check_duration("--status-interval", args.status_interval, true)?;
    floor(
        "--status-interval",
        args.status_interval,
        Duration::from_millis(100),
    )
}

/// Builds the config from the file and flags, validated: the error names the field.
pub fn config_of(args: &Args) -> Result<Config, peerkeeper::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.targets.apply(&mut config);
    for p in args.trusted.iter().filter_map(PeerSpec::point) {
        if !config.trusted_points.contains(&p) {
            config.trusted_points.push(p);
        }
    }
    if args.refuse_private {
        config.discovery.allow_private_addresses = false;
    }
    if let Some(p) = args.policy {
        config.policy = p;
    }
    config.validate()?;
    Ok(config)
}

/// Runs `peerkeeper node`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    let config = match config_of(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(e) = check_intervals(&args) {
        eprintln!("error: {e}");
        return 2;
    }
    // The AS map is part of the config: read before anything is touched.
    let asmap = match &config.defences.asmap {
        Some(path) => match peerkeeper::pool::AsMap::load(path) {
            Ok(m) => Some(std::sync::Arc::new(m)),
            Err(e) => {
                eprintln!("error: defences.asmap: {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        let net = NetConfig {
            network: args.network.clone(),
            external_addrs: args.external.clone(),
            ..NetConfig::default()
        };
        if let Err(e) = net.validate() {
            eprintln!("error: {e}");
            return 2;
        }
        let store = match &args.data_dir {
            Some(dir) => match peerkeeper::store::PoolStore::in_dir(dir) {
                Ok(s) => Some(s.save_interval(args.save_interval)),
                Err(e) => {
                    eprintln!("error: --data-dir {}: {e}", dir.display());
                    return 2;
                }
            },
            None => None,
        };
        let key_file = args.key.clone().or_else(|| {
            args.data_dir
                .as_ref()
                .map(|d| d.join(peerkeeper::store::KEY_FILE))
        });
        let key = match load_key(key_file.as_ref()) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let peer_id = key.peer_id();
        let shutdown = shutdown_signal();
        // Metrics first: a bad --metrics address stops us before the node binds its port.
        let metrics = match args.metrics {
            Some(addr) => {
                let mut registry = prometheus_client::registry::Registry::default();
                let metrics = peerkeeper::metrics::Metrics::new(&mut registry);
                peerkeeper::metrics::register_process_metrics(&mut registry);
                match peerkeeper::metrics::serve(addr, registry).await {
                    Ok(server) => Some((metrics, server)),
                    Err(e) => {
                        eprintln!("error: --metrics {addr}: cannot listen: {e}");
                        return 2;
                    }
                }
            }
            None => None,
        };
        let transport = match TcpTransport::bind(args.listen).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return 2;
            }
        };
        // Names: resolved now (a name that does not resolve yet is a warning), and again
        // in every discovery round (the sources).
        let sources = dns_sources(&args);
        let mut bootstrap: Vec<SocketAddr> =
            args.peers.iter().filter_map(PeerSpec::point).collect();
        let mut node_config = config.clone();
        for source in &sources {
            match source.kind() {
                Source::Bootstrap => bootstrap.extend(source.fetch().await),
                Source::Trusted => {
                    for p in source.fetch().await {
                        if !node_config.trusted_points.contains(&p) {
                            node_config.trusted_points.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut builder = Node::builder(node_config, transport)
            .net(net)
            .identity(key)
            .seed(seed)
            .bootstrap(bootstrap);
        for p in args.peers.iter().chain(&args.trusted) {
            if let (Some(k), Some(point)) = (p.key, p.point()) {
                builder = builder.expect_peer(point, k);
            }
        }
        for source in sources {
            builder = builder.source(std::sync::Arc::new(source));
        }
        if let Some(store) = store {
            builder = builder.persist(store);
        }
        if let Some(map) = asmap {
            builder = builder.asmap(map);
        }
        if let Some(path) = &args.trace {
            match std::fs::File::create(path) {
                Ok(f) => builder = builder.trace(Box::new(f)),
                Err(e) => {
                    eprintln!("error: cannot write the trace {}: {e}", path.display());
                    return 2;
                }
            }
        }
        let node = match builder.start() {
            Ok(n) => std::sync::Arc::new(n),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let control_path = if args.no_control {
            None
        } else {
            args.control
                .clone()
                .or_else(|| args.data_dir.as_ref().map(|d| d.join("control.sock")))
        };
        let control = match control_path {
            Some(path) => match serve_control(&node, &path).await {
                Ok(server) => server,
                // The default socket of --data-dir: a path too long for a socket (or the
                // like) is a warning; another live node on the same DIR is an error.
                Err(e) if args.control.is_none() && !in_use(&e) => {
                    tracing::warn!(path = %path.display(), error = %e, "no control socket");
                    None
                }
                Err(e) => {
                    eprintln!("error: --control {}: {e}", path.display());
                    node.shutdown().await;
                    return 2;
                }
            },
            None => None,
        };
        tracing::info!(listen = %node.local_addr(), peer_id = %peer_id, policy = %config.policy, network = %args.network, "node started");
        if let Some(path) = &control {
            tracing::info!(control = %path, "control socket open (peerkeeper ctl --control PATH)");
        }
        if let Some((metrics, server)) = &metrics {
            metrics.attach(&node);
            tracing::info!(metrics = %server.local_addr(), "serving metrics at /metrics");
        }
        let bounds = config.bounds();
        let mut status = tokio::time::interval(if args.status_interval.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            args.status_interval
        });
        status.tick().await;
        let mut reader_gone = args.status_json && !print_json_status(&node).await;
        tokio::pin!(shutdown);
        while !reader_gone {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = status.tick(), if !args.status_interval.is_zero() => {
                    if args.status_json {
                        reader_gone = !print_json_status(&node).await;
                        continue;
                    }
                    let s = node.status();
                    eprintln!(
                        "status: {} connections (range {}..={}), {} dialing, {} known points, {} cycles; dials: {}; points dropped: {}; time {}",
                        s.connections,
                        bounds.min_threshold,
                        bounds.max_threshold,
                        s.dialing,
                        s.known_points,
                        s.stats.cycles,
                        s.stats.dials.summary(),
                        s.stats.points.dropped.summary(),
                        peerkeeper::control::rfc3339(std::time::SystemTime::now()),
                    );
                }
            }
        }
        if reader_gone {
            tracing::info!("stdout was closed (its reader went away): shutting down");
        } else {
            tracing::info!("shutting down");
        }
        if let Some(server) = control {
            server.shutdown().await;
        }
        node.shutdown().await;
        0
    })
}

/// Whether the control socket is held by a live node.
#[cfg(unix)]
fn in_use(e: &peerkeeper::control::ControlError) -> bool {
    matches!(e, peerkeeper::control::ControlError::InUse { .. })
}

#[cfg(not(unix))]
fn in_use(_e: &std::convert::Infallible) -> bool {
    false
}

/// Serves the control socket at `path` (Unix only: elsewhere, a warning).
#[cfg(unix)]
async fn serve_control(
    node: &Node,
    path: &std::path::Path,
) -> Result<Option<ControlHandle>, peerkeeper::control::ControlError> {
    peerkeeper::control::serve(node.clone(), path)
        .await
        .map(|s| Some(ControlHandle(s)))
}

#[cfg(not(unix))]
async fn serve_control(
    _node: &Node,
    path: &std::path::Path,
) -> Result<Option<ControlHandle>, std::convert::Infallible> {
    tracing::warn!(path = %path.display(), "no control socket on this platform");
    Ok(None)
}

/// The running control socket (Unix), shown as its path.
#[cfg(unix)]
struct ControlHandle(peerkeeper::control::ControlServer);

#[cfg(unix)]
impl ControlHandle {
    async fn shutdown(self) {
        self.0.shutdown().await;
    }
}

#[cfg(unix)]
impl std::fmt::Display for ControlHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.path().display())
    }
}

#[cfg(not(unix))]
struct ControlHandle;

#[cfg(not(unix))]
impl ControlHandle {
    async fn shutdown(self) {}
}

#[cfg(not(unix))]
impl std::fmt::Display for ControlHandle {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// One JSON line on stdout (with the wall-clock `time`): what a script (or a test)
/// watching the node reads. Returns `false` when stdout's reader has gone away.
async fn print_json_status(node: &Node) -> bool {
    let line = peerkeeper::control::status_json(node).await;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{line}").and_then(|()| out.flush());
    !matches!(written, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM. The handlers are installed when this
/// is called (not when first polled), so a signal that arrives right after the node says
/// it started still shuts it down cleanly instead of killing the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
