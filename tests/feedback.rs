//! Peer feedback (issue 16, part 3): the application's reports move a decaying score per
//! peer; the core disconnects, then bans, at thresholds; traces record the reports and a
//! replay explains what they led to; dialing prefers points that proved useful.

#[path = "common/actions.rs"]
mod actions;

use actions::drain;
use peerkeeper::core::{
    Action, Admission, DecisionKind, Event, Hello, Input, NodeCore, RefuseReason, Replay, Report,
    ScoreOutcome, Severity, TraceHeader, TraceReader, TraceWriter,
};
use peerkeeper::maintenance::top_up_dials;
use peerkeeper::pool::{CloseReason, ConnId, PeerId, Pool, Source};
use peerkeeper::{Config, Time};
use std::net::SocketAddr;

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

fn me() -> PeerId {
    PeerId::from_u64(1_000_000)
}

fn peer(i: u64) -> PeerId {
    PeerId::from_u64(i)
}

fn point(i: u64) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], 9000))
}

/// A core with peers 1..=n connected inbound at time 0, events on.
fn core_with(config: Config, n: u64) -> NodeCore {
    let mut core = NodeCore::new(config, me(), 7);
    core.set_events(true);
    core.start(ms(0));
    for i in 1..=n {
        let hello = Hello {
            peer: peer(i),
            listen_port: 9000,
        };
        assert_eq!(
            core.handle_inbound(ConnId(i), point(i), hello, ms(0)),
            Admission::Accept
        );
    }
    drain(&mut core);
    while core.poll_event().is_some() {}
    core
}

fn closes(actions: &[Action]) -> Vec<(ConnId, CloseReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((*conn, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn scores_decay_with_the_half_life_and_useful_reports_are_capped() {
    let mut core = core_with(Config::default(), 1);
    for _ in 0..30 {
        core.handle_report(peer(1), Report::Useful, ms(0));
    }
    assert_eq!(core.score(&peer(1)), Some(100.0), "capped at 100");
    assert_eq!(core.score_at(&peer(1), ms(600_000)), Some(50.0));
    assert_eq!(core.score_at(&peer(1), ms(1_200_000)), Some(25.0));
    // A report applies to the decayed score.
    core.handle_report(peer(1), Report::Slow, ms(600_000));
    assert_eq!(core.score(&peer(1)), Some(48.0));
    assert_eq!(core.score(&peer(2)), None, "no report, no score");
}

#[test]
fn a_low_score_disconnects_a_lower_one_bans() {
    let mut core = core_with(Config::default(), 2);
    // -50: the disconnect threshold.
    core.handle_report(peer(1), Report::Misbehaved(Severity::High), ms(1_000));
    assert_eq!(
        closes(&drain(&mut core)),
        vec![(ConnId(1), CloseReason::ProtocolViolation)]
    );
    let e: Vec<Event> = std::iter::from_fn(|| core.poll_event()).collect();
    assert!(e.iter().any(|e| matches!(
        e,
        Event::Scored {
            outcome: ScoreOutcome::Disconnected,
            ..
        }
    )));
    assert_eq!(core.stats().feedback.disconnects, 1);
    // It may come back (a disconnect is not a ban)...
    let hello = Hello {
        peer: peer(1),
        listen_port: 9000,
    };
    assert_eq!(
        core.handle_inbound(ConnId(11), point(1), hello, ms(2_000)),
        Admission::Accept
    );
    // ... but at -80 it is banned: closed, and its point greylisted.
    core.handle_report(peer(1), Report::Misbehaved(Severity::Medium), ms(3_000));
    core.handle_report(peer(1), Report::Misbehaved(Severity::Low), ms(3_000));
    let actions = drain(&mut core);
    assert_eq!(
        closes(&actions),
        vec![(ConnId(11), CloseReason::ProtocolViolation)]
    );
    assert_eq!(core.stats().feedback.bans, 1);
    assert!(matches!(
        core.handle_inbound(ConnId(12), point(1), hello, ms(4_000)),
        Admission::Refuse {
            reason: RefuseReason::Greylisted,
            ..
        }
    ));
    // A fatal report bans at once, whatever the score.
    core.handle_report(peer(2), Report::Useful, ms(5_000));
    core.handle_report(peer(2), Report::Misbehaved(Severity::Fatal), ms(5_000));
    assert_eq!(
        closes(&drain(&mut core)),
        vec![(ConnId(2), CloseReason::ProtocolViolation)]
    );
    assert_eq!(core.stats().feedback.bans, 2);
    assert_eq!(core.stats().feedback.reports, [1, 0, 1, 1, 1, 1]);
    core.check_invariants();
}

#[test]
fn with_feedback_off_reports_are_counted_and_nothing_else() {
    let mut config = Config::default();
    config.feedback.enabled = false;
    let mut core = core_with(config, 1);
    core.handle_report(peer(1), Report::Misbehaved(Severity::Fatal), ms(1_000));
    assert!(drain(&mut core).is_empty());
    assert_eq!(core.score(&peer(1)), None);
    assert_eq!(core.stats().feedback.reports[5], 1);
    assert_eq!(core.connection_count(), 1);
}

#[test]
fn the_score_table_is_bounded() {
    let mut core = core_with(Config::default(), 3);
    for i in 10..2_000 {
        core.handle_report(peer(i), Report::Slow, ms(i));
    }
    core.handle_report(peer(1), Report::Useful, ms(3_000));
    core.check_invariants(); // at most max(3 * max_connections, 64) scores
                             // Connected peers keep theirs.
    assert!(core.score(&peer(1)).is_some());
}

#[test]
fn a_trace_records_reports_and_the_replay_explains_the_ban() {
    let config = Config::default();
    let header = TraceHeader::new(config, me(), 7);
    let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
    let hello = Hello {
        peer: peer(5),
        listen_port: 9000,
    };
    w.write(ms(0), &Input::Start).unwrap();
    w.write(
        ms(10),
        &Input::Inbound {
            conn: ConnId(5),
            remote: point(5),
            hello,
        },
    )
    .unwrap();
    w.write(
        ms(20),
        &Input::Rtt {
            conn: ConnId(5),
            rtt: std::time::Duration::from_millis(30),
        },
    )
    .unwrap();
    w.write(
        ms(30),
        &Input::Report {
            peer: peer(5),
            report: Report::Misbehaved(Severity::Fatal),
        },
    )
    .unwrap();
    let bytes = w.into_inner();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(r#""input":"report""#), "{text}");
    assert!(text.contains(r#""rtt":"30ms""#), "{text}");
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let mut replay = Replay::new(reader.header()).unwrap();
    let mut last = None;
    for line in &mut reader {
        let (_, recorded) = line.unwrap();
        last = Some(replay.step(recorded));
    }
    let step = last.unwrap();
    let text: Vec<String> = step.decisions.iter().map(|d| d.to_string()).collect();
    let scored = step
        .decisions
        .iter()
        .find(|d| d.kind == DecisionKind::Scored)
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(scored.why.contains("fatal"), "{text:?}");
    assert!(
        step.decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Banned && d.why.contains("feedback score")),
        "{text:?}"
    );
    assert!(
        step.decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Closed),
        "{text:?}"
    );
}

#[test]
fn dialing_prefers_points_that_proved_useful_and_puts_bad_ones_last() {
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 4,
        ..Config::default()
    };
    let mut pool = Pool::new(&config);
    pool.set_salt(7);
    for i in 1..=6 {
        pool.add_point(point(i), Source::Bootstrap, ms(0));
    }
    pool.advance(ms(0));
    let order: Vec<SocketAddr> = pool.candidates(false).collect();
    assert_eq!(top_up_dials(&pool, &config, ms(0)), vec![order[0]]);
    // The last candidate's peer proved useful: it goes first; the first's misbehaved: it
    // goes last.
    pool.set_standing(order[5], Some(true));
    pool.set_standing(order[0], Some(false));
    assert_eq!(top_up_dials(&pool, &config, ms(0)), vec![order[5]]);
    pool.set_standing(order[5], None);
    assert_eq!(top_up_dials(&pool, &config, ms(0)), vec![order[1]]);
}
