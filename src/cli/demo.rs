//! `peerkeeper demo`: N real nodes on 127.0.0.1 converging from one bootstrap point, with
//! a live progress bar, then a summary table (or one JSON object with `--json`).

use peerkeeper::net::demo::{self, DemoOptions};
use std::time::Duration;

/// Arguments of `peerkeeper demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes (node 0 is the only bootstrap point of the others).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=500))]
    nodes: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Give up after this long (e.g. "45s").
    #[arg(long, default_value = "45s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print exactly one JSON object (the report) on stdout, nothing else.
    #[arg(long)]
    json: bool,
    /// min_connections of every node.
    #[arg(long, default_value_t = 4)]
    min: usize,
    /// expected_connections of every node.
    #[arg(long, default_value_t = 8)]
    expected: usize,
    /// max_connections of every node.
    #[arg(long, default_value_t = 12)]
    max: usize,
}

/// Runs `peerkeeper demo`; returns the process exit code (0 converged, 1 not, 2 bad
/// arguments).
pub fn run(args: Args) -> i32 {
    super::node::init_logs("warn");
    let config = demo::demo_config(args.min, args.expected, args.max);
    if let Err(e) = config.validate() {
        eprintln!("peerkeeper demo: {e}");
        return 2;
    }
    let opts = DemoOptions {
        nodes: args.nodes as usize,
        seed: args.seed,
        timeout: args.timeout,
        config,
        ..DemoOptions::default()
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peerkeeper demo: cannot start the runtime: {e}");
            return 1;
        }
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(opts.nodes as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} nodes in range  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let bounds = opts.config.bounds();
    let result = rt.block_on(demo::run(&opts, |p| {
        bar.set_position(p.snapshot.in_range as u64);
        let c = &p.snapshot.connections;
        bar.set_message(format!(
            "connections {}..{}  components {}",
            c.iter().min().unwrap_or(&0),
            c.iter().max().unwrap_or(&0),
            p.snapshot.components
        ));
    }));
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peerkeeper demo: {e}");
            return 1;
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("peerkeeper demo: {e}");
                return 1;
            }
        }
    } else {
        let at = report.converged_at_ms.map_or("never".to_string(), |ms| {
            format!("{:.2} s", ms as f64 / 1000.0)
        });
        let rows = [
            ("nodes", report.nodes.to_string()),
            ("seed", report.seed.to_string()),
            (
                "target range",
                format!("[{}, {}]", bounds.min_threshold, bounds.max_threshold),
            ),
            ("converged", report.converged.to_string()),
            ("converged at", at),
            (
                "connections min/median/max",
                format!(
                    "{}/{}/{}",
                    report.connections.min, report.connections.median, report.connections.max
                ),
            ),
            ("components", report.components.to_string()),
            (
                "max observed connections",
                report.max_observed_connections.to_string(),
            ),
            (
                "dials attempted/succeeded/failed",
                format!(
                    "{}/{}/{}",
                    report.dials.attempted, report.dials.succeeded, report.dials.failed
                ),
            ),
            (
                "peer-sharing requests/points",
                format!(
                    "{}/{}",
                    report.peer_sharing.requests, report.peer_sharing.points_received
                ),
            ),
            ("maintenance cycles", report.maintenance_cycles.to_string()),
            ("wall time", format!("{} ms", report.wall_ms)),
        ];
        for (k, v) in rows {
            println!("{k:<34} {v}");
        }
    }
    if report.converged {
        0
    } else {
        1
    }
}
