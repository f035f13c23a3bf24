//! `examples/gossip.rs` as separate processes on 127.0.0.1, with the default config: a
//! line written to one node's stdin is printed once by every other node
//! (`RECV <author> <line>`), over sealed application channels. One node reaches another
//! through a TCP relay that logs every byte (a port mapping the node was told of with
//! `--external`): the lines cross it, and their text never appears in its log.
//!
//! Waiting is on the processes' own output, with generous deadlines: a correctness check,
//! not a timing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(90);

/// The example's binary, built by `cargo test` beside this test's (target/<profile>/
/// examples/gossip).
fn gossip_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("gossip{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        // `cargo test --test gossip` alone does not build the examples: build it.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--example", "gossip"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && bin.exists(), "{} could not be built", bin.display());
    }
    bin
}

/// What a process said, in order: `(node, line)`, stdout and stderr alike.
enum Said {
    Out(usize, String),
    Err(usize, String),
}

struct Swarm {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    listen: Vec<SocketAddr>,
    rx: mpsc::Receiver<Said>,
    tx: mpsc::Sender<Said>,
    /// Per node: its latest peer count, and the RECV lines it printed.
    peers: BTreeMap<usize, usize>,
    recv: BTreeMap<usize, Vec<String>>,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Swarm {
    fn new() -> Swarm {
        let (tx, rx) = mpsc::channel();
        Swarm {
            children: Vec::new(),
            stdins: Vec::new(),
            listen: Vec::new(),
            rx,
            tx,
            peers: BTreeMap::new(),
            recv: BTreeMap::new(),
        }
    }

    /// Starts node `i` with `args`, and returns once it said where it listens.
    fn start(&mut self, args: &[String]) -> usize {
        let i = self.children.len();
        let mut child = Command::new(gossip_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("GOSSIP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the gossip example runs");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(Said::Out(i, line)).is_err() {
                    break;
                }
            }
        });
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(Said::Err(i, line)).is_err() {
                    break;
                }
            }
        });
        self.stdins.push(child.stdin.take());
        self.children.push(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.next(deadline) {
                Said::Err(j, l) if j == i && l.starts_with("gossip listen=") => {
                    let addr = l["gossip listen=".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    self.listen.push(addr);
                    return i;
                }
                other => self.note(other),
            }
        }
    }

    fn next(&self, deadline: Instant) -> Said {
        let left = deadline.saturating_duration_since(Instant::now());
        self.rx
            .recv_timeout(left)
            .expect("the processes said what was awaited in time")
    }

    fn note(&mut self, said: Said) {
        match said {
            Said::Out(i, l) => {
                if let Some(rest) = l.strip_prefix("RECV ") {
                    self.recv.entry(i).or_default().push(rest.to_string());
                }
            }
            Said::Err(i, l) => {
                if std::env::var_os("GOSSIP_TEST_LOG").is_some() {
                    eprintln!("[{i}] {l}");
                }
                if let Some(n) = l.strip_prefix("peers=") {
                    self.peers.insert(i, n.trim().parse().unwrap());
                }
            }
        }
    }

    /// Waits until `cond` holds on what the processes said.
    fn wait(&mut self, what: &str, cond: impl Fn(&Swarm) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !cond(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(s) => self.note(s),
                Err(_) => panic!(
                    "{what}: not within {DEADLINE:?}; peers {:?}, received {:?}",
                    self.peers,
                    self.recv
                        .iter()
                        .map(|(i, v)| (*i, v.len()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    fn write(&mut self, i: usize, line: &str) {
        let stdin = self.stdins[i].as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

/// `n` nodes, each knowing the first; returns once the first is connected to every other
/// (so the overlay is one component).
fn swarm(n: usize, first_args: &[String], peer_of_last: Option<SocketAddr>) -> Swarm {
    let mut s = Swarm::new();
    s.start(first_args);
    let first = s.listen[0];
    for i in 1..n {
        let to = match peer_of_last {
            Some(p) if i == n - 1 => p,
            _ => first,
        };
        s.start(&["--peer".into(), to.to_string()]);
    }
    // One component, and every node with peers to send to (a line written by a node
    // with no peer yet goes nowhere: flooding has no history).
    s.wait("the first node connected to every other", |s| {
        s.peers.get(&0).copied().unwrap_or(0) == n - 1
            && (0..n).all(|i| s.peers.get(&i).copied().unwrap_or(0) >= (n - 1).min(3))
    });
    s
}

/// Writes `lines` lines at each of `writers`, and waits until every other node printed
/// each exactly once.
fn flood_and_check(s: &mut Swarm, writers: &[usize], lines: usize) -> BTreeSet<String> {
    let mut expected: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for &w in writers {
        for k in 0..lines {
            let line = format!("line {k} from node {w}");
            s.write(w, &line);
            for i in 0..s.children.len() {
                if i != w {
                    expected.entry(i).or_default().insert(line.clone());
                }
            }
        }
    }
    let total: usize = expected.values().map(BTreeSet::len).sum();
    s.wait("every line at every other node", |s| {
        s.recv.values().map(Vec::len).sum::<usize>() >= total
    });
    for (i, want) in &expected {
        let got: Vec<String> = s.recv[i]
            .iter()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect();
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(unique.len(), got.len(), "node {i} printed a line twice");
        assert_eq!(&unique, want, "node {i}");
    }
    expected.into_values().flatten().collect()
}

#[test]
fn twenty_processes_every_line_reaches_every_node_once() {
    let mut s = swarm(20, &[], None);
    flood_and_check(&mut s, &[0, 7, 19], 5);
}

/// A relay on 127.0.0.1 forwarding to `target` once it is known, logging every byte.
fn relay() -> (SocketAddr, mpsc::Sender<SocketAddr>, Arc<Mutex<Vec<u8>>>) {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let Ok(target) = rx.recv() else { return };
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { break };
            let Ok(outbound) = TcpStream::connect(target) else {
                continue;
            };
            for (mut from, mut to) in [
                (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                (outbound, inbound),
            ] {
                let log = log2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                log.lock().unwrap().extend_from_slice(&buf[..n]);
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (at, tx, log)
}

#[test]
fn six_processes_one_through_a_logging_relay_and_the_text_never_crosses_in_clear() {
    let (relay_at, target, log) = relay();
    // Node 0 is told the relay is a port mapping of its own; node 5 knows only the relay.
    let mut s = Swarm::new();
    s.start(&["--external".into(), relay_at.to_string()]);
    target.send(s.listen[0]).unwrap();
    let first = s.listen[0];
    for _ in 1..5 {
        s.start(&["--peer".into(), first.to_string()]);
    }
    s.start(&["--peer".into(), relay_at.to_string()]);
    s.wait("every node connected to every other", |s| {
        (0..6).all(|i| s.peers.get(&i).copied().unwrap_or(0) == 5)
    });
    let lines = flood_and_check(&mut s, &[5, 2], 3);
    let bytes = log.lock().unwrap().clone();
    assert!(
        bytes
            .windows(b"peerkeeper".len())
            .any(|w| w == b"peerkeeper"),
        "the relay carried node 5's connection (its clear-text hello)"
    );
    for line in lines {
        assert!(
            !bytes.windows(line.len()).any(|w| w == line.as_bytes()),
            "{line:?} crossed the relay in clear text"
        );
    }
    // EOF on stdin: every node exits cleanly.
    for i in 0..s.children.len() {
        s.stdins[i] = None;
    }
    for c in &mut s.children {
        let status = c.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}
