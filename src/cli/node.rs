//! `peerkeeper node`.

/// Arguments of `peerkeeper node`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `peerkeeper node`; returns the process exit code.
pub fn run(_args: Args) -> i32 {
    eprintln!("peerkeeper node: not built yet");
    2
}
