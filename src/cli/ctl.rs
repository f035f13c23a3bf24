//! `peerkeeper ctl`: talks to a running node's control socket (`peerkeeper node
//! --control PATH`, by default `DIR/control.sock` with `--data-dir DIR`). One request,
//! one answer, printed for a person or, with `--json`, as the node's JSON result on one
//! line. Exit 0 when the node did it, 1 when it answered with an error, 2 for bad
//! arguments or no node at the socket.

use peerkeeper::control::{self, ControlError, Request};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `peerkeeper ctl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's control socket.
    #[arg(long, value_name = "PATH", global = true)]
    control: Option<PathBuf>,
    /// The node's data directory: its control socket is DIR/control.sock.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Print the node's answer as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

/// What to ask the node.
#[derive(Debug, clap::Subcommand)]
enum CtlCommand {
    /// The open connections: peer id, address, direction, kind, since, score, round trip.
    Peers,
    /// The known points, maybe in one state only.
    Points {
        /// connected, dialing, dialable, waiting or banned.
        #[arg(long)]
        state: Option<String>,
        /// At most this many points.
        #[arg(long, default_value_t = control::DEFAULT_POINTS)]
        limit: usize,
    },
    /// The node's status.
    Status,
    /// Runs one maintenance cycle and prints its report.
    Maintain,
    /// Learns a point (as a bootstrap point).
    Add {
        /// IP:PORT.
        point: String,
    },
    /// Bans a point or an IP address (its connections are closed at once).
    Ban {
        /// IP:PORT or IP.
        target: String,
        /// For how long (e.g. 1h, 30m; default: the config's greylist_duration).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Lifts a ban (whatever caused it).
    Unban {
        /// IP:PORT or IP.
        target: String,
    },
    /// Protects a point: its connection is never trimmed.
    Protect {
        /// IP:PORT.
        point: String,
        /// Stop protecting it instead.
        #[arg(long)]
        off: bool,
    },
    /// Trusts a point, maybe with the key it must prove.
    Trust {
        /// [KEY@]IP:PORT.
        point: String,
    },
    /// Switches a trigger on or off: too_few, too_many, new_point, new_peer,
    /// new_connection, idle_timer.
    SetTrigger {
        /// The trigger.
        trigger: String,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// Runs `peerkeeper ctl`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    let Some(path) = args
        .control
        .clone()
        .or_else(|| args.data_dir.as_ref().map(|d| d.join("control.sock")))
    else {
        eprintln!("error: which node? give --control PATH (or --data-dir DIR)");
        return 2;
    };
    let request = match &args.command {
        CtlCommand::Peers => Request::Peers,
        CtlCommand::Points { state, limit } => Request::Points {
            state: state.clone(),
            limit: Some(*limit),
        },
        CtlCommand::Status => Request::Status,
        CtlCommand::Maintain => Request::Maintain,
        CtlCommand::Add { point } => Request::Add {
            point: point.clone(),
        },
        CtlCommand::Ban { target, duration } => Request::Ban {
            target: target.clone(),
            duration: duration.clone(),
        },
        CtlCommand::Unban { target } => Request::Unban {
            target: target.clone(),
        },
        CtlCommand::Protect { point, off } => Request::Protect {
            point: point.clone(),
            on: !off,
        },
        CtlCommand::Trust { point } => Request::Trust {
            point: point.clone(),
        },
        CtlCommand::SetTrigger { trigger, state } => Request::SetTrigger {
            trigger: trigger.clone(),
            on: state == "on",
        },
    };
    let answer = call(&path, &request);
    let result = match answer {
        Ok(v) => v,
        Err(ControlError::Refused(why)) => {
            eprintln!("error: {why}");
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let text = if args.json {
        result.to_string()
    } else {
        human(&args.command, &result)
    };
    let mut out = std::io::stdout().lock();
    // A reader that went away (`| head`) is not an error worth a word.
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    0
}

#[cfg(unix)]
fn call(path: &std::path::Path, request: &Request) -> Result<Value, ControlError> {
    control::call(path, request)
}

#[cfg(not(unix))]
fn call(_path: &std::path::Path, _request: &Request) -> Result<Value, ControlError> {
    Err(ControlError::Refused(
        "the control socket is a Unix domain socket: not on this platform".into(),
    ))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The answer for a person.
fn human(command: &CtlCommand, v: &Value) -> String {
    match command {
        CtlCommand::Peers => {
            let peers = v["peers"].as_array().cloned().unwrap_or_default();
            let mut lines = vec![format!(
                "{:<16}  {:<22}  {:<8}  {:<12}  {:<24}  {:>7}  {:>9}",
                "PEER", "ADDRESS", "DIR", "KIND", "SINCE", "SCORE", "RTT"
            )];
            for p in &peers {
                let score = p["score"]
                    .as_f64()
                    .map_or_else(|| "-".into(), |x| format!("{x:.1}"));
                let rtt = p["rtt_ms"]
                    .as_f64()
                    .map_or_else(|| "-".into(), |x| format!("{x:.1}ms"));
                lines.push(format!(
                    "{:<16}  {:<22}  {:<8}  {:<12}  {:<24}  {:>7}  {:>9}{}",
                    s(&p["short"]),
                    s(&p["point"]),
                    s(&p["direction"]),
                    s(&p["kind"]),
                    s(&p["since"]),
                    score,
                    rtt,
                    if p["protected"] == Value::Bool(true) {
                        "  protected"
                    } else {
                        ""
                    }
                ));
            }
            lines.push(format!("{} connections", peers.len()));
            lines.join("\n")
        }
        CtlCommand::Points { .. } => {
            let points = v["points"].as_array().cloned().unwrap_or_default();
            let mut lines = vec![format!(
                "{:<22}  {:<9}  {:<12}  {:>8}  {}",
                "POINT", "STATE", "KIND", "FAILURES", "UNTIL"
            )];
            for p in &points {
                lines.push(format!(
                    "{:<22}  {:<9}  {:<12}  {:>8}  {}",
                    s(&p["point"]),
                    s(&p["state"]),
                    s(&p["kind"]),
                    s(&p["failures"]),
                    s(&p["until"]),
                ));
            }
            lines.push(format!(
                "{} of {} points shown",
                s(&v["shown"]),
                s(&v["total"])
            ));
            lines.join("\n")
        }
        CtlCommand::Status => format!(
            "{}  peer {} on {}: {} connections ({} out, {} in; range {}..={}), {} dialing, {} known points, {} cycles",
            s(&v["time"]),
            s(&v["peer_id"]),
            s(&v["listen"]),
            s(&v["connections"]),
            s(&v["outbound"]),
            s(&v["inbound"]),
            s(&v["min_threshold"]),
            s(&v["max_threshold"]),
            s(&v["dialing"]),
            s(&v["known_points"]),
            s(&v["cycles"]),
        ),
        CtlCommand::Maintain => format!(
            "cycle {}: {} -> {} connections, {} dialed ({} succeeded, {} failed), {} closed; {}",
            s(&v["cycle"]),
            s(&v["connections_before"]),
            s(&v["connections_after"]),
            s(&v["dialed"]),
            s(&v["succeeded"]),
            s(&v["failed"]),
            s(&v["closed"]),
            s(&v["outcome"]),
        ),
        CtlCommand::Add { .. } => format!("added {}", s(&v["point"])),
        CtlCommand::Ban { .. } => format!("banned {} until {}", s(&v["target"]), s(&v["until"])),
        CtlCommand::Unban { .. } => {
            if v["was_banned"] == Value::Bool(true) {
                format!("unbanned {}", s(&v["target"]))
            } else {
                format!("{} was not banned", s(&v["target"]))
            }
        }
        CtlCommand::Protect { .. } => {
            if v["protected"] == Value::Bool(true) {
                format!("{} is protected", s(&v["point"]))
            } else {
                format!("{} is no longer protected", s(&v["point"]))
            }
        }
        CtlCommand::Trust { .. } => match &v["expected_peer"] {
            Value::String(k) => format!("trusted {} (it must prove {k})", s(&v["point"])),
            _ => format!("trusted {}", s(&v["point"])),
        },
        CtlCommand::SetTrigger { .. } => format!(
            "trigger {} switched {}",
            s(&v["trigger"]),
            if v["on"] == Value::Bool(true) {
                "on"
            } else {
                "off"
            }
        ),
    }
}
