//! `peerkeeper ctl` against real `peerkeeper node` processes (issue 18, part 3): the
//! peers a node lists are the ones connected to it; a malformed request gets an error and
//! the node still answers; ban then unban; set-trigger; add; the socket file is the
//! owner's only and goes at shutdown. And a reader that closes stdout early is no panic
//! (part 6).

#![cfg(unix)]

mod proc;

use proc::{peerkeeper, scratch, NodeProcess};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn ctl(socket: &Path, args: &[&str]) -> Output {
    peerkeeper()
        .arg("ctl")
        .arg("--control")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// `ctl ... --json`, which must succeed: its JSON answer.
fn ctl_json(socket: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ctl(socket, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `ctl peers --json` until `cond` holds of the peer ids (a minute at most).
fn wait_peers(socket: &Path, what: &str, cond: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ctl_json(socket, &["peers"]);
        let ids: Vec<String> = v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["peer"].as_str().unwrap().to_string())
            .collect();
        if cond(&ids) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100)); // polling, with a deadline
    }
}

#[test]
fn ctl_lists_peers_bans_unbans_adds_and_switches_triggers_on_a_running_node() {
    let dir = scratch("cli_ctl", "main");
    let socket = dir.join("a.sock");
    let a = NodeProcess::start(&[
        "--control",
        socket.to_str().unwrap(),
        "--min",
        "1",
        "--expected",
        "2",
        "--max",
        "4",
    ]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (a_listen, a_id) = a.listen_and_id();
    let b = NodeProcess::start(&[
        "--peer",
        &a_listen,
        "--min",
        "1",
        "--expected",
        "2",
        "--max",
        "4",
    ]);
    let (b_listen, b_id) = b.listen_and_id();

    // peers: b's id, with its address, direction and kind.
    wait_peers(&socket, "b connected", |ids| ids.contains(&b_id));
    let v = ctl_json(&socket, &["peers"]);
    let peer = &v["peers"][0];
    assert_eq!(peer["direction"], "inbound");
    assert_eq!(peer["point"], b_listen.as_str());
    assert!(peer["since"].as_str().unwrap().ends_with('Z'), "{peer}");
    // The human table names it too.
    let table = String::from_utf8(ctl(&socket, &["peers"]).stdout).unwrap();
    assert!(
        table.contains(&b_id[..16]) && table.contains("inbound"),
        "{table}"
    );

    // A malformed request: an error answer, and the node answers on.
    let mut raw = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    raw.write_all(b"{\"cmd\":\"ban\"}\n\xff\xfe garbage\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&raw).read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":false"), "{line}");
    let status = ctl_json(&socket, &["status"]);
    assert_eq!(status["peer_id"], a_id.as_str());
    // A bad argument from ctl itself: exit 1, the node's reason on stderr.
    let bad = ctl(&socket, &["ban", "not-an-address"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not-an-address"));

    // set-trigger: switched off, then on (the node says so in its answer).
    let off = ctl_json(&socket, &["set-trigger", "new-point", "off"]);
    assert_eq!(
        (off["trigger"].as_str(), off["on"].as_bool()),
        (Some("new_point"), Some(false))
    );
    let on = ctl_json(&socket, &["set-trigger", "new_point", "on"]);
    assert_eq!(on["on"], true);

    // ban b: its connection goes at once, and b is listed as banned.
    let banned = ctl_json(&socket, &["ban", &b_listen, "--for", "1h"]);
    assert!(banned["until"].as_str().unwrap().ends_with('Z'));
    wait_peers(&socket, "b gone", |ids| !ids.contains(&b_id));
    let points = ctl_json(&socket, &["points", "--state", "banned"]);
    assert_eq!(points["points"][0]["point"], b_listen.as_str(), "{points}");
    // unban: b's next dial is admitted (b, short of connections, keeps dialing a).
    let unbanned = ctl_json(&socket, &["unban", &b_listen]);
    assert_eq!(unbanned["was_banned"], true);
    wait_peers(&socket, "b back", |ids| ids.contains(&b_id));

    // add: the point is known (waiting or dialing: nobody listens there).
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    assert_eq!(ctl_json(&socket, &["add", &nowhere])["known"], true);
    let all = ctl_json(&socket, &["points", "--limit", "1000"]);
    assert!(
        all["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["point"] == nowhere.as_str()),
        "{all}"
    );

    // maintain: one cycle, with its report.
    let report = ctl_json(&socket, &["maintain"]);
    assert!(report["cycle"].as_u64().unwrap() >= 1, "{report}");

    drop(b);
    let (code, rest) = a.stop();
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(!socket.exists(), "the socket is removed at shutdown");
    // No node there any more: exit 2 and a clear message.
    let gone = ctl(&socket, &["status"]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("a.sock"));
}

#[test]
fn a_data_dir_gets_a_control_socket_and_a_second_node_on_it_is_refused() {
    let dir = scratch("cli_ctl", "datadir");
    let a = NodeProcess::start(&["--data-dir", dir.to_str().unwrap()]);
    let socket = dir.join("control.sock");
    let out = peerkeeper()
        .args([
            "ctl",
            "--data-dir",
            dir.to_str().unwrap(),
            "status",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peer_id"], a.field("peer_id").as_str());
    // A second node on the same directory: the live socket is an error, exit 2.
    let second = peerkeeper()
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("answers on this control socket"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(socket.exists(), "the first node's socket is left alone");
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));
}

/// Runs the command with stdout to a pipe whose reader takes one line and goes away (as
/// `| head -1` does): no panic, and the command ends (quietly: by SIGPIPE's default, or
/// exit 0).
fn first_line_then_close(args: &[&str]) -> (String, std::process::ExitStatus, String) {
    let mut child = peerkeeper()
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    // The reader is dropped here: stdout's pipe has no reader any more.
    let stderr = child.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let status = child.wait().unwrap();
    (first, status, err_text.join().unwrap())
}

#[test]
fn a_reader_closing_stdout_early_is_no_panic() {
    use std::os::unix::process::ExitStatusExt;
    // replay of a trace long enough to fill the pipe many times over.
    let dir = scratch("cli_ctl", "pipe");
    let trace = dir.join("t.jsonl");
    let sim = peerkeeper()
        .args([
            "simulate",
            "--nodes",
            "30",
            "--duration",
            "2m",
            "--seed",
            "3",
        ])
        .args(["--trace-node", "1", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(
        sim.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let (first, status, stderr) = first_line_then_close(&["replay", trace.to_str().unwrap()]);
    assert!(!first.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        status.code() == Some(0) || status.signal() == Some(libc_sigpipe()),
        "{status:?}: {stderr}"
    );

    // A node printing --status-json: it shuts down cleanly (exit 0) once its reader
    // has gone.
    let (first, status, stderr) = first_line_then_close(&[
        "node",
        "--listen",
        "127.0.0.1:0",
        "--status-json",
        "--status-interval",
        "100ms",
    ]);
    assert!(first.contains("\"time\""), "{first}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stdout was closed"), "{stderr}");
}

/// SIGPIPE's number (13 on every Unix this runs on).
fn libc_sigpipe() -> i32 {
    13
}
