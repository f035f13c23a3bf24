//! `peerkeeper simulate`.

/// Arguments of `peerkeeper simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `peerkeeper simulate`; returns the process exit code.
pub fn run(_args: Args) -> i32 {
    eprintln!("peerkeeper simulate: not built yet");
    2
}
