//! `peerkeeper node` as a user runs it, beyond `tests/cli.rs`: a missing config file exits
//! 2 naming it; a real node starts and stops cleanly (exit 0) on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

#[test]
fn a_missing_config_file_exits_2_and_names_it() {
    let out = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "/nonexistent/peerkeeper.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/peerkeeper.toml"),
        "stderr: {err}"
    );
}

#[cfg(unix)]
#[test]
fn a_node_runs_and_stops_cleanly_on_sigterm() {
    let mut child = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--min",
            "0",
            "--expected",
            "0",
            "--max",
            "4",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait for the node to be up (bounded by the process: a dead child ends the stream).
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("node started"));
    assert!(started, "the node never said it started");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}
