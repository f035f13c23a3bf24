//! Reading a trace back and replaying it: how a user finds out why a node decided what it
//! did ("why did my node drop that peer at 3:12?").
//!
//! A trace is a [`TraceHeader`] line, then one [`Recorded`] input per line, all JSON
//! (see [`super::Input`]). [`TraceReader`] reads one and checks every line: the schema and
//! version of the header, then each input, naming the line of the first that is wrong.
//! [`Replay`] feeds the inputs to a fresh core built from the header, through
//! [`NodeCore::apply`], and gives back, per input, what the core did ([`Step`]): its
//! answer ([`Reply`]), its actions (with their time and peer, as [`TracedAction`]s), its
//! events, and every decision explained ([`Decision`]). The core is deterministic and a
//! trace holds everything it reads, so the actions are the recorded node's own, at the
//! same times, in the same order.
//!
//! [`TraceWriter`] writes a trace, for a driver of its own core (the tokio node records
//! with `NodeBuilder::trace`, the simulator with `SimConfig::trace_nodes`).
//!
//! This module is private: its items are re-exported from [`crate::core`], and the
//! overview a user reads is [`Replay`]'s.

use super::intake::canonical_ip;
use super::{
    Action, Admission, DialEnd, DialFailure, DialResult, DialVerdict, Ended, Event, Input,
    NodeCore, Offender, Recorded, RefuseReason, Reply, Report, ScoreOutcome, TraceHeader,
    TracedAction, TRACE_SCHEMA, TRACE_VERSION,
};
use crate::config::Policy;
use crate::maintenance::{CycleReport, WakeReasons};
use crate::pool::{CloseReason, ConnId, Direction, PeerId, Source};
use crate::trigger::TriggerKind;
use crate::Time;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;

// ----- writing -----------------------------------------------------------------------

/// Writes a trace: the header line at once, then one input a line. Give it a buffered
/// writer (`std::io::BufWriter`) and flush it when the driver stops: a trace cut short
/// ends with a truncated line, which a replay reports.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
}

#[derive(Serialize)]
struct RecordedRef<'a> {
    at: Time,
    #[serde(flatten)]
    input: &'a Input,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header to `out`.
    ///
    /// # Errors
    ///
    /// When `out` fails.
    pub fn new(mut out: W, header: &TraceHeader) -> io::Result<TraceWriter<W>> {
        write_line(&mut out, header)?;
        Ok(TraceWriter { out })
    }

    /// Records one input, given to the core at `at`.
    ///
    /// # Errors
    ///
    /// When the output fails.
    pub fn write(&mut self, at: Time, input: &Input) -> io::Result<()> {
        write_line(&mut self.out, &RecordedRef { at, input })
    }

    /// Records one input.
    ///
    /// # Errors
    ///
    /// When the output fails.
    pub fn record(&mut self, recorded: &Recorded) -> io::Result<()> {
        write_line(&mut self.out, recorded)
    }

    /// Flushes the output.
    ///
    /// # Errors
    ///
    /// When the output fails.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_line(out: &mut impl Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

// ----- reading -----------------------------------------------------------------------

/// Why a trace cannot be read. Every error names the line (from 1) where it was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading failed.
    #[error("line {line}: cannot read the trace: {source}")]
    Io {
        /// The line being read.
        line: usize,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No header: the file is empty.
    #[error("line 1: the trace is empty (a trace starts with a header line)")]
    Empty,
    /// The header is of another schema or version.
    #[error("line {line}: a trace of schema {schema} version {version}; this build reads schema {:?} version {}", TRACE_SCHEMA, TRACE_VERSION)]
    Version {
        /// The header's line.
        line: usize,
        /// The schema it names (JSON text).
        schema: String,
        /// The version it names (JSON text).
        version: String,
    },
    /// The header is not one (garbled, or its config is invalid).
    #[error("line {line}: not a valid trace header: {what}")]
    Header {
        /// The header's line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A line is not an input: not JSON (truncated or garbled), or an unknown input.
    #[error("line {line}: {what}")]
    Line {
        /// The line.
        line: usize,
        /// What is wrong.
        what: String,
    },
}

impl TraceError {
    /// The line where the error was found (from 1).
    pub fn line(&self) -> usize {
        match self {
            TraceError::Empty => 1,
            TraceError::Io { line, .. }
            | TraceError::Version { line, .. }
            | TraceError::Header { line, .. }
            | TraceError::Line { line, .. } => *line,
        }
    }
}

/// Reads a trace: the header when built ([`TraceReader::new`]), then, as an iterator, each
/// input with its line number. Blank lines are skipped. After an error the iterator ends.
#[derive(Debug)]
pub struct TraceReader<R> {
    lines: io::Lines<R>,
    line: usize,
    header: TraceHeader,
    done: bool,
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and checks the header: the schema and version first (a trace of another
    /// version is refused whatever else it holds), then the config, which must be valid.
    ///
    /// # Errors
    ///
    /// [`TraceError`], naming the line.
    pub fn new(input: R) -> Result<TraceReader<R>, TraceError> {
        let mut lines = input.lines();
        let mut line = 0;
        let text = loop {
            line += 1;
            match lines.next() {
                None => return Err(TraceError::Empty),
                Some(Err(source)) => return Err(TraceError::Io { line, source }),
                Some(Ok(t)) if t.trim().is_empty() => continue,
                Some(Ok(t)) => break t,
            }
        };
        let header = parse_header(&text, line)?;
        Ok(TraceReader {
            lines,
            line,
            header,
            done: false,
        })
    }

    /// The trace's header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<(usize, Recorded), TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            self.line += 1;
            let line = self.line;
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(source) => {
                    self.done = true;
                    return Some(Err(TraceError::Io { line, source }));
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            let parsed = parse_input(&text).map_err(|what| TraceError::Line { line, what });
            self.done = parsed.is_err();
            return Some(parsed.map(|r| (line, r)));
        }
    }
}

fn parse_header(text: &str, line: usize) -> Result<TraceHeader, TraceError> {
    let bad = |what: String| TraceError::Header { line, what };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(obj) = v.as_object() else {
        return Err(bad("not a JSON object".into()));
    };
    if obj.contains_key("input") && !obj.contains_key("schema") {
        return Err(bad(
            "an input where the header belongs (a trace starts with {\"schema\": ...})".into(),
        ));
    }
    let schema = obj.get("schema");
    let version = obj.get("version");
    if schema.and_then(|s| s.as_str()) != Some(TRACE_SCHEMA)
        || version.and_then(|v| v.as_u64()) != Some(u64::from(TRACE_VERSION))
    {
        let text_of =
            |v: Option<&serde_json::Value>| v.map_or_else(|| "(none)".into(), |v| v.to_string());
        return Err(TraceError::Version {
            line,
            schema: text_of(schema),
            version: text_of(version),
        });
    }
    let header: TraceHeader = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    header
        .config
        .validate()
        .map_err(|e| bad(format!("its config is invalid: {e}")))?;
    Ok(header)
}

fn parse_input(text: &str) -> Result<Recorded, String> {
    let err = match serde_json::from_str::<Recorded>(text) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    // Say what is wrong in a user's words.
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) if e.is_eof() => return Err(format!("truncated line ({e})")),
        Err(e) => return Err(format!("not JSON: garbled line ({e})")),
    };
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".into());
    };
    if obj.contains_key("schema") {
        return Err("a second header (traces cannot be concatenated)".into());
    }
    let name = match obj.get("input") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("\"input\" is not a name: {other}")),
        None => return Err("no \"input\" field".into()),
    };
    if err.to_string().contains("unknown variant") {
        return Err(format!(
            "unknown input {name:?} (written by another build of the core?)"
        ));
    }
    Err(format!("input {name:?}: {err}"))
}

// ----- replaying ---------------------------------------------------------------------

/// A connection the replayed core opened, as its `Connected` event said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The peer's point.
    pub point: SocketAddr,
    /// The peer.
    pub peer: PeerId,
    /// Who dialed.
    pub direction: Direction,
    /// When it opened.
    pub since: Time,
}

/// What the core did with one input.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Step {
    /// When the input came.
    pub at: Time,
    /// The input.
    pub input: Input,
    /// The input in words.
    pub summary: String,
    /// Its answer.
    pub reply: Reply,
    /// The actions it produced, in order, at `at`, with the peer of the connection they
    /// concern (what a driver's action tap records).
    pub actions: Vec<TracedAction>,
    /// The events it produced, in order.
    pub events: Vec<Event>,
    /// Open connections before the input.
    pub connections_before: usize,
    /// Open connections after it.
    pub connections_after: usize,
    /// Every decision, explained: the answer first, then what happened (dial outcomes,
    /// connections lost, points learned, bans), then the actions in order.
    pub decisions: Vec<Decision>,
    /// Signs that the replay parted from the recording (an input the recorded core could
    /// only have got in another state), which happens with a trace edited or replayed by
    /// a build whose decisions differ.
    pub warnings: Vec<String>,
}

/// What a decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecisionKind {
    /// An inbound connection admitted.
    Admitted,
    /// An inbound connection refused.
    Refused,
    /// A dialed connection kept.
    Kept,
    /// A dialed connection dropped after its handshake.
    Dropped,
    /// A dial ended without a connection (refused, failed, cancelled).
    DialEnded,
    /// A dial started.
    Dial,
    /// A connection closed by us.
    Closed,
    /// A connection ended by the peer, the network or the shell.
    Lost,
    /// Points sent (an answer, or a farewell).
    SentPoints,
    /// Points asked for.
    AskedForPoints,
    /// The node's point sources polled.
    PolledSources,
    /// A swap proposed (octez).
    SwapRequest,
    /// A swap accepted (octez).
    SwapAck,
    /// A trigger fired.
    Trigger,
    /// A maintenance cycle began.
    CycleStarted,
    /// A maintenance cycle ended.
    CycleEnded,
    /// Points went through intake.
    PointsLearned,
    /// A point or address greylisted.
    Banned,
    /// A peer's feedback score changed (an application's report).
    Scored,
}

/// One decision of the core, with its reason: `what` was decided, `why`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// When.
    pub at: Time,
    /// What it is about.
    pub kind: DecisionKind,
    /// The connection, if any.
    pub conn: Option<ConnId>,
    /// The peer's point, if any.
    pub point: Option<SocketAddr>,
    /// The peer, if known.
    pub peer: Option<PeerId>,
    /// What was decided, e.g. `closed #17 (peer 203.0.113.7:9732)`.
    pub what: String,
    /// Why, e.g. `TooManyConnections, trim: 85 > max_threshold 84, down to max_target 68`.
    pub why: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.why.is_empty() {
            f.write_str(&self.what)
        } else {
            write!(f, "{}: {}", self.what, self.why)
        }
    }
}

/// Feeds a trace to a fresh core, one input at a time, and says what the core did.
///
/// A trace is a [`TraceHeader`] line, then one [`Recorded`] input per line, all JSON
/// (see [`Input`]): what `peerkeeper node --trace FILE`, `peerkeeper simulate
/// --trace-node N --trace FILE` and `NodeBuilder::trace` write, and [`TraceWriter`] for a
/// driver of its own core. [`TraceReader`] reads one and checks every line (the header's
/// schema and version, then each input), naming the line of the first that is wrong.
/// [`Replay::step`] feeds one input to the core through [`NodeCore::apply`] and returns a
/// [`Step`]: the core's answer, its actions (as [`TracedAction`]s, with the peer of the
/// connection they concern), its events, and each decision explained ([`Decision`]). The
/// core is deterministic and a trace holds everything it reads, so the actions are the
/// recorded node's own, at the same times, in the same order (as long as the build's
/// decisions are the recording build's: the trace version covers the format, not the
/// decision rules).
///
/// ```
/// use peerkeeper::core::{Input, Replay, TraceHeader, TraceReader, TraceWriter};
/// use peerkeeper::{Config, PeerId, Time};
/// let config = Config { min_connections: 1, expected_connections: 2, max_connections: 3,
///                       ..Config::default() };
/// let mut w = TraceWriter::new(Vec::new(), &TraceHeader::new(config, PeerId::from_u64(1), 7)).unwrap();
/// let seed = "10.0.0.2:9732".parse().unwrap();
/// w.write(Time::ZERO, &Input::AddPoints { points: vec![seed],
///                                         source: peerkeeper::pool::Source::Bootstrap }).unwrap();
/// w.write(Time::ZERO, &Input::Start).unwrap();
/// let bytes = w.into_inner();
///
/// let mut reader = TraceReader::new(&bytes[..]).unwrap();
/// let mut replay = Replay::new(reader.header()).unwrap();
/// let mut decisions = Vec::new();
/// for line in &mut reader {
///     let (_line, recorded) = line.unwrap();
///     decisions.extend(replay.step(recorded).decisions);
/// }
/// assert!(decisions.iter().any(|d| d.to_string().starts_with("dial 10.0.0.2:9732: top-up")));
/// ```
#[derive(Debug)]
pub struct Replay {
    core: NodeCore,
    conns: BTreeMap<ConnId, ConnInfo>,
    cycle: Option<(u64, WakeReasons)>,
    inputs: u64,
    warnings: u64,
    last: Time,
    last_room: Option<Time>,
}

impl Replay {
    /// A fresh core as the recorded one started ([`TraceHeader::core`]), with events on
    /// (they do not change decisions).
    ///
    /// # Errors
    ///
    /// When the header is of another schema or version.
    pub fn new(header: &TraceHeader) -> Result<Replay, String> {
        let mut core = header.core()?;
        core.set_events(true);
        Ok(Replay {
            core,
            conns: BTreeMap::new(),
            cycle: None,
            inputs: 0,
            warnings: 0,
            last: Time::ZERO,
            last_room: None,
        })
    }

    /// Groups peers by autonomous system as the recorded node did (it read
    /// `defences.asmap` at start: give the replay the same map, before the first input).
    pub fn set_asmap(&mut self, map: Option<std::sync::Arc<crate::pool::AsMap>>) {
        self.core.set_asmap(map);
    }

    /// The replayed core, as it stands after the inputs fed so far.
    pub fn core(&self) -> &NodeCore {
        &self.core
    }

    /// Every connection the replayed core has opened so far (closed ones too).
    pub fn connections(&self) -> &BTreeMap<ConnId, ConnInfo> {
        &self.conns
    }

    /// Inputs fed so far.
    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    /// Warnings so far (see [`Step::warnings`]).
    pub fn warnings(&self) -> u64 {
        self.warnings
    }

    /// The time of the last input fed.
    pub fn last_time(&self) -> Time {
        self.last
    }

    /// Whether a step's input, or one of its decisions, concerns `filter`: a point, or
    /// with port 0 any point at that address ([`point_matches`]).
    pub fn concerns(&self, step: &Step, filter: SocketAddr) -> bool {
        input_points(&step.input, &self.conns)
            .into_iter()
            .any(|p| point_matches(filter, p))
            || step
                .decisions
                .iter()
                .any(|d| d.point.is_some_and(|p| point_matches(filter, p)))
    }

    /// Feeds one input and says what the core did.
    pub fn step(&mut self, recorded: Recorded) -> Step {
        let Recorded { at, input } = recorded;
        self.inputs += 1;
        self.last = self.last.max(at);
        let mut warnings = Vec::new();
        if let Input::DialResult { point, .. } = &input {
            let p = canonical(*point);
            if !self.core.is_stopped() && !self.core.pool().get(&p).is_some_and(|i| i.dialing) {
                warnings.push(format!(
                    "the recorded node reported a dial to {point}, but the replayed core is not dialing it: the replay has parted from the recording"
                ));
            }
        }
        let before = self.core.connection_count();
        let rooms_before = self.core.stats().admission.made_room;
        let summary_before = self.summary(&input);
        let reply = self.core.apply(at, input.clone());
        let mut events = Vec::new();
        while let Some(e) = self.core.poll_event() {
            if let Event::Connected {
                at,
                conn,
                point,
                peer,
                direction,
            } = &e
            {
                self.conns.insert(
                    *conn,
                    ConnInfo {
                        point: *point,
                        peer: *peer,
                        direction: *direction,
                        since: *at,
                    },
                );
            }
            events.push(e);
        }
        let mut actions = Vec::new();
        while let Some(action) = self.core.poll_action() {
            let peer = action
                .conn()
                .and_then(|c| self.conns.get(&c))
                .map(|c| c.point);
            actions.push(TracedAction { at, action, peer });
        }
        let after = self.core.connection_count();
        let summary = match (&input, &reply) {
            (Input::Maintain, Reply::Ticket(t)) => format!("{summary_before} (ticket {t})"),
            _ => summary_before,
        };
        let mut step = Step {
            at,
            input,
            summary,
            reply,
            actions,
            events,
            connections_before: before,
            connections_after: after,
            decisions: Vec::new(),
            warnings,
        };
        let made_room = self.core.stats().admission.made_room > rooms_before;
        step.decisions = self.explain(&step, made_room);
        if made_room {
            self.last_room = Some(at);
        }
        self.warnings += step.warnings.len() as u64;
        step
    }

    fn conn_text(&self, conn: ConnId) -> String {
        match self.conns.get(&conn) {
            Some(c) => format!("{conn} (peer {})", c.point),
            None => format!("{conn}"),
        }
    }

    /// The input in words.
    fn summary(&self, input: &Input) -> String {
        let list = |points: &[SocketAddr]| {
            let shown: Vec<String> = points.iter().take(3).map(|p| p.to_string()).collect();
            let more = points.len().saturating_sub(3);
            let mut s = shown.join(", ");
            if more > 0 {
                s.push_str(&format!(" (+{more} more)"));
            }
            s
        };
        match input {
            Input::AddPoints { points, source } => format!(
                "learn {} {} point{}{}{}",
                points.len(),
                source_name(*source),
                plural(points.len()),
                if points.is_empty() { "" } else { ": " },
                list(points)
            ),
            Input::AddOwnPoint { point } => format!("our own point is {point}"),
            Input::SetProtected { points, on } => format!(
                "{} {} point{}: {}",
                if *on { "protect" } else { "stop protecting" },
                points.len(),
                plural(points.len()),
                list(points)
            ),
            Input::SetAdmitted { points, on } => format!(
                "{} {} point{} in private mode: {}",
                if *on { "admit" } else { "stop admitting" },
                points.len(),
                plural(points.len()),
                list(points)
            ),
            Input::ExpectPeer { point, peer } => {
                format!("{point} must prove peer {peer}")
            }
            Input::Restore { snapshot } => format!(
                "restore a saved pool: {} point{}, {} banned IP{}, {} anchor{}",
                snapshot.points.len(),
                plural(snapshot.points.len()),
                snapshot.banned_ips.len(),
                plural(snapshot.banned_ips.len()),
                snapshot.anchors.len(),
                plural(snapshot.anchors.len())
            ),
            Input::Start => "start".into(),
            Input::Maintain => "maintain() called".into(),
            Input::SetTrigger { kind, enabled } => {
                format!("trigger {kind:?} switched {}", on_off(*enabled))
            }
            Input::SetIdleTimer { enabled } => format!("idle timer switched {}", on_off(*enabled)),
            Input::Shutdown => "shutdown".into(),
            Input::Inbound {
                conn,
                remote,
                hello,
            } => format!(
                "inbound {conn} from {remote}: peer {}, listening on port {}",
                hello.peer.short(),
                hello.listen_port
            ),
            Input::DialResult { point, result } => match result {
                DialResult::Connected { conn, peer } => {
                    format!(
                        "dial to {point}: handshake done as {conn}, peer {}",
                        peer.short()
                    )
                }
                DialResult::Refused { reason, points } => format!(
                    "dial to {point}: refused by the peer ({reason:?}), with {} point{}",
                    points.len(),
                    plural(points.len())
                ),
                DialResult::Failed(f) => format!("dial to {point}: {}", failure_text(*f)),
            },
            Input::Points { conn, points } => format!(
                "{} sent {} point{}{}{}",
                self.conn_text(*conn),
                points.len(),
                plural(points.len()),
                if points.is_empty() { "" } else { ": " },
                list(points)
            ),
            Input::SourcePoints { points, .. } => format!(
                "the point sources gave {} point{}",
                points.len(),
                plural(points.len())
            ),
            Input::PointsAsked { conn } => format!("{} asks for points", self.conn_text(*conn)),
            Input::Closed { conn } => format!("{} ended", self.conn_text(*conn)),
            Input::Dropped { conn, reason } => {
                format!("we dropped {}: {reason:?}", self.conn_text(*conn))
            }
            Input::Violation { offender } => match offender {
                Offender::Conn(c) => format!("protocol violation by {}", self.conn_text(*c)),
                Offender::Point(p) => format!("protocol violation by point {p}"),
                Offender::Ip(ip) => format!("protocol violation by address {ip}"),
                Offender::Remote(r) => {
                    format!("protocol violation by unauthenticated connection from {r}")
                }
            },
            Input::SwapRequest { conn, point } => {
                format!("{} proposes a swap: {point}", self.conn_text(*conn))
            }
            Input::SwapAck { conn, point } => {
                format!("{} accepts our swap: {point}", self.conn_text(*conn))
            }
            Input::Timeout => "timer".into(),
            Input::Track {
                id,
                primary,
                secondary,
            } => format!(
                "track peer set {id}: {} primar{}, {} secondar{}",
                primary.len(),
                if primary.len() == 1 { "y" } else { "ies" },
                secondary.len(),
                if secondary.len() == 1 { "y" } else { "ies" },
            ),
            Input::Overwrite { addresses } => format!(
                "overwrite {} address{}",
                addresses.len(),
                if addresses.len() == 1 { "" } else { "es" }
            ),
            Input::Report { peer, report } => {
                format!(
                    "the application reports peer {}: {}",
                    peer.short(),
                    report.name()
                )
            }
            Input::Rtt { conn, rtt } => format!(
                "round-trip time on {}: {}",
                self.conn_text(*conn),
                humantime::format_duration(*rtt)
            ),
            Input::Ban { target, duration } => format!(
                "the operator bans {target} for {}",
                duration.map_or_else(
                    || "greylist_duration".to_string(),
                    |d| humantime::format_duration(d).to_string()
                )
            ),
            Input::Unban { target } => format!("the operator lifts the ban of {target}"),
            Input::Trust { point, peer } => match peer {
                Some(peer) => format!("the operator trusts {point}, which must prove peer {peer}"),
                None => format!("the operator trusts {point}"),
            },
        }
    }

    /// Every decision of a step, explained.
    fn explain(&mut self, s: &Step, made_room: bool) -> Vec<Decision> {
        let core = &self.core;
        let config = core.config();
        let b = core.bounds();
        let at = s.at;
        let mut out = Vec::new();
        let info = |conn: ConnId| self.conns.get(&conn).copied();
        let mk = |kind, conn: Option<ConnId>, point, peer, what: String, why: String| Decision {
            at,
            kind,
            conn,
            point,
            peer,
            what,
            why,
        };
        let next_dial = |point: &SocketAddr| -> String {
            match core.pool().get(&canonical(*point)) {
                Some(p) if p.next_dial > at => format!(
                    "{} failure{} in a row, not dialed again before {}",
                    p.failures,
                    plural(p.failures as usize),
                    clock(p.next_dial)
                ),
                Some(p) if p.failures > 0 => {
                    format!(
                        "{} failure{} in a row",
                        p.failures,
                        plural(p.failures as usize)
                    )
                }
                _ => String::new(),
            }
        };
        let joined = |parts: Vec<String>| {
            parts
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        };
        // Room was made for a newcomer: by the first close for too many connections (the
        // admission closes before anything else can).
        let made_room = s
            .actions
            .iter()
            .find_map(|a| match a.action {
                Action::Close {
                    conn,
                    reason: CloseReason::TooManyConnections,
                } => Some(conn),
                _ => None,
            })
            .filter(|_| made_room);

        // 1. The answer.
        match (&s.input, &s.reply) {
            (
                Input::Inbound {
                    conn,
                    remote,
                    hello,
                },
                Reply::Admission(a),
            ) => {
                let point = SocketAddr::new(canonical_ip(remote.ip()), hello.listen_port);
                let label = format!("{conn} (peer {point})");
                match a {
                    Admission::Accept => {
                        let why = match made_room {
                            Some(c) if s.connections_before < config.max_connections => format!(
                                "at max_inbound {}: made room by closing {}",
                                config.inbound_budget(),
                                self.conn_text(c)
                            ),
                            Some(c) => format!(
                                "at max_connections {}: made room by closing {}",
                                config.max_connections,
                                self.conn_text(c)
                            ),
                            None => format!(
                                "{} connection{} < max_connections {}",
                                s.connections_before,
                                plural(s.connections_before),
                                config.max_connections
                            ),
                        };
                        out.push(mk(
                            DecisionKind::Admitted,
                            Some(*conn),
                            Some(point),
                            Some(hello.peer),
                            format!("admitted {label}"),
                            why,
                        ));
                    }
                    Admission::Refuse { reason, points } => {
                        let why = match reason {
                            _ if core.is_stopped() => {
                                "the node has shut down".to_string()
                            }
                            RefuseReason::Full => match config.policy {
                                Policy::Peerkeeper => {
                                    let grace = config.newcomer_grace;
                                    let old_enough = core
                                        .pool()
                                        .connections()
                                        .filter(|(a, c)| {
                                            c.direction == Direction::Inbound
                                                && c.since + grace <= at
                                                && !core.pool().is_protected(a)
                                        })
                                        .count();
                                    let no_room = match (config.make_room_interval, self.last_room) {
                                        (None, _) => "make_room_interval is none".to_string(),
                                        (Some(i), Some(t)) if at < t + i => format!(
                                            "room was made at {}, at most once per make_room_interval {}",
                                            clock(t),
                                            humantime::format_duration(i)
                                        ),
                                        _ if old_enough == 0 => format!(
                                            "no inbound connection older than newcomer_grace {} to close",
                                            humantime::format_duration(grace)
                                        ),
                                        _ => format!(
                                            "every inbound connection is protected from eviction (by group, round-trip time, usefulness, or as the longest-connected half), or the one eviction would pick is younger than newcomer_grace {}",
                                            humantime::format_duration(grace)
                                        ),
                                    };
                                    let at_cap = if s.connections_before >= config.max_connections {
                                        format!(
                                            "{} connections = max_connections {}",
                                            s.connections_before, config.max_connections
                                        )
                                    } else {
                                        format!(
                                            "inbound connections at max_inbound {}",
                                            config.inbound_budget()
                                        )
                                    };
                                    format!(
                                        "Full: {at_cap}, and no room made ({no_room}); sent {} point{} to try instead",
                                        points.len(),
                                        plural(points.len())
                                    )
                                }
                                Policy::Octez => format!(
                                    "Full: {} connections, max_connections {} (octez: plus one random extra slot); sent {} point{} to try instead",
                                    s.connections_before,
                                    config.max_connections,
                                    points.len(),
                                    plural(points.len())
                                ),
                            },
                            RefuseReason::Myself => format!(
                                "Myself: it is this node (peer {}); {point} is now one of our own points",
                                hello.peer.short()
                            ),
                            RefuseReason::AlreadyConnected => {
                                match self.conns.iter().rev().find(|(c, i)| {
                                    (i.peer == hello.peer || i.point == point)
                                        && core.point_of(**c) == Some(i.point)
                                }) {
                                    Some((c, i)) if i.peer == hello.peer => format!(
                                        "AlreadyConnected: peer {} is connected on {} ({:?}), which wins: of two connections, both sides keep the one dialed by the smaller peer id",
                                        hello.peer.short(),
                                        c,
                                        i.direction
                                    ),
                                    Some((c, i)) => format!(
                                        "AlreadyConnected: {point} is held by {c} (peer {})",
                                        i.peer.short()
                                    ),
                                    None => "AlreadyConnected".into(),
                                }
                            }
                            RefuseReason::Greylisted if hello.listen_port == 0 => {
                                "Greylisted: it gave no port to dial it back (not a node of this protocol); its address is greylisted".into()
                            }
                            RefuseReason::Greylisted => format!(
                                "Greylisted: {point} or its address broke the protocol within greylist_duration {}",
                                humantime::format_duration(config.greylist_duration)
                            ),
                            RefuseReason::PrivateMode => {
                                "PrivateMode: only trusted points are admitted".into()
                            }
                            other => format!("{other:?}"),
                        };
                        out.push(mk(
                            DecisionKind::Refused,
                            Some(*conn),
                            Some(point),
                            Some(hello.peer),
                            format!("refused {label}"),
                            why,
                        ));
                    }
                }
            }
            (Input::DialResult { point, result }, Reply::Verdict(v)) => {
                let outcome = s.events.iter().find_map(|e| match e {
                    Event::DialEnded {
                        point: p, outcome, ..
                    } if *p == canonical(*point) => Some(*outcome),
                    _ => None,
                });
                match (result, v) {
                    (DialResult::Connected { conn, peer }, DialVerdict::Keep) => {
                        out.push(mk(
                            DecisionKind::Kept,
                            Some(*conn),
                            Some(*point),
                            Some(*peer),
                            format!("kept {conn} (peer {point})"),
                            format!(
                                "dialed, handshake done with peer {}; {} -> {} connections",
                                peer.short(),
                                s.connections_before,
                                s.connections_after
                            ),
                        ));
                    }
                    (DialResult::Connected { conn, peer }, DialVerdict::Drop(reason)) => {
                        let why = match outcome {
                            None => format!("{reason:?}: no such dial in flight (the node had shut down)"),
                            Some(DialEnd::Myself) => format!(
                                "{reason:?}: it is this node; {point} is now one of our own points"
                            ),
                            Some(DialEnd::WrongPeer) => format!(
                                "{point} proved peer {}, not the one configured for it ({}): dropped, backed off",
                                peer.short(),
                                core.expected_peer(point).map_or_else(|| "?".into(), |p| p.short())
                            ),
                            Some(DialEnd::AlreadyConnected) => {
                                match self.conns.iter().rev().find(|(c, i)| {
                                    i.peer == *peer && core.point_of(**c) == Some(i.point)
                                }) {
                                    Some((c, i)) => format!(
                                        "{reason:?}: peer {} is connected on {c} ({:?}), which wins: of two connections, both sides keep the one dialed by the smaller peer id",
                                        peer.short(), i.direction
                                    ),
                                    None => format!(
                                        "{reason:?}: another connection holds {point}"
                                    ),
                                }
                            }
                            Some(DialEnd::Dropped) if reason == &CloseReason::TooManyConnections => {
                                format!(
                                    "{reason:?}: inbound connections filled us while we dialed: {} connections, max_connections {}",
                                    s.connections_before, config.max_connections
                                )
                            }
                            Some(DialEnd::Dropped) => format!(
                                "{reason:?}: {point} or its address is greylisted (a protocol violation within greylist_duration {})",
                                humantime::format_duration(config.greylist_duration)
                            ),
                            Some(o) => format!("{reason:?} ({})", o.name()),
                        };
                        out.push(mk(
                            DecisionKind::Dropped,
                            Some(*conn),
                            Some(*point),
                            Some(*peer),
                            format!("dropped {conn} (peer {point}) after the handshake"),
                            why,
                        ));
                    }
                    (DialResult::Refused { reason, points }, _) => {
                        let learned = s.events.iter().find_map(|e| match e {
                            Event::PointsLearned { new, .. } => Some(*new),
                            _ => None,
                        });
                        let what = match outcome {
                            None => format!("dial to {point} ended"),
                            Some(o) => format!("dial to {point} ended: {}", o.name()),
                        };
                        let why = joined(vec![
                            match outcome {
                                None => "no such dial in flight (the node had shut down)".into(),
                                _ => format!("the peer refused us ({reason:?})"),
                            },
                            if points.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "it sent {} point{} to try instead{}",
                                    points.len(),
                                    plural(points.len()),
                                    learned.map_or(String::new(), |n| format!(", {n} new"))
                                )
                            },
                            match reason {
                                RefuseReason::Myself | RefuseReason::AlreadyConnected => {
                                    "no penalty".into()
                                }
                                _ => next_dial(point),
                            },
                        ]);
                        out.push(mk(
                            DecisionKind::DialEnded,
                            None,
                            Some(*point),
                            None,
                            what,
                            why,
                        ));
                    }
                    (DialResult::Failed(f), _) => {
                        let what = match outcome {
                            None => format!("dial to {point} ended"),
                            Some(o) => format!("dial to {point} ended: {}", o.name()),
                        };
                        let why = joined(vec![
                            match outcome {
                                None => "no such dial in flight (the node had shut down)".into(),
                                _ => failure_text(*f).to_string(),
                            },
                            match f {
                                DialFailure::Cancelled => "no verdict on the point".into(),
                                DialFailure::Protocol => format!(
                                    "greylisted for greylist_duration {}",
                                    humantime::format_duration(config.greylist_duration)
                                ),
                                _ => next_dial(point),
                            },
                        ]);
                        out.push(mk(
                            DecisionKind::DialEnded,
                            None,
                            Some(*point),
                            None,
                            what,
                            why,
                        ));
                    }
                }
            }
            _ => {}
        }

        // 2. What happened: dial outcomes not answered above, connections lost, points
        // learned, bans.
        for e in &s.events {
            match e {
                Event::DialEnded { point, outcome, .. }
                    if !matches!(s.input, Input::DialResult { .. }) =>
                {
                    let why = match (outcome, &s.input) {
                        (DialEnd::Cancelled, Input::Shutdown) => "the node shuts down".into(),
                        _ => String::new(),
                    };
                    out.push(mk(
                        DecisionKind::DialEnded,
                        None,
                        Some(*point),
                        None,
                        format!("dial to {point} ended: {}", outcome.name()),
                        why,
                    ));
                }
                Event::Disconnected {
                    conn,
                    point,
                    peer,
                    ended: Ended::ByPeer,
                    ..
                } => {
                    let since = info(*conn)
                        .map(|i| format!(", {:?} since {}", i.direction, clock(i.since)))
                        .unwrap_or_default();
                    out.push(mk(
                        DecisionKind::Lost,
                        Some(*conn),
                        Some(*point),
                        Some(*peer),
                        format!("lost {conn} (peer {point}{since})"),
                        format!(
                            "ended by the peer, the network or the shell (a keepalive timeout); {} -> {} connections",
                            s.connections_before, s.connections_after
                        ),
                    ));
                }
                Event::PointsLearned {
                    from,
                    received,
                    new,
                    ..
                } if *received > 0 => {
                    // The sender as the input names it (the event's `from` is guessed by
                    // IP address, which several peers may share).
                    let (sender, src) = match &s.input {
                        Input::Points { conn, .. }
                        | Input::SwapRequest { conn, .. }
                        | Input::SwapAck { conn, .. } => {
                            let p = info(*conn).map(|i| i.point);
                            (p, format!("from {}", self.conn_text(*conn)))
                        }
                        Input::DialResult { point, .. } => {
                            (Some(*point), format!("from {point}, with its refusal"))
                        }
                        Input::AddPoints { source, .. } => (
                            None,
                            format!("from the operator ({})", source_name(*source)),
                        ),
                        Input::SourcePoints { .. } => (None, "from the point sources".into()),
                        _ => (*from, from.map(|p| format!("from {p}")).unwrap_or_default()),
                    };
                    out.push(mk(
                        DecisionKind::PointsLearned,
                        None,
                        sender,
                        None,
                        format!("learned {new} new point{} of {received}", plural(*new)),
                        joined(vec![
                            src,
                            if new < received {
                                "the others known already, or dropped by the intake rule".into()
                            } else {
                                String::new()
                            },
                        ]),
                    ));
                }
                Event::Scored {
                    peer,
                    point,
                    report,
                    before,
                    score,
                    outcome,
                    ..
                } => {
                    let f = &config.feedback;
                    let then = match outcome {
                        ScoreOutcome::Kept => String::new(),
                        ScoreOutcome::Disconnected => format!(
                            "at or below feedback.disconnect_below {}: its connection is closed",
                            f.disconnect_below
                        ),
                        ScoreOutcome::Banned
                            if *report == Report::Misbehaved(crate::core::Severity::Fatal) =>
                        {
                            "a fatal misbehaviour: banned whatever the score".into()
                        }
                        ScoreOutcome::Banned => {
                            format!("at or below feedback.ban_below {}: banned", f.ban_below)
                        }
                    };
                    out.push(mk(
                        DecisionKind::Scored,
                        None,
                        *point,
                        Some(*peer),
                        format!("peer {} scored {score}", peer.short()),
                        joined(vec![
                            format!(
                                "{} report ({:+}) on {before} (decayed with half-life {})",
                                report.name(),
                                report.weight(),
                                humantime::format_duration(f.half_life)
                            ),
                            then,
                        ]),
                    ));
                }
                Event::Banned {
                    point,
                    ip,
                    whole_ip,
                    until,
                    ..
                } => {
                    let whom = match (point, whole_ip) {
                        (Some(p), false) => format!("point {p}"),
                        (Some(p), true) => format!("point {p} and its address {ip}"),
                        (None, _) => format!("address {ip}"),
                    };
                    let repeated = if *whole_ip {
                        format!(
                            "; the address itself after {} violations from distinct sources within {}",
                            crate::pool::IP_STRIKES,
                            humantime::format_duration(crate::pool::STRIKE_WINDOW)
                        )
                    } else {
                        String::new()
                    };
                    let why = match &s.input {
                        Input::Violation { offender } => match offender {
                            Offender::Conn(c) => {
                                format!("protocol violation on {}", self.conn_text(*c))
                            }
                            Offender::Point(_) => "protocol violation by a point we dialed, or its peer's score".into(),
                            Offender::Ip(_) => "protocol violation reported against the address".into(),
                            Offender::Remote(r) => format!("protocol violation by an unauthenticated connection from {r} (garbage instead of a handshake, or a signature that does not verify)"),
                        },
                        Input::DialResult { .. } => "protocol violation during our dial's handshake".into(),
                        Input::Inbound { .. } => "no port to dial it back: not a node of this protocol".into(),
                        Input::Report { .. } => "its feedback score (see above)".into(),
                        Input::Ban { .. } => "the operator's ban".into(),
                        _ => "protocol violation".into(),
                    } + &repeated;
                    out.push(mk(
                        DecisionKind::Banned,
                        None,
                        *point,
                        None,
                        format!("banned {whom} until {}", clock(*until)),
                        why,
                    ));
                }
                _ => {}
            }
        }

        // 3. The actions, in order.
        for (k, t) in s.actions.iter().enumerate() {
            let later = &s.actions[k + 1..];
            let peer_of = |conn: ConnId| info(conn).map(|i| i.peer);
            match &t.action {
                Action::Dial(point) => {
                    let sources: Vec<&str> = core
                        .pool()
                        .get(&canonical(*point))
                        .map(|p| p.sources.iter().map(source_name).collect())
                        .unwrap_or_default();
                    let why = match (&self.cycle, &s.input) {
                        (_, Input::SwapRequest { conn, .. }) => {
                            format!("octez swap proposed by {}", self.conn_text(*conn))
                        }
                        (_, Input::SwapAck { conn, .. }) => {
                            format!("octez swap accepted by {}", self.conn_text(*conn))
                        }
                        (Some((n, reasons)), _) => format!(
                            "top-up in cycle #{n} ({reasons}): {} connection{}, {} dialing, min_target {}",
                            s.connections_after,
                            plural(s.connections_after),
                            core.dials_in_flight(),
                            b.min_target
                        ),
                        (None, _) => String::new(),
                    };
                    out.push(mk(
                        DecisionKind::Dial,
                        None,
                        Some(*point),
                        None,
                        format!("dial {point}"),
                        joined(vec![
                            why,
                            if sources.is_empty() {
                                String::new()
                            } else {
                                format!("learned from {}", sources.join(", "))
                            },
                        ]),
                    ));
                }
                Action::Close { conn, reason } => {
                    let since = info(*conn)
                        .map(|i| format!(", {:?} since {}", i.direction, clock(i.since)))
                        .unwrap_or_default();
                    let context = match reason {
                        CloseReason::TooManyConnections => {
                            let trim = later.iter().find_map(|a| match &a.action {
                                Action::CycleEnded { report, .. } if report.closed > 0 => {
                                    Some(report)
                                }
                                _ => None,
                            });
                            match (&s.input, trim) {
                                (Input::Inbound { remote, hello, .. }, _)
                                    if made_room == Some(*conn) =>
                                {
                                    format!(
                                        "made room for a newcomer ({}): {} connections = max_connections {}, and this one is inbound, older than newcomer_grace {}, not protected by group, round-trip time, usefulness or age, and the youngest of the most represented group",
                                        SocketAddr::new(canonical_ip(remote.ip()), hello.listen_port),
                                        s.connections_before,
                                        config.max_connections,
                                        humantime::format_duration(config.newcomer_grace)
                                    )
                                }
                                (_, Some(r)) => format!(
                                    "trim in cycle #{}: {} > max_threshold {}, down to max_target {}",
                                    r.cycle,
                                    r.connections_after + r.closed,
                                    b.max_threshold,
                                    b.max_target
                                ),
                                _ => String::new(),
                            }
                        }
                        CloseReason::Duplicate => {
                            let peer = peer_of(*conn);
                            let newer = s.events.iter().find_map(|e| match e {
                                Event::Connected {
                                    conn: c, peer: p, ..
                                } if Some(*p) == peer && c != conn => Some(*c),
                                _ => None,
                            });
                            match newer {
                                Some(c) => format!(
                                    "the same peer connected again as {c}, which wins: of two connections, both sides keep the one dialed by the smaller peer id"
                                ),
                                None => "a second connection to the same peer".into(),
                            }
                        }
                        CloseReason::ProtocolViolation => match &s.input {
                            Input::Points { points, .. }
                                if points.len() > crate::MAX_POINTS_PER_MESSAGE =>
                            {
                                format!(
                                    "it sent {} points, more than a message may carry ({})",
                                    points.len(),
                                    crate::MAX_POINTS_PER_MESSAGE
                                )
                            }
                            Input::Violation { .. } => {
                                "the shell reported a protocol violation".into()
                            }
                            Input::Report { .. } => "its feedback score fell too low".into(),
                            _ => String::new(),
                        },
                        CloseReason::Shutdown => "the node shuts down".into(),
                        CloseReason::Swapped => {
                            "octez swap: replaced by the connection just made".into()
                        }
                        CloseReason::Untracked => "the peer left every kept peer set".into(),
                        CloseReason::AddressChanged => {
                            "the peer's tracked address changed (overwrite or track)".into()
                        }
                        _ => String::new(),
                    };
                    out.push(mk(
                        DecisionKind::Closed,
                        Some(*conn),
                        t.peer,
                        peer_of(*conn),
                        format!(
                            "closed {conn}{}",
                            t.peer
                                .map(|p| format!(" (peer {p}{since})"))
                                .unwrap_or_default()
                        ),
                        if context.is_empty() {
                            format!("{reason:?}")
                        } else {
                            format!("{reason:?}, {context}")
                        },
                    ));
                }
                Action::SendPoints { conn, points } => {
                    let farewell = later
                        .iter()
                        .any(|a| matches!(a.action, Action::Close { conn: c, .. } if c == *conn));
                    let why = if farewell {
                        "farewell: where else to go, before closing".to_string()
                    } else if matches!(s.input, Input::PointsAsked { conn: c } if c == *conn) {
                        "answer to its request".into()
                    } else {
                        "the answer it was owed: it asked when we had no point to share".into()
                    };
                    out.push(mk(
                        DecisionKind::SentPoints,
                        Some(*conn),
                        t.peer,
                        peer_of(*conn),
                        format!(
                            "sent {} point{} to {}",
                            points.len(),
                            plural(points.len()),
                            self.conn_text(*conn)
                        ),
                        why,
                    ));
                }
                Action::AskForPoints { conn } => {
                    let why = match (config.policy, &s.input) {
                        (Policy::Octez, _) => "octez: short of connections, asks every peer".into(),
                        (_, Input::Timeout) => "discovery round: points are wanted".into(),
                        _ => "a new connection while points are wanted".into(),
                    };
                    out.push(mk(
                        DecisionKind::AskedForPoints,
                        Some(*conn),
                        t.peer,
                        peer_of(*conn),
                        format!("asked {} for points", self.conn_text(*conn)),
                        why,
                    ));
                }
                Action::PollSources => out.push(mk(
                    DecisionKind::PolledSources,
                    None,
                    None,
                    None,
                    "polled the point sources".into(),
                    "discovery round: points are wanted".into(),
                )),
                Action::SwapRequest { conn, point } => out.push(mk(
                    DecisionKind::SwapRequest,
                    Some(*conn),
                    t.peer,
                    peer_of(*conn),
                    format!("proposed a swap to {}: {point}", self.conn_text(*conn)),
                    "octez: in range, one swap per cycle".into(),
                )),
                Action::SwapAck { conn, point } => out.push(mk(
                    DecisionKind::SwapAck,
                    Some(*conn),
                    t.peer,
                    peer_of(*conn),
                    format!(
                        "accepted the swap of {}, giving {point}",
                        self.conn_text(*conn)
                    ),
                    "octez: no swap within the swap linger".into(),
                )),
                // The count triggers are decisions; the others (a new point, peer or
                // connection) show in what the core does next.
                Action::Trigger(
                    kind @ (TriggerKind::TooFewConnections | TriggerKind::TooManyConnections),
                ) => {
                    let trim = later.iter().find_map(|a| match &a.action {
                        Action::CycleEnded { report, .. } if report.closed > 0 => Some(report),
                        _ => None,
                    });
                    let why = match (kind, trim) {
                        (TriggerKind::TooManyConnections, Some(r)) => format!(
                            "{} > max_threshold {}",
                            r.connections_after + r.closed,
                            b.max_threshold
                        ),
                        (TriggerKind::TooManyConnections, None) => {
                            format!("more than max_threshold {}", b.max_threshold)
                        }
                        _ => format!(
                            "fewer than min_threshold {} ({} -> {} connections)",
                            b.min_threshold, s.connections_before, s.connections_after
                        ),
                    };
                    out.push(mk(
                        DecisionKind::Trigger,
                        None,
                        None,
                        None,
                        format!("trigger {kind:?}"),
                        why,
                    ));
                }
                Action::Trigger(_) => {}
                Action::CycleStarted { cycle, reasons } => {
                    self.cycle = Some((*cycle, *reasons));
                    out.push(mk(
                        DecisionKind::CycleStarted,
                        None,
                        None,
                        None,
                        format!("cycle #{cycle} started"),
                        format!(
                            "{reasons}; range {}..={} (min_target {}, max_target {})",
                            b.min_threshold, b.max_threshold, b.min_target, b.max_target
                        ),
                    ));
                }
                Action::CycleEnded { report, .. } => {
                    self.cycle = None;
                    out.push(mk(
                        DecisionKind::CycleEnded,
                        None,
                        None,
                        None,
                        format!("cycle #{} ended: {:?}", report.cycle, report.outcome),
                        cycle_text(report),
                    ));
                }
            }
        }
        out
    }
}

fn cycle_text(r: &CycleReport) -> String {
    format!(
        "{} -> {} connections; dialed {} ({} ok, {} failed); closed {}; {}; began at {} ({})",
        r.connections_before,
        r.connections_after,
        r.dialed,
        r.succeeded,
        r.failed,
        r.closed,
        if r.asked_for_points {
            "asked for points"
        } else {
            "no points asked"
        },
        clock(r.started),
        r.reasons
    )
}

/// The points an input concerns (for filters): the peer's point of a connection, a
/// dialed point, the points learned.
fn input_points(input: &Input, conns: &BTreeMap<ConnId, ConnInfo>) -> Vec<SocketAddr> {
    let of = |c: &ConnId| conns.get(c).map(|i| i.point);
    match input {
        Input::AddPoints { points, .. } | Input::SourcePoints { points, .. } => points.clone(),
        Input::AddOwnPoint { point } => vec![*point],
        Input::Inbound { remote, hello, .. } => vec![
            *remote,
            SocketAddr::new(canonical_ip(remote.ip()), hello.listen_port),
        ],
        Input::DialResult { point, .. } => vec![*point],
        Input::Points { conn, points } => {
            of(conn).into_iter().chain(points.iter().copied()).collect()
        }
        Input::PointsAsked { conn } | Input::Closed { conn } | Input::Dropped { conn, .. } => {
            of(conn).into_iter().collect()
        }
        Input::SwapRequest { conn, point } | Input::SwapAck { conn, point } => {
            of(conn).into_iter().chain([*point]).collect()
        }
        Input::Rtt { conn, .. } => of(conn).into_iter().collect(),
        Input::Report { peer, .. } => conns
            .values()
            .filter(|i| i.peer == *peer)
            .map(|i| i.point)
            .next_back()
            .into_iter()
            .collect(),
        Input::Violation { offender } => match offender {
            Offender::Conn(c) => of(c).into_iter().collect(),
            Offender::Point(p) => vec![*p],
            Offender::Ip(ip) => vec![SocketAddr::new(*ip, 0)],
            Offender::Remote(r) => vec![*r],
        },
        Input::Ban { target, .. } | Input::Unban { target } => match target {
            super::BanTarget::Point(p) => vec![*p],
            super::BanTarget::Ip(ip) => vec![SocketAddr::new(*ip, 0)],
        },
        Input::Trust { point, .. } => vec![*point],
        _ => Vec::new(),
    }
}

/// A virtual time as `M:SS.mmm` (`H:MM:SS.mmm` from an hour): how a replay prints times.
///
/// ```
/// use peerkeeper::core::clock;
/// use peerkeeper::Time;
/// assert_eq!(clock(Time::from_millis(192_045)), "3:12.045");
/// assert_eq!(clock(Time::from_millis(3_723_004)), "1:02:03.004");
/// ```
pub fn clock(t: Time) -> String {
    let ms = t.as_millis();
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{milli:03}")
    } else {
        format!("{m}:{s:02}.{milli:03}")
    }
}

/// Parses a virtual time as a replay prints it (`M:SS[.mmm]`, `H:MM:SS[.mmm]`), or a
/// duration since the start (`192s`, `3m12s`, `500ms`, or plain seconds `192.045`).
///
/// ```
/// use peerkeeper::core::parse_clock;
/// use peerkeeper::Time;
/// assert_eq!(parse_clock("3:12.045"), Ok(Time::from_millis(192_045)));
/// assert_eq!(parse_clock("1:00:00"), Ok(Time::from_millis(3_600_000)));
/// assert_eq!(parse_clock("3m12s"), Ok(Time::from_millis(192_000)));
/// assert_eq!(parse_clock("1.5"), Ok(Time::from_millis(1_500)));
/// assert!(parse_clock("3:99").is_err());
/// ```
///
/// # Errors
///
/// When it is none of these.
pub fn parse_clock(s: &str) -> Result<Time, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a time (M:SS.mmm, H:MM:SS, 3m12s or seconds)");
    let secs = |x: &str| -> Result<u64, String> {
        let v: f64 = x.parse().map_err(|_| bad())?;
        if !(0.0..1e12).contains(&v) {
            return Err(bad());
        }
        Ok((v * 1000.0).round() as u64)
    };
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let int = |x: &str| x.parse::<u64>().map_err(|_| bad());
        let (h, m, sec) = match parts.as_slice() {
            [m, sec] => (0, int(m)?, secs(sec)?),
            [h, m, sec] => {
                let m = int(m)?;
                if m >= 60 {
                    return Err(bad());
                }
                (int(h)?, m, secs(sec)?)
            }
            _ => return Err(bad()),
        };
        if sec >= 60_000 {
            return Err(bad());
        }
        return Ok(Time::from_millis(h * 3_600_000 + m * 60_000 + sec));
    }
    if let Ok(ms) = secs(s) {
        return Ok(Time::from_millis(ms));
    }
    humantime::parse_duration(s)
        .map(Time::from_duration)
        .map_err(|_| bad())
}

fn canonical(p: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(p.ip()), p.port())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Trusted => "trusted",
        Source::Bootstrap => "bootstrap",
        Source::PeerSharing => "peer sharing",
        Source::Incoming => "incoming",
        Source::External => "external",
    }
}

fn failure_text(f: DialFailure) -> &'static str {
    match f {
        DialFailure::Timeout => "no answer within dial_timeout",
        DialFailure::Io => "the connection could not be made, or broke during the handshake",
        DialFailure::Refused => "refused at once: nobody listens there (the network works)",
        DialFailure::Protocol => "the peer broke the protocol during the handshake",
        DialFailure::Cancelled => "abandoned (shutdown)",
    }
}

/// Whether `addr` is the point `filter`; a port 0 on either side stands for an address
/// alone, which matches any point at its IP.
///
/// ```
/// use peerkeeper::core::point_matches;
/// let p = |s: &str| s.parse().unwrap();
/// assert!(point_matches(p("10.0.0.1:9732"), p("10.0.0.1:9732")));
/// assert!(!point_matches(p("10.0.0.1:9732"), p("10.0.0.1:9733")));
/// assert!(point_matches(p("10.0.0.1:0"), p("10.0.0.1:9733")));
/// ```
pub fn point_matches(filter: SocketAddr, addr: SocketAddr) -> bool {
    if filter.port() == 0 || addr.port() == 0 {
        canonical_ip(filter.ip()) == canonical_ip(addr.ip())
    } else {
        canonical(filter) == canonical(addr)
    }
}
