//! `peerkeeper simulate` as a user runs it: the JSON keys the issue documents (dial
//! outcomes that add up), one seed one output, `--compare` with both reports and the
//! ratios, `--chart` writing an SVG, join schedules (`--stagger`, `--late-joiners`,
//! `--late-at`), `--bootstrap`, `--config` and `--policy`, and bad flags or config files
//! refused with exit code 2. Small networks, so a debug build stays fast.

mod keys;

use keys::{check_network_report, SIM_REPORT_KEYS};
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

/// The demo's keys (dial outcomes adding up) plus the simulator's.
fn check_report(v: &Value) {
    check_network_report(v);
    for k in SIM_REPORT_KEYS {
        assert!(v.get(k).is_some(), "missing key {k} in {v}");
    }
}

/// Writes a config file (in a directory of its own: `chart_writes_an_svg` removes its
/// directory while other tests run).
fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("peerkeeper-sim-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

#[test]
fn json_has_the_network_report_keys_and_one_seed_gives_one_hash() {
    let args = ["--nodes", "80", "--duration", "2m", "--seed", "5", "--json"];
    let (code, stdout, stderr) = simulate(&args);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v = json(&stdout);
    check_report(&v);
    assert_eq!(v["nodes"], 80);
    assert_eq!(v["policy"], "peerkeeper");
    assert_eq!(v["virtual_ms"], 120_000);
    assert_eq!(v["converged"], true);
    assert_eq!(v["components"], 1);
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
    let v = json(&stdout);
    // Both policies ran in this one program, on the same seed and network.
    assert_eq!(v["peerkeeper"]["policy"], "peerkeeper");
    assert_eq!(v["octez_model"]["policy"], "octez");
    check_report(&v["peerkeeper"]);
    check_report(&v["octez_model"]);
    assert_eq!(v["peerkeeper"]["seed"], v["octez_model"]["seed"]);
    assert_eq!(v["peerkeeper"]["nodes"], v["octez_model"]["nodes"]);
    assert_ne!(
        v["peerkeeper"]["event_log_hash"],
        v["octez_model"]["event_log_hash"]
    );
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
        &["--nodes", "10", "--bootstrap", "0"][..],
        &["--nodes", "10", "--bootstrap", "11"][..],
        &["--stagger", "soon"][..],
        &["--late-at", "later"][..],
        &["--late-joiners", "-3"][..],
        &["--min", "9", "--max", "3"][..],
    ] {
        let (code, _, stderr) = simulate(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.is_empty());
    }
}

#[test]
fn the_issue_stagger_command_converges_into_one_component() {
    // `simulate --stagger 1.5s --nodes 10 --min 2 --expected 4 --max 6`: round 1 left the
    // last nodes at 0 connections for ever.
    let (code, stdout, stderr) = simulate(&[
        "--stagger",
        "1.5s",
        "--nodes",
        "10",
        "--min",
        "2",
        "--expected",
        "4",
        "--max",
        "6",
        "--duration",
        "1m",
        "--json",
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v = json(&stdout);
    check_report(&v);
    assert_eq!(v["converged"], true, "{v}");
    assert_eq!(v["components"], 1);
    assert_eq!(v["short_nodes"], 0);
    assert!(v["connections"]["min"].as_u64().unwrap() >= 2);
    assert!(v["connections"]["max"].as_u64().unwrap() <= 6);
}

#[test]
fn late_joiners_are_reported_in_range() {
    let (code, stdout, stderr) = simulate(&[
        "--nodes",
        "40",
        "--min",
        "2",
        "--expected",
        "4",
        "--max",
        "6",
        "--bootstrap",
        "2",
        "--late-joiners",
        "8",
        "--late-at",
        "40s",
        "--duration",
        "80s",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("late joiners in range"))
        .unwrap_or_else(|| panic!("no late joiners row in {stdout}"));
    assert!(row.trim_end().ends_with("8 of 8"), "{row}");
    assert!(stdout.contains("48 nodes"), "{stdout}");
    // The JSON says the same, and counts the late joiners among the nodes.
    let (_, stdout, _) = simulate(&[
        "--nodes",
        "40",
        "--min",
        "2",
        "--expected",
        "4",
        "--max",
        "6",
        "--bootstrap",
        "2",
        "--late-joiners",
        "8",
        "--late-at",
        "40s",
        "--duration",
        "80s",
        "--json",
    ]);
    let v = json(&stdout);
    check_report(&v);
    assert_eq!(v["nodes"], 48);
    assert_eq!(v["late_joiners"], 8);
    assert_eq!(v["late_joiners_in_range"], 8);
    assert_eq!(v["converged"], true);
    // Converged only once the late joiners were in: not before they joined.
    assert!(v["converged_at_ms"].as_u64().unwrap() >= 40_000, "{v}");
}

#[test]
fn config_file_and_policy_are_the_nodes_and_flags_override_the_file() {
    let path = write(
        "tight.toml",
        "min_connections = 2\nexpected_connections = 4\nmax_connections = 6\nmake_room_interval = \"none\"\n",
    );
    let (code, stdout, stderr) = simulate(&[
        "--nodes",
        "30",
        "--duration",
        "1m",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    // The range is the file's: thresholds 2 and 6.
    assert!(stdout.contains("all in [2, 6]"), "{stdout}");
    // A flag overrides the file (max 9: thresholds 2 and 8), and --policy its policy.
    let (code, stdout, stderr) = simulate(&[
        "--nodes",
        "30",
        "--duration",
        "1m",
        "--config",
        path.to_str().unwrap(),
        "--max",
        "9",
        "--policy",
        "octez",
    ]);
    assert!(code == 0 || code == 1, "stderr: {stderr}");
    assert!(stdout.contains("all in [2, 8]"), "{stdout}");
    assert!(stdout.contains("policy Octez"), "{stdout}");
}

#[test]
fn a_bad_config_file_exits_2_naming_the_field() {
    for (name, text, field) in [
        (
            "order.toml",
            "min_connections = 20\nexpected_connections = 10\n",
            "min_connections",
        ),
        ("unknown.toml", "max_conections = 3\n", "max_conections"),
        (
            "room.toml",
            "make_room_interval = \"0s\"\n",
            "make_room_interval",
        ),
        ("policy.toml", "policy = \"bitcoin\"\n", "policy"),
    ] {
        let path = write(name, text);
        let (code, stdout, stderr) =
            simulate(&["--nodes", "10", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(field), "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: nothing simulated, got {stdout}");
    }
    let (code, _, stderr) = simulate(&["--nodes", "10", "--config", "/nonexistent/sim.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/sim.toml"), "{stderr}");
}

#[test]
fn the_epoch_scenario_reports_its_figures_and_a_ledger_its_floors() {
    let args = [
        "--nodes",
        "60",
        "--validators",
        "10",
        "--epoch",
        "30s",
        "--overwrite",
        "2",
        "--kept-sets",
        "1",
        "--duration",
        "95s",
        "--json",
    ];
    let (code, stdout, stderr) = simulate(&args);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v = json(&stdout);
    check_report(&v);
    let e = &v["epochs"];
    assert_eq!(e["validators"], 10);
    assert_eq!(e["epochs"].as_array().unwrap().len(), 3, "{e}");
    assert_eq!(e["incomplete_epochs"], 0);
    assert_eq!(e["impersonations_admitted"], 0);
    assert!(e["impersonation_attempts"].as_u64().unwrap() > 0);
    for k in ["mesh", "dropped", "overwrite"] {
        assert!(e[k]["median_ms"].is_u64(), "{k}: {e}");
    }
    // Text: the summary rows.
    let (code, text, _) = simulate(&args[..args.len() - 1]);
    assert_eq!(code, 0);
    assert!(text.contains("new set fully connected"), "{text}");
    assert!(text.contains("impersonations admitted      0 of"), "{text}");
    // Runs without the scenario have no epochs key.
    let (_, plain, _) = simulate(&["--nodes", "20", "--duration", "30s", "--json"]);
    assert!(json(&plain).get("epochs").is_none());
    // A ledger and a floor.
    let config = write("ext.toml", "[targets.external]\nfloor = 2\n");
    let (code, stdout, stderr) = simulate(&[
        "--nodes",
        "60",
        "--ledger",
        "20",
        "--duration",
        "2m",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let k = &json(&stdout)["kinds"];
    assert_eq!(k["ledger_relays"], 20);
    assert_eq!(k["kinds"][0]["kind"], "external");
    assert_eq!(k["kinds"][0]["floor"], 2);
    // Bad scenario flags exit 2 and say which.
    for (bad, flag) in [
        (&["--nodes", "20", "--validators", "30"][..], "--validators"),
        (
            &["--nodes", "20", "--validators", "10", "--overwrite", "11"][..],
            "--overwrite",
        ),
        (&["--nodes", "20", "--epoch", "1m"][..], "--validators"),
        (&["--nodes", "20", "--ledger", "21"][..], "--ledger"),
    ] {
        let (code, _, stderr) = simulate(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(stderr.contains(flag), "{bad:?}: {stderr}");
    }
}
