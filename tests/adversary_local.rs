//! Local inputs that crashed, hung or exhausted a node (issue 17), on the real command:
//! each is refused at once with exit 2 and a message naming the field or the file and the
//! OS's reason, or, for a saved pool that cannot be read, the node runs, stops on SIGTERM,
//! and leaves the file as it was. Never a panic.

mod proc;

use proc::{peerkeeper, NodeProcess};

/// Runs `peerkeeper ARGS`, which must exit 2 at once with `needle` in its error.
fn refused(args: &[&str], needle: &str) {
    let out = peerkeeper()
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: no {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn values_that_crashed_or_spun_a_node_exit_2_naming_the_field() {
    let dir = proc::scratch("adversary-local", "values");
    let big = dir.join("big.toml");
    std::fs::write(&big, "max_incoming_connections = 2305843009213693952\n").unwrap();
    refused(
        &["node", "--config", big.to_str().unwrap()],
        "max_incoming_connections",
    );
    let spin = dir.join("spin.toml");
    std::fs::write(&spin, "maintenance_idle_time = \"1ns\"\n").unwrap();
    refused(
        &["node", "--config", spin.to_str().unwrap()],
        "maintenance_idle_time",
    );
    let data = dir.join("data");
    refused(
        &[
            "node",
            "--data-dir",
            data.to_str().unwrap(),
            "--save-interval",
            "18446744073709551615s",
        ],
        "--save-interval",
    );
    assert!(!data.exists(), "nothing touched");
    refused(&["node", "--status-interval", "1ns"], "--status-interval");
    refused(
        &["simulate", "--stagger", "18446744073709551615s"],
        "--stagger",
    );
}

#[test]
fn devices_fifos_and_directories_are_refused_as_key_config_and_asmap() {
    let dir = proc::scratch("adversary-local", "files");
    refused(
        &["node", "--key", "/dev/zero"],
        "not a regular file (a device)",
    );
    refused(
        &["node", "--config", "/dev/zero"],
        "not a regular file (a device)",
    );
    let asmap = dir.join("asmap.toml");
    std::fs::write(&asmap, "[defences]\nasmap = \"/dev/zero\"\n").unwrap();
    refused(
        &["node", "--config", asmap.to_str().unwrap()],
        "not a regular file (a device)",
    );
    refused(
        &["node", "--key", dir.to_str().unwrap()],
        "not a regular file (a directory)",
    );
    let fifo = dir.join("config.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        &["node", "--config", fifo.to_str().unwrap()],
        "not a regular file (a FIFO)",
    );
    // A missing key file names the OS's reason when its directory does not exist either.
    refused(
        &[
            "node",
            "--key",
            dir.join("no/such/dir/node.key").to_str().unwrap(),
        ],
        "No such file or directory",
    );
}

#[test]
fn a_pool_file_that_cannot_be_read_is_left_in_place_and_the_node_still_runs() {
    for kind in ["fifo", "directory"] {
        let dir = proc::scratch("adversary-local", kind);
        let pool = dir.join("pool.dat");
        if kind == "fifo" {
            assert!(std::process::Command::new("mkfifo")
                .arg(&pool)
                .status()
                .unwrap()
                .success());
        } else {
            std::fs::create_dir(&pool).unwrap();
        }
        let node = NodeProcess::start(&["--data-dir", dir.to_str().unwrap()]);
        let warning = node.find("a warning", |l| l.contains("cannot read the saved pool"));
        assert!(warning.contains("not a regular file"), "{warning}");
        let (code, rest) = node.stop();
        assert_eq!(code, Some(0), "{kind}: stops on SIGTERM: {rest:?}");
        assert!(
            rest.iter().all(|l| !l.contains("panicked")),
            "{kind}: {rest:?}"
        );
        let meta = std::fs::symlink_metadata(&pool).unwrap();
        assert!(!meta.is_file(), "{kind}: left in place, not overwritten");
    }
}
