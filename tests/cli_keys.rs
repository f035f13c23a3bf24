//! `peerkeeper node --key FILE` and `--peer KEY@HOST:PORT`, as a user runs them: the key
//! file is generated on first run with owner-only permissions and loaded thereafter (the
//! same peer id); a bad key file exits 2 naming it; without `--key` every start has its
//! own key; a bootstrap point whose key is not the one named is dropped and counted,
//! the right key connects.

mod proc;

use proc::{peerkeeper, NodeProcess};

#[test]
fn a_key_file_is_generated_owner_only_then_reused() {
    let dir = proc::scratch("cli-keys", "reuse");
    let file = dir.join("node.key");
    let f = file.to_str().unwrap();
    let (_, first) = NodeProcess::start(&["--key", f]).listen_and_id();
    assert_eq!(first.len(), 64, "{first}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    let (_, second) = NodeProcess::start(&["--key", f]).listen_and_id();
    assert_eq!(first, second, "the same key, the same peer id");
    // Without --key: a new key at every start, even in the same directory.
    let (_, a) = NodeProcess::start(&[]).listen_and_id();
    let (_, b) = NodeProcess::start(&[]).listen_and_id();
    assert_ne!(a, b);
    assert_ne!(a, first);
}

#[test]
fn a_bad_key_file_exits_2_naming_it() {
    let dir = proc::scratch("cli-keys", "bad");
    let file = dir.join("broken.key");
    std::fs::write(&file, "this is not a key\n").unwrap();
    let out = peerkeeper()
        .args(["node", "--listen", "127.0.0.1:0", "--key"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.key"), "{err}");
    assert!(err.contains("not a key"), "{err}");
    // A malformed KEY@ in --peer: refused by the argument parser, naming the rule.
    let out = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            "abcd@127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("64 hex characters"), "{err}");
}

#[test]
fn a_peer_named_by_key_connects_only_with_that_key() {
    let dir = proc::scratch("cli-keys", "expect");
    let file = dir.join("b.key");
    let b = NodeProcess::start(&["--key", file.to_str().unwrap()]);
    let (b_listen, b_key) = b.listen_and_id();
    // The wrong key: the dial is dropped and counted, again after each backoff.
    let wrong = format!("{}@{b_listen}", "ab".repeat(32));
    let a = NodeProcess::start(&["--peer", &wrong]);
    a.wait_for("a dial dropped for its key", |l| {
        l.starts_with("status:") && !l.contains(" 0 wrong peer")
    });
    let status = a.wait_for("a status line", |l| l.starts_with("status:"));
    assert!(status.starts_with("status: 0 connections"), "{status}");
    drop(a);
    // The right key: connected.
    let right = format!("{b_key}@{b_listen}");
    let a = NodeProcess::start(&["--peer", &right]);
    let status = a.wait_for("connected to B", |l| l.starts_with("status: 1 connections"));
    assert!(status.contains(" 0 wrong peer"), "{status}");
}
