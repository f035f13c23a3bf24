//! `peerkeeper demo`: N real nodes on 127.0.0.1 ephemeral ports, node 0 the only bootstrap
//! point of all the others; a progress bar while they converge, then a summary (or one
//! JSON object with `--json`). Exit 0 when converged, 1 when not.

use indicatif::{ProgressBar, ProgressStyle};
use peerkeeper::node::demo::{self, DemoOptions};
use peerkeeper::report::{print_rows, NetworkReport};
use std::time::Duration;

/// Arguments of `peerkeeper demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=500))]
    nodes: u64,
    /// Seed of every random choice (peer ids, backoff jitter, trims).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up after this long (e.g. "60s").
    #[arg(long, default_value = "60s", value_parser = crate::cli::duration)]
    timeout: Duration,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `peerkeeper demo`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    let mut opts = DemoOptions::new(args.nodes as usize, args.seed);
    opts.timeout = args.timeout;
    let bounds = opts.config.bounds();
    // Each node needs min_threshold peers: fewer than min_threshold + 1 nodes can never
    // all be in range. Said at once rather than after the timeout.
    if (args.nodes as usize) <= bounds.min_threshold {
        eprintln!(
            "error: --nodes {}: a demo node wants at least {} connections (min_threshold), so the network needs at least {} nodes",
            args.nodes,
            bounds.min_threshold,
            bounds.min_threshold + 1
        );
        return 2;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 2;
        }
    };
    let bar = ProgressBar::new(args.nodes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed:>3} [{bar:40}] {pos}/{len} nodes in range {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "[{}, {}]",
        bounds.min_threshold, bounds.max_threshold
    ));
    let result = runtime.block_on(demo::run(&opts, |p| bar.set_position(p.in_range as u64)));
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the nodes: {e}");
            return 2;
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => {
                // A reader that went away (`| head -1`) is not an error worth a panic.
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "{s}");
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    } else {
        print_table(&report, bounds.min_threshold, bounds.max_threshold);
    }
    if report.converged {
        0
    } else {
        1
    }
}

fn print_table(r: &NetworkReport, lo: usize, hi: usize) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "peerkeeper demo: {} nodes on 127.0.0.1, seed {}",
        r.nodes,
        r.seed
    );
    print_rows(&r.summary_rows(lo, hi));
}
