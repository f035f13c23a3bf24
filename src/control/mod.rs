//! A node's control socket: a local Unix domain socket through which its operator lists
//! peers and points, reads the status, asks for maintenance, and adds, bans, unbans,
//! protects and trusts points, or switches triggers (`peerkeeper node --control PATH`,
//! then `peerkeeper ctl --control PATH COMMAND`).
//!
//! The operations themselves are [`Node`]'s ([`Node::connections`], [`Node::points`],
//! [`Node::ban`], [`Node::unban`], [`Node::protect`], [`Node::trust`],
//! [`Node::add_point`], [`Node::set_trigger`], [`Node::maintain`], [`Node::status`]): an
//! embedding node can put them behind its own RPC instead. This module is the socket
//! `peerkeeper node` serves them on, usable by an embedding node as it is.
//!
//! # Protocol
//!
//! One JSON object per line each way: a [`Request`] (`{"cmd":"peers"}`,
//! `{"cmd":"ban","target":"192.0.2.7:9732","for":"1h"}`, ...), answered by a [`Response`]
//! (`{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`). A client may send any
//! number of requests on one connection; each is answered in order.
//!
//! # Who may connect, and bounds
//!
//! Only the socket's owner: the socket file is made mode 0600 as soon as it is bound, and
//! every client's uid is checked with `SO_PEERCRED` (a client of another uid is told so
//! and disconnected, and the refusal logged). A request line is at most
//! [`ControlConfig::max_request`] bytes (64 KiB); at most [`ControlConfig::max_clients`]
//! (8) clients are served at once, more are told so and disconnected; a client silent for
//! [`ControlConfig::idle_timeout`] is disconnected. A malformed request is answered with
//! an error naming what is wrong, and never stops the node or the socket. Listings are
//! bounded: points by the request's `limit` (at most [`ControlConfig::max_points`]).
//!
//! # The socket file
//!
//! A socket file left by a node that died is replaced; one a live node answers on is an
//! error ([`ControlError::InUse`]); anything else at the path (a regular file) is an
//! error, never removed. The file is removed when the server stops
//! ([`ControlServer::shutdown`], or dropped).

use crate::core::{BanTarget, PointFilter};
use crate::node::{Node, NodeError};
use crate::trigger::TriggerKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

#[cfg(unix)]
mod server;
#[cfg(unix)]
pub use server::{call, serve, serve_with, ControlServer};

/// Most bytes of a request line (64 KiB).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most bytes of a response line a client reads (16 MiB: a listing of many points).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Points listed when a request gives no `limit`.
pub const DEFAULT_POINTS: usize = 1000;

/// The control socket's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlConfig {
    /// Most bytes of a request line; a longer one is answered with an error and the
    /// client disconnected.
    pub max_request: usize,
    /// Most clients served at once; more are answered with an error and disconnected.
    pub max_clients: usize,
    /// A client that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// Most points one `points` request lists.
    pub max_points: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            max_request: MAX_REQUEST,
            max_clients: 8,
            idle_timeout: Duration::from_secs(60),
            max_points: 100_000,
        }
    }
}

/// Why the control socket cannot be served, or a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A live node answers on the socket already.
    #[error("{path}: a running node answers on this control socket already")]
    InUse {
        /// The socket's path.
        path: std::path::PathBuf,
    },
    /// Something other than a socket is at the path: it is left alone.
    #[error("{path}: exists and is not a socket (not removed)")]
    NotASocket {
        /// The path.
        path: std::path::PathBuf,
    },
    /// Binding, connecting, reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The socket's path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node answered something that is not a response line.
    #[error("bad response from the node: {0}")]
    BadResponse(String),
    /// The node answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// One request: a JSON object with `cmd` and the command's fields, on one line.
///
/// ```
/// use peerkeeper::control::Request;
/// let r: Request = serde_json::from_str(r#"{"cmd":"ban","target":"192.0.2.7","for":"1h"}"#).unwrap();
/// assert_eq!(r, Request::Ban { target: "192.0.2.7".into(), duration: Some("1h".into()) });
/// assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// The open connections: id, point, direction, kind, since, score, round-trip time.
    Peers,
    /// The known points, maybe only those in one state
    /// (connected, dialing, dialable, waiting, banned).
    Points {
        /// Only points in this state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        /// At most this many (default [`DEFAULT_POINTS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// The node's status: counts, bounds, dial outcomes, with the time.
    Status,
    /// One maintenance cycle; answered with its report when it ends.
    Maintain,
    /// Learn a point (as a bootstrap point).
    Add {
        /// `IP:PORT`.
        point: String,
    },
    /// Ban a point (`IP:PORT`) or an IP address.
    Ban {
        /// `IP:PORT` or `IP`.
        target: String,
        /// For how long ("1h", "30m"; default: the config's `greylist_duration`).
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
    },
    /// Lift a ban.
    Unban {
        /// `IP:PORT` or `IP`.
        target: String,
    },
    /// Protect a point (never trimmed), or stop protecting it.
    Protect {
        /// `IP:PORT`.
        point: String,
        /// Protect (default) or stop.
        #[serde(default = "yes")]
        on: bool,
    },
    /// Trust a point, maybe with the key it must prove (`[KEY@]IP:PORT`).
    Trust {
        /// `IP:PORT` or `KEY@IP:PORT`.
        point: String,
    },
    /// Switch a trigger (or the idle timer) on or off.
    SetTrigger {
        /// too_few, too_many, new_point, new_peer, new_connection, or idle_timer.
        trigger: String,
        /// On or off.
        on: bool,
    },
}

fn yes() -> bool {
    true
}

/// One response line: `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What it gave, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success.
    pub fn ok(result: Value) -> Response {
        Response {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failure, saying why.
    pub fn error(why: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(why.into()),
        }
    }
}

/// What a trigger switch names: one of the five triggers, or the idle timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Switch {
    /// A trigger.
    Trigger(TriggerKind),
    /// The maintenance idle timer.
    IdleTimer,
}

/// The names `set-trigger` takes, and what each switches.
pub const SWITCHES: [(&str, Switch); 6] = [
    ("too_few", Switch::Trigger(TriggerKind::TooFewConnections)),
    ("too_many", Switch::Trigger(TriggerKind::TooManyConnections)),
    ("new_point", Switch::Trigger(TriggerKind::NewPoint)),
    ("new_peer", Switch::Trigger(TriggerKind::NewPeer)),
    (
        "new_connection",
        Switch::Trigger(TriggerKind::NewConnection),
    ),
    ("idle_timer", Switch::IdleTimer),
];

/// Parses a trigger's name (`too_few`, `new-point`, ...: dashes or underscores).
///
/// ```
/// use peerkeeper::control::{parse_switch, Switch};
/// use peerkeeper::trigger::TriggerKind;
/// assert_eq!(parse_switch("new-point"), Ok(Switch::Trigger(TriggerKind::NewPoint)));
/// assert!(parse_switch("everything").is_err());
/// ```
pub fn parse_switch(name: &str) -> Result<Switch, String> {
    let norm = name.replace('-', "_");
    SWITCHES
        .iter()
        .find(|(n, _)| *n == norm)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let names: Vec<&str> = SWITCHES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown trigger {:?}: one of {}",
                name.chars().take(32).collect::<String>(),
                names.join(", ")
            )
        })
}

/// Parses `[KEY@]IP:PORT` (KEY: a peer id, 64 hex characters).
pub fn parse_keyed_point(s: &str) -> Result<(Option<crate::PeerId>, SocketAddr), String> {
    let short = |s: &str| s.chars().take(80).collect::<String>();
    let (key, point) = match s.split_once('@') {
        Some((k, p)) => (
            Some(
                k.parse::<crate::PeerId>()
                    .map_err(|e| format!("{:?} before '@': {e}", short(k)))?,
            ),
            p,
        ),
        None => (None, s),
    };
    let point = parse_point(point)?;
    Ok((key, point))
}

fn parse_point(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{:?} is not IP:PORT",
            s.chars().take(80).collect::<String>()
        )
    })
}

/// A wall-clock time as RFC 3339, UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The node's status as one JSON object: what `peerkeeper node --status-json` prints
/// and `peerkeeper ctl status` shows (the wall-clock `time` included).
pub async fn status_json(node: &Node) -> Value {
    let s = node.status();
    let peers: Vec<String> = node
        .inspect(|c| c.pool().connections().map(|(a, _)| a.to_string()).collect())
        .await
        .unwrap_or_default();
    let b = node.bounds();
    json!({
        "time": rfc3339(SystemTime::now()),
        "listen": node.local_addr().to_string(),
        "peer_id": node.peer_id().to_string(),
        "connections": s.connections,
        "outbound": s.outbound,
        "inbound": s.inbound(),
        "peers": peers,
        "min_threshold": b.min_threshold,
        "max_threshold": b.max_threshold,
        "dialing": s.dialing,
        "known_points": s.known_points,
        "cycles": s.stats.cycles,
        "dials": s.stats.dials,
        "points_dropped": s.stats.points.dropped,
        "admission": s.stats.admission,
        "violations": s.stats.violations,
        "bans": s.stats.bans,
        "dropped_at_accept": s.dropped_at_accept,
        "handshakes": s.handshakes,
    })
}

/// Carries out one request on `node`: the answer a control socket sends back. Every
/// error (a malformed field, a stopped node) is a [`Response::error`]; nothing panics.
pub async fn handle(node: &Node, request: Request, config: &ControlConfig) -> Response {
    match run(node, request, config).await {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(e),
    }
}

fn stopped(e: NodeError) -> String {
    e.to_string()
}

async fn run(node: &Node, request: Request, config: &ControlConfig) -> Result<Value, String> {
    match request {
        Request::Peers => {
            let peers = node.connections().await.map_err(stopped)?;
            let now = node.now();
            let list: Vec<Value> = peers
                .iter()
                .map(|c| {
                    json!({
                        "peer": c.peer.to_string(),
                        "short": c.peer.short(),
                        "point": c.point.to_string(),
                        "direction": direction_name(c.direction),
                        "kind": c.kind.name(),
                        "since": rfc3339(node.wall_clock(c.since.min(now))),
                        "connected_secs": c.connected_for.as_secs_f64(),
                        "score": c.score,
                        "rtt_ms": c.rtt.map(|d| d.as_secs_f64() * 1000.0),
                        "protected": c.protected,
                    })
                })
                .collect();
            Ok(json!({ "peers": list }))
        }
        Request::Points { state, limit } => {
            let filter = match state {
                Some(s) => Some(s.parse::<PointFilter>()?),
                None => None,
            };
            let limit = limit.unwrap_or(DEFAULT_POINTS).min(config.max_points);
            let (points, total) = node.points(filter, limit).await.map_err(stopped)?;
            let list: Vec<Value> = points
                .iter()
                .map(|p| {
                    json!({
                        "point": p.point.to_string(),
                        "state": p.state.name(),
                        "kind": p.kind.name(),
                        "failures": p.failures,
                        "until": p.until.map(|t| rfc3339(node.wall_clock(t))),
                        "expected_peer": p.expected.map(|k| k.to_string()),
                    })
                })
                .collect();
            Ok(json!({ "total": total, "shown": list.len(), "points": list }))
        }
        Request::Status => Ok(status_json(node).await),
        Request::Maintain => {
            let report = node.maintain().await.map_err(stopped)?;
            serde_json::to_value(&report).map_err(|e| e.to_string())
        }
        Request::Add { point } => {
            let point = parse_point(&point)?;
            let known = node.add_point(point).await.map_err(stopped)?;
            if !known {
                return Err(format!(
                    "{point} was not added (not a dialable address, or this node's own)"
                ));
            }
            Ok(json!({ "point": point.to_string(), "known": true }))
        }
        Request::Ban { target, duration } => {
            let target: BanTarget = target.parse().map_err(|e| format!("{e}"))?;
            let duration = match duration {
                Some(d) => Some(
                    humantime::parse_duration(&d)
                        .map_err(|e| format!("\"for\": {e} (e.g. \"1h\", \"30m\")"))?,
                ),
                None => None,
            };
            let until = node.ban(target, duration).await.map_err(stopped)?;
            Ok(json!({ "target": target.to_string(), "until": rfc3339(until) }))
        }
        Request::Unban { target } => {
            let target: BanTarget = target.parse().map_err(|e| format!("{e}"))?;
            let lifted = node.unban(target).await.map_err(stopped)?;
            Ok(json!({ "target": target.to_string(), "was_banned": lifted }))
        }
        Request::Protect { point, on } => {
            let point = parse_point(&point)?;
            let protected = node.protect(point, on).await.map_err(stopped)?;
            if on && !protected {
                return Err(format!(
                    "{point} cannot be protected: too many protected points"
                ));
            }
            Ok(json!({ "point": point.to_string(), "protected": protected }))
        }
        Request::Trust { point } => {
            let (key, point) = parse_keyed_point(&point)?;
            if !node.trust(point, key).await.map_err(stopped)? {
                return Err(format!(
                    "{point} cannot be trusted (not a dialable address, this node's own, or too many keys expected)"
                ));
            }
            Ok(json!({
                "point": point.to_string(),
                "trusted": true,
                "expected_peer": key.map(|k| k.to_string()),
            }))
        }
        Request::SetTrigger { trigger, on } => {
            match parse_switch(&trigger)? {
                Switch::Trigger(kind) => node.set_trigger(kind, on).await,
                Switch::IdleTimer => node.set_idle_timer(on).await,
            }
            .map_err(stopped)?;
            Ok(json!({ "trigger": trigger.replace('-', "_"), "on": on }))
        }
    }
}

/// `outbound` or `inbound`.
pub fn direction_name(d: crate::pool::Direction) -> &'static str {
    match d {
        crate::pool::Direction::Outbound => "outbound",
        crate::pool::Direction::Inbound => "inbound",
    }
}
