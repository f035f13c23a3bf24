//! Operability of the command (issue 18, part 6): a demo that can never reach its range
//! is refused at once; `simulate --chart` checks its path before the run; `--compare
//! --chart` draws both policies, and the threshold lines are labelled.

mod proc;

use proc::{peerkeeper, scratch};

#[test]
fn a_demo_too_small_for_its_range_is_refused_at_once() {
    let out = peerkeeper()
        .args(["demo", "--nodes", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nodes 3") && err.contains("min_threshold"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn an_unwritable_chart_is_refused_before_the_run() {
    let dir = scratch("cli_ops", "chart");
    let path = dir.join("no-such-dir").join("chart.svg");
    // A run that would take long: refused before it starts, with nothing on stdout.
    let out = peerkeeper()
        .args([
            "simulate",
            "--nodes",
            "100000",
            "--duration",
            "24h",
            "--json",
            "--chart",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the chart") && err.contains("chart.svg"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_compare_chart_draws_both_policies_with_labelled_thresholds() {
    let dir = scratch("cli_ops", "compare");
    let path = dir.join("compare.svg");
    let out = peerkeeper()
        .args([
            "simulate",
            "--nodes",
            "60",
            "--duration",
            "3m",
            "--seed",
            "2",
            "--compare",
            "--chart",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    for label in [
        "peerkeeper min",
        "peerkeeper median",
        "peerkeeper max",
        "octez min",
        "octez median",
        "octez max",
        "peerkeeper pool",
        "octez pool",
        "min_threshold = 23",
        "max_threshold = 84",
    ] {
        assert!(svg.contains(label), "{label} missing from the chart");
    }
}

/// The demo runs real nodes on sockets in its own process: SIGPIPE stays ignored there (a
/// write to a socket its peer closed is an error, not the end of the process). Restoring
/// SIGPIPE's default for every command killed the README's quick start (exit 141, no
/// output) whenever a node wrote to a connection its peer had just closed.
#[cfg(unix)]
#[test]
fn the_demo_is_not_killed_by_a_peer_closing_its_socket() {
    use std::os::unix::process::ExitStatusExt;
    for seed in ["1", "2", "3"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
            .args(["demo", "--nodes", "20", "--seed", seed])
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), None, "seed {seed}: {:?}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("peerkeeper demo: 20 nodes"), "{stdout}");
    }
}
