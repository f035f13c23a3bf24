//! `peerkeeper node --key FILE` and `--peer KEY@HOST:PORT`, as a user runs them: the key
//! file is generated on first run with owner-only permissions and loaded thereafter (the
//! same peer id); a bad key file exits 2 naming it; without `--key` every start has its
//! own key; a bootstrap point whose key is not the one named is dropped and counted,
//! the right key connects.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-keys-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running node: its stderr lines on a channel, killed on drop.
struct Proc {
    child: Child,
    lines: Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = peerkeeper()
            .args([
                "node",
                "--listen",
                "127.0.0.1:0",
                "--status-interval",
                "100ms",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        for _ in 0..600 {
            match self.lines.recv() {
                Ok(l) if cond(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("the node ended before {what}"),
            }
        }
        panic!("gave up waiting for {what}");
    }

    /// The `key=value` of the start line.
    fn started(&self) -> (String, String) {
        let l = self.wait_for("node started", |l| l.contains("node started"));
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {l}"))
                .to_string()
        };
        (field("listen="), field("peer_id="))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_key_file_is_generated_owner_only_then_reused() {
    let dir = scratch("reuse");
    let file = dir.join("node.key");
    let f = file.to_str().unwrap();
    let (_, first) = Proc::start(&["--key", f]).started();
    assert_eq!(first.len(), 64, "{first}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    let (_, second) = Proc::start(&["--key", f]).started();
    assert_eq!(first, second, "the same key, the same peer id");
    // Without --key: a new key at every start, even in the same directory.
    let (_, a) = Proc::start(&[]).started();
    let (_, b) = Proc::start(&[]).started();
    assert_ne!(a, b);
    assert_ne!(a, first);
}

#[test]
fn a_bad_key_file_exits_2_naming_it() {
    let dir = scratch("bad");
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
    let dir = scratch("expect");
    let file = dir.join("b.key");
    let b = Proc::start(&["--key", file.to_str().unwrap()]);
    let (b_listen, b_key) = b.started();
    // The wrong key: the dial is dropped and counted, again after each backoff.
    let wrong = format!("{}@{b_listen}", "ab".repeat(32));
    let a = Proc::start(&["--peer", &wrong]);
    a.wait_for("a dial dropped for its key", |l| {
        l.starts_with("status:") && !l.contains(" 0 wrong peer")
    });
    let status = a.wait_for("a status line", |l| l.starts_with("status:"));
    assert!(status.starts_with("status: 0 connections"), "{status}");
    drop(a);
    // The right key: connected.
    let right = format!("{b_key}@{b_listen}");
    let a = Proc::start(&["--peer", &right]);
    let status = a.wait_for("connected to B", |l| l.starts_with("status: 1 connections"));
    assert!(status.contains(" 0 wrong peer"), "{status}");
}
