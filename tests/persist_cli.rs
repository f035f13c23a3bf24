//! `peerkeeper node --data-dir DIR` as a user runs it: a node killed with SIGKILL
//! (`kill -9`) after it connected and saved, restarted without `--peer`, reconnects from
//! what it saved (its anchor, dialed first), with the same key; a corrupted pool file
//! gives a warning, is moved aside, and the node still starts and connects.

mod proc;

use proc::NodeProcess;

/// Starts B with `--data-dir d` and `args` (its `--peer` is A), waits until it connected
/// to A and saved A as its anchor, kills it with `kill -9` (no shutdown save, no goodbye:
/// what is on disk is what the last save wrote), and restarts it from `--data-dir`
/// alone, which must restore the anchor and lead it back to A. Returns B's peer ids
/// before and after.
fn kill9_then_restart(a: &NodeProcess, d: &str, args: &[&str]) -> (String, String) {
    let (a_listen, _) = a.listen_and_id();
    let mut b = NodeProcess::start(&[&["--data-dir", d, "--peer", &a_listen], args].concat());
    let (_, b_id) = b.listen_and_id();
    b.wait_for("B connected to A", |l| {
        l.starts_with("status: 1 connections")
    });
    b.wait_for("a save with A as anchor", |l| {
        l.contains("saved the pool") && l.contains("anchors=1")
    });
    a.wait_for("A saw B come", |l| l.starts_with("status: 1 connections"));
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    a.wait_for("A saw B go", |l| l.starts_with("status: 0 connections"));

    // Restarted without --peer: only what it saved can lead it back to A.
    let b = NodeProcess::start(&["--data-dir", d]);
    let restored = b.find("the pool restored", |l| {
        l.contains("restored the saved pool")
    });
    assert!(restored.contains("anchors=1"), "{restored}");
    let (_, b_id2) = b.listen_and_id();
    b.wait_for("B reconnected to A", |l| {
        l.starts_with("status: 1 connections")
    });
    (b_id, b_id2)
}

/// Issue 18: with the default save interval (5 minutes), a node killed with `kill -9`
/// seconds after its first connection has saved it anyway (a save soon after the first
/// connections and a new anchor, debounced), and reconnects from `--data-dir` alone.
#[test]
fn a_node_killed_seconds_after_its_first_connection_reconnects_from_its_data_dir() {
    let dir = proc::scratch("persist-cli", "kill9-early");
    let a = NodeProcess::start(&[]);
    kill9_then_restart(&a, dir.to_str().unwrap(), &[]);
}

#[test]
fn a_node_killed_with_sigkill_reconnects_from_its_data_dir_without_peer() {
    let dir = proc::scratch("persist-cli", "kill9");
    let a = NodeProcess::start(&[]);
    let (a_listen, _) = a.listen_and_id();
    let (b_id, b_id2) = kill9_then_restart(&a, dir.to_str().unwrap(), &["--save-interval", "1s"]);
    assert_eq!(b_id, b_id2, "the key from DIR/node.key: the same peer id");
    // The anchors were consumed at load: the file on disk no longer names them.
    let bytes = std::fs::read(dir.join("pool.dat")).unwrap();
    let (snap, _) = peerkeeper::pool::Snapshot::decode(&bytes).unwrap();
    assert!(snap.anchors.is_empty(), "{:?}", snap.anchors);
    assert!(snap.points.iter().any(|p| p.addr.to_string() == a_listen));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        // The scratch dir existed already; a created one is 0700 (see the next test).
        assert!(mode & 0o700 == 0o700);
    }
}

#[test]
fn a_corrupted_pool_file_gives_a_warning_and_the_node_still_starts() {
    let base = proc::scratch("persist-cli", "corrupt");
    let dir = base.join("data");
    let d = dir.to_str().unwrap();
    let a = NodeProcess::start(&[]);
    let (a_listen, _) = a.listen_and_id();
    // A first run makes a valid file (saved at shutdown... here at the first interval).
    let b = NodeProcess::start(&[
        "--data-dir",
        d,
        "--save-interval",
        "1s",
        "--peer",
        &a_listen,
    ]);
    b.listen_and_id();
    b.wait_for("a save", |l| {
        l.contains("saved the pool") && l.contains("anchors=1")
    });
    drop(b);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data dir is created owner-only");
    }
    // One flipped bit in the middle of the file.
    let file = dir.join("pool.dat");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();

    let b = NodeProcess::start(&["--data-dir", d, "--peer", &a_listen]);
    let warning = b.find("a warning", |l| l.contains("the saved pool is unusable"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("checksum"), "{warning}");
    assert!(warning.contains("lost"), "{warning}");
    b.listen_and_id();
    b.wait_for("connected all the same", |l| {
        l.starts_with("status: 1 connections")
    });
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pool.dat.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside for a post-mortem");
}
