//! The event stream of a running node (`Node::subscribe`), as an embedding node uses it:
//! a subscriber sees connections open (with who dialed), dials end (with their outcome),
//! cycles end (with the report `maintain()` returned), a violator banned and dropped, and
//! a peer leaving; a subscriber that never reads loses the oldest events, is told exactly
//! how many, and never slows the node.
//!
//! On the memory transport under a paused clock: no sleeps, no real time.

mod common;

use common::*;
use futures::SinkExt;
use peerkeeper::core::{DialEnd, Ended, Event};
use peerkeeper::node::{Node, EVENT_CAPACITY};
use peerkeeper::pool::{CloseReason, Direction};
use peerkeeper::wire::Message;
use peerkeeper::Config;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// The events read so far, to look for one in any order.
struct Events {
    rx: broadcast::Receiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    fn new(rx: broadcast::Receiver<Event>) -> Events {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// The index (in arrival order) of the first event that matches `pred`, reading more
    /// as needed; fails the test if none comes within [`VIRTUAL_DEADLINE`] or if the
    /// subscriber lagged.
    async fn find(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> usize {
        if let Some(i) = self.seen.iter().position(&pred) {
            return i;
        }
        let read = async {
            loop {
                match self.rx.recv().await {
                    Ok(e) => {
                        let hit = pred(&e);
                        self.seen.push(e);
                        if hit {
                            return self.seen.len() - 1;
                        }
                    }
                    Err(e) => panic!("waiting for {what}: {e}"),
                }
            }
        };
        match tokio::time::timeout(VIRTUAL_DEADLINE, read).await {
            Ok(i) => i,
            Err(_) => panic!("no event {what}; seen: {:#?}", self.seen),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_sees_connections_dial_outcomes_cycles_bans_and_closes() {
    let lab = Lab::new();
    let a = lab.passive(ip4(0, 0, 1), 1);
    let nobody = ip4(0, 0, 9); // nothing listens there
    let config = Config {
        min_connections: 2,
        expected_connections: 2,
        max_connections: 4,
        ..Config::default()
    };
    let b = lab
        .builder(config, ip4(0, 0, 2), 2)
        .bootstrap(vec![a.local_addr(), nobody])
        .start()
        .unwrap();
    // Subscribed before the node's first step (the test has not yielded yet): nothing missed.
    let mut ev = Events::new(b.subscribe());
    let a_at = a.local_addr();

    // The two dials of the first top-up: one connects, one fails.
    let dialed = ev
        .find("a successful dial to a", |e| {
            matches!(e, Event::DialEnded { point, outcome: DialEnd::Succeeded, .. } if *point == a_at)
        })
        .await;
    let connected = ev
        .find("the outbound connection to a", |e| {
            matches!(e, Event::Connected { point, direction: Direction::Outbound, peer, .. }
                if *point == a_at && *peer == peer_of(1))
        })
        .await;
    assert!(
        dialed < connected,
        "the dial ends, then the connection opens"
    );
    ev.find("a failed dial to nobody", |e| {
        matches!(e, Event::DialEnded { point, outcome: DialEnd::Failed, .. } if *point == nobody)
    })
    .await;
    for e in &ev.seen {
        if let Event::DialEnded { point, outcome, .. } = e {
            let expected = if *point == a_at {
                DialEnd::Succeeded
            } else {
                DialEnd::Failed
            };
            assert_eq!(*outcome, expected, "{e:?}");
        }
    }

    // A cycle's end carries the report maintain() returns.
    let report = b.maintain().await.unwrap();
    ev.find(
        "the end of the asked-for cycle",
        |e| matches!(e, Event::CycleEnded { report: r, .. } if **r == report),
    )
    .await;

    // An inbound peer that breaks the protocol: connected, banned, dropped, in that order.
    let p = ip4(0, 0, 3);
    let (mut peer, reply) = mem_peer(&lab, p, 3, b.local_addr()).await;
    assert!(matches!(reply, Message::Hello(_)), "{reply:?}");
    let inbound = ev
        .find("the inbound connection of p", |e| {
            matches!(e, Event::Connected { point, direction: Direction::Inbound, peer, .. }
                if *point == p && *peer == peer_of(3))
        })
        .await;
    peer.link
        .send(hello(3, p.port(), "peerkeeper"))
        .await
        .unwrap();
    let banned = ev
        .find("p banned", |e| {
            matches!(e, Event::Banned { point, ip, until, at, whole_ip: false } if *point == Some(p) && *ip == p.ip() && until > at)
        })
        .await;
    let dropped = ev
        .find("p dropped for its violation", |e| {
            matches!(e, Event::Disconnected { point, peer, ended: Ended::ByUs(CloseReason::ProtocolViolation), .. }
                if *point == p && *peer == peer_of(3))
        })
        .await;
    assert!(inbound < banned && banned < dropped, "{:#?}", ev.seen);

    // a leaves: the peer ended it.
    a.shutdown().await;
    ev.find("a gone, ended by the peer", |e| {
        matches!(e, Event::Disconnected { point, ended: Ended::ByPeer, peer, .. } if *point == a_at && *peer == peer_of(1))
    })
    .await;
    b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_never_reads_loses_the_oldest_is_told_how_many_and_never_slows_the_node()
{
    let lab = Lab::new();
    let a = lab.passive(ip4(0, 0, 1), 1);
    let config = Config {
        min_connections: 1,
        expected_connections: 1,
        max_connections: 2,
        ..Config::default()
    };
    let b = lab.node(&config, ip4(0, 0, 2), 2, vec![a.local_addr()]);
    let mut slow = b.subscribe();
    // A subscriber that keeps up counts every event the node sends.
    let mut fast = b.subscribe();
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match fast.recv().await {
                Ok(_) => n += 1,
                Err(RecvError::Lagged(k)) => panic!("the reading subscriber lagged by {k}"),
                Err(RecvError::Closed) => return n,
            }
        }
    });
    wait_status(&b, VIRTUAL_DEADLINE, "connected to a", |s| {
        s.connections == 1
    })
    .await;

    // More cycles than the stream holds, each with its event, while `slow` reads nothing:
    // every maintain() still returns, and the node stays connected.
    let cycles = EVENT_CAPACITY + 200;
    let mut last = None;
    for _ in 0..cycles {
        last = Some(b.maintain().await.expect("the node answers"));
    }
    let last = last.unwrap();
    assert_eq!(b.status().connections, 1);
    assert!(b.status().stats.cycles >= cycles as u64);

    stop(b).await;
    let total = counter.await.unwrap();
    assert!(total > cycles as u64, "{total} events for {cycles} cycles");

    // The slow one: first told how many it lost, then the newest EVENT_CAPACITY.
    let missed = match slow.try_recv() {
        Err(TryRecvError::Lagged(n)) => n,
        other => panic!("expected a lag, got {other:?}"),
    };
    let mut kept = Vec::new();
    loop {
        match slow.try_recv() {
            Ok(e) => kept.push(e),
            Err(TryRecvError::Closed) => break,
            Err(e) => panic!("after the lag: {e:?}"),
        }
    }
    assert_eq!(kept.len(), EVENT_CAPACITY, "it keeps the newest events");
    assert_eq!(
        missed + kept.len() as u64,
        total,
        "told exactly how many it missed"
    );
    let last_cycle = kept
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::CycleEnded { report, .. } => Some(report.clone()),
            _ => None,
        })
        .expect("the newest cycles are kept");
    assert_eq!(*last_cycle, last);
    a.shutdown().await;
}

/// Shuts the node down and drops it, so that its event stream closes.
async fn stop(node: Node) {
    node.shutdown().await;
    drop(node);
}
