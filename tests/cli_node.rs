//! `peerkeeper node` as a user runs it: a bad config or flag exits 2 naming the field; a
//! real node starts, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peerkeeper-cli-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_invalid_config_exits_2_and_names_the_field() {
    let path = temp_config(
        "bad.toml",
        "min_connections = 20\nexpected_connections = 10\nmax_connections = 30\n",
    );
    let out = peerkeeper()
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("min_connections"), "stderr: {err}");
}

#[test]
fn an_unknown_config_key_exits_2_and_names_it() {
    let path = temp_config("unknown.toml", "max_conections = 30\n");
    let out = peerkeeper()
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_conections"), "stderr: {err}");
}

#[test]
fn flags_that_break_the_bounds_exit_2() {
    let out = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--min",
            "9",
            "--expected",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_connections"));
    let out = peerkeeper()
        .args(["node", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
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
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert!(first.contains("listening on 127.0.0.1:"), "{first}");
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
