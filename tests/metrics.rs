//! Prometheus metrics as an operator sees them: `/metrics` scraped with a raw HTTP GET,
//! parsed, and compared with the node itself (its status and its core). Counters that the
//! node core keeps stay exact even when the metrics fall behind the event stream; the
//! endpoint answers nothing but `GET /metrics`, bounds what a hostile client can hold, and
//! `peerkeeper node --metrics ADDR` serves it (a bad address exits 2 naming the flag).
//!
//! Real sockets on 127.0.0.1 (and the binary) for what the endpoint and the node do over
//! TCP; the memory transport under a paused clock for the lag test. No sleeps: waits are on
//! the node's status, or bounded retries of a condition with a deadline.

mod common;

use common::*;
use futures::SinkExt;
use peerkeeper::core::CoreStats;
use peerkeeper::metrics::{self, Metrics, ServeConfig};
use peerkeeper::node::{Node, EVENT_CAPACITY};
use peerkeeper::pool::Direction;
use peerkeeper::wire::Message;
use peerkeeper::Config;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

// ----- a scrape, parsed ----------------------------------------------------------------

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape: the metric families' types and units, and every sample.
#[derive(Debug)]
struct Scrape {
    types: HashMap<String, String>,
    units: HashMap<String, String>,
    samples: Vec<Sample>,
    text: String,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let end = after.find('"').expect("a closing quote");
        labels.insert(key.to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape {
        types: HashMap::new(),
        units: HashMap::new(),
        samples: Vec::new(),
        text: text.to_string(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').expect("# TYPE name type");
            scrape.types.insert(name.into(), t.into());
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, u) = rest.split_once(' ').expect("# UNIT name unit");
            scrape.units.insert(name.into(), u.into());
        } else if line.starts_with('#') {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("}"))),
                None => (series, BTreeMap::new()),
            };
            scrape.samples.push(Sample {
                name: name.into(),
                labels,
                value: value.parse().expect("a number"),
            });
        }
    }
    scrape
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The one sample named `name` with exactly the labels `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("no sample {name}{want:?} in\n{}", self.text))
            .value
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

// ----- raw HTTP ---------------------------------------------------------------------------

struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads the answer to the end (the server closes).
async fn http(to: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(to).await?;
    s.write_all(request).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

async fn get(to: SocketAddr, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    http(to, req.as_bytes()).await.expect("an answer")
}

async fn scrape(to: SocketAddr) -> Scrape {
    let r = get(to, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{}",
        r.head
    );
    assert!(r.body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    parse(&r.body)
}

/// Retries `check` on fresh scrapes until it passes (the node settles: dials end, counts
/// catch up), waiting for a status change between tries; fails after [`DEADLINE`] with
/// the last reason.
async fn scrape_until(
    node: &Node,
    at: SocketAddr,
    mut check: impl FnMut(&Scrape, &peerkeeper::node::NodeStatus) -> Result<(), String>,
) -> Scrape {
    let give_up = Instant::now() + DEADLINE;
    let mut rx = node.status_watch();
    loop {
        rx.borrow_and_update();
        let status = node.status();
        let s = scrape(at).await;
        let why = match check(&s, &status) {
            Ok(()) => return s,
            Err(why) => why,
        };
        if Instant::now() > give_up {
            panic!("the scrape never matched: {why}\n{}", s.text);
        }
        // A change, or a quarter second (the counts by kind follow within that).
        let _ = tokio::time::timeout(Duration::from_millis(250), rx.changed()).await;
    }
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// Registers metrics, attaches them to `node` and serves them on 127.0.0.1.
async fn serve_node(node: &Arc<Node>, config: ServeConfig) -> (Metrics, metrics::MetricsServer) {
    let mut registry = Registry::default();
    let m = Metrics::new(&mut registry);
    m.attach(node);
    let server = metrics::serve_with(local(), registry, config)
        .await
        .unwrap();
    (m, server)
}

// ----- the tests ------------------------------------------------------------------------

#[tokio::test]
async fn a_scrape_over_tcp_matches_the_node() {
    let s1 = tcp_node(&passive_config(), 1, vec![]).await;
    // A point where nothing listens: its dial fails.
    let nobody = std::net::TcpListener::bind(local())
        .unwrap()
        .local_addr()
        .unwrap();
    let config = Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 6,
        trusted_points: vec![s1.local_addr()],
        ..Config::default()
    };
    let m = Arc::new(tcp_node(&config, 2, vec![nobody]).await);
    let (_metrics, server) = serve_node(&m, ServeConfig::default()).await;
    let at = server.local_addr();
    // s2 dials m: an inbound connection.
    let s2_config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 2,
        ..Config::default()
    };
    let s2 = tcp_node(&s2_config, 3, vec![m.local_addr()]).await;
    wait_status(
        &m,
        DEADLINE,
        "s1 and s2 connected, the dial to nobody failed",
        |s| s.connections == 2 && s.stats.dials.failed >= 1,
    )
    .await;
    // A raw peer breaks the protocol: banned, dropped.
    let (mut raw, reply) = raw_peer(m.local_addr(), 9, 40009, "peerkeeper").await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    raw.send(hello(9, 40009, "peerkeeper")).await.unwrap();
    assert!(closed_by_node(&mut raw).await);
    // s2 leaves: closed by the peer.
    s2.shutdown().await;
    wait_status(&m, DEADLINE, "the violation and s2's departure", |s| {
        s.stats.violations == 1 && s.stats.closed.lost >= 1
    })
    .await;

    let node = m.clone();
    // The connections by direction now (stable from here: s1 only): the scrape is taken
    // once the gauges' breakdown has caught up with them (it is refreshed at a bounded
    // rate, so a scrape right after a change may show the split before it).
    let split = |c: &peerkeeper::NodeCore, d| {
        c.pool()
            .connections()
            .filter(|(_, x)| x.direction == d)
            .count() as f64
    };
    let (o_now, i_now) = node
        .inspect(move |c| (split(c, Direction::Outbound), split(c, Direction::Inbound)))
        .await
        .unwrap();
    let s = scrape_until(&m, at, |x, st| {
        ensure(
            x.sum("peerkeeper_connections", &[("direction", "outbound")]) == o_now
                && x.sum("peerkeeper_connections", &[("direction", "inbound")]) == i_now,
            || format!("connections by direction: {o_now} out, {i_now} in"),
        )?;
        let (outbound, inbound) = (st.stats.dials.succeeded, st.stats.admission.accepted);
        let d = &st.stats.dials;
        ensure(
            x.sum("peerkeeper_connections", &[]) == st.connections as f64,
            || format!("connections {} in the status", st.connections),
        )?;
        ensure(
            x.sum("peerkeeper_points", &[("state", "connected")]) == st.connections as f64,
            || "connected points".into(),
        )?;
        ensure(
            x.get("peerkeeper_points_known", &[]) == st.known_points as f64,
            || "known points".into(),
        )?;
        ensure(
            x.get("peerkeeper_dial_attempts_total", &[]) == d.attempted as f64,
            || format!("attempts: {}", d.summary()),
        )?;
        ensure(
            x.get("peerkeeper_dials_total", &[("outcome", "failed")]) == d.failed as f64
                && x.get("peerkeeper_dials_total", &[("outcome", "succeeded")])
                    == d.succeeded as f64,
            || format!("outcomes: {}", d.summary()),
        )?;
        ensure(
            x.get(
                "peerkeeper_connections_opened_total",
                &[("direction", "outbound")],
            ) == outbound as f64
                && x.get(
                    "peerkeeper_connections_opened_total",
                    &[("direction", "inbound")],
                ) == inbound as f64,
            || "opened".into(),
        )?;
        ensure(
            x.get("peerkeeper_discovery_points_received_total", &[])
                == st.stats.points.received as f64
                && x.get("peerkeeper_discovery_requests_total", &[])
                    == st.stats.sharing.requests as f64,
            || "discovery".into(),
        )?;
        ensure(x.get("peerkeeper_bans_total", &[]) == 1.0, || {
            "one ban".into()
        })?;
        ensure(
            x.sum(
                "peerkeeper_connections_closed_total",
                &[("reason", "by_peer")],
            ) == st.stats.closed.lost as f64,
            || "closed by peers".into(),
        )?;
        ensure(x.has("peerkeeper_cycles_total"), || "no cycle yet".into())
    })
    .await;

    // Within one scrape: the dial outcomes add up to the attempts.
    let ended = s.sum("peerkeeper_dials_total", &[]);
    let in_flight = s.get("peerkeeper_dials_in_flight", &[]);
    assert_eq!(
        ended + in_flight,
        s.get("peerkeeper_dial_attempts_total", &[])
    );
    assert!(s.get("peerkeeper_dials_total", &[("outcome", "failed")]) >= 1.0);
    // Connections by direction and kind, as the node counts them.
    let (o, i) = node
        .inspect(|c| {
            let n = |d| {
                c.pool()
                    .connections()
                    .filter(|(_, x)| x.direction == d)
                    .count()
            };
            (n(Direction::Outbound), n(Direction::Inbound))
        })
        .await
        .unwrap();
    assert_eq!(
        s.sum("peerkeeper_connections", &[("direction", "outbound")]),
        o as f64
    );
    assert_eq!(
        s.sum("peerkeeper_connections", &[("direction", "inbound")]),
        i as f64
    );
    assert_eq!(
        s.get(
            "peerkeeper_connections",
            &[("direction", "outbound"), ("kind", "trusted")]
        ),
        1.0,
        "s1 is trusted"
    );
    let known = s.get("peerkeeper_points_known", &[]);
    assert!(s.sum("peerkeeper_points", &[]) <= known);
    // Closes by who dialed and why: the violator and s2 dialed in.
    assert_eq!(
        s.get(
            "peerkeeper_connections_closed_total",
            &[("direction", "inbound"), ("reason", "protocol_violation")]
        ),
        1.0
    );
    assert!(
        s.get(
            "peerkeeper_connections_closed_total",
            &[("direction", "inbound"), ("reason", "by_peer")]
        ) >= 1.0
    );
    assert_eq!(
        s.sum(
            "peerkeeper_connections_closed_total",
            &[("direction", "unknown")]
        ),
        0.0,
        "no event missed, every close has its direction"
    );
    assert_eq!(s.get("peerkeeper_events_missed_total", &[]), 0.0);
    assert_eq!(s.get("peerkeeper_protocol_violations_total", &[]), 1.0);
    // Cycles: every ended one is in the histogram.
    let cycles = s.sum("peerkeeper_cycles_total", &[]);
    assert!(cycles >= 1.0);
    assert_eq!(
        s.get("peerkeeper_cycle_duration_seconds_count", &[]),
        cycles
    );
    assert_eq!(
        s.get(
            "peerkeeper_cycle_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        cycles
    );
    assert!(s.sum("peerkeeper_cycles_total", &[("reasons", "activation")]) >= 1.0);
    let b = m.bounds();
    assert_eq!(
        s.get(
            "peerkeeper_connection_bounds",
            &[("bound", "min_threshold")]
        ),
        b.min_threshold as f64
    );
    assert_eq!(
        s.get(
            "peerkeeper_connection_bounds",
            &[("bound", "max_connections")]
        ),
        6.0
    );
    // The budgets by direction (the defaults: min_target, and max_connections).
    assert_eq!(
        s.get("peerkeeper_connection_bounds", &[("bound", "max_outbound")]),
        b.min_target as f64
    );
    assert_eq!(
        s.get("peerkeeper_connection_bounds", &[("bound", "max_inbound")]),
        6.0
    );
    // Every family is there, typed, named by the conventions.
    for (family, t) in [
        ("peerkeeper_connections", "gauge"),
        ("peerkeeper_connection_bounds", "gauge"),
        ("peerkeeper_points", "gauge"),
        ("peerkeeper_points_known", "gauge"),
        ("peerkeeper_dials_in_flight", "gauge"),
        ("peerkeeper_discovery_wants_points", "gauge"),
        ("peerkeeper_dial_attempts", "counter"),
        ("peerkeeper_dials", "counter"),
        ("peerkeeper_connections_opened", "counter"),
        ("peerkeeper_connections_closed", "counter"),
        ("peerkeeper_inbound_refused", "counter"),
        ("peerkeeper_inbound_dropped", "counter"),
        ("peerkeeper_handshake_budget", "counter"),
        ("peerkeeper_inbound_made_room", "counter"),
        ("peerkeeper_cycles", "counter"),
        ("peerkeeper_cycle_duration_seconds", "histogram"),
        ("peerkeeper_discovery_rounds", "counter"),
        ("peerkeeper_discovery_requests", "counter"),
        ("peerkeeper_discovery_points_received", "counter"),
        ("peerkeeper_discovery_points_new", "counter"),
        ("peerkeeper_points_dropped", "counter"),
        ("peerkeeper_points_evicted", "counter"),
        ("peerkeeper_discovery_answers", "counter"),
        ("peerkeeper_discovery_deferred_answers", "counter"),
        ("peerkeeper_discovery_asks_ignored", "counter"),
        ("peerkeeper_discovery_adverts_ignored", "counter"),
        ("peerkeeper_protocol_violations", "counter"),
        ("peerkeeper_bans", "counter"),
        ("peerkeeper_swaps", "counter"),
        ("peerkeeper_events_missed", "counter"),
    ] {
        assert_eq!(s.types.get(family).map(String::as_str), Some(t), "{family}");
    }
    assert_eq!(
        s.units
            .get("peerkeeper_cycle_duration_seconds")
            .map(String::as_str),
        Some("seconds")
    );
    for sample in &s.samples {
        assert!(sample.name.starts_with("peerkeeper_"), "{}", sample.name);
        let family = sample.name.strip_suffix("_total");
        if let Some(f) = family {
            assert_eq!(
                s.types.get(f).map(String::as_str),
                Some("counter"),
                "{}",
                sample.name
            );
        }
    }
    // The dial outcomes are labelled by every outcome, even those that never happened.
    for outcome in peerkeeper::core::DialEnd::ALL {
        s.get("peerkeeper_dials_total", &[("outcome", outcome.name())]);
    }
    // So are the handshake budget's.
    for reason in [
        "evicted",
        "throttled",
        "busy",
        "full",
        "failed",
        "refused_network",
    ] {
        s.get("peerkeeper_handshake_budget_total", &[("reason", reason)]);
    }
    m.shutdown().await;
    s1.shutdown().await;
}

#[tokio::test]
async fn only_get_metrics_is_served_and_hostile_clients_are_bounded() {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..Config::default()
    };
    let s1 = tcp_node(&passive_config(), 1, vec![]).await;
    let m = Arc::new(tcp_node(&config, 2, vec![s1.local_addr()]).await);
    wait_status(&m, DEADLINE, "connected", |s| s.connections == 1).await;
    let mut limits = ServeConfig::default();
    limits.max_connections = 4;
    limits.header_read_timeout = Duration::from_secs(30);
    limits.connection_timeout = Duration::from_secs(60);
    let (_metrics, server) = serve_node(&m, limits).await;
    let at = server.local_addr();

    for path in [
        "/",
        "/metrics/",
        "/metricsx",
        "/other",
        "/metrics/../metrics",
    ] {
        let r = get(at, path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.head);
    }
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let req = format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        let r = http(at, req.as_bytes()).await.unwrap();
        assert_eq!(r.status, 404, "{method} /metrics: {}", r.head);
    }
    assert_eq!(
        get(at, "/metrics?x=1").await.status,
        200,
        "a query string is ignored"
    );

    // Request headers of 64 KiB: refused, never served.
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend(b"\r\n\r\n");
    match http(at, &big).await {
        Ok(r) => assert_eq!(r.status, 431, "{}", r.head),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }

    // As many idle connections as allowed: one more is closed at once, while they are
    // still held (a request on each is then answered).
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(at).await.unwrap());
    }
    let mut extra = TcpStream::connect(at).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, extra.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the connection over the cap is closed: {closed:?}"
    );
    for mut s in idle {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, s.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "a held connection is served"
        );
    }

    // None of it touched the node: still connected, still maintaining, still scraped.
    let report = m.maintain().await.unwrap();
    assert_eq!(report.connections_after, 1);
    assert_eq!(m.status().connections, 1);
    let s = scrape(at).await;
    assert_eq!(s.sum("peerkeeper_connections", &[]), 1.0);

    // Short limits: a client that sends nothing, or half a request line, is closed.
    let mut short = ServeConfig::default();
    short.header_read_timeout = Duration::from_millis(200);
    short.connection_timeout = Duration::from_secs(1);
    let (_m2, server2) = serve_node(&m, short).await;
    let mut silent = TcpStream::connect(server2.local_addr()).await.unwrap();
    let mut slow = TcpStream::connect(server2.local_addr()).await.unwrap();
    slow.write_all(b"GET /met").await.unwrap();
    for s in [&mut silent, &mut slow] {
        let r = tokio::time::timeout(DEADLINE, s.read_to_end(&mut Vec::new())).await;
        assert!(r.is_ok(), "a stalled client is closed by the server");
    }
    server2.shutdown().await;
    server.shutdown().await;
    m.shutdown().await;
    s1.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn counters_stay_exact_when_the_metrics_fall_behind_the_events() {
    let lab = Lab::new();
    let a = lab.passive(ip4(0, 0, 1), 1);
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 8,
        ..Config::default()
    };
    let m = lab.node(&config, ip4(0, 0, 2), 2, vec![a.local_addr()]);
    wait_status(&m, VIRTUAL_DEADLINE, "connected to a", |s| {
        s.connections == 1
    })
    .await;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    // Subscribed now, but not run until the end: it falls behind.
    let follow = metrics.follow(&m);
    tokio::pin!(follow);

    // Five peers dial in and leave, then more cycles than the event stream holds: the
    // events of the five are the oldest, lost to the lagging metrics.
    for i in 0..5u8 {
        let (peer, reply) =
            mem_peer(&lab, ip4(1, 0, i + 1), 100 + u64::from(i), m.local_addr()).await;
        assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
        drop(peer);
        wait_status(&m, VIRTUAL_DEADLINE, "the peer gone", |s| {
            s.stats.closed.lost == u64::from(i) + 1
        })
        .await;
    }
    for _ in 0..EVENT_CAPACITY + 100 {
        m.maintain().await.unwrap();
    }
    let st: CoreStats = m.status().stats;

    // Now let the metrics run, until they caught up (bounded in virtual time).
    let mut caught_up = None;
    for _ in 0..100 {
        let ran = tokio::time::timeout(Duration::from_secs(1), &mut follow).await;
        assert!(ran.is_err(), "follow ends only when the node stops");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let x = parse(&text);
        if x.get("peerkeeper_events_missed_total", &[]) > 0.0
            && x.get("peerkeeper_dial_attempts_total", &[]) == st.dials.attempted as f64
            && x.sum("peerkeeper_connections", &[]) == 1.0
        {
            caught_up = Some(x);
            break;
        }
    }
    let x = caught_up.expect("the metrics catch up");
    // Exact: what the node core counts.
    assert_eq!(
        x.get(
            "peerkeeper_connections_opened_total",
            &[("direction", "inbound")]
        ),
        st.admission.accepted as f64
    );
    assert_eq!(
        x.get("peerkeeper_dials_total", &[("outcome", "succeeded")]),
        st.dials.succeeded as f64
    );
    // Closes stay exact by reason: the five whose events were lost, without a direction.
    assert_eq!(st.closed.lost, 5);
    assert_eq!(
        x.sum(
            "peerkeeper_connections_closed_total",
            &[("reason", "by_peer")]
        ),
        5.0
    );
    assert_eq!(
        x.get(
            "peerkeeper_connections_closed_total",
            &[("direction", "unknown"), ("reason", "by_peer")]
        ),
        5.0
    );
    // Event-derived: the cycles whose events were kept.
    let cycles = x.sum("peerkeeper_cycles_total", &[]);
    assert!(
        cycles >= (EVENT_CAPACITY - 50) as f64 && cycles < st.cycles as f64,
        "{cycles}"
    );

    // The follow ends with the node.
    m.shutdown().await;
    tokio::time::timeout(VIRTUAL_DEADLINE, &mut follow)
        .await
        .expect("follow ends when the node stops");
    a.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_attached_task_ends_when_its_node_stops_or_is_dropped() {
    let lab = Lab::new();
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);

    let a = Arc::new(lab.passive(ip4(0, 0, 1), 1));
    let task = metrics.attach(&a);
    a.shutdown().await;
    tokio::time::timeout(VIRTUAL_DEADLINE, task)
        .await
        .expect("the task ends after shutdown")
        .unwrap();

    // The task holds no strong reference: dropping the last Arc stops the node, and the task.
    let b = Arc::new(lab.passive(ip4(0, 0, 2), 2));
    let task = metrics.attach(&b);
    wait_status(&b, VIRTUAL_DEADLINE, "started", |s| s.stats.cycles >= 1).await;
    drop(b);
    tokio::time::timeout(VIRTUAL_DEADLINE, task)
        .await
        .expect("the task ends after the node is dropped")
        .unwrap();
}

// ----- the command ------------------------------------------------------------------------

fn peerkeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
}

/// A child process killed on drop, so that a failing test leaves none behind.
struct Killed(Option<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn peerkeeper_node_serves_metrics() {
    let seed = tcp_node(&passive_config(), 1, vec![]).await;
    let mut child = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args([
            "--min",
            "1",
            "--expected",
            "1",
            "--max",
            "2",
            "--status-interval",
            "0s",
        ])
        .args(["--peer", &seed.local_addr().to_string()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut guard = Killed(Some(child));
    // The reader keeps reading to the end (a closed pipe would fail the node's writes).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("metrics="))
                .map(|a| a.parse::<SocketAddr>().unwrap());
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    let at = tokio::task::spawn_blocking(move || rx.recv_timeout(DEADLINE))
        .await
        .unwrap()
        .expect("a line names the metrics address");
    // Scrape until the node shows its connection to the seed (bounded retries).
    let mut last = String::new();
    let mut ok = false;
    let mut rx = seed.status_watch();
    for _ in 0..240 {
        let s = scrape(at).await;
        if s.sum("peerkeeper_connections", &[]) == 1.0
            && s.get(
                "peerkeeper_connections_opened_total",
                &[("direction", "outbound")],
            ) == 1.0
            && s.get("peerkeeper_dials_total", &[("outcome", "succeeded")]) == 1.0
        {
            ok = true;
            break;
        }
        last = s.text;
        // The seed's status changes when the node connects; else try again in a while.
        rx.borrow_and_update();
        let _ = tokio::time::timeout(Duration::from_millis(250), rx.changed()).await;
    }
    assert!(ok, "the node's scrape never showed its connection:\n{last}");
    // What runs, and the process's own resources (Linux).
    let s = scrape(at).await;
    assert_eq!(s.sum("peerkeeper_info", &[("policy", "peerkeeper")]), 1.0);
    if cfg!(target_os = "linux") {
        assert!(s.sum("process_open_fds", &[]) >= 3.0, "{}", s.text);
        assert!(s.sum("process_resident_memory_bytes", &[]) > 0.0);
        assert!(s.text.contains("process_cpu_seconds_total "));
    }
    assert_eq!(get(at, "/").await.status, 404);
    let killed = Command::new("kill")
        .args(["-TERM", &guard.0.as_ref().unwrap().id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut child = guard.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    seed.shutdown().await;
}

#[test]
fn a_bad_metrics_address_exits_2_naming_the_flag() {
    let out = peerkeeper()
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "localhost-9100",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics"), "{err}");

    // An address taken already: named, and the node does not start.
    let taken = std::net::TcpListener::bind(local()).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = peerkeeper()
        .args(["node", "--listen", "127.0.0.1:0", "--metrics", &addr])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics") && err.contains(&addr), "{err}");
    assert!(!err.contains("node started"), "{err}");
}

/// Issue 18, part 6: what runs, as a metric (`peerkeeper_info`, value 1), and the
/// standard process metrics next to the node's.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn info_and_process_metrics_say_what_runs() {
    use peerkeeper::identity::Keypair;
    use peerkeeper::node::NetConfig;
    let net = peerkeeper::transport::memory::MemoryNetwork::new();
    let node = std::sync::Arc::new(
        peerkeeper::Node::builder(
            peerkeeper::Config::default(),
            net.bind("10.0.0.1:1".parse().unwrap()).unwrap(),
        )
        .identity(Keypair::from_seed(1))
        .net(NetConfig {
            network: "testnet".into(),
            ..NetConfig::default()
        })
        .start()
        .unwrap(),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = peerkeeper::metrics::Metrics::new(&mut registry);
    peerkeeper::metrics::register_process_metrics(&mut registry);
    let task = metrics.attach(&node);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let info = text
        .lines()
        .find(|l| l.starts_with("peerkeeper_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(info.ends_with(" 1"), "{info}");
    for label in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        format!("peer_id=\"{}\"", node.peer_id()),
        "network=\"testnet\"".to_string(),
        "policy=\"peerkeeper\"".to_string(),
    ] {
        assert!(info.contains(&label), "{label} in {info}");
    }
    if cfg!(target_os = "linux") {
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_open_fds") >= 3.0);
    }
    node.shutdown().await;
    task.await.unwrap();
}
