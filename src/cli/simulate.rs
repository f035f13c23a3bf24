//! `peerkeeper simulate`: the deterministic simulator, one policy or both side by side.

use indicatif::{ProgressBar, ProgressStyle};
use peerkeeper::config::Defences;
use peerkeeper::report::print_rows;
use peerkeeper::sim::{
    eclipse, write_charts, EclipseCheck, EclipseConfig, EclipseReport, EpochConfig, EpochReport,
    Joins, Latency, SimConfig, SimOutcome, SimReport, Simulation,
};
use peerkeeper::{Config, Policy};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `peerkeeper simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=16_000_000))]
    nodes: u64,
    /// Seed of everything.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual duration (e.g. "10m"; default 10m, or with --attackers what the
    /// experiment's checkpoints and restart case need: 24h21m by default).
    #[arg(long, value_parser = crate::cli::duration)]
    duration: Option<Duration>,
    /// The maintenance policy (peerkeeper or octez); overrides the config file's.
    #[arg(long)]
    policy: Option<Policy>,
    /// A TOML config file for every node, as `peerkeeper node --config` takes (default: the
    /// node's defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// How many nodes are bootstrap points every other node knows.
    #[arg(long, default_value_t = 1)]
    bootstrap: usize,
    /// Start node i at i * STAGGER (default: random starts in the first 5 s).
    #[arg(long, value_parser = crate::cli::duration)]
    stagger: Option<Duration>,
    /// The order in which staggered nodes start: by index (the bootstrap nodes first) or
    /// random (seeded; one node every --stagger, 500ms if not given).
    #[arg(long, value_enum, default_value_t = StartOrder::Index, conflicts_with = "seed_last")]
    start_order: StartOrder,
    /// Start the bootstrap nodes this long after the last of the others (which start at
    /// random in the first 5 s), as `converge.py --seed-last` does with processes.
    #[arg(long, value_name = "D", value_parser = crate::cli::duration, conflicts_with = "stagger")]
    seed_last: Option<Duration>,
    /// How many more nodes join at --late-at, when the rest has settled.
    #[arg(long, default_value_t = 0)]
    late_joiners: usize,
    /// When the late joiners join.
    #[arg(long, default_value = "3m", value_parser = crate::cli::duration)]
    late_at: Duration,
    /// Run both policies on the same seed, topology and faults, side by side.
    #[arg(long)]
    compare: bool,
    /// Probability that a dial fails.
    #[arg(long, default_value_t = 0.0)]
    dial_failure_rate: f64,
    /// Probability that a peer-sharing message is lost.
    #[arg(long, default_value_t = 0.0)]
    message_loss: f64,
    /// Fraction of nodes that accept no incoming connection.
    #[arg(long, default_value_t = 0.0)]
    nat_fraction: f64,
    /// Fraction of nodes leaving (and coming back) per virtual minute (default 0, or with
    /// --attackers 1/360: each node restarts about every 6 hours, restoring its saved
    /// pool).
    #[arg(long, visible_alias = "churn-rate")]
    churn: Option<f64>,
    /// Latency distribution of the links: uniform in [min, max], or min plus an
    /// exponential tail (mean (max - min) / 3) capped at max.
    #[arg(long, value_enum, default_value_t = LatencyDist::Uniform)]
    latency_dist: LatencyDist,
    /// Smallest link latency.
    #[arg(long, default_value = "10ms", value_parser = crate::cli::duration)]
    latency_min: Duration,
    /// Largest link latency.
    #[arg(long, default_value = "150ms", value_parser = crate::cli::duration)]
    latency_max: Duration,
    #[command(flatten)]
    targets: super::Targets,
    /// Epoch-rotation scenario: a validator set of N of the nodes, rotated every --epoch,
    /// told to the nodes through `track`; the nodes run a validator network
    /// (`peer_sets.only`). See docs/simulator.md.
    #[arg(long, value_name = "N")]
    validators: Option<usize>,
    /// Epoch length (with --validators).
    #[arg(long, default_value = "3m", value_parser = crate::cli::duration, requires = "validators")]
    epoch: Duration,
    /// Validators replaced each epoch (default: a fifth of the set).
    #[arg(long, value_name = "N", requires = "validators")]
    rotate: Option<usize>,
    /// Validators that move to a new address half-way through each epoch (`overwrite`).
    #[arg(long, value_name = "K", default_value_t = 0, requires = "validators")]
    overwrite: usize,
    /// Impersonation attempts per epoch: an outsider claiming a validator's peer id.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "validators")]
    impersonations: usize,
    /// Relays of a simulated ledger: K nodes whose points every node gets as external
    /// points (a stake distribution's relays); floors come from --config
    /// (`[targets.external] floor = N`).
    #[arg(long, value_name = "K", default_value_t = 0)]
    ledger: usize,
    /// Peer sets each node keeps (`peer_sets.kept_sets`; default: the config's, 4).
    #[arg(long, value_name = "N", requires = "validators")]
    kept_sets: Option<usize>,
    /// Eclipse experiment: A attacker addresses (scripted nodes that accept every
    /// connection, answer requests for points and flood advertisements with their own
    /// addresses only, and hold inbound connections to every node). See
    /// docs/simulator.md.
    #[arg(long, value_name = "A", conflicts_with = "validators")]
    attackers: Option<usize>,
    /// The attackers' network groups (/16s): address j is in group j % G (1..=A).
    #[arg(long, value_name = "G", requires = "attackers")]
    attacker_groups: Option<usize>,
    /// When the attack starts (the honest network converges first).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = crate::cli::duration, requires = "attackers")]
    attack_start: Duration,
    /// The restart case (Heilman et al.): when a sample of the nodes restarts at once
    /// from its saved pool (default: 24h after the attack starts).
    #[arg(long, value_name = "D", value_parser = crate::cli::duration, requires = "attackers")]
    restart_at: Option<Duration>,
    /// The restart case: the fraction of the nodes that restarts (0: no restart case).
    #[arg(long, value_name = "F", default_value_t = 0.1, requires = "attackers")]
    restart_fraction: f64,
    /// How often attackers flood each connection they hold.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = crate::cli::duration, requires = "attackers")]
    flood_interval: Duration,
    /// Switch every eclipse defence off (`[defences]`: diverse_dials, address_buckets,
    /// anchors), as `Defences::off()`.
    #[arg(long)]
    no_defences: bool,
    /// Peer feedback scenario: this fraction of the nodes is useless, and every other
    /// node reports on its peers every 10 s (useless ones as slow, the others as useful
    /// now and then). The report gives the share of connections to useless peers at the
    /// end. See docs/simulator.md.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    useless_fraction: f64,
    /// Switch peer feedback off (`feedback.enabled = false`): reports are counted and
    /// ignored, for comparison with --useless-fraction.
    #[arg(long)]
    no_feedback: bool,
    /// Partition scenario: at this time, the nodes of even and odd index part (dials
    /// between them time out, their connections end) for --partition-for; the report
    /// gives how long after the heal the overlay is one component again.
    #[arg(long, value_name = "D", value_parser = crate::cli::duration, requires = "partition_for")]
    partition_at: Option<Duration>,
    /// How long the partition lasts (with --partition-at).
    #[arg(long, value_name = "D", value_parser = crate::cli::duration, requires = "partition_at")]
    partition_for: Option<Duration>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Draw connections and pool size over time to this SVG file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Record node N's core inputs (with --trace FILE), for `peerkeeper replay FILE`.
    #[arg(long, value_name = "N", requires = "trace", conflicts_with = "compare")]
    trace_node: Option<usize>,
    /// Where --trace-node writes the trace (JSON lines). A node that comes back after
    /// churn runs a fresh core: its later lives go to FILE.1, FILE.2, ...
    #[arg(long, value_name = "FILE", requires = "trace_node")]
    trace: Option<PathBuf>,
}

/// The start orders `--start-order` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StartOrder {
    /// Node 0 (the bootstrap nodes) first, then in index order.
    Index,
    /// A seeded random order.
    Random,
}

/// The default stagger of `--start-order random` without `--stagger`.
const RANDOM_ORDER_STAGGER: Duration = Duration::from_millis(500);

/// The link latency distributions `--latency-dist` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LatencyDist {
    /// Uniform in [min, max].
    Uniform,
    /// min plus an exponential tail, capped at max.
    Exponential,
}

fn check_rate(name: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("--{name} must be in [0, 1], got {v}"))
    }
}

fn scenario(args: &Args, policy: Option<Policy>) -> Result<SimConfig, String> {
    check_rate("dial-failure-rate", args.dial_failure_rate)?;
    check_rate("message-loss", args.message_loss)?;
    check_rate("nat-fraction", args.nat_fraction)?;
    check_rate("useless-fraction", args.useless_fraction)?;
    let eclipse = eclipse_config(args)?;
    let churn = args.churn.unwrap_or(if eclipse.is_some() {
        eclipse::DEFAULT_CHURN_PER_MINUTE
    } else {
        0.0
    });
    check_rate("churn", churn)?;
    let duration = args.duration.unwrap_or_else(|| {
        eclipse
            .as_ref()
            .map_or(Duration::from_secs(600), EclipseConfig::duration)
    });
    let mut cfg = SimConfig::new(args.nodes as usize, args.seed, duration, Policy::default());
    let mut node_config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(p) = policy {
        node_config.policy = p;
    }
    args.targets.apply(&mut node_config);
    if args.no_defences {
        node_config.defences = Defences::off();
    }
    if args.no_feedback {
        node_config.feedback.enabled = false;
    }
    let epochs = match args.validators {
        Some(v) => {
            let mut e = EpochConfig::new(v, args.epoch);
            if let Some(r) = args.rotate {
                e.rotate = r;
            }
            e.overwrite = args.overwrite;
            e.impersonations = args.impersonations;
            e.check(args.nodes as usize)?;
            if let Some(k) = args.kept_sets {
                node_config.peer_sets.kept_sets = k;
            }
            // A validator network, with room for every primary of the kept sets (unless
            // --max says otherwise).
            e.prepare(&mut node_config);
            args.targets.apply(&mut node_config);
            Some(e)
        }
        None => None,
    };
    node_config.validate().map_err(|e| e.to_string())?;
    cfg.node_config = node_config;
    if args.bootstrap == 0 || args.bootstrap > args.nodes as usize {
        return Err("--bootstrap must be in 1..=--nodes".into());
    }
    cfg.bootstrap = args.bootstrap;
    cfg.joins = match (args.seed_last, args.start_order, args.stagger) {
        (Some(d), _, _) => Joins::SeedLast(d),
        (None, StartOrder::Random, d) => Joins::Shuffled(d.unwrap_or(RANDOM_ORDER_STAGGER)),
        (None, StartOrder::Index, Some(d)) => Joins::Stagger(d),
        (None, StartOrder::Index, None) => Joins::Together,
    };
    cfg.late_joiners = args.late_joiners;
    cfg.late_at = args.late_at;
    if args.latency_min > args.latency_max {
        return Err("--latency-min must not exceed --latency-max".into());
    }
    cfg.latency = match args.latency_dist {
        LatencyDist::Uniform => Latency::Uniform(args.latency_min, args.latency_max),
        LatencyDist::Exponential => Latency::Exponential(args.latency_min, args.latency_max),
    };
    cfg.dial_failure_rate = args.dial_failure_rate;
    cfg.message_loss = args.message_loss;
    cfg.nat_fraction = args.nat_fraction;
    cfg.churn_per_minute = churn;
    cfg.useless_fraction = args.useless_fraction;
    if let (Some(at), Some(length)) = (args.partition_at, args.partition_for) {
        cfg.partition = Some(peerkeeper::sim::Partition { at, length });
    }
    cfg.epochs = epochs;
    if let Some(e) = &eclipse {
        e.check(cfg.total_nodes())?;
    }
    cfg.eclipse = eclipse;
    if args.ledger > args.nodes as usize {
        return Err("--ledger must be at most --nodes".into());
    }
    cfg.ledger = args.ledger;
    if let Some(n) = args.trace_node {
        if n >= cfg.total_nodes() {
            return Err(format!(
                "--trace-node must be a node index below {} (nodes and late joiners)",
                cfg.total_nodes()
            ));
        }
        cfg.trace_nodes = vec![n];
    }
    Ok(cfg)
}

/// The eclipse experiment of the flags, if `--attackers` is given.
fn eclipse_config(args: &Args) -> Result<Option<EclipseConfig>, String> {
    let Some(a) = args.attackers else {
        return Ok(None);
    };
    let Some(g) = args.attacker_groups else {
        return Err("--attacker-groups G is required with --attackers".into());
    };
    let mut e = EclipseConfig::new(a, g);
    e.attack_start = args.attack_start;
    e.flood_interval = args.flood_interval;
    e.restart_fraction = args.restart_fraction;
    e.restart_at = if args.restart_fraction > 0.0 {
        Some(args.restart_at.unwrap_or_else(|| e.default_restart_at()))
    } else {
        None
    };
    Ok(Some(e))
}

/// Writes the traces of the --trace-node: its first life to `path`, later ones to
/// `path.1`, `path.2`, ...
fn write_traces(outcome: &SimOutcome, path: &std::path::Path) -> Result<(), String> {
    for t in &outcome.traces {
        let file = if t.life == 0 {
            path.to_path_buf()
        } else {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{}", t.life));
            PathBuf::from(name)
        };
        let written = std::fs::File::create(&file).and_then(|f| t.write(f));
        if let Err(e) = written {
            return Err(format!("cannot write the trace {}: {e}", file.display()));
        }
        eprintln!(
            "trace of node {} (life {}, {} inputs) written to {}",
            t.node,
            t.life,
            t.inputs.len(),
            file.display()
        );
    }
    Ok(())
}

/// Whether `path` can be written, without truncating what is there: an existing file
/// is opened for writing; a new one is created and removed again.
fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
    } else {
        std::fs::File::create(path)?;
        std::fs::remove_file(path)
    }
}

fn run_one(cfg: SimConfig, label: &str) -> SimOutcome {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {percent}% of virtual time, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let started = Instant::now();
    let mut outcome = Simulation::new(cfg).run(|f| bar.set_position((f * 1000.0) as u64));
    bar.finish_and_clear();
    outcome.report.network.wall_ms = started.elapsed().as_millis() as u64;
    outcome
}

/// Runs `peerkeeper simulate`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    let policies: Vec<Option<Policy>> = if args.compare {
        vec![Some(Policy::Peerkeeper), Some(Policy::Octez)]
    } else {
        vec![args.policy]
    };
    let mut scenarios = Vec::new();
    for p in &policies {
        match scenario(&args, *p) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    if let Some(path) = &args.chart {
        // Before a long run, not after it.
        if let Err(e) = check_writable(path) {
            eprintln!("error: cannot write the chart {}: {e}", path.display());
            return 2;
        }
    }
    if let Some(path) = &args.trace {
        // Before a long run, not after it.
        if let Err(e) = std::fs::File::create(path) {
            eprintln!("error: cannot write the trace {}: {e}", path.display());
            return 2;
        }
    }
    let bounds = scenarios[0].node_config.bounds();
    let outcomes: Vec<SimOutcome> = scenarios
        .into_iter()
        .map(|s| {
            let label = s.node_config.policy.to_string();
            run_one(s, &label)
        })
        .collect();
    if let Some(path) = &args.chart {
        // Both policies with --compare, each named in the legend.
        let runs: Vec<(String, &[peerkeeper::sim::Sample])> = outcomes
            .iter()
            .map(|o| (o.report.policy.to_string(), &o.samples[..]))
            .collect();
        let labelled: Vec<(&str, &[peerkeeper::sim::Sample])> = runs
            .iter()
            .map(|(l, s)| (if args.compare { l.as_str() } else { "" }, *s))
            .collect();
        let policies: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
        let title = format!(
            "{} nodes, policy {}, seed {}",
            args.nodes,
            policies.join(" vs "),
            args.seed
        );
        if let Err(e) = write_charts(
            path,
            &labelled,
            bounds.min_threshold,
            bounds.max_threshold,
            &title,
        ) {
            eprintln!("error: cannot draw {}: {e}", path.display());
            return 2;
        }
    }
    if let Some(path) = &args.trace {
        if let Err(e) = write_traces(&outcomes[0], path) {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let reports: Vec<&SimReport> = outcomes.iter().map(|o| &o.report).collect();
    if args.json {
        let text = if args.compare {
            serde_json::to_string(&serde_json::json!({
                "peerkeeper": reports[0],
                "octez_model": reports[1],
                "ratios": ratios(reports[0], reports[1]),
            }))
        } else {
            serde_json::to_string(reports[0])
        };
        match text {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    } else if args.compare {
        print_compare(reports[0], reports[1]);
        for r in &reports {
            if let Some(e) = &r.eclipse {
                println!("eclipse, policy {}:", r.policy);
                let mut rows = Vec::new();
                eclipse_rows(e, &mut rows);
                print_rows(&rows);
            }
        }
    } else {
        print_one(reports[0], bounds.min_threshold, bounds.max_threshold);
    }
    if reports[0].eclipse.is_some() {
        // An experiment: its figures are the output (churn leaves some nodes climbing at
        // the end, so "converged" says little).
        return 0;
    }
    match &reports[0].epochs {
        // The scenario's nodes outside the set have no peers: its figures decide.
        Some(e) => i32::from(e.incomplete_epochs > 0 || e.impersonations_admitted > 0),
        None if reports[0].network.converged => 0,
        None => 1,
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(
        || "not reached".into(),
        |v| format!("{:.1} s", v as f64 / 1000.0),
    )
}

fn epoch_rows(e: &EpochReport, rows: &mut Vec<(String, String)>) {
    let sum = |s: &peerkeeper::sim::epochs::Summary| {
        format!(
            "min {} / median {} / max {} ({} epochs)",
            ms(s.min_ms),
            ms(s.median_ms),
            ms(s.max_ms),
            s.count
        )
    };
    rows.push((
        "validator set".into(),
        format!(
            "{} nodes, epoch {} s, {} rotated per epoch, {} sets kept",
            e.validators,
            e.epoch_ms / 1000,
            e.rotate,
            e.kept_sets
        ),
    ));
    for r in &e.epochs {
        rows.push((
            format!("epoch {} (t = {} s)", r.id, r.start_ms / 1000),
            format!(
                "+{} -{}: mesh {}, dropped gone {}{}{}",
                r.joined,
                r.dropped,
                ms(r.mesh_ms),
                ms(r.dropped_ms),
                if r.overwritten > 0 {
                    format!(
                        ", {} moved: mesh again {}",
                        r.overwritten,
                        ms(r.overwrite_ms)
                    )
                } else {
                    String::new()
                },
                if r.cut_by_end {
                    " (cut by the end)"
                } else {
                    ""
                }
            ),
        ));
    }
    rows.push(("new set fully connected".into(), sum(&e.mesh)));
    rows.push(("dropped disconnected".into(), sum(&e.dropped)));
    if e.overwrite.count > 0 {
        rows.push(("after overwrite, connected".into(), sum(&e.overwrite)));
    }
    rows.push(("incomplete epochs".into(), e.incomplete_epochs.to_string()));
    rows.push((
        "impersonations admitted".into(),
        format!(
            "{} of {} attempts",
            e.impersonations_admitted, e.impersonation_attempts
        ),
    ));
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn check_row(c: &EclipseCheck) -> String {
    format!(
        "{} of {} eclipsed ({}; {} with no honest connection at all); {} with no outbound; outbound {:.1}/node, {} to attackers ({} nodes with two in one attacker group); attacker inbound {:.1}/node; pools {:.0} points, {} attackers'",
        c.eclipsed,
        c.nodes,
        pct(c.eclipsed_fraction),
        c.fully_eclipsed,
        c.no_outbound,
        c.mean_outbound,
        pct(c.attacker_outbound_share),
        c.doubled_in_attacker_group,
        c.mean_attacker_inbound,
        c.mean_pool,
        pct(c.pool_pollution)
    )
}

fn eclipse_rows(e: &EclipseReport, rows: &mut Vec<(String, String)>) {
    let d = &e.defences;
    let on = |b: bool| if b { "on" } else { "off" };
    rows.push((
        "attackers".into(),
        format!(
            "{} addresses in {} groups against {} nodes, from t = {} s; defences: diverse_dials {}, address_buckets {}, anchors {}",
            e.attackers,
            e.groups,
            e.honest,
            e.attack_start_ms / 1000,
            on(d.diverse_dials),
            on(d.address_buckets),
            on(d.anchors)
        ),
    ));
    for asked in &e.checks_asked_ms {
        let label = format!(
            "eclipse after {}",
            humantime::format_duration(Duration::from_millis(*asked))
        );
        match e.checks.iter().find(|c| c.after_attack_ms == *asked) {
            Some(c) => rows.push((label, check_row(c))),
            None => rows.push((label, "not reached (the run ended first)".into())),
        }
    }
    if let Some(r) = &e.restart {
        let label = format!("restart case (t = {} s)", r.at_ms / 1000);
        match &r.check {
            Some(c) => rows.push((
                label,
                format!("{} restarted: {}", r.restarted, check_row(c)),
            )),
            None => rows.push((
                label,
                format!(
                    "{} restarted, not measured (the run ended first)",
                    r.restarted
                ),
            )),
        }
    }
    rows.push((
        "attacker dials".into(),
        format!(
            "{} ({} admitted, {} refused); honest dials to attackers {}; closed by honest nodes {}",
            e.attacker_dials,
            e.attacker_dials_admitted,
            e.attacker_dials_refused,
            e.honest_dials_to_attackers,
            e.closed_by_honest
        ),
    ));
    rows.push((
        "floods / answers".into(),
        format!(
            "{} / {}; unsolicited ignored {}; violations {}, bans {}; restores {} ({} anchors, {} of them attackers)",
            e.floods,
            e.answers,
            e.unsolicited_ignored,
            e.violations,
            e.bans,
            e.restores,
            e.anchors_restored,
            e.anchors_to_attackers
        ),
    ));
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn ratios(ours: &SimReport, octez: &SimReport) -> serde_json::Value {
    let conv = |r: &SimReport| r.network.converged_at_ms.map(|v| v as f64);
    serde_json::json!({
        "converged_at": match (conv(ours), conv(octez)) { (Some(a), Some(b)) => ratio(a, b), _ => None },
        "dials": ratio(ours.network.dials.attempted as f64, octez.network.dials.attempted as f64),
        "messages": ratio(ours.messages as f64, octez.messages as f64),
        "maintenance_cycles": ratio(ours.network.maintenance_cycles as f64, octez.network.maintenance_cycles as f64),
        "peak_connections": ratio(ours.network.max_observed_connections as f64, octez.network.max_observed_connections as f64),
    })
}

fn print_one(r: &SimReport, lo: usize, hi: usize) {
    let n = &r.network;
    println!(
        "peerkeeper simulate: {} nodes, policy {:?}, seed {}, {} s virtual",
        n.nodes,
        r.policy,
        n.seed,
        r.virtual_ms / 1000
    );
    let mut rows = n.summary_rows(lo, hi);
    if r.last_start_ms > 0 {
        rows.push((
            "last start".into(),
            format!(
                "{} ms; converged {} after it",
                r.last_start_ms,
                n.converged_at_ms.map_or("never".into(), |c| format!(
                    "{} ms",
                    c.saturating_sub(r.last_start_ms)
                ))
            ),
        ));
    }
    if r.late_joiners > 0 {
        rows.push((
            "late joiners in range".into(),
            format!("{} of {}", r.late_joiners_in_range, r.late_joiners),
        ));
    }
    rows.push((
        "late cycles / node / hour".into(),
        format!(
            "{:.1} (dials {:.1}, swaps {:.1})",
            r.late_cycles_per_node_hour, r.late_dials_per_node_hour, r.late_swaps_per_node_hour
        ),
    ));
    rows.push((
        "events / messages".into(),
        format!("{} / {}", r.events, r.messages),
    ));
    if let Some(why) = &r.short_reason {
        rows.push(("short".into(), why.clone()));
    }
    if let Some(e) = &r.epochs {
        epoch_rows(e, &mut rows);
    }
    if let Some(e) = &r.eclipse {
        eclipse_rows(e, &mut rows);
    }
    if let Some(k) = &r.kinds {
        if k.ledger_relays > 0 {
            rows.push(("ledger relays".into(), k.ledger_relays.to_string()));
        }
        for f in &k.kinds {
            rows.push((
                format!("{} connections", f.kind),
                format!(
                    "floor {}: kept by {} of {} nodes ({:.1} %); min {} / median {} / max {}",
                    f.floor,
                    f.nodes_at_floor,
                    r.alive,
                    f.fraction_at_floor * 100.0,
                    f.connections.min,
                    f.connections.median,
                    f.connections.max
                ),
            ));
        }
    }
    if let Some(f) = &r.feedback {
        rows.push((
            "useless peers".into(),
            format!(
                "{} nodes; {} of {} connections of the others ({:.1} %) go to them, feedback {}",
                f.useless_nodes,
                f.to_useless,
                f.connections,
                f.useless_share * 100.0,
                if f.enabled { "on" } else { "off" }
            ),
        ));
        rows.push((
            "feedback".into(),
            format!(
                "{} useful and {} slow reports; {} disconnects, {} bans by score",
                f.useful_reports, f.slow_reports, f.disconnects, f.bans
            ),
        ));
    }
    if let Some(p) = &r.partition {
        rows.push((
            "partition".into(),
            format!(
                "{} components at the heal; one component {} after it; {:.1} exploration dials per node per hour ({:.1} swaps, {:.1} connections replaced)",
                p.components_before_heal,
                p.merged_after_ms
                    .map_or("never".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
                p.explorations_per_node_hour,
                p.exploration_swaps_per_node_hour,
                p.swapped_per_node_hour
            ),
        ));
    }
    rows.push(("event log hash".into(), r.event_log_hash.clone()));
    print_rows(&rows);
}

fn print_compare(a: &SimReport, b: &SimReport) {
    let row = |name: &str, x: f64, y: f64, fmt: &dyn Fn(f64) -> String| {
        let r = ratio(x, y).map_or("-".into(), |r| format!("{r:.2}"));
        println!("  {name:<26} {:>14} {:>14} {:>8}", fmt(x), fmt(y), r);
    };
    let int = |v: f64| format!("{v:.0}");
    println!(
        "peerkeeper simulate --compare: {} nodes, seed {}, {} s virtual",
        a.network.nodes,
        a.network.seed,
        a.virtual_ms / 1000
    );
    println!(
        "  {:<26} {:>14} {:>14} {:>8}",
        "", "peerkeeper", "octez model", "ratio"
    );
    let conv = |r: &SimReport| r.network.converged_at_ms.map_or(f64::NAN, |v| v as f64);
    let show_ms = |v: f64| {
        if v.is_nan() {
            "never".into()
        } else {
            format!("{v:.0} ms")
        }
    };
    row("convergence time", conv(a), conv(b), &show_ms);
    row(
        "dials",
        a.network.dials.attempted as f64,
        b.network.dials.attempted as f64,
        &int,
    );
    row("messages", a.messages as f64, b.messages as f64, &int);
    row(
        "maintenance cycles",
        a.network.maintenance_cycles as f64,
        b.network.maintenance_cycles as f64,
        &int,
    );
    row(
        "peak connections (a node)",
        a.network.max_observed_connections as f64,
        b.network.max_observed_connections as f64,
        &int,
    );
    row(
        "late cycles/node/hour",
        a.late_cycles_per_node_hour,
        b.late_cycles_per_node_hour,
        &|v| format!("{v:.1}"),
    );
    println!(
        "  {:<26} {:>14} {:>14}",
        "converged at the end", a.network.converged, b.network.converged
    );
    println!(
        "  {:<26} {:>14} {:>14}",
        "components", a.network.components, b.network.components
    );
}
