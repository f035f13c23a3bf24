//! The subcommands of the `peerkeeper` command, one file each. The command is thin:
//! argument parsing and output; the work is the library's.

pub mod ctl;
pub mod demo;
pub mod node;
pub mod replay;
pub mod simulate;

/// The connection targets both `node` and `simulate` take, over the config file's.
#[derive(Debug, clap::Args)]
pub struct Targets {
    /// Overrides `min_connections` (thresholds follow octez's rule).
    #[arg(long)]
    min: Option<usize>,
    /// Overrides `expected_connections`.
    #[arg(long)]
    expected: Option<usize>,
    /// Overrides `max_connections`.
    #[arg(long)]
    max: Option<usize>,
}

impl Targets {
    /// Applies the given targets to `config` (validate it afterwards).
    pub fn apply(&self, config: &mut peerkeeper::Config) {
        if let Some(v) = self.min {
            config.min_connections = v;
        }
        if let Some(v) = self.expected {
            config.expected_connections = v;
        }
        if let Some(v) = self.max {
            config.max_connections = v;
        }
    }
}

/// Parses a duration flag (humantime: "500ms", "5m", "1h 30m"), at most
/// [`peerkeeper::config::MAX_DURATION`]: a longer one is a mistake, and could overflow a
/// clock it is added to.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > peerkeeper::config::MAX_DURATION {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(peerkeeper::config::MAX_DURATION)
        ));
    }
    Ok(d)
}
