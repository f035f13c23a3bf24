//! The report of a whole-network run, shared by `peerkeeper demo` (real TCP nodes) and
//! `peerkeeper simulate` (the simulator): the same keys, so runs compare.

use crate::core::intake::PointsDropped;
use crate::core::DialStats;
use serde::Serialize;

/// Min, median and max of a per-node figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Spread {
    /// Smallest.
    pub min: usize,
    /// Median (lower middle).
    pub median: usize,
    /// Largest.
    pub max: usize,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    ///
    /// ```
    /// use peerkeeper::report::Spread;
    /// let s = Spread::of(&[5, 1, 3]);
    /// assert_eq!((s.min, s.median, s.max), (1, 3, 5));
    /// ```
    pub fn of(values: &[usize]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        match v.len() {
            0 => Spread::default(),
            n => Spread {
                min: v[0],
                median: v[(n - 1) / 2],
                max: v[n - 1],
            },
        }
    }
}

/// Peer-sharing counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharingCounts {
    /// Requests for points sent.
    pub requests: u64,
    /// Points received in answers.
    pub points_received: u64,
}

/// What a whole-network run reached. Serialised as the `--json` output; `peerkeeper demo`
/// (real nodes) and `peerkeeper simulate` fill the same keys from the same node core
/// counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NetworkReport {
    /// Nodes in the network.
    pub nodes: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Whether every node ended within `[min_threshold, max_threshold]`, all in one
    /// connected component.
    pub converged: bool,
    /// First time (ms since start) every node was within range; `None` if never.
    pub converged_at_ms: Option<u64>,
    /// Final connections per node.
    pub connections: Spread,
    /// Connected components of the final overlay.
    pub components: usize,
    /// The largest connection count any node ever had.
    pub max_observed_connections: usize,
    /// Dial outcomes, all nodes (they add up to the attempts).
    pub dials: DialStats,
    /// Points dropped by the intake rule, by reason, all nodes.
    pub points_dropped: PointsDropped,
    /// Peer-sharing counters, all nodes.
    pub peer_sharing: SharingCounts,
    /// Maintenance cycles, all nodes.
    pub maintenance_cycles: u64,
    /// Wall-clock duration of the run, ms.
    pub wall_ms: u64,
}

impl NetworkReport {
    /// The summary rows both `peerkeeper demo` and `peerkeeper simulate` print: label and
    /// value, for a range of `[lo, hi]`.
    pub fn summary_rows(&self, lo: usize, hi: usize) -> Vec<(String, String)> {
        vec![
            (
                format!("converged (all in [{lo}, {hi}])"),
                if self.converged { "yes" } else { "NO" }.to_string(),
            ),
            (
                "first all in range".into(),
                self.converged_at_ms
                    .map_or("never".to_string(), |ms| format!("{ms} ms")),
            ),
            (
                "connections per node".into(),
                format!(
                    "min {} / median {} / max {}",
                    self.connections.min, self.connections.median, self.connections.max
                ),
            ),
            ("components".into(), self.components.to_string()),
            (
                "most connections on a node".into(),
                self.max_observed_connections.to_string(),
            ),
            ("dials".into(), self.dials.summary()),
            ("points dropped".into(), self.points_dropped.summary()),
            (
                "peer sharing".into(),
                format!(
                    "{} requests, {} points received",
                    self.peer_sharing.requests, self.peer_sharing.points_received
                ),
            ),
            (
                "maintenance cycles".into(),
                self.maintenance_cycles.to_string(),
            ),
            ("wall time".into(), format!("{} ms", self.wall_ms)),
        ]
    }
}

/// Prints rows as an aligned two-column table, indented.
pub fn print_rows(rows: &[(String, String)]) {
    use std::io::Write;
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (label, value) in rows {
        // A reader that went away (`| head -1`) is not an error worth a panic.
        if writeln!(out, "  {label:<width$}  {value}").is_err() {
            return;
        }
    }
}

/// Connected components of an undirected graph of `n` nodes given as edges (union-find).
///
/// ```
/// use peerkeeper::report::components;
/// assert_eq!(components(4, &[(0, 1), (2, 3)]), 2);
/// assert_eq!(components(3, &[(0, 1), (1, 2)]), 1);
/// ```
pub fn components(n: usize, edges: &[(usize, usize)]) -> usize {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..n).collect();
    let mut count = n;
    for &(a, b) in edges {
        if a >= n || b >= n {
            continue;
        }
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra] = rb;
            count -= 1;
        }
    }
    count
}
