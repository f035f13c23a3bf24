//! The `peerkeeper` command: `demo` (N real nodes on 127.0.0.1 converging from one
//! bootstrap point), `node` (a real long-running node), `simulate` (the deterministic
//! simulator), `replay` (a recorded trace, decision by decision), `ctl` (a running
//! node's control socket).

mod cli;

use clap::{Parser, Subcommand};

/// Keeps a P2P node's connections healthy.
#[derive(Debug, Parser)]
#[command(name = "peerkeeper", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs N real nodes on 127.0.0.1 that find each other from one bootstrap point.
    Demo(cli::demo::Args),
    /// Runs one real node.
    Node(cli::node::Args),
    /// Runs the deterministic network simulator.
    Simulate(cli::simulate::Args),
    /// Replays a recorded trace and prints each decision with its reason.
    Replay(cli::replay::Args),
    /// Talks to a running node through its control socket (`node --control`).
    Ctl(cli::ctl::Args),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version exit 0; a bad flag exits 2 with clap's message.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // A reader that closes our stdout early (`peerkeeper simulate ... | head -1`): the
    // commands that only print results end quietly at once, as Unix tools do, rather
    // than panic in `println!`. The commands that use sockets (node, demo, ctl) keep
    // SIGPIPE ignored: with its default, a write to a socket its peer closed would kill
    // the process. They end their output quietly instead (a node shuts down cleanly
    // when its --status-json reader goes away, its pool saved).
    #[cfg(unix)]
    if matches!(cli.command, Command::Simulate(_) | Command::Replay(_)) {
        // SAFETY: called before any other thread exists; SIG_DFL is always valid.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli.command {
        Command::Demo(args) => cli::demo::run(args),
        Command::Node(args) => cli::node::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::Ctl(args) => cli::ctl::run(args),
    };
    std::process::exit(code);
}
