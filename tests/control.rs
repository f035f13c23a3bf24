//! The operator's operations (issue 18, part 3): on the node core (ban and unban a point
//! or an IP address, trust a point with its key, list connections and points), on a
//! running node, and through its control socket (one JSON request a line; malformed and
//! oversized requests answered with an error while the node goes on; a stale socket file
//! replaced, a live one refused; mode 0600; removed at shutdown). A trace of the new
//! inputs replays.

use peerkeeper::control::{self, ControlConfig, ControlError, Request};
use peerkeeper::core::{
    Action, Admission, BanTarget, Hello, Input, NodeCore, PointFilter, Replay, TraceHeader,
    TraceReader, TraceWriter,
};
use peerkeeper::identity::Keypair;
use peerkeeper::node::Node;
use peerkeeper::pool::{CloseReason, ConnId, Direction, Source};
use peerkeeper::transport::memory::MemoryNetwork;
use peerkeeper::{Config, PeerId, Time};
use std::net::SocketAddr;
use std::time::Duration;

fn secs(s: u64) -> Time {
    Time::from_millis(s * 1000)
}

fn point(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A core with one inbound peer (id 2) at 10.0.0.2:9000, connection 1.
fn core_with_a_peer() -> NodeCore {
    let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    core.start(Time::ZERO);
    let hello = Hello {
        peer: PeerId::from_u64(2),
        listen_port: 9000,
    };
    assert_eq!(
        core.handle_inbound(ConnId(1), point("10.0.0.2:40000"), hello, Time::ZERO),
        Admission::Accept
    );
    while core.poll_action().is_some() {}
    core
}

fn closed(core: &mut NodeCore) -> Vec<(ConnId, CloseReason)> {
    std::iter::from_fn(|| core.poll_action())
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((conn, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn banning_a_connected_point_closes_it_and_refuses_it_until_the_ban_ends() {
    let mut core = core_with_a_peer();
    let p = point("10.0.0.2:9000");
    let until = core.ban(BanTarget::Point(p), Some(Duration::from_secs(60)), secs(1));
    assert_eq!(until, secs(61));
    assert_eq!(
        closed(&mut core),
        vec![(ConnId(1), CloseReason::ProtocolViolation)]
    );
    assert_eq!(core.connection_count(), 0);
    // It dials in again within the ban, from another port: refused (its IP is banned).
    let hello = Hello {
        peer: PeerId::from_u64(2),
        listen_port: 9001,
    };
    let again = core.handle_inbound(ConnId(2), point("10.0.0.2:40001"), hello, secs(30));
    assert!(matches!(again, Admission::Refuse { .. }), "{again:?}");
    let (banned, total) = core.points_at(Some(PointFilter::Banned), 10, secs(30));
    assert_eq!(total, 1);
    assert_eq!((banned[0].point, banned[0].until), (p, Some(secs(61))));
    // After the ban: admitted again.
    let hello = Hello {
        peer: PeerId::from_u64(2),
        listen_port: 9000,
    };
    let after = core.handle_inbound(ConnId(3), point("10.0.0.2:40002"), hello, secs(62));
    assert_eq!(after, Admission::Accept);
    assert_eq!(core.stats().bans, 1);
    assert_eq!(
        core.stats().violations,
        0,
        "an operator's ban is no violation"
    );
}

#[test]
fn unbanning_lifts_a_ban_whatever_caused_it() {
    let mut core = core_with_a_peer();
    let p = point("10.0.0.2:9000");
    // A violation bans its point for greylist_duration (15 minutes by default); three
    // from distinct sources of the address ban the address too.
    core.handle_violation(peerkeeper::core::Offender::Conn(ConnId(1)), secs(1));
    assert_eq!(
        core.pool().get(&p).map(|i| i.state),
        Some(peerkeeper::pool::PointState::Greylisted)
    );
    for port in [40_001, 40_002] {
        core.handle_violation(
            peerkeeper::core::Offender::Remote(point(&format!("10.0.0.2:{port}"))),
            secs(1),
        );
    }
    assert!(core.pool().is_ip_greylisted(p.ip(), secs(2)));
    assert!(core.unban(BanTarget::Point(p), secs(2)));
    assert!(!core.pool().is_ip_greylisted(p.ip(), secs(2)));
    assert_ne!(
        core.pool().get(&p).map(|i| i.state),
        Some(peerkeeper::pool::PointState::Greylisted)
    );
    // Dialable again: the core, short of connections, dials it at once.
    let (dialing, _) = core.points_at(Some(PointFilter::Dialing), 10, secs(2));
    assert!(dialing.iter().any(|v| v.point == p), "{dialing:?}");
    assert_eq!(core.points_at(Some(PointFilter::Banned), 10, secs(2)).1, 0);
    assert!(
        !core.unban(BanTarget::Point(p), secs(3)),
        "nothing left to lift"
    );

    // An IP ban covers every point there, loopback included when the operator says so.
    let local = point("127.0.0.1:7000");
    core.add_points(&[local], Source::Bootstrap, secs(3));
    core.ban(BanTarget::Ip(local.ip()), None, secs(3));
    assert!(core.pool().is_ip_greylisted(local.ip(), secs(4)));
    assert!(core.unban(BanTarget::Ip(local.ip()), secs(4)));
    assert!(!core.pool().is_ip_greylisted(local.ip(), secs(4)));
}

#[test]
fn a_ban_is_capped_and_an_ip_ban_closes_every_connection_from_that_address() {
    let mut core = core_with_a_peer();
    let until = core.ban(
        BanTarget::Ip("10.0.0.2".parse().unwrap()),
        Some(Duration::from_secs(u64::MAX / 2)),
        secs(1),
    );
    assert_eq!(until, secs(1) + peerkeeper::core::MAX_BAN);
    assert_eq!(
        closed(&mut core),
        vec![(ConnId(1), CloseReason::ProtocolViolation)]
    );
}

#[test]
fn trusting_a_point_with_its_key_refuses_another_key_there() {
    let mut core = NodeCore::new(Config::default(), PeerId::from_u64(1), 7);
    core.start(Time::ZERO);
    let p = point("10.0.0.5:9000");
    assert!(core.trust(p, Some(PeerId::from_u64(5)), Time::ZERO));
    assert!(core.pool().is_trusted(&p));
    let impostor = Hello {
        peer: PeerId::from_u64(6),
        listen_port: 9000,
    };
    let a = core.handle_inbound(ConnId(1), point("10.0.0.5:40000"), impostor, secs(1));
    assert!(matches!(a, Admission::Refuse { .. }), "{a:?}");
    assert!(!core.trust(point("10.0.0.5:0"), None, secs(1)), "port 0");
}

#[test]
fn the_listings_show_what_an_operator_asks_for() {
    let mut core = core_with_a_peer();
    core.handle_rtt(ConnId(1), Duration::from_millis(40), secs(1));
    let peers = core.connections_at(secs(10));
    assert_eq!(peers.len(), 1);
    let v = &peers[0];
    assert_eq!(v.peer, PeerId::from_u64(2));
    assert_eq!(v.point, point("10.0.0.2:9000"));
    assert_eq!(v.direction, Direction::Inbound);
    assert_eq!(v.kind, Source::Incoming);
    assert_eq!(v.connected_for, Duration::from_secs(10));
    assert_eq!(v.rtt, Some(Duration::from_millis(40)));
    // Points: bounded by the limit, the total still counted, ordered by point.
    let many: Vec<SocketAddr> = (1..=20)
        .map(|i| SocketAddr::from(([10, 1, 0, i], 9000)))
        .collect();
    core.add_points(&many, Source::PeerSharing, secs(10));
    let (shown, total) = core.points_at(None, 5, secs(10));
    assert_eq!(total, core.pool().len());
    assert_eq!(shown.len(), 5);
    assert!(shown.windows(2).all(|w| w[0].point < w[1].point));
    let (connected, n) = core.points_at(Some(PointFilter::Connected), 100, secs(10));
    assert_eq!((n, connected[0].point), (1, point("10.0.0.2:9000")));
}

#[test]
fn a_trace_with_the_operators_inputs_replays_them() {
    let config = Config::default();
    let header = TraceHeader::new(config.clone(), PeerId::from_u64(1), 7);
    let mut out = Vec::new();
    let mut w = TraceWriter::new(&mut out, &header).unwrap();
    let p = point("10.0.0.9:9000");
    let inputs = [
        Input::Start,
        Input::Trust {
            point: p,
            peer: Some(PeerId::from_u64(9)),
        },
        Input::Ban {
            target: BanTarget::Point(p),
            duration: Some(Duration::from_secs(600)),
        },
        Input::Unban {
            target: BanTarget::Ip(p.ip()),
        },
    ];
    for (i, input) in inputs.iter().enumerate() {
        w.write(secs(i as u64), input).unwrap();
    }
    w.flush().unwrap();

    let reader = TraceReader::new(&out[..]).unwrap();
    let mut replay = Replay::new(reader.header()).unwrap();
    let mut summaries = Vec::new();
    for rec in reader {
        let (_, rec) = rec.unwrap();
        let step = replay.step(rec);
        summaries.push(step.summary.clone());
    }
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("the operator trusts 10.0.0.9:9000")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("the operator bans 10.0.0.9:9000 for 10m")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("lifts the ban of 10.0.0.9")),
        "{summaries:?}"
    );
    let core = replay.core();
    assert!(core.pool().is_trusted(&p));
    assert!(!core.pool().is_ip_greylisted(p.ip(), secs(4)));
}

fn small() -> Config {
    Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 3,
        ..Config::default()
    }
}

/// Two nodes on the in-memory network, b dialed a.
async fn pair(net: &MemoryNetwork) -> (Node, Node) {
    let a = Node::builder(small(), net.bind(point("10.0.0.1:1")).unwrap())
        .identity(Keypair::from_seed(1))
        .seed(1)
        .start()
        .unwrap();
    let b = Node::builder(small(), net.bind(point("10.0.0.2:1")).unwrap())
        .identity(Keypair::from_seed(2))
        .seed(2)
        .bootstrap(vec![a.local_addr()])
        .start()
        .unwrap();
    b.status_watch()
        .wait_for(|s| s.connections == 1)
        .await
        .unwrap();
    (a, b)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_nodes_operations_ban_unban_protect_and_list() {
    let net = MemoryNetwork::new();
    let (a, b) = pair(&net).await;
    let peers = b.connections().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].peer, peers[0].direction),
        (a.peer_id(), Direction::Outbound)
    );
    assert_eq!(peers[0].kind, Source::Bootstrap);
    assert!(b.protect(a.local_addr(), true).await.unwrap());
    assert!(b.connections().await.unwrap()[0].protected);
    // Banned: the connection goes at once, and the point is listed as banned.
    b.ban(
        BanTarget::Point(a.local_addr()),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    b.status_watch()
        .wait_for(|s| s.connections == 0)
        .await
        .unwrap();
    let (banned, _) = b.points(Some(PointFilter::Banned), 10).await.unwrap();
    assert_eq!(banned[0].point, a.local_addr());
    // Unbanned: b dials it again when asked to maintain.
    assert!(b.unban(BanTarget::Point(a.local_addr())).await.unwrap());
    b.maintain().await.unwrap();
    b.status_watch()
        .wait_for(|s| s.connections == 1)
        .await
        .unwrap();
    assert!(b.add_point(point("10.0.0.3:1")).await.unwrap());
    assert!(!b.add_point(point("10.0.0.3:0")).await.unwrap(), "port 0");
    b.shutdown().await;
    a.shutdown().await;
}

fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("ctl-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// One raw exchange: the lines written, the lines read back until the server hangs up
/// or `n` lines came.
async fn exchange(path: &std::path::Path, send: &[u8], n: usize) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    // A server that refuses at once may have answered and hung up before we write: what
    // it said is still there to read.
    let _ = s.write_all(send).await;
    let mut lines = BufReader::new(s).lines();
    let mut out = Vec::new();
    while out.len() < n {
        match lines.next_line().await {
            Ok(Some(l)) => out.push(l),
            _ => break,
        }
    }
    out
}

async fn ask(path: &std::path::Path, r: Request) -> Result<serde_json::Value, ControlError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || control::call(&path, &r))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_answers_every_line_and_survives_garbage() {
    let net = MemoryNetwork::new();
    let (a, b) = pair(&net).await;
    let path = socket_path("garbage");
    let server = control::serve(b.clone(), &path).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner only");

    let peers = ask(&path, Request::Peers).await.unwrap();
    assert_eq!(peers["peers"][0]["peer"], a.peer_id().to_string());
    assert_eq!(peers["peers"][0]["direction"], "outbound");

    // Garbage, an unknown command, a bad field, then a good request on one connection:
    // each gets its answer, in order.
    let answers = exchange(
        &path,
        b"not json\n{\"cmd\":\"reboot\"}\n{\"cmd\":\"ban\",\"target\":\"nowhere\"}\n{\"cmd\":\"status\"}\n",
        4,
    )
    .await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    for bad in &answers[..3] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert_eq!(v["ok"], false, "{bad}");
        assert!(v["error"].as_str().unwrap().len() > 5, "{bad}");
    }
    let status: serde_json::Value = serde_json::from_str(&answers[3]).unwrap();
    assert_eq!(status["ok"], true);
    assert_eq!(status["result"]["peer_id"], b.peer_id().to_string());
    assert!(status["result"]["time"].as_str().unwrap().ends_with('Z'));

    // A line over 64 KiB: an error, and that client is disconnected; the socket serves on.
    let mut huge = vec![b'x'; control::MAX_REQUEST + 10];
    huge.push(b'\n');
    let answers = exchange(&path, &huge, 2).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].contains("longer than"), "{answers:?}");
    assert!(ask(&path, Request::Status).await.is_ok());

    // Errors of the operations reach the client as such.
    let e = ask(
        &path,
        Request::SetTrigger {
            trigger: "everything".into(),
            on: false,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ControlError::Refused(ref m) if m.contains("new_point")),
        "{e}"
    );

    server.shutdown().await;
    assert!(!path.exists(), "removed at shutdown");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let net = MemoryNetwork::new();
    let node = Node::builder(small(), net.bind(point("10.0.0.1:1")).unwrap())
        .start()
        .unwrap();
    let path = socket_path("stale");
    // A socket file nobody listens on (its node died).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = control::serve(node.clone(), &path).await.unwrap();
    // A second server on the same path: the first answers there.
    let second = control::serve(node.clone(), &path).await.unwrap_err();
    assert!(matches!(second, ControlError::InUse { .. }), "{second}");
    assert!(
        ask(&path, Request::Status).await.is_ok(),
        "the first still serves"
    );
    drop(server);
    assert!(!path.exists(), "removed when dropped");
    // A regular file is never removed.
    std::fs::write(&path, b"not a socket").unwrap();
    let e = control::serve(node.clone(), &path).await.unwrap_err();
    assert!(matches!(e, ControlError::NotASocket { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_bound_are_told_to_come_back() {
    let net = MemoryNetwork::new();
    let node = Node::builder(small(), net.bind(point("10.0.0.1:1")).unwrap())
        .start()
        .unwrap();
    let path = socket_path("bound");
    let config = ControlConfig {
        max_clients: 2,
        ..ControlConfig::default()
    };
    let server = control::serve_with(node.clone(), &path, config)
        .await
        .unwrap();
    // Two clients hold their slots (connected, one answer each so the server has
    // counted them), a third is refused at once.
    let mut held = Vec::new();
    for _ in 0..2 {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
        held.push(r);
    }
    let third = exchange(&path, b"{\"cmd\":\"status\"}\n", 1).await;
    assert!(third[0].contains("too many control clients"), "{third:?}");
    drop(held);
    // Slots come back when clients leave (polled: the server notices the hang-ups).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ask(&path, Request::Status).await {
            Ok(_) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
    node.shutdown().await;
}
