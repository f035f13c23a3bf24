//! `peerkeeper demo`.

/// Arguments of `peerkeeper demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `peerkeeper demo`; returns the process exit code.
pub fn run(_args: Args) -> i32 {
    eprintln!("peerkeeper demo: not built yet");
    2
}
