//! Trace record and replay: a recorded node, replayed into a fresh core, takes exactly the
//! decisions it took, and `peerkeeper replay` shows them with their reasons.
//!
//! * A tokio node (memory transport, paused clock) recorded with `NodeBuilder::trace`:
//!   the replay's actions are the ones its action tap saw, at the same times, in the same
//!   order, with the same peers.
//! * Every node of a simulated network with faults and churn, recorded with
//!   `SimConfig::trace_nodes`: the replay of each life gives the simulator's recorded
//!   actions; and `peerkeeper simulate --trace-node N --trace FILE` writes a trace that
//!   `peerkeeper replay --json` replays to node N's actions.
//! * `peerkeeper replay` on a small trace prints the decisions a user looks for (a trim at
//!   3:12.045, with its numbers), filters by peer and time, prints JSON; a trace of another
//!   version, a truncated, garbled or unknown line exits 2 naming the line.
//! * Two `peerkeeper node --trace FILE` processes on 127.0.0.1, stopped with SIGTERM: the
//!   traces are complete (flushed at shutdown) and replay to what the nodes reported.

mod common;

use common::{ip4, next_message, peer_of, tap, Lab};
use futures::SinkExt;
use peerkeeper::core::{
    DecisionKind, Input, Replay, Step, TraceReader, TracedAction, TRACE_VERSION,
};
use peerkeeper::core::{Report, Severity};
use peerkeeper::pool::Source;
use peerkeeper::sim::{NodeTrace, SimConfig, Simulation};
use peerkeeper::transport::Transport;
use peerkeeper::trigger::TriggerKind;
use peerkeeper::wire::Message;
use peerkeeper::{Config, Policy};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ----- helpers -------------------------------------------------------------------------

/// A trace written into memory, shared with the test.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replays a trace (bytes as written) into a fresh core: every step, in order.
fn replay(bytes: &[u8]) -> Vec<Step> {
    let mut reader = TraceReader::new(bytes).expect("a valid header");
    let mut replay = Replay::new(reader.header()).expect("a header of this version");
    let mut steps = Vec::new();
    for line in &mut reader {
        let (_, recorded) = line.expect("a valid line");
        steps.push(replay.step(recorded));
    }
    steps
}

fn actions_of(steps: &[Step]) -> Vec<TracedAction> {
    steps.iter().flat_map(|s| s.actions.clone()).collect()
}

/// Fails with the first difference and what surrounds it.
fn assert_same_actions(what: &str, replayed: &[TracedAction], recorded: &[TracedAction]) {
    let k = replayed
        .iter()
        .zip(recorded)
        .position(|(a, b)| a != b)
        .or((replayed.len() != recorded.len()).then(|| replayed.len().min(recorded.len())));
    if let Some(k) = k {
        let from = k.saturating_sub(3);
        panic!(
            "{what}: the replay parts from the recording at action {k} (of {} replayed, {} recorded)\n replayed: {:#?}\n recorded: {:#?}",
            replayed.len(),
            recorded.len(),
            &replayed[from..(k + 3).min(replayed.len())],
            &recorded[from..(k + 3).min(recorded.len())]
        );
    }
}

fn kinds(steps: &[Step]) -> BTreeMap<DecisionKind, usize> {
    let mut m = BTreeMap::new();
    for d in steps.iter().flat_map(|s| &s.decisions) {
        *m.entry(d.kind).or_insert(0) += 1;
    }
    m
}

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("replay-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ----- (a) a tokio node ------------------------------------------------------------------

fn small_config() -> Config {
    Config {
        min_connections: 2,
        expected_connections: 3,
        max_connections: 4,
        maintenance_idle_time: Some(Duration::from_secs(20)),
        ..Config::default()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_recorded_tokio_node_replays_to_exactly_the_actions_it_took() {
    let lab = Lab::new();
    let config = small_config();
    let first = lab.node(&config, ip4(0, 0, 1), 1, vec![]);
    let trace = SharedBuf::default();
    let (tx, mut taps) = tap();
    // Its bootstrap points: the first node, and a point where nobody listens.
    let node = lab
        .builder(config.clone(), ip4(0, 0, 2), 2)
        .bootstrap(vec![ip4(0, 0, 1), ip4(0, 0, 99)])
        .trace(Box::new(trace.clone()))
        .action_tap(tx)
        .start()
        .unwrap();
    // Eight more join, 3 s apart, all knowing only the traced node: more than its
    // max_connections want in.
    let mut others = Vec::new();
    for i in 3..=10u8 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        others.push(lab.node(&config, ip4(0, 0, i), u64::from(i), vec![ip4(0, 0, 2)]));
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The operator's inputs go into the trace too.
    node.maintain().await.unwrap();
    node.add_points(vec![ip4(0, 0, 50)], Source::External)
        .await
        .unwrap();
    node.set_trigger(TriggerKind::NewPoint, false)
        .await
        .unwrap();
    node.set_idle_timer(false).await.unwrap();
    // The application reports on the first node: slow to answer, then misbehaving: its
    // score falls below `feedback.disconnect_below`, and the core closes its connection.
    node.report(peer_of(1), Report::Misbehaved(Severity::Medium))
        .await
        .unwrap();
    node.report(peer_of(1), Report::Misbehaved(Severity::High))
        .await
        .unwrap();
    // A stranger breaks the protocol (no hello first) from three sockets: each dropped,
    // and on the third its address greylisted (one bad frame punishes only its socket).
    for port in [40_001, 40_002, 40_003] {
        let stranger = lab.bind(std::net::SocketAddr::new(ip4(0, 0, 77).ip(), port));
        let mut link = stranger.connect(ip4(0, 0, 2)).await.unwrap();
        link.send(Message::AskForPoints).await.unwrap();
        let _ = next_message(&mut link).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The rest of the network goes away: the traced node loses its peers and dials in vain.
    for n in &others {
        n.shutdown().await;
    }
    first.shutdown().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    node.shutdown().await;
    taps.drain();

    let bytes = trace.0.lock().unwrap().clone();
    let steps = replay(&bytes);
    assert!(
        matches!(steps.last().map(|s| &s.input), Some(Input::Shutdown)),
        "the trace ends with the shutdown (flushed when the node stopped)"
    );
    assert!(steps.iter().all(|s| s.warnings.is_empty()));
    assert_same_actions("tokio node", &actions_of(&steps), &taps.log);
    assert!(taps.log.len() > 50, "only {} actions", taps.log.len());
    // The comparison has teeth: a core of another seed decides otherwise.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let mut header: Value = serde_json::from_str(header).unwrap();
    header["seed"] = (header["seed"].as_u64().unwrap() + 1).into();
    let other = format!("{header}\n{rest}");
    assert_ne!(actions_of(&replay(other.as_bytes())), taps.log);

    // The script made the decisions worth replaying.
    let k = kinds(&steps);
    for kind in [
        DecisionKind::Dial,
        DecisionKind::Kept,
        DecisionKind::DialEnded,
        DecisionKind::Admitted,
        DecisionKind::Refused,
        DecisionKind::Closed,
        DecisionKind::Lost,
        DecisionKind::Banned,
        DecisionKind::SentPoints,
        DecisionKind::CycleEnded,
    ] {
        assert!(k.contains_key(&kind), "no {kind:?} decision in {k:?}");
    }
    for input in [
        "maintain",
        "add_points",
        "set_trigger",
        "set_idle_timer",
        "violation",
    ] {
        assert!(
            steps
                .iter()
                .any(|s| serde_json::to_value(&s.input).unwrap()["input"] == input),
            "no {input} input in the trace"
        );
    }
    // The dead bootstrap point: its failure and backoff are explained.
    assert!(steps.iter().flat_map(|s| &s.decisions).any(|d| {
        d.kind == DecisionKind::DialEnded
            && d.point == Some(ip4(0, 0, 99))
            && d.why.contains("not dialed again before")
    }));
}

// ----- (b) simulated nodes ------------------------------------------------------------------

fn sim_config(policy: Policy, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(30, seed, Duration::from_secs(300), policy);
    cfg.node_config = Config {
        policy,
        ..small_config()
    };
    cfg.late_joiners = 6;
    cfg.late_at = Duration::from_secs(60);
    cfg.dial_failure_rate = 0.1;
    cfg.message_loss = 0.05;
    cfg.churn_per_minute = 0.15;
    cfg.record_actions = true;
    cfg.trace_nodes = (0..cfg.total_nodes()).collect();
    cfg
}

fn written(t: &NodeTrace) -> Vec<u8> {
    let mut bytes = Vec::new();
    t.write(&mut bytes).unwrap();
    bytes
}

#[test]
fn every_simulated_node_replays_to_the_actions_the_simulator_recorded() {
    for (policy, seed) in [(Policy::Peerkeeper, 4), (Policy::Octez, 9)] {
        let cfg = sim_config(policy, seed);
        let total = cfg.total_nodes();
        let out = Simulation::new(cfg).run(|_| {});
        let mut recorded: BTreeMap<usize, Vec<TracedAction>> = BTreeMap::new();
        for (i, t) in &out.actions {
            recorded.entry(*i).or_default().push(t.clone());
        }
        let mut replayed: BTreeMap<usize, Vec<TracedAction>> = BTreeMap::new();
        let mut lives = 0;
        let mut all = Vec::new();
        for t in &out.traces {
            lives += usize::from(t.life > 0);
            let steps = replay(&written(t));
            assert!(
                steps.iter().all(|s| s.warnings.is_empty()),
                "node {}",
                t.node
            );
            // The simulator does not record what a node that leaves does on its way out
            // (its closes at shutdown): neither does this comparison.
            replayed.entry(t.node).or_default().extend(
                steps
                    .iter()
                    .filter(|s| !matches!(s.input, Input::Shutdown))
                    .flat_map(|s| s.actions.clone()),
            );
            all.extend(steps);
        }
        assert!(lives > 0, "{policy}: churn brought no node back");
        assert_eq!(replayed.len(), total, "{policy}: every node traced");
        for i in 0..total {
            let empty = Vec::new();
            assert_same_actions(
                &format!("{policy}, node {i}"),
                &replayed[&i],
                recorded.get(&i).unwrap_or(&empty),
            );
        }
        let k = kinds(&all);
        for kind in [
            DecisionKind::Refused,
            DecisionKind::Closed,
            DecisionKind::Lost,
            DecisionKind::DialEnded,
        ] {
            assert!(k.contains_key(&kind), "{policy}: no {kind:?} in {k:?}");
        }
    }
}

#[test]
fn simulate_writes_a_trace_that_peerkeeper_replay_replays_to_the_nodes_actions() {
    let dir = scratch("sim");
    let file = dir.join("node5.jsonl");
    let (nodes, seed, node) = (20, 3, 5);
    let out = peerkeeper()
        .args(["simulate", "--nodes", "20", "--duration", "90s"])
        .args(["--min", "2", "--expected", "3", "--max", "4", "--seed", "3"])
        .args(["--trace-node", "5", "--trace"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out.stderr)
    );
    // The same scenario through the library, recording the actions.
    let mut cfg = SimConfig::new(nodes, seed, Duration::from_secs(90), Policy::Peerkeeper);
    cfg.node_config = Config {
        min_connections: 2,
        expected_connections: 3,
        max_connections: 4,
        ..Config::default()
    };
    cfg.record_actions = true;
    let expected: Vec<Value> = Simulation::new(cfg)
        .run(|_| {})
        .actions
        .iter()
        .filter(|(i, _)| *i == node)
        .map(|(_, t)| serde_json::to_value(t).unwrap())
        .collect();
    assert!(expected.len() > 10, "node {node} did little");

    let out = peerkeeper()
        .args(["replay", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut actions = Vec::new();
    for line in text(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        if let Some(a) = v["actions"].as_array() {
            actions.extend(a.iter().cloned());
        }
    }
    assert_eq!(actions, expected);

    // Out of range, or without a file: exit 2.
    let out = peerkeeper()
        .args([
            "simulate",
            "--nodes",
            "5",
            "--duration",
            "10s",
            "--trace-node",
            "5",
        ])
        .args(["--trace"])
        .arg(dir.join("x.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--trace-node"),
        "{}",
        text(&out.stderr)
    );
    let out = peerkeeper()
        .args([
            "simulate",
            "--nodes",
            "5",
            "--duration",
            "10s",
            "--trace-node",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ----- (c) the command ------------------------------------------------------------------

/// A small trace as a user would find it: a node whose bootstrap dial times out, which
/// connects to the other, then gets four inbound connections at 3:11-3:12, one too many.
const SMALL: &str = r#"{"schema":"peerkeeper-trace","version":3,"config":{"min_connections":1,"expected_connections":2,"max_connections":5},"peer_id":"0000000000000001000000000000000000000000000000000000000000000000","seed":2}
{"at":0,"input":"add_own_point","point":"10.0.0.1:9732"}
{"at":0,"input":"add_points","points":["10.0.0.2:9732","10.0.0.3:9732"],"source":"Bootstrap"}
{"at":0,"input":"start"}
{"at":150,"input":"dial_result","point":"10.0.0.2:9732","result":{"Failed":"Timeout"}}
{"at":320,"input":"dial_result","point":"10.0.0.3:9732","result":{"Connected":{"conn":5,"peer":"0000000000000003000000000000000000000000000000000000000000000000"}}}
{"at":480,"input":"points","conn":5,"points":["10.0.0.4:9732","10.0.0.5:9732"]}
{"at":120320,"input":"timeout"}
{"at":191000,"input":"inbound","conn":11,"remote":"10.0.0.11:40011","hello":{"peer":"000000000000000b000000000000000000000000000000000000000000000000","listen_port":9732}}
{"at":191200,"input":"inbound","conn":12,"remote":"10.0.0.12:40012","hello":{"peer":"000000000000000c000000000000000000000000000000000000000000000000","listen_port":9732}}
{"at":191400,"input":"inbound","conn":13,"remote":"10.0.0.13:40013","hello":{"peer":"000000000000000d000000000000000000000000000000000000000000000000","listen_port":9732}}
{"at":192045,"input":"inbound","conn":17,"remote":"10.0.0.17:40017","hello":{"peer":"0000000000000011000000000000000000000000000000000000000000000000","listen_port":9732}}
{"at":200000,"input":"closed","conn":5}
{"at":201000,"input":"shutdown"}
"#;

fn run_replay(name: &str, trace: &str, args: &[&str]) -> Output {
    let file = scratch("cli").join(name);
    std::fs::write(&file, trace).unwrap();
    peerkeeper()
        .arg("replay")
        .arg(&file)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn peerkeeper_replay_prints_each_decision_with_its_reason() {
    let out = run_replay("small.jsonl", SMALL, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |l: &str| lines.contains(&l);
    for expected in [
        "0:00.000 start  [line 4]",
        "0:00.000   dial 10.0.0.2:9732: top-up in cycle #1 (Activation): 0 connections, 1 dialing, min_target 1; learned from bootstrap",
        "0:00.150   dial to 10.0.0.2:9732 ended: timed_out: no answer within dial_timeout; 1 failure in a row, not dialed again before 0:00.659",
        "0:00.320   kept #5 (peer 10.0.0.3:9732): dialed, handshake done with peer 0000000000000003; 0 -> 1 connections",
        "0:00.480   learned 2 new points of 2: from #5 (peer 10.0.0.3:9732)",
        "3:11.000   admitted #11 (peer 10.0.0.11:9732): 1 connection < max_connections 5",
        "3:12.045   trigger TooManyConnections: 5 > max_threshold 4",
        "3:12.045   cycle #3 ended: Trimmed: 5 -> 3 connections; dialed 0 (0 ok, 0 failed); closed 2; no points asked; began at 3:12.045 (TooManyConnections)",
        "3:20.000   lost #5 (peer 10.0.0.3:9732, Outbound since 0:00.320): ended by the peer, the network or the shell (a keepalive timeout); 3 -> 2 connections",
    ] {
        assert!(has(expected), "missing {expected:?} in\n{stdout}");
    }
    // Why did the node drop peers at 3:12? The trim, with its numbers, and a farewell each.
    let trims: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            l.starts_with("3:12.045   closed #")
                && l.ends_with(": TooManyConnections, trim in cycle #3: 5 > max_threshold 4, down to max_target 3")
        })
        .collect();
    assert_eq!(trims.len(), 2, "{stdout}");
    let farewells = lines
        .iter()
        .filter(|l| {
            l.starts_with("3:12.045   sent ")
                && l.ends_with("farewell: where else to go, before closing")
        })
        .count();
    assert_eq!(farewells, 2, "{stdout}");
    // Every input has its line, in order, with its time.
    let inputs: Vec<&&str> = lines.iter().filter(|l| l.contains("  [line ")).collect();
    assert_eq!(inputs.len(), 13);
    // The only outbound peer leaves at 3:20: the outbound floor (1) dials again in range,
    // and the shutdown cancels that dial (issue 16).
    assert!(lines
        .iter()
        .any(|l| l.starts_with("3:20.000   cycle #4 started: OutboundFloor")));
    assert!(lines.last().unwrap().contains("dials: 3 attempted: 1 ok"));
}

#[test]
fn peerkeeper_replay_filters_by_peer_and_time_and_prints_json() {
    // One peer: its admission, and nothing about the others.
    let out = run_replay("peer.jsonl", SMALL, &["--peer", "10.0.0.17:9732"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Decision lines: the time, then three spaces (input lines, the context, have one).
    let decisions: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with("  "))
        })
        .collect();
    assert!(
        decisions.contains(
            &"3:12.045   admitted #17 (peer 10.0.0.17:9732): 4 connections < max_connections 5"
        ),
        "{stdout}"
    );
    // The trim cuts the youngest inbound connection of the most represented group first
    // (issue 16: a flood of newcomers never pushes out the older ones): #17 itself.
    assert!(decisions
        .iter()
        .any(|l| l.starts_with("3:12.045   closed #17 (peer 10.0.0.17:9732")));
    for l in &decisions {
        assert!(l.contains("10.0.0.17"), "{l:?} is not about 10.0.0.17");
    }
    // An address alone: any port.
    let out = run_replay("ip.jsonl", SMALL, &["--peer", "10.0.0.2"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dial to 10.0.0.2:9732 ended: timed_out"),
        "{stdout}"
    );
    assert!(!stdout.contains("admitted"), "{stdout}");

    // A time window.
    let out = run_replay(
        "time.jsonl",
        SMALL,
        &["--from", "3:11.2", "--to", "3:12.045"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let times: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("  [line "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(times, ["3:11.200", "3:11.400", "3:12.045"], "{stdout}");

    // JSON: one object per input, then the end.
    let out = run_replay("json.jsonl", SMALL, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let values: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(values.len(), 14);
    let end = &values[13]["end"];
    assert_eq!(end["inputs"], 13);
    assert_eq!(end["stats"]["dials"]["timed_out"], 1);
    let trim = &values[10];
    assert_eq!(trim["line"], 12);
    assert_eq!(trim["time"], "3:12.045");
    assert_eq!(trim["input"]["input"], "inbound");
    assert_eq!(trim["reply"], serde_json::json!({"admission": "accept"}));
    let closed: Vec<&Value> = trim["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "closed")
        .collect();
    assert_eq!(closed.len(), 2);
    for d in closed {
        assert_eq!(d["at"], 192045);
        assert!(d["why"]
            .as_str()
            .unwrap()
            .contains("trim in cycle #3: 5 > max_threshold 4"));
        assert!(d["point"].as_str().unwrap().starts_with("10.0.0.1"));
    }
    assert!(trim["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"]["Close"]["reason"] == "TooManyConnections"));
}

#[test]
fn a_trace_that_cannot_be_read_exits_2_naming_the_line() {
    let lines: Vec<&str> = SMALL.lines().collect();
    let with = |k: usize, replacement: &str| {
        let mut l = lines.clone();
        l[k] = replacement;
        l.join("\n") + "\n"
    };
    let cases = [
        (
            "version",
            with(0, &lines[0].replace(&format!("\"version\":{TRACE_VERSION}"), "\"version\":999")),
            format!("line 1: a trace of schema \"peerkeeper-trace\" version 999; this build reads schema \"peerkeeper-trace\" version {TRACE_VERSION}"),
        ),
        (
            "schema",
            with(0, &lines[0].replace("peerkeeper-trace", "other-trace")),
            "line 1: a trace of schema \"other-trace\"".to_string(),
        ),
        (
            "truncated",
            lines[..6].join("\n") + "\n" + &lines[6][..30],
            "line 7: truncated line".to_string(),
        ),
        ("garbled", with(4, "{\"at\":150,\"input\":start}"), "line 5: not JSON".to_string()),
        (
            "unknown",
            with(2, r#"{"at":0,"input":"teleport","to":"10.0.0.9:9732"}"#),
            "line 3: unknown input \"teleport\"".to_string(),
        ),
        (
            "bad field",
            with(5, r#"{"at":320,"input":"dial_result","point":"nowhere"}"#),
            "line 6: input \"dial_result\"".to_string(),
        ),
        ("no header", lines[1..].join("\n"), "line 1: not a valid trace header".to_string()),
        ("empty", String::new(), "line 1: the trace is empty".to_string()),
    ];
    for (name, trace, expected) in cases {
        let out = run_replay(&format!("{name}.jsonl"), &trace, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&expected),
            "{name}: {stderr:?} lacks {expected:?}"
        );
    }
    // What came before the bad line was replayed and printed.
    let out = run_replay(
        "truncated2.jsonl",
        &(lines[..6].join("\n") + "\n" + &lines[6][..30]),
        &[],
    );
    assert!(text(&out.stdout).contains("kept #5 (peer 10.0.0.3:9732)"));
    // A file that is not there.
    let out = peerkeeper()
        .args(["replay", "/nonexistent/trace.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/trace.jsonl"));
    // A bad time.
    let out = run_replay("badtime.jsonl", SMALL, &["--from", "3:99"]);
    assert_eq!(out.status.code(), Some(2));
}

// ----- (d) real processes ---------------------------------------------------------------

#[cfg(unix)]
mod processes {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Stdio};
    use std::sync::mpsc::{channel, Receiver};

    /// A `peerkeeper node` printing its status as JSON lines; killed on drop if running.
    struct Proc {
        child: Child,
        lines: Receiver<Value>,
        listen: String,
        last: Value,
    }

    impl Proc {
        fn start(trace: &Path, seed: &str, peer: Option<&str>) -> Proc {
            let mut cmd = peerkeeper();
            cmd.args([
                "node",
                "--listen",
                "127.0.0.1:0",
                "--min",
                "1",
                "--expected",
                "1",
            ])
            .args(["--max", "3", "--status-json", "--status-interval", "100ms"])
            .args(["--seed", seed, "--trace"])
            .arg(trace);
            if let Some(p) = peer {
                cmd.args(["--peer", p]);
            }
            let mut child = cmd
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                }
            });
            let first = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("a status line at start");
            Proc {
                child,
                lines,
                listen: first["listen"].as_str().unwrap().to_string(),
                last: first,
            }
        }

        /// The first status line satisfying `cond` (at most a minute of them).
        fn wait(&mut self, what: &str, cond: impl Fn(&Value) -> bool) {
            for _ in 0..600 {
                let v = self
                    .lines
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("no status while waiting for {what}"));
                self.last = v;
                if cond(&self.last) {
                    return;
                }
            }
            panic!("gave up waiting for {what}: {}", self.last);
        }

        fn stop(mut self) {
            let killed = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            assert_eq!(self.child.wait().unwrap().code(), Some(0));
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Replays `trace` (complete: it ends with the shutdown). Returns the steps, and the
    /// replayed core's dial and admission counters and connected points as they stood
    /// settled: after the last connection opened, before the first input that ends one
    /// (the peer's close, or the shutdown).
    fn replay_settled(trace: &Path) -> (Vec<Step>, Value, Value, Vec<String>) {
        let bytes = std::fs::read(trace).unwrap();
        let mut reader = TraceReader::new(&bytes[..]).expect("a valid header");
        let mut replay = Replay::new(reader.header()).unwrap();
        let mut steps = Vec::new();
        let mut settled = None;
        for line in &mut reader {
            let (_, recorded) = line.expect("every line complete");
            if settled.is_none() && matches!(recorded.input, Input::Closed { .. } | Input::Shutdown)
            {
                let core = replay.core();
                let mut peers: Vec<String> = core
                    .pool()
                    .connections()
                    .map(|(a, _)| a.to_string())
                    .collect();
                peers.sort();
                let stats = core.stats();
                settled = Some((
                    serde_json::to_value(stats.dials).unwrap(),
                    serde_json::to_value(stats.admission).unwrap(),
                    peers,
                ));
            }
            let step = replay.step(recorded);
            if step
                .decisions
                .iter()
                .any(|d| matches!(d.kind, DecisionKind::Kept | DecisionKind::Admitted))
            {
                settled = None;
            }
            steps.push(step);
        }
        assert!(
            matches!(steps.last().unwrap().input, Input::Shutdown),
            "the trace ends with the shutdown (flushed at exit)"
        );
        let (dials, admission, peers) = settled.expect("a settled state");
        (steps, dials, admission, peers)
    }

    fn peers_of(v: &Value) -> Vec<String> {
        let mut p: Vec<String> = v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        p.sort();
        p
    }

    #[test]
    fn two_node_processes_traced_then_stopped_replay_to_what_they_reported() {
        let dir = scratch("procs");
        let (ta, tb) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
        let mut a = Proc::start(&ta, "11", None);
        let a_listen = a.listen.clone();
        let mut b = Proc::start(&tb, "12", Some(&a_listen));
        let b_listen = b.listen.clone();
        b.wait("b connected", |v| v["connections"] == 1);
        a.wait("a connected", |v| v["connections"] == 1);
        // Settled: two more status lines each, with nothing in flight.
        for p in [&mut a, &mut b] {
            for _ in 0..2 {
                p.wait("a status", |v| v["dialing"] == 0);
            }
        }
        let (a_last, b_last) = (a.last.clone(), b.last.clone());
        b.stop();
        a.stop();

        for (name, trace, last, peer) in [
            ("a", &ta, &a_last, &b_listen),
            ("b", &tb, &b_last, &a_listen),
        ] {
            let (steps, dials, admission, peers) = replay_settled(trace);
            assert!(steps.iter().all(|s| s.warnings.is_empty()), "{name}");
            assert_eq!(dials, last["dials"], "{name}: dial outcomes");
            assert_eq!(admission, last["admission"], "{name}: admissions");
            assert_eq!(peers, peers_of(last), "{name}: connected peers");
            let peer: std::net::SocketAddr = peer.parse().unwrap();
            let kind = if name == "a" {
                DecisionKind::Admitted
            } else {
                DecisionKind::Kept
            };
            assert!(
                steps
                    .iter()
                    .flat_map(|s| &s.decisions)
                    .any(|d| d.kind == kind && d.point == Some(peer)),
                "{name}: no {kind:?} of {peer}"
            );
        }
        // a lost b when b stopped, before its own shutdown.
        let (steps, ..) = replay_settled(&ta);
        assert!(steps
            .iter()
            .flat_map(|s| &s.decisions)
            .any(|d| d.kind == DecisionKind::Lost));

        // And the command shows it.
        let out = peerkeeper().arg("replay").arg(&ta).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "(peer {b_listen}): 0 connections < max_connections 3"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn the_epoch_scenario_and_a_ledger_replay_too() {
    // Track, overwrite, an impersonator's hello, a ledger's points: inputs like any other.
    let mut epochs = SimConfig::new(60, 3, Duration::from_secs(100), Policy::Peerkeeper);
    let mut e = peerkeeper::sim::EpochConfig::new(10, Duration::from_secs(30));
    e.overwrite = 2;
    epochs.node_config.peer_sets.kept_sets = 1;
    e.prepare(&mut epochs.node_config);
    epochs.epochs = Some(e);
    let mut ledger = SimConfig::new(40, 3, Duration::from_secs(120), Policy::Peerkeeper);
    ledger.node_config = small_config();
    ledger.node_config.targets.external.floor = 2;
    ledger.ledger = 10;
    for (what, mut cfg) in [("epochs", epochs), ("ledger", ledger)] {
        cfg.record_actions = true;
        cfg.trace_nodes = (0..cfg.total_nodes()).collect();
        let out = Simulation::new(cfg).run(|_| {});
        let mut recorded: BTreeMap<usize, Vec<TracedAction>> = BTreeMap::new();
        for (i, t) in &out.actions {
            recorded.entry(*i).or_default().push(t.clone());
        }
        let mut inputs = BTreeMap::new();
        for t in &out.traces {
            for r in &t.inputs {
                let name = serde_json::to_value(&r.input).unwrap()["input"].clone();
                *inputs.entry(name.to_string()).or_insert(0) += 1;
            }
            let steps = replay(&written(t));
            assert!(steps.iter().all(|s| s.warnings.is_empty()), "{what}");
            let replayed: Vec<TracedAction> =
                steps.iter().flat_map(|s| s.actions.clone()).collect();
            let empty = Vec::new();
            assert_same_actions(
                &format!("{what}, node {}", t.node),
                &replayed,
                recorded.get(&t.node).unwrap_or(&empty),
            );
        }
        let want: &[&str] = if what == "epochs" {
            &["\"track\"", "\"overwrite\"", "\"inbound\""]
        } else {
            &["\"source_points\""]
        };
        for w in want {
            assert!(inputs.contains_key(*w), "{what}: no {w} in {inputs:?}");
        }
    }
}
