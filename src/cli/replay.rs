//! `peerkeeper replay FILE`: feeds a recorded trace to a fresh node core and prints each
//! decision with its reason, at its virtual time. Exit 0 when the whole trace (or the
//! part up to `--to`) replayed; 2 when it cannot be read (a missing file, another schema
//! version, a truncated or garbled line, an unknown input: the message names the line).

use peerkeeper::core::{
    clock, parse_clock, Admission, ConnInfo, Decision, DialVerdict, Replay, Reply, Step,
    TraceReader,
};
use peerkeeper::pool::ConnId;
use peerkeeper::Time;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Arguments of `peerkeeper replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The trace: written by `peerkeeper node --trace FILE`, `peerkeeper simulate
    /// --trace-node N --trace FILE`, or the library. "-" reads standard input.
    file: PathBuf,
    /// Print one JSON object per input (and a last one, "end"), instead of text.
    #[arg(long)]
    json: bool,
    /// Only what concerns this peer: a point (IP:PORT), or an address (IP: any port).
    #[arg(long, value_name = "ADDR", value_parser = parse_peer)]
    peer: Option<SocketAddr>,
    /// From this virtual time on: M:SS[.mmm], H:MM:SS[.mmm], a duration (3m12s), or
    /// seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_clock)]
    from: Option<Time>,
    /// Up to this virtual time (included); the replay stops there.
    #[arg(long, value_name = "TIME", value_parser = parse_clock)]
    to: Option<Time>,
}

/// An address alone is a point of port 0: any port matches.
fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    if let Ok(p) = s.parse::<SocketAddr>() {
        return Ok(p);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| format!("{s:?} is neither IP:PORT nor IP"))
}

/// Runs `peerkeeper replay`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    if let (Some(a), Some(b)) = (args.from, args.to) {
        if a > b {
            eprintln!("error: --from {} is after --to {}", clock(a), clock(b));
            return 2;
        }
    }
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", args.file.display());
                return 2;
            }
        }
    };
    let name = args.file.display().to_string();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match replay(&args, &name, input, &mut out) {
        Ok(code) => {
            let _ = out.flush();
            code
        }
        Err(Failure::Trace(msg)) => {
            let _ = out.flush();
            eprintln!("error: {name}: {msg}");
            2
        }
        // A closed pipe (`| head`): the reader has what it wanted.
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(Failure::Output(e)) => {
            eprintln!("error: cannot write the output: {e}");
            2
        }
    }
}

enum Failure {
    Trace(String),
    Output(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Output(e)
    }
}

fn replay(
    args: &Args,
    name: &str,
    input: Box<dyn BufRead>,
    out: &mut impl Write,
) -> Result<i32, Failure> {
    let mut reader = TraceReader::new(input).map_err(|e| Failure::Trace(e.to_string()))?;
    let header = reader.header().clone();
    let mut replay = Replay::new(&header).map_err(|e| Failure::Trace(format!("line 1: {e}")))?;
    if let Some(path) = &header.config.defences.asmap {
        // The recorded node grouped peers with this map: so must the replay.
        let map = peerkeeper::pool::AsMap::load(path).map_err(|e| {
            Failure::Trace(format!(
                "the recorded node used defences.asmap {}: {e}",
                path.display()
            ))
        })?;
        replay.set_asmap(Some(std::sync::Arc::new(map)));
    }
    let config = replay.core().config().clone();
    let b = replay.core().bounds();
    if !args.json {
        writeln!(
            out,
            "replay of {name}: node {}, seed {}, policy {}, range {}..={} (min_target {}, max_target {}), max_connections {}",
            header.peer_id,
            header.seed,
            config.policy,
            b.min_threshold,
            b.max_threshold,
            b.min_target,
            b.max_target,
            config.max_connections
        )?;
    }
    let mut last_line = 1;
    for item in &mut reader {
        let (line, recorded) = item.map_err(|e| Failure::Trace(e.to_string()))?;
        if args.to.is_some_and(|to| recorded.at > to) {
            break;
        }
        last_line = line;
        let step = replay.step(recorded);
        if args.from.is_some_and(|from| step.at < from) {
            continue;
        }
        if let Some(p) = args.peer {
            if !replay.concerns(&step, p) {
                continue;
            }
        }
        let decisions: Vec<&Decision> = step
            .decisions
            .iter()
            .filter(|d| {
                args.peer.is_none_or(|p| {
                    d.point
                        .is_some_and(|q| peerkeeper::core::point_matches(p, q))
                })
            })
            .collect();
        if args.json {
            writeln!(out, "{}", step_json(line, &step, &decisions))?;
        } else {
            print_step(out, line, &step, &decisions)?;
        }
    }
    let core = replay.core();
    let open: Vec<(ConnId, ConnInfo)> = replay
        .connections()
        .iter()
        .filter(|(c, i)| core.point_of(**c) == Some(i.point))
        .map(|(c, i)| (*c, *i))
        .collect();
    let stats = core.stats();
    if args.json {
        let end = json!({
            "end": {
                "line": last_line,
                "at": replay.last_time(),
                "time": clock(replay.last_time()),
                "inputs": replay.inputs(),
                "warnings": replay.warnings(),
                "connections": open.iter().map(|(c, i)| json!({
                    "conn": c, "point": i.point, "peer": i.peer, "direction": i.direction,
                    "since": i.since,
                })).collect::<Vec<_>>(),
                "stats": stats,
            }
        });
        writeln!(out, "{end}")?;
    } else {
        let conns: Vec<String> = open
            .iter()
            .map(|(c, i)| format!("{c} {} ({:?})", i.point, i.direction))
            .collect();
        writeln!(
            out,
            "{} end of the replay (line {last_line}, {} inputs): {} connection{}{}{}",
            clock(replay.last_time()),
            replay.inputs(),
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            if conns.is_empty() { "" } else { ": " },
            conns.join(", ")
        )?;
        writeln!(out, "  dials: {}", stats.dials.summary())?;
        if replay.warnings() > 0 {
            writeln!(
                out,
                "  ! the replay parted from the recording {} time{}: its decisions after that are not the recorded node's",
                replay.warnings(),
                if replay.warnings() == 1 { "" } else { "s" }
            )?;
        }
    }
    Ok(0)
}

fn print_step(
    out: &mut impl Write,
    line: usize,
    step: &Step,
    decisions: &[&Decision],
) -> std::io::Result<()> {
    let t = clock(step.at);
    writeln!(out, "{t} {}  [line {line}]", step.summary)?;
    for w in &step.warnings {
        writeln!(out, "{t}   ! {w}")?;
    }
    for d in decisions {
        writeln!(out, "{t}   {d}")?;
    }
    Ok(())
}

fn reply_json(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Admission(Admission::Accept) => json!({"admission": "accept"}),
        Reply::Admission(Admission::Refuse { reason, points }) => {
            json!({"admission": {"refuse": {"reason": reason, "points": points}}})
        }
        Reply::Verdict(DialVerdict::Keep) => json!({"verdict": "keep"}),
        Reply::Verdict(DialVerdict::Drop(reason)) => json!({"verdict": {"drop": reason}}),
        Reply::Ticket(t) => json!({"ticket": t}),
        _ => serde_json::Value::Null,
    }
}

fn step_json(line: usize, step: &Step, decisions: &[&Decision]) -> serde_json::Value {
    json!({
        "line": line,
        "at": step.at,
        "time": clock(step.at),
        "input": step.input,
        "summary": step.summary,
        "reply": reply_json(&step.reply),
        "connections_before": step.connections_before,
        "connections_after": step.connections_after,
        "decisions": decisions,
        "actions": step.actions,
        "warnings": step.warnings,
    })
}
