//! Peer sets by epoch in running nodes, on the memory network with a paused clock: a
//! validator network (peer sets only, otherwise the default config) where every primary
//! connects and a follower tracked as a secondary is admitted but never dialed; a
//! stranger refused; an epoch change that disconnects a dropped validator only once it
//! leaves every kept set; `overwrite` severing the old connection (`AddressChanged`) and
//! reconnecting at the new address; a stale id refused with an error.

mod common;

use common::*;
use peerkeeper::core::{Ended, Event, PeerSetError};
use peerkeeper::node::Node;
use peerkeeper::pool::{CloseReason, Direction, PeerId};
use peerkeeper::wire::{Message, RefuseCode};
use peerkeeper::{Config, NodeError, PeerSetConfig};
use std::net::SocketAddr;

/// Validator `i` (its own IP).
fn v(i: u8) -> SocketAddr {
    ip4(0, 1, i)
}

/// Validator `i`'s peer id: the public key it proves in the handshake.
fn pid(i: u8) -> PeerId {
    peer_of(u64::from(i))
}

/// The default config, peer sets only (two sets kept, to see an epoch change end).
fn validator_config() -> Config {
    Config {
        peer_sets: PeerSetConfig {
            only: true,
            kept_sets: 2,
            ..PeerSetConfig::default()
        },
        ..Config::default()
    }
}

fn set(ids: impl IntoIterator<Item = u8>) -> Vec<(PeerId, SocketAddr)> {
    ids.into_iter().map(|i| (pid(i), v(i))).collect()
}

/// Validators `1..=n`, started.
fn validators(lab: &Lab, n: u8) -> Vec<Node> {
    (1..=n)
        .map(|i| lab.node(&validator_config(), v(i), u64::from(i), vec![]))
        .collect()
}

async fn track_all(
    nodes: &[Node],
    id: u64,
    primary: &[(PeerId, SocketAddr)],
    secondary: &[(PeerId, SocketAddr)],
) {
    for n in nodes {
        n.track(id, primary.to_vec(), secondary.to_vec())
            .await
            .expect("a fresh id");
    }
}

async fn connected_peers(node: &Node) -> Vec<PeerId> {
    query(node, |c| {
        c.pool().connections().map(|(_, k)| k.peer).collect()
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn every_primary_connects_and_a_secondary_is_admitted_but_not_dialed() {
    let lab = Lab::new();
    let nodes = validators(&lab, 6);
    // A follower: tracks the validators as primaries (it dials them); they track it as a
    // secondary.
    let follower = lab.node(&validator_config(), v(50), 50, vec![]);
    let primaries = set(1..=6);
    let secondaries = set([50]);
    track_all(&nodes, 1, &primaries, &secondaries).await;
    follower.track(1, primaries.clone(), vec![]).await.unwrap();
    for n in &nodes {
        wait_status(
            n,
            VIRTUAL_DEADLINE,
            "five validators and the follower",
            |s| s.connections == 6,
        )
        .await;
    }
    wait_status(&follower, VIRTUAL_DEADLINE, "six validators", |s| {
        s.connections == 6
    })
    .await;
    eprintln!(
        "full mesh of 6 validators and a follower at {:?} (virtual)",
        lab.now()
    );
    for (i, n) in nodes.iter().enumerate() {
        let mut peers = connected_peers(n).await;
        peers.sort();
        let mut want: Vec<PeerId> = (1..=6).filter(|j| *j != i as u8 + 1).map(pid).collect();
        want.push(pid(50));
        want.sort();
        assert_eq!(peers, want);
        // The follower came in: no validator dialed it.
        let (dir, dialed) = query(n, |c| {
            let at = c.pool().connected_point_of(pid(50)).unwrap();
            (
                c.pool().connection(&at).unwrap().direction,
                c.pool().get(&v(50)).map_or(0, |p| p.failures),
            )
        })
        .await;
        assert_eq!(dir, Direction::Inbound);
        assert_eq!(dialed, 0);
    }
    for n in nodes.iter().chain([&follower]) {
        query(n, |c| c.check_invariants()).await;
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stranger_is_refused_by_a_validator() {
    let lab = Lab::new();
    let nodes = validators(&lab, 2);
    track_all(&nodes, 1, &set(1..=2), &[]).await;
    wait_status(&nodes[0], VIRTUAL_DEADLINE, "the other validator", |s| {
        s.connections == 1
    })
    .await;
    // A raw peer with an id of its own.
    let (_peer, reply) = mem_peer(&lab, ip4(0, 9, 9), 999, v(1)).await;
    assert!(
        matches!(
            reply,
            Message::Refused {
                reason: RefuseCode::PrivateMode,
                ..
            }
        ),
        "{reply:?}"
    );
    // A raw peer claiming a validator's id from another address.
    let (_peer, reply) = mem_peer(&lab, ip4(0, 9, 10), 2, v(1)).await;
    assert!(matches!(reply, Message::Refused { .. }), "{reply:?}");
    // And a real node that knows the validator as a bootstrap point never gets in.
    let stranger = lab.node(&Config::default(), ip4(0, 9, 11), 777, vec![v(1)]);
    assert_never_within(
        &stranger,
        std::time::Duration::from_secs(120),
        "a connection",
        |s| s.connections > 0,
    )
    .await;
    let refused = query(&nodes[0], |c| c.stats().admission.refused_untracked).await;
    assert!(refused >= 3, "{refused}");
    assert_eq!(connected_peers(&nodes[0]).await, vec![pid(2)]);
    for n in nodes.iter().chain([&stranger]) {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_validator_is_disconnected_once_it_leaves_every_kept_set() {
    let lab = Lab::new();
    let nodes = validators(&lab, 4);
    track_all(&nodes, 1, &set(1..=4), &[]).await;
    for n in &nodes {
        wait_status(n, VIRTUAL_DEADLINE, "three validators", |s| {
            s.connections == 3
        })
        .await;
    }
    let mut events = nodes[0].subscribe();
    // Epoch 2 without validator 4: epoch 1 is still kept, nothing closes.
    track_all(&nodes, 2, &set(1..=3), &[]).await;
    assert_never_within(
        &nodes[0],
        std::time::Duration::from_secs(300),
        "a lost connection",
        |s| s.connections < 3,
    )
    .await;
    // Epoch 3: epoch 1 goes, and validator 4 with it.
    let t3 = lab.now();
    let changes = nodes[0].track(3, set(1..=3), vec![]).await.unwrap();
    assert_eq!(changes.untracked, set([4]));
    for n in &nodes[1..3] {
        n.track(3, set(1..=3), vec![]).await.unwrap();
    }
    nodes[3].track(3, set(1..=3), vec![]).await.unwrap();
    for n in &nodes[..3] {
        wait_status(n, VIRTUAL_DEADLINE, "two validators", |s| {
            s.connections == 2
        })
        .await;
    }
    wait_status(&nodes[3], VIRTUAL_DEADLINE, "nobody", |s| {
        s.connections == 0
    })
    .await;
    eprintln!(
        "validator 4 disconnected everywhere {:?} after epoch 3 (virtual)",
        lab.now().as_duration() - t3.as_duration()
    );
    let ended = loop {
        match events.recv().await.unwrap() {
            // (A duplicate of the first simultaneous dials may end first.)
            Event::Disconnected { peer, ended, .. }
                if peer == pid(4) && ended != Ended::ByUs(CloseReason::Duplicate) =>
            {
                break ended
            }
            _ => {}
        }
    };
    assert_eq!(ended, Ended::ByUs(CloseReason::Untracked));
    // It keeps trying (it tracks them as primaries) and is refused: still two each.
    assert_never_within(
        &nodes[0],
        std::time::Duration::from_secs(600),
        "validator 4 back",
        |s| s.connections != 2,
    )
    .await;
    for n in &nodes {
        query(n, |c| c.check_invariants()).await;
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn overwrite_severs_the_old_connection_and_reconnects_at_the_new_address() {
    let lab = Lab::new();
    let a = lab.node(&validator_config(), v(1), 1, vec![]);
    // Peer 2 at its first address, and (the same identity) at its new one.
    let old = lab.passive(v(2), 2);
    let moved = ip4(0, 2, 2);
    let new = lab.passive(moved, 2);
    a.track(1, set(1..=2), vec![]).await.unwrap();
    wait_core(&a, VIRTUAL_DEADLINE, "connected to peer 2", |c| {
        c.pool().connected_point_of(pid(2)) == Some(v(2))
    })
    .await;
    wait_status(&old, VIRTUAL_DEADLINE, "validator 1", |s| {
        s.connections == 1
    })
    .await;
    let mut events = a.subscribe();
    let t0 = lab.now();
    let changes = a.overwrite(vec![(pid(2), moved)]).await.unwrap();
    assert_eq!(changes.readdressed.len(), 1);
    wait_status(&old, VIRTUAL_DEADLINE, "severed", |s| s.connections == 0).await;
    wait_status(&new, VIRTUAL_DEADLINE, "validator 1 again", |s| {
        s.connections == 1
    })
    .await;
    let ended = loop {
        match events.recv().await.unwrap() {
            Event::Disconnected { point, ended, .. } if point == v(2) => break ended,
            _ => {}
        }
    };
    assert_eq!(ended, Ended::ByUs(CloseReason::AddressChanged));
    wait_core(
        &a,
        VIRTUAL_DEADLINE,
        "peer 2 at its new address",
        move |c| c.pool().connected_point_of(pid(2)) == Some(moved),
    )
    .await;
    eprintln!(
        "reconnected at the new address {:?} after the overwrite (virtual)",
        lab.now().as_duration() - t0.as_duration()
    );
    assert_eq!(query(&a, |c| c.stats().closed.address_changed).await, 1);
    for n in [&a, &old, &new] {
        n.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stale_id_is_an_error_and_changes_nothing() {
    let lab = Lab::new();
    let a = lab.node(&validator_config(), v(1), 1, vec![]);
    a.track(4, set(1..=2), vec![]).await.unwrap();
    for stale in [4, 3] {
        match a.track(stale, set(1..=3), vec![]).await {
            Err(NodeError::PeerSet(PeerSetError::StaleId { id, latest: 4 })) => {
                assert_eq!(id, stale)
            }
            other => panic!("{other:?}"),
        }
    }
    let (latest, tracks_3) = query(&a, |c| {
        (c.peer_sets().latest_id(), c.peer_sets().is_tracked(pid(3)))
    })
    .await;
    assert_eq!((latest, tracks_3), (Some(4), false));
    a.shutdown().await;
    assert!(matches!(
        a.track(5, vec![], vec![]).await,
        Err(NodeError::Stopped)
    ));
}
