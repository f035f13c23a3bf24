//! `peerkeeper node` as a user runs it, beyond `tests/cli.rs`: a missing or invalid config
//! file exits 2 naming it, before the node binds its port; a real node starts and stops
//! cleanly (exit 0) on SIGTERM; `--trusted`, `--refuse-private` and `--policy` take
//! effect, and the status line shows the dial outcomes (adding up) and the points dropped
//! by reason.

mod proc;

use proc::{peerkeeper, NodeProcess as RunningNode};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The dial outcomes of a status line: `dials: N attempted: a ok, b refused, ...;`.
fn dial_counts(status: &str) -> (u64, Vec<(String, u64)>) {
    let dials = status
        .split("dials: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no dials in {status}"));
    let (attempted, outcomes) = dials.split_once(" attempted: ").expect("N attempted:");
    let outcomes = outcomes
        .split(", ")
        .map(|o| {
            let (n, label) = o.split_once(' ').expect("count and label");
            (label.to_string(), n.parse().expect("a count"))
        })
        .collect();
    (attempted.parse().expect("a count"), outcomes)
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

#[test]
fn an_invalid_config_exits_2_naming_the_field_before_binding() {
    // Hold a port: a node that got as far as binding would say it cannot listen.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("peerkeeper-cli-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "min_connections = 8\nexpected_connections = 4\n").unwrap();
    let out = peerkeeper()
        .args(["node", "--listen", &listen, "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("min_connections"), "stderr: {err}");
    assert!(!err.contains("cannot listen"), "it tried to bind: {err}");
    // The port is indeed taken: with a valid config the node fails at binding.
    let good = dir.join("good.toml");
    std::fs::write(&good, "min_connections = 1\nexpected_connections = 2\n").unwrap();
    let out = peerkeeper()
        .args(["node", "--listen", &listen, "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn trusted_refuse_private_and_policy_take_effect_and_the_status_line_says_so() {
    let targets = ["--min", "1", "--expected", "2", "--max", "4"];
    // A runs the octez model.
    let a = RunningNode::start(&[&targets[..], &["--policy", "octez", "--seed", "1"]].concat());
    assert!(a.started.contains("policy=octez"), "{}", a.started);
    // C joins A; once A holds it, A shares C's (loopback) point.
    let c = RunningNode::start(&[&targets[..], &["--peer", &a.listen(), "--seed", "3"]].concat());
    a.wait_for("A connected to C", |l| {
        l.starts_with("status: 1 connections")
    });
    c.wait_for("C connected to A", |l| {
        l.starts_with("status: 1 connections")
    });
    // B knows A as a trusted point only, refuses private and loopback points from
    // peers, and wants 2 connections: it asks A for points, and drops C's.
    let a_listen = a.listen();
    let b = RunningNode::start(&[
        "--trusted",
        &a_listen,
        "--refuse-private",
        "--min",
        "2",
        "--expected",
        "2",
        "--max",
        "4",
        "--seed",
        "2",
    ]);
    assert!(b.started.contains("policy=peerkeeper"), "{}", b.started);
    let status = b.wait_for("B dropping C's point", |l| {
        l.starts_with("status:") && l.contains("private_refused=")
    });
    assert!(status.starts_with("status: 1 connections"), "{status}");
    assert!(
        status.contains("points dropped: private_refused="),
        "{status}"
    );
    // Every dial outcome is named, and they add up to the attempts.
    let (attempted, outcomes) = dial_counts(&status);
    let labels: Vec<&str> = outcomes.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "ok",
            "refused",
            "timed out",
            "failed",
            "protocol",
            "already connected",
            "myself",
            "dropped",
            "cancelled",
            "wrong peer",
            "offline",
            "in flight"
        ],
        "{status}"
    );
    assert_eq!(
        outcomes.iter().map(|(_, n)| n).sum::<u64>(),
        attempted,
        "{status}"
    );
    assert!(outcomes[0].1 >= 1, "the trusted point was dialed: {status}");
    for (name, node) in [("B", b), ("C", c), ("A", a)] {
        let (code, rest) = node.stop();
        assert_eq!(code, Some(0), "{name}: {rest:?}");
    }
}

/// Names (issue 18): `--peer localhost:PORT` connects, as `--peer 127.0.0.1:PORT` does;
/// a `--dns-seed` name that does not resolve is a warning, and the node runs on.
#[test]
fn a_peer_given_by_host_name_connects_and_an_unknown_name_is_a_warning() {
    let a = RunningNode::start(&[]);
    let port = a.listen().rsplit_once(':').unwrap().1.to_string();
    let b = RunningNode::start(&[
        "--peer",
        &format!("localhost:{port}"),
        "--dns-seed",
        "no-such-host.invalid:9732",
    ]);
    b.find("a warning naming the name that does not resolve", |l| {
        l.contains("cannot resolve the name") && l.contains("no-such-host.invalid")
    });
    b.wait_for("B connected to A by its name", |l| {
        l.starts_with("status: 1 connections")
    });
    for (name, node) in [("B", b), ("A", a)] {
        let (code, rest) = node.stop();
        assert_eq!(code, Some(0), "{name}: {rest:?}");
    }
}
