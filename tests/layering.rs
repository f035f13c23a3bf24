//! The house rule, checked: the decisions live in a sans-IO layer that both the tokio
//! node and the simulator drive. That layer imports no tokio, reads no clock, and knows
//! no transport, wire format or shell; dependencies point down only.
//!
//! A module lint over the source files (the crate is one package, so `cargo tree` cannot
//! separate the layers): every file of the pure layer is read, comments stripped, and
//! searched for what it must not name.

use std::path::{Path, PathBuf};

/// The sans-IO layer: the node core and everything it is made of, plus the simulator
/// that drives it without tokio.
const PURE: &[&str] = &[
    "src/core",
    "src/pool",
    "src/maintenance",
    "src/discovery",
    "src/trigger/mod.rs",
    "src/config.rs",
    "src/time.rs",
    "src/report.rs",
    "src/sim",
];

/// What the pure layer must not name: an async runtime, a clock, sockets, or the layers
/// above it.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "futures",
    "Instant::now",
    "SystemTime",
    "std::net::Tcp",
    "std::net::Udp",
    "std::thread",
    "std::fs",
    "crate::node",
    "crate::metrics",
    "crate::transport",
    "crate::wire",
    "crate::trigger::observe",
    "crate::trigger::Triggers",
];

/// Allowed exceptions, each with its reason.
const ALLOWED: &[(&str, &str)] = &[
    // `Config::load` reads a config file for the command and embedding nodes; nothing in
    // the core calls it.
    ("src/config.rs", "std::fs"),
];

fn files(root: &Path, out: &mut Vec<PathBuf>) {
    if root.is_file() {
        out.push(root.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc comments explain the layering, and may
/// name what the code does not use).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_pure_layer_imports_no_runtime_no_clock_no_transport() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for p in PURE {
        files(&root.join(p), &mut all);
    }
    assert!(
        all.len() >= 15,
        "the pure layer is where it should be: {all:?}"
    );
    let mut broken = Vec::new();
    for f in &all {
        let text = code(&std::fs::read_to_string(f).unwrap());
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        for word in FORBIDDEN {
            if ALLOWED.contains(&(rel.as_str(), word)) {
                continue;
            }
            if text.contains(word) {
                broken.push(format!(
                    "{} names {word}",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_wire_serialises_only_its_own_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = code(&std::fs::read_to_string(root.join("src/wire.rs")).unwrap());
    for word in [
        "crate::pool",
        "crate::core::{",
        "PeerId",
        "CloseReason",
        "RefuseReason",
    ] {
        assert!(!text.contains(word), "src/wire.rs names {word}");
    }
}

#[test]
fn the_lint_sees_a_forbidden_import() {
    // The check above would pass vacuously if `code` dropped everything.
    let sample = "use tokio::sync::watch; // a comment naming SystemTime\nfn f() {}";
    let c = code(sample);
    assert!(c.contains("tokio"));
    assert!(!c.contains("SystemTime"));
}
