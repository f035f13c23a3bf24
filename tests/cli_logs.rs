//! Logs an operator can read (issue 18, part 4), from real `peerkeeper node` processes:
//! a connection's close names the peer, its address, the direction and the reason; a
//! configured point that proves another key is logged with the key expected and the key
//! got; the status line carries the time.

mod proc;

use proc::NodeProcess;

/// The value of `key=` in a log line (the rest of the word).
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
}

#[test]
fn a_close_names_peer_address_direction_and_reason() {
    let a = NodeProcess::start(&[]);
    let b = NodeProcess::start(&["--peer", &a.listen()]);
    let (b_listen, b_id) = b.listen_and_id();
    a.wait_for("b connected", |l| {
        l.contains(" connected ") && l.contains(&b_id[..16])
    });
    let (code, _) = b.stop();
    assert_eq!(code, Some(0));
    let line = a.wait_for("b's close", |l| l.contains("disconnected"));
    assert_eq!(value(&line, "peer"), Some(&b_id[..16]), "{line}");
    assert_eq!(value(&line, "point"), Some(b_listen.as_str()), "{line}");
    assert_eq!(value(&line, "direction"), Some("inbound"), "{line}");
    assert!(value(&line, "closed_by").is_some(), "{line}");
    assert!(line.contains("reason="), "{line}");
    // The status line says when.
    let status = a.wait_for("a status line", |l| l.starts_with("status:"));
    let time = status.rsplit("; time ").next().unwrap();
    assert!(time.starts_with("20") && time.ends_with('Z'), "{status}");
}

#[test]
fn a_key_mismatch_names_the_key_expected_and_the_key_got_once_a_minute() {
    let b = NodeProcess::start(&[]);
    let (b_listen, b_id) = b.listen_and_id();
    let wrong = "ab".repeat(32);
    let a = NodeProcess::start(&["--peer", &format!("{wrong}@{b_listen}")]);
    let line = a.wait_for("the mismatch", |l| l.contains("proved another key"));
    assert_eq!(value(&line, "expected"), Some(wrong.as_str()), "{line}");
    assert_eq!(value(&line, "got"), Some(b_id.as_str()), "{line}");
    assert_eq!(value(&line, "point"), Some(b_listen.as_str()), "{line}");
    // The dial is retried about every second; the warning is not: more wrong-peer dials
    // are counted (status line) while no second warning comes.
    let status = a.wait_for("three wrong-peer dials", |l| {
        l.starts_with("status:")
            && l.split("dials: ")
                .nth(1)
                .and_then(|d| d.split(" wrong peer").next())
                .and_then(|d| d.rsplit(", ").next())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 3)
    });
    let (_, rest) = a.stop();
    let repeats = rest
        .iter()
        .filter(|l| l.contains("proved another key"))
        .count();
    assert_eq!(repeats, 0, "{status}\n{rest:?}");
}
