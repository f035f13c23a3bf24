//! The worked example of `docs/embedding.md` cannot rot: `examples/drive_core.rs` (five
//! `NodeCore`s driven by hand on a simulated clock) is compiled in here and run, and the
//! code the doc quotes from it must be in it, word for word.

// Its `main` is the example's, not called here.
#[allow(dead_code)]
#[path = "../examples/drive_core.rs"]
mod drive_core;

use drive_core::{config, Network, LIMIT, NODES};
use peerkeeper::core::CoreStats;
use std::path::Path;
use std::time::Duration;

/// Connected components of the overlay, as the nodes see it.
fn components(net: &Network) -> usize {
    let mut seen = [false; NODES];
    let mut count = 0;
    for start in 0..NODES {
        if seen[start] {
            continue;
        }
        count += 1;
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                let (dialed, dialed_by) = net.neighbours(i);
                stack.extend(dialed.into_iter().chain(dialed_by));
            }
        }
    }
    count
}

/// Every node between `min_threshold` and `max_threshold`, both ends of every connection
/// agreeing on it, one component, every core consistent.
fn check(net: &Network) {
    let b = config().bounds();
    for i in 0..NODES {
        let (dialed, dialed_by) = net.neighbours(i);
        let n = net.cores[i].connection_count();
        assert_eq!(dialed.len() + dialed_by.len(), n, "node {i}");
        assert!(
            (b.min_threshold..=b.max_threshold).contains(&n),
            "node {i}: {n} connections"
        );
        for j in dialed {
            assert!(
                net.neighbours(j).1.contains(&i),
                "{i} dialed {j}, not seen by {j}"
            );
        }
        net.cores[i].check_invariants();
    }
    assert_eq!(components(net), 1);
}

#[test]
fn every_node_reaches_min_threshold_in_one_component() {
    config().validate().unwrap();
    let mut net = Network::new(NODES, &config());
    assert!(net.run(LIMIT), "not settled at {}", net.now);
    check(&net);
}

#[test]
fn it_stays_in_range_as_its_timers_fire() {
    let mut net = Network::new(NODES, &config());
    assert!(net.run(LIMIT));
    let cycles: Vec<u64> = net.cores.iter().map(|c| c.stats().cycles).collect();
    // Ten minutes of idle cycles, discovery and exploration: no step may stall the clock.
    let end = net.now + Duration::from_secs(600);
    let mut steps = 0;
    while net.step(end) {
        steps += 1;
        assert!(steps < 100_000, "stuck at {}", net.now);
    }
    // The last messages may still be in flight: let them land.
    let limit = end + Duration::from_secs(1);
    while !net.settled() && net.step(limit) {}
    check(&net);
    for (i, c) in net.cores.iter().enumerate() {
        assert!(
            c.stats().cycles > cycles[i],
            "node {i}: no cycle after the first ones"
        );
    } // Every path of the driver ran: refusals with points, and closes one end decided and
      // the other end heard of (`handle_closed`).
    let sum = |f: fn(&CoreStats) -> u64| net.cores.iter().map(|c| f(&c.stats())).sum::<u64>();
    assert!(sum(|s| s.admission.refused_full) > 0);
    assert!(sum(|s| s.closed.trimmed) > 0);
    assert!(sum(|s| s.closed.lost) > 0);
}

#[test]
fn the_same_run_every_time() {
    let run = || {
        let mut net = Network::new(NODES, &config());
        assert!(net.run(LIMIT));
        let peers: Vec<_> = (0..NODES).map(|i| net.neighbours(i)).collect();
        (net.now, peers)
    };
    assert_eq!(run(), run());
}

/// The fenced blocks of a markdown text: (info string, lines).
fn fenced(md: &str) -> Vec<(&str, Vec<&str>)> {
    let mut blocks = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((info.trim(), body));
        }
    }
    blocks
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/embedding.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_doc_quotes_the_example_as_it_is() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/drive_core.rs");
    let example = std::fs::read_to_string(path).unwrap();
    let example: Vec<&str> = example.lines().map(str::trim).collect();
    let mut quoted = 0;
    for (info, block) in fenced(&doc()) {
        if info != "rust" || block.first() != Some(&"// examples/drive_core.rs") {
            continue;
        }
        // Line for line, indentation aside (the doc shows it dedented).
        let body: Vec<&str> = block[1..].iter().map(|l| l.trim()).collect();
        assert!(
            example.windows(body.len()).any(|w| w == body),
            "docs/embedding.md quotes code that examples/drive_core.rs does not have:\n{}",
            block[1..].join("\n")
        );
        quoted += 1;
    }
    assert!(
        quoted >= 3,
        "docs/embedding.md quotes {quoted} blocks of the example"
    );
}

#[test]
fn the_doc_shows_what_the_example_prints() {
    let mut net = Network::new(NODES, &config());
    let settled = net.run(LIMIT);
    let printed = drive_core::summary(&net, settled);
    let command = "$ cargo run --example drive_core";
    let shown = fenced(&doc())
        .into_iter()
        .find(|(info, b)| *info == "console" && b.first() == Some(&command))
        .map(|(_, b)| b[1..].join("\n") + "\n")
        .expect("docs/embedding.md shows the example's output");
    assert_eq!(shown, printed);
}
