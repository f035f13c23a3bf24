//! The command: bad config files and flags exit 2 naming the problem; the demo prints one
//! JSON object with the documented keys (dial outcomes that add up to the attempts, the
//! dropped points by reason) and exits 0 when it converges.

mod keys;

use keys::check_network_report;
use std::process::Command;

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peerkeeper-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn node_with_an_invalid_config_exits_2_naming_the_field() {
    for (name, text, field) in [
        (
            "order.toml",
            "min_connections = 20\nexpected_connections = 10\n",
            "min_connections",
        ),
        ("unknown.toml", "max_conections = 3\n", "max_conections"),
        (
            "zero.toml",
            "max_concurrent_dials = 0\n",
            "max_concurrent_dials",
        ),
        (
            "nested.toml",
            "[reconnection]\nfactor = 0.5\n",
            "reconnection.factor",
        ),
        (
            "room.toml",
            "make_room_interval = \"0s\"\n",
            "make_room_interval",
        ),
        ("policy.toml", "policy = \"bitcoin\"\n", "policy"),
    ] {
        let path = write(name, text);
        let out = peerkeeper()
            .args(["node", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{name}: {err}");
    }
}

#[test]
fn node_flags_that_break_the_rules_exit_2() {
    let out = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--min",
            "9",
            "--max",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connections"));
    let out = peerkeeper()
        .args(["node", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for bad in [
        &["--policy", "bitcoin"][..],
        &["--trusted", "nowhere"][..],
        &["--peer", "127.0.0.1"][..],
        &["--refuse-private", "yes"][..],
    ] {
        let out = peerkeeper()
            .args(["node", "--listen", "127.0.0.1:0"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?}");
    }
}

#[test]
fn demo_json_has_the_documented_keys_and_dials_that_add_up() {
    let out = peerkeeper()
        .args([
            "demo",
            "--nodes",
            "8",
            "--seed",
            "3",
            "--json",
            "--timeout",
            "60s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    // Every key, and the dial outcomes add up to the attempts (round 1 lost 17 of 221).
    let attempted = check_network_report(&v);
    assert!(
        attempted >= 7,
        "seven nodes dial the bootstrap node at least: {stdout}"
    );
    assert_eq!(v["nodes"], 8);
    assert_eq!(
        out.status.code(),
        Some(if v["converged"] == true { 0 } else { 1 })
    );
    assert_eq!(v["converged"], true, "{stdout}");
    assert_eq!(v["components"], 1);
}
