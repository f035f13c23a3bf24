//! Real `peerkeeper node` processes for the command's tests: started with a listening
//! address chosen by the OS, their log lines read by a thread (so a node never blocks on a
//! full pipe) and awaited line by line, stopped with SIGTERM or killed on drop.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

/// The most log lines awaited for a condition: a minute at `--status-interval 100ms`.
pub const MAX_LINES: usize = 600;

/// The command under test.
pub fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

/// An empty scratch directory for test `name` of file `file`, under Cargo's temporary
/// directory (unique per process).
pub fn scratch(file: &str, name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{file}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `peerkeeper node`, killed on drop if still running.
pub struct NodeProcess {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    seen: std::cell::RefCell<Vec<String>>,
    /// Its start line (`node started listen=... peer_id=...`).
    pub started: String,
}

impl NodeProcess {
    /// Starts `peerkeeper node --listen 127.0.0.1:0 --status-interval 100ms ARGS` and
    /// waits for its start line.
    pub fn start(args: &[&str]) -> NodeProcess {
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
        let mut node = NodeProcess {
            child,
            lines,
            seen: Default::default(),
            started: String::new(),
        };
        node.started = node.wait_for("node started", |l| l.contains("node started"));
        node
    }

    /// The value of `key=` in the start line (`listen`, `peer_id`).
    pub fn field(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.started
            .split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {key} in {}", self.started))
            .to_string()
    }

    /// The address it listens on and its peer id, from the start line.
    pub fn listen_and_id(&self) -> (String, String) {
        (self.listen(), self.field("peer_id"))
    }

    /// The address it listens on.
    pub fn listen(&self) -> String {
        self.field("listen")
    }

    /// The first line that satisfies `cond`, within [`MAX_LINES`] lines (the process ending
    /// first fails the test).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        for _ in 0..MAX_LINES {
            match self.lines.recv() {
                Ok(l) => {
                    self.seen.borrow_mut().push(l.clone());
                    if cond(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("the node ended before {what}"),
            }
        }
        panic!("gave up waiting for {what}");
    }

    /// A line, read already or to come, that satisfies `cond` (for lines whose order with
    /// others is not fixed, such as those a node logs before its start line).
    pub fn find(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let old = self.seen.borrow().iter().find(|l| cond(l)).cloned();
        old.unwrap_or_else(|| self.wait_for(what, cond))
    }

    /// SIGTERM, then the exit code and the last lines.
    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        (status.code(), rest)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
