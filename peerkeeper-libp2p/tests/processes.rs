//! The example libp2p node as separate processes on loopback (the small version of
//! `benches/libp2p.py`, run in CI): every node knows only the seed; each reaches
//! `min_threshold` and the overlay is one component, whether the seed starts first or
//! last. Progress is read from the processes' own status lines (JSON, every 250 ms), with
//! a deadline; nothing sleeps to synchronise.
//!
//! The binary is the example `cargo test` builds (`target/<profile>/examples/node`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODES: usize = 8;
/// --min 3 --expected 6 --max 10, the example's defaults: min_threshold 4.
const MIN_THRESHOLD: usize = 4;

fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/processes-HASH -> target/<profile>/examples/node
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join("node");
    assert!(
        p.exists(),
        "{} missing: `cargo test -p peerkeeper-libp2p` builds it",
        p.display()
    );
    p
}

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

struct Nodes {
    children: Vec<Child>,
    lines: mpsc::Receiver<(usize, String)>,
    tx: mpsc::Sender<(usize, String)>,
}

impl Nodes {
    fn start(&mut self, i: usize, port: u16, seed: Option<u16>) {
        let mut cmd = Command::new(example());
        cmd.args(["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
            .args(["--json", "--status-interval", "0.25"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--peer", &format!("/ip4/127.0.0.1/tcp/{s}")]);
        }
        let mut child = cmd.spawn().expect("start the example node");
        let out = child.stdout.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((i, l)).is_err() {
                    break;
                }
            }
        });
        self.children.push(child);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Each node's latest connections and peers' ports, until every node is at
/// `MIN_THRESHOLD` in one component; panics after `limit`.
fn wait_converged(nodes: &Nodes, ports: &[u16], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut latest: BTreeMap<usize, (usize, Vec<u16>)> = BTreeMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match nodes.lines.recv_timeout(left) {
            Ok((i, l)) if l.starts_with('{') => {
                let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON status line");
                let n = v["connections"].as_u64().unwrap() as usize;
                let peers = v["peers"]
                    .as_array()
                    .expect("`peers` in the status line: a stale example? `cargo test -p peerkeeper-libp2p` rebuilds it")
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .unwrap()
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap()
                    })
                    .collect();
                latest.insert(i, (n, peers));
            }
            Ok(_) => {}
            Err(_) => panic!("not converged within {limit:?}: {latest:?}"),
        }
        if latest.len() == ports.len()
            && latest.values().all(|(n, _)| *n >= MIN_THRESHOLD)
            && components(ports, &latest) == 1
        {
            return;
        }
    }
}

fn components(ports: &[u16], latest: &BTreeMap<usize, (usize, Vec<u16>)>) -> usize {
    let index: BTreeMap<u16, usize> = ports.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut parent: Vec<usize> = (0..ports.len()).collect();
    fn find(p: &[usize], mut x: usize) -> usize {
        while p[x] != x {
            x = p[x];
        }
        x
    }
    for (i, (_, peers)) in latest {
        for port in peers {
            if let Some(&j) = index.get(port) {
                let (a, b) = (find(&parent, *i), find(&parent, j));
                parent[a] = b;
            }
        }
    }
    (0..ports.len())
        .map(|i| find(&parent, i))
        .collect::<BTreeSet<_>>()
        .len()
}

fn nodes() -> Nodes {
    let (tx, lines) = mpsc::channel();
    Nodes {
        children: Vec::new(),
        lines,
        tx,
    }
}

#[test]
fn example_nodes_started_after_their_seed_converge() {
    let ports = free_ports(NODES);
    let mut n = nodes();
    n.start(0, ports[0], None);
    for (i, p) in ports.iter().enumerate().skip(1) {
        n.start(i, *p, Some(ports[0]));
    }
    wait_converged(&n, &ports, Duration::from_secs(90));
}

#[test]
fn example_nodes_started_before_their_seed_converge() {
    let ports = free_ports(NODES);
    let mut n = nodes();
    for (i, p) in ports.iter().enumerate().skip(1) {
        n.start(i, *p, Some(ports[0]));
    }
    // The others are up and failing to reach the seed before it starts: wait for one
    // status line from each.
    let mut seen = BTreeSet::new();
    while seen.len() < NODES - 1 {
        let (i, _) = n
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("status lines");
        seen.insert(i);
    }
    n.start(0, ports[0], None);
    wait_converged(&n, &ports, Duration::from_secs(90));
}
