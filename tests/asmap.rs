//! AS maps (`pool::AsMap`, `defences.asmap`; issue 10, item 1): with a map, peers are
//! grouped by the autonomous system that announces them, so an operator holding many
//! /16s (a hosting provider, a transit network: Erebus) counts as one group for dial
//! diversity and for the address book; a missing or malformed map stops `peerkeeper node`
//! before it binds, naming the field and the line.

mod proc;

use peerkeeper::maintenance::diverse;
use peerkeeper::pool::{AsMap, Pool, Source};
use peerkeeper::{Config, Time};
use std::net::SocketAddr;
use std::sync::Arc;

/// Twenty attacker points, each in its own /16 of 150.0.0.0/8; three honest points.
fn pool(map: Option<&str>) -> Pool {
    let mut p = Pool::new(&Config::default());
    p.set_salt(3);
    p.set_asmap(map.map(|m| Arc::new(AsMap::parse(m).unwrap())));
    for g in 0..20u8 {
        p.add_point(
            SocketAddr::from(([150, g, 0, 1], 9732)),
            Source::PeerSharing,
            Time::ZERO,
        );
    }
    for g in 0..3u8 {
        p.add_point(
            SocketAddr::from(([45, g, 0, 1], 9732)),
            Source::PeerSharing,
            Time::ZERO,
        );
    }
    p.advance(Time::ZERO);
    p
}

fn attackers(dials: &[SocketAddr]) -> usize {
    dials
        .iter()
        .filter(|a| a.ip().to_string().starts_with("150."))
        .count()
}

#[test]
fn with_an_as_map_one_operator_in_many_ranges_gets_one_dialed_slot_per_as() {
    let by_range = pool(None);
    let by_as = pool(Some(
        "150.0.0.0/8 64500\n45.0.0.0/16 1\n45.1.0.0/16 2\n45.2.0.0/16 3\n",
    ));
    let a = diverse(&by_range, false, 4);
    let b = diverse(&by_as, false, 4);
    assert_eq!(b.len(), 4);
    assert_eq!(attackers(&b), 1, "one AS, one slot: {b:?}");
    // By /16 alone the operator's twenty ranges look like twenty operators.
    assert!(attackers(&a) > 1, "{a:?}");
    let many = diverse(&by_range, false, 20);
    let few = diverse(&by_as, false, 20);
    assert_eq!(few.len(), 20, "a top-up still fills its slots");
    assert_eq!(attackers(&few), 17, "every honest point is in: {few:?}");
    assert_eq!(attackers(&few[..4]), 1, "and they come first");
    assert!(
        attackers(&many) > 17,
        "by /16 an honest point is left out: {many:?}"
    );
}

#[test]
fn with_an_as_map_one_as_flooding_from_many_ranges_gets_one_share_of_the_book() {
    let count = |map: Option<&str>| {
        let mut p = Pool::new(&Config::default());
        p.set_salt(5);
        p.set_asmap(map.map(|m| Arc::new(AsMap::parse(m).unwrap())));
        // Senders in 200 of the AS's /16s, each sending 200 addresses.
        for s in 0..200u32 {
            let sender = std::net::IpAddr::from([150, s as u8, 1, 1]);
            for i in 0..200u32 {
                let a = SocketAddr::from(([150, (s + i) as u8, (i >> 8) as u8 + 2, i as u8], 9732));
                p.add_point_from(a, Source::PeerSharing, sender, Time::ZERO);
            }
        }
        p.check_invariants();
        p.book_counts().0
    };
    let by_range = count(None);
    let by_as = count(Some("150.0.0.0/8 64500\n"));
    assert!(by_as <= 2 * 64, "one sender group's buckets: {by_as}");
    assert!(by_range > 4 * by_as, "{by_range} vs {by_as}");
}

#[test]
fn a_missing_or_malformed_as_map_stops_the_node_before_it_binds() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let dir = proc::scratch("asmap", "bad");
    let missing = dir.join("missing.toml");
    std::fs::write(
        &missing,
        format!("[defences]\nasmap = {:?}\n", dir.join("nope.txt")),
    )
    .unwrap();
    let map = dir.join("bad.txt");
    std::fs::write(&map, "# ok\n1.0.0.0/8 100\n1.2.0.0/40 200\n").unwrap();
    let malformed = dir.join("malformed.toml");
    std::fs::write(&malformed, format!("[defences]\nasmap = {map:?}\n")).unwrap();
    for (config, says) in [(&missing, "cannot read"), (&malformed, "line 3")] {
        let out = proc::peerkeeper()
            .args(["node", "--listen", &listen, "--config"])
            .arg(config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("defences.asmap"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("cannot listen"), "it tried to bind: {err}");
    }
    drop(held);
}
