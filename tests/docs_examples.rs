//! The documentation's examples run as tests (issue 18, part 7: figures that cannot drift).
//!
//! The markdown is the single source: each ```` ```console ```` block of `docs/replay.md` and
//! `docs/simulator.md` is read, every `$ peerkeeper replay ...` or `$ peerkeeper simulate ...`
//! in it is run by the debug binary with the files the doc shows (the replay's trace is the
//! doc's own ```` ```json ```` block, written as `node.trace`), and its output must be the
//! text the doc shows under the command, line for line; a simulator run's `wall time` line
//! is the only one not compared (the simulator is deterministic by seed, the wall clock is
//! not). The simulator's heavier figures (BENCHMARKS.md, the tables of docs/simulator.md)
//! are checked by `python3 benches/regenerate.py --check`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fenced blocks of a markdown text: (info string, body).
fn fenced(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        blocks.push((info.trim().to_string(), body));
    }
    blocks
}

/// A console example: a command and the output the doc shows under it.
struct Example {
    args: Vec<String>,
    output: String,
}

/// Every `$ peerkeeper SUBCOMMAND ...` of the doc's console blocks, for the subcommands
/// given, with the lines under it up to the next `$ ` or the end of the block.
fn examples(md: &str, subcommands: &[&str]) -> Vec<Example> {
    let mut found = Vec::new();
    for (info, body) in fenced(md) {
        if info != "console" {
            continue;
        }
        let mut current: Option<Example> = None;
        for line in body.lines() {
            if let Some(cmd) = line.strip_prefix("$ ") {
                found.extend(current.take());
                let words: Vec<String> = cmd.split_whitespace().map(String::from).collect();
                if words.first().map(String::as_str) == Some("peerkeeper")
                    && subcommands.contains(&words[1].as_str())
                {
                    current = Some(Example {
                        args: words[1..].to_vec(),
                        output: String::new(),
                    });
                }
            } else if let Some(ex) = current.as_mut() {
                ex.output.push_str(line);
                ex.output.push('\n');
            }
        }
        found.extend(current);
    }
    found
}

fn run(dir: &Path, args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_peerkeeper"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "peerkeeper {}: {:?}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The doc's text and the command's, line by line, but for the lines `skip` accepts.
fn assert_same(what: &str, doc: &str, actual: &str, skip: impl Fn(&str) -> bool) {
    let keep = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !skip(l))
            .map(|l| l.trim_end().to_string())
            .collect()
    };
    assert_eq!(
        keep(doc),
        keep(actual),
        "{what}: the doc shows\n{doc}\nthe command prints\n{actual}\n(regenerate the doc's \
         example from the command's output)"
    );
}

/// The trace the doc shows in full: the one JSON block that is a header and inputs.
fn doc_trace(md: &str) -> String {
    let traces: Vec<String> = fenced(md)
        .into_iter()
        .filter(|(info, body)| {
            info == "json"
                && body.starts_with("{\"schema\":\"peerkeeper-trace\"")
                && body.lines().count() > 1
        })
        .map(|(_, body)| body)
        .collect();
    assert_eq!(traces.len(), 1, "docs/replay.md shows one whole trace");
    traces[0].clone()
}

#[test]
fn the_replay_example_of_docs_replay_md_prints_what_the_doc_shows() {
    let md = repo("docs/replay.md");
    let trace = doc_trace(&md);
    let dir = scratch("replay");
    std::fs::write(dir.join("node.trace"), &trace).unwrap();
    let found = examples(&md, &["replay"]);
    assert!(!found.is_empty(), "docs/replay.md has a replay example");
    for ex in found {
        assert!(
            ex.args.iter().any(|a| a == "node.trace"),
            "the example replays the doc's trace: {:?}",
            ex.args
        );
        let actual = run(&dir, &ex.args);
        assert_same(
            &format!("peerkeeper {}", ex.args.join(" ")),
            &ex.output,
            &actual,
            |_| false,
        );
    }
}

#[test]
fn the_doc_trace_is_the_small_trace_of_tests_replay_rs() {
    // The doc says so: keep them one trace.
    let source = repo("tests/replay.rs");
    let start = source.find("const SMALL: &str = r#\"").unwrap() + "const SMALL: &str = r#\"".len();
    let end = start + source[start..].find("\"#;").unwrap();
    assert_eq!(doc_trace(&repo("docs/replay.md")), &source[start..end]);
}

#[test]
fn the_simulator_examples_of_docs_simulator_md_print_what_the_doc_shows() {
    let md = repo("docs/simulator.md");
    let found = examples(&md, &["simulate"]);
    assert!(
        !found.is_empty(),
        "docs/simulator.md has a simulate example"
    );
    let dir = scratch("simulate");
    for ex in found {
        let actual = run(&dir, &ex.args);
        // Every figure but the wall clock: converged, the time every node was in range,
        // components, dials, messages, the event log hash.
        assert_same(
            &format!("peerkeeper {}", ex.args.join(" ")),
            &ex.output,
            &actual,
            |l| l.trim_start().starts_with("wall time"),
        );
    }
}
