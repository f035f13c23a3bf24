//! `peerkeeper simulate` as a user runs it: the JSON keys the issue documents, one seed
//! one output, `--compare` with both reports and the ratios, `--chart` writing an SVG,
//! and bad flags refused with exit code 2. Small networks, so a debug build stays fast.

mod keys;

use keys::NETWORK_REPORT_KEYS;
use serde_json::Value;
use std::process::Command;

fn simulate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run peerkeeper");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The demo's keys plus the simulator's.
fn report_keys() -> impl Iterator<Item = &'static str> {
    NETWORK_REPORT_KEYS.into_iter().chain([
        "policy",
        "virtual_ms",
        "events",
        "messages",
        "event_log_hash",
    ])
}

#[test]
fn json_has_the_network_report_keys_and_one_seed_gives_one_hash() {
    let args = ["--nodes", "80", "--duration", "2m", "--seed", "5", "--json"];
    let (code, stdout, stderr) = simulate(&args);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for k in report_keys() {
        assert!(v.get(k).is_some(), "missing key {k} in {v}");
    }
    assert_eq!(v["nodes"], 80);
    assert_eq!(v["policy"], "peerkeeper");
    assert_eq!(v["virtual_ms"], 120_000);
    assert_eq!(v["converged"], true);
    assert_eq!(v["event_log_hash"].as_str().unwrap().len(), 16);

    let (_, again, _) = simulate(&args);
    let w: Value = serde_json::from_str(again.trim()).unwrap();
    assert_eq!(v["event_log_hash"], w["event_log_hash"]);
    assert_eq!(v["dials"], w["dials"]);
    assert_eq!(v["events"], w["events"]);
}

#[test]
fn compare_json_holds_both_reports_and_the_ratios() {
    let (code, stdout, stderr) = simulate(&[
        "--nodes",
        "60",
        "--duration",
        "90s",
        "--compare",
        "--dial-failure-rate",
        "0.1",
        "--message-loss",
        "0.05",
        "--nat-fraction",
        "0.2",
        "--churn-rate",
        "0.02",
        "--json",
    ]);
    assert!(code == 0 || code == 1, "stderr: {stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["peerkeeper"]["policy"], "peerkeeper");
    assert_eq!(v["octez_model"]["policy"], "octez");
    for k in report_keys() {
        assert!(v["peerkeeper"].get(k).is_some(), "missing {k}");
        assert!(v["octez_model"].get(k).is_some(), "missing {k}");
    }
    for k in [
        "converged_at",
        "dials",
        "messages",
        "maintenance_cycles",
        "peak_connections",
    ] {
        assert!(v["ratios"].get(k).is_some(), "missing ratio {k}");
    }
    let ours = v["peerkeeper"]["dials"]["attempted"].as_f64().unwrap();
    let theirs = v["octez_model"]["dials"]["attempted"].as_f64().unwrap();
    let r = v["ratios"]["dials"].as_f64().unwrap();
    assert!((r - ours / theirs).abs() < 1e-9);
}

#[test]
fn compare_prints_a_side_by_side_table() {
    let (_, stdout, stderr) = simulate(&["--nodes", "50", "--duration", "1m", "--compare"]);
    for row in [
        "convergence time",
        "dials",
        "messages",
        "maintenance cycles",
        "peak connections",
        "octez model",
    ] {
        assert!(stdout.contains(row), "no {row:?} in {stdout}\n{stderr}");
    }
}

#[test]
fn chart_writes_an_svg() {
    let dir = std::env::temp_dir().join(format!("peerkeeper-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chart.svg");
    let (code, _, stderr) = simulate(&[
        "--nodes",
        "50",
        "--duration",
        "1m",
        "--chart",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    assert!(svg.contains("polyline") || svg.contains("path"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["--dial-failure-rate", "1.5"][..],
        &["--message-loss", "-0.1"][..],
        &["--duration", "ten minutes"][..],
        &["--policy", "bitcoin"][..],
        &["--nodes", "1"][..],
        &["--latency-min", "2s", "--latency-max", "1s"][..],
        &["--latency-dist", "gaussian"][..],
    ] {
        let (code, _, stderr) = simulate(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.is_empty());
    }
}
