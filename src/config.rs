//! Settings for the maintainer, loadable from TOML, and their validation.
//!
//! The three connection settings `min_connections <= expected_connections <=
//! max_connections` give four derived [`Bounds`] (octez's rule): with
//! `s = (expected - min) / 3` and `t = (max - expected) / 3`,
//! `min_threshold = min + s`, `min_target = min + 2s`, `max_target = max - 2t`,
//! `max_threshold = max - t`. The triggers fire at exactly the thresholds the
//! worker acts on (octez fires too-few below `min` but acts below `min_threshold`).
//!
//! Connections have a **kind** (where their point was learned: trusted, bootstrap,
//! external, peer-shared, incoming; see [`Source::rank`](crate::pool::Source::rank)) and
//! [`KindTargets`] give each kind a floor, a weight and a cap; two budgets split
//! `max_connections` between the connections we dial (`max_outbound`) and the ones
//! that dial us (`max_inbound`), so that inbound strangers never crowd out the peers we
//! chose ([`Config::outbound_budget`], [`Config::inbound_budget`]).
//!
//! Unknown keys are rejected, and [`Config::validate`] names the field and the rule
//! broken, so a typo or a bad value stops a node before it touches anything.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// An error in a configuration: which field, and which rule it breaks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field has a value that breaks a rule.
    #[error("invalid config: `{field}` {rule}")]
    Invalid {
        /// The field, as spelled in the TOML file (`reconnection.factor` for nested ones).
        field: &'static str,
        /// The rule it breaks, in words.
        rule: String,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    /// The message from the TOML parser names the key and the line.
    #[error("invalid config file: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The path that was given.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The field named by this error, when it names one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        rule: rule.into(),
    }
}

/// The four bounds derived from min/expected/max connections.
///
/// ```
/// use peerkeeper::Bounds;
/// let b = Bounds::new(10, 50, 100);
/// assert_eq!((b.min_threshold, b.min_target, b.max_target, b.max_threshold), (23, 36, 68, 84));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Below this, the too-few trigger fires and maintenance dials.
    pub min_threshold: usize,
    /// A top-up dials until at least this many connections.
    pub min_target: usize,
    /// Never plan above this; a trim closes down to it.
    pub max_target: usize,
    /// Above this, the too-many trigger fires and maintenance trims.
    pub max_threshold: usize,
}

impl Bounds {
    /// Derives the bounds from `min <= expected <= max` (saturating if the order is broken;
    /// [`Config::validate`] rejects such configs).
    pub fn new(min: usize, expected: usize, max: usize) -> Bounds {
        let s = expected.saturating_sub(min) / 3;
        let t = max.saturating_sub(expected) / 3;
        Bounds {
            min_threshold: min + s,
            min_target: min + 2 * s,
            max_target: max.saturating_sub(2 * t),
            max_threshold: max.saturating_sub(t),
        }
    }

    /// Where a connection count stands against the bounds.
    pub fn classify(&self, active: usize) -> RangeStatus {
        if active < self.min_threshold {
            RangeStatus::TooFew
        } else if active > self.max_threshold {
            RangeStatus::TooMany
        } else {
            RangeStatus::InRange
        }
    }
}

/// Where a connection count stands against the [`Bounds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RangeStatus {
    /// Below `min_threshold`.
    TooFew,
    /// Within `[min_threshold, max_threshold]`: nothing to do (hysteresis).
    InRange,
    /// Above `max_threshold`.
    TooMany,
}

/// Exponential backoff with jitter: `initial * factor^(n-1)`, capped, then spread by
/// `± jitter` (a fraction of the delay) drawn from the caller's seeded RNG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Delay after the first failure.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Growth per further failure (>= 1).
    pub factor: f64,
    /// Longest delay.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// Random spread, as a fraction of the delay, in `[0, 1)`.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(600),
            jitter: 0.2,
        }
    }
}

/// Discovery (peer sharing) settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// At most this many connected peers are asked for points per round.
    pub fanout: usize,
    /// A peer is not asked again within this interval.
    #[serde(with = "humantime_serde")]
    pub peer_ask_interval: Duration,
    /// The longest wait between two rounds (the cap of the backoff that starts at
    /// `time_between_looking_for_peers`).
    #[serde(with = "humantime_serde")]
    pub max_time_between_rounds: Duration,
    /// How long an answer to a request is awaited.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most points put in one answer (at most [`MAX_POINTS_PER_MESSAGE`], the most a
    /// message may carry, so an honest answer is never a violation); a refusal carries at
    /// most 50.
    ///
    /// [`MAX_POINTS_PER_MESSAGE`]: crate::MAX_POINTS_PER_MESSAGE
    pub answer_size: usize,
    /// Accept loopback and private (LAN) addresses from peers under the relay rule: a
    /// loopback address only from a loopback sender, a private one only from a private or
    /// loopback sender (see [`crate::core::intake`]). On by default, so that local
    /// testnets, LANs and container networks form; a public node may switch it off to
    /// refuse every non-public address from the network.
    pub allow_private_addresses: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            fanout: 8,
            peer_ask_interval: Duration::from_secs(30),
            max_time_between_rounds: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            answer_size: 50,
            allow_private_addresses: true,
        }
    }
}

/// The target of one kind of connection (see [`KindTargets`]).
///
/// ```
/// use peerkeeper::config::KindTarget;
/// let t: KindTarget = toml::from_str("floor = 2\nweight = 3\ncap = 10").unwrap();
/// assert_eq!((t.floor, t.weight, t.cap), (2, 3, Some(10)));
/// assert_eq!(KindTarget::default(), KindTarget { floor: 0, weight: 0, cap: None });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindTarget {
    /// Connections of this kind that must be kept: dialed first (even while the count is in
    /// range, within the outbound budget), never trimmed below.
    pub floor: usize,
    /// This kind's share of the rest (the top-up's goal minus every floor), relative to the
    /// other kinds' weights. 0: no share, the kind is dialed only when no kind with a share
    /// under it has a candidate left (spill). All weights 0 (the default): no preference,
    /// the rest is filled best candidate first, whatever its kind.
    pub weight: u32,
    /// Most connections of this kind the planner dials to (counting both directions); a
    /// trim cuts a kind above its cap first. Absent: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<usize>,
}

/// Targets per kind of connection, in the spirit of Amaru's peer source mix (floors,
/// weights) and the Cardano governor's per-kind targets. A connection's kind is its
/// point's best source ([`Source::rank`](crate::pool::Source::rank): trusted > bootstrap >
/// external > peer-shared > incoming).
///
/// The planner ([`crate::maintenance::top_up_dials`]) fills the floors first, then the
/// rest by weight (largest remainder, a kind without candidates spills its share to the
/// others), never above a cap; a trim ([`crate::maintenance::trim`]) cuts the kind
/// furthest over its share first, never below its floor, never a trusted or protected
/// peer. The default (no floor, no weight, no cap) is today's planner exactly: best
/// candidates first, whatever their kind.
///
/// ```
/// use peerkeeper::Config;
/// let c = Config::from_toml(r#"
///     min_connections = 4
///     expected_connections = 10
///     max_connections = 16
///     [targets.external]   # a ledger's relays, a DNS seed
///     floor = 2
///     weight = 2
///     [targets.peer_sharing]
///     weight = 1
///     cap = 6
/// "#).unwrap();
/// assert_eq!(c.targets.external.floor, 2);
/// assert_eq!(c.targets.floor_sum(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindTargets {
    /// Trusted points (local roots): `trusted_points`. Never trimmed whatever the targets.
    pub trusted: KindTarget,
    /// Bootstrap points (`--peer`, the builder's `bootstrap`).
    pub bootstrap: KindTarget,
    /// Points from the node's own sources ([`crate::node::PointSource`]: a ledger, DNS
    /// seeds, a file) that report [`Source::External`](crate::pool::Source::External).
    pub external: KindTarget,
    /// Points other peers told us of (peer sharing, refusals, farewells).
    pub peer_sharing: KindTarget,
    /// Points of peers that dialed us (their listening points), known no other way.
    pub incoming: KindTarget,
}

impl KindTargets {
    /// The target of `kind`.
    pub fn get(&self, kind: crate::pool::Source) -> &KindTarget {
        use crate::pool::Source;
        match kind {
            Source::Trusted => &self.trusted,
            Source::Bootstrap => &self.bootstrap,
            Source::External => &self.external,
            Source::PeerSharing => &self.peer_sharing,
            Source::Incoming => &self.incoming,
        }
    }

    /// Whether the targets express no preference (the default): no floor, no weight, no cap.
    pub fn is_neutral(&self) -> bool {
        *self == KindTargets::default()
    }

    /// The sum of the floors.
    pub fn floor_sum(&self) -> usize {
        crate::pool::Source::ALL
            .iter()
            .map(|k| self.get(*k).floor)
            .fold(0usize, usize::saturating_add)
    }

    /// The sum of the weights.
    pub fn weight_sum(&self) -> u64 {
        crate::pool::Source::ALL
            .iter()
            .map(|k| u64::from(self.get(*k).weight))
            .sum()
    }

    /// Each kind's quota of `total` connections ([`Source::ALL`](crate::pool::Source::ALL)
    /// order): its floor, plus its share by weight of what is left after every floor
    /// (largest remainder, ties to the better kind), never above its cap. With no weight,
    /// the floors.
    pub fn quotas(&self, total: usize) -> [usize; 5] {
        use crate::pool::Source;
        let mut q = [0usize; 5];
        for (i, k) in Source::ALL.iter().enumerate() {
            q[i] = self.get(*k).floor;
        }
        let rest = total.saturating_sub(self.floor_sum()) as u64;
        let w = self.weight_sum();
        if w > 0 && rest > 0 {
            let mut rems = [(0u64, 0usize); 5];
            let mut given = 0u64;
            for (i, k) in Source::ALL.iter().enumerate() {
                let x = rest * u64::from(self.get(*k).weight);
                q[i] += (x / w) as usize;
                given += x / w;
                rems[i] = (x % w, i);
            }
            // Largest remainder first; among equal remainders, the better kind.
            let mut order: Vec<(u64, usize)> = rems
                .iter()
                .copied()
                .filter(|(_, i)| self.get(Source::ALL[*i]).weight > 0)
                .collect();
            order.sort_by_key(|(r, i)| (std::cmp::Reverse(*r), Source::ALL[*i].rank()));
            for (_, i) in order.into_iter().take((rest - given) as usize) {
                q[i] += 1;
            }
        }
        for (i, k) in Source::ALL.iter().enumerate() {
            if let Some(cap) = self.get(*k).cap {
                q[i] = q[i].min(cap);
            }
        }
        q
    }

    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        use crate::pool::Source;
        for k in Source::ALL {
            let t = self.get(k);
            for (field, v) in [("floor", Some(t.floor)), ("cap", t.cap)] {
                if v.is_some_and(|v| v > MAX_CONNECTIONS_SETTING) {
                    return Err(invalid(
                        kind_field(k, field),
                        format!("must be <= {MAX_CONNECTIONS_SETTING}"),
                    ));
                }
            }
            if t.weight > MAX_KIND_WEIGHT {
                return Err(invalid(
                    kind_field(k, "weight"),
                    format!("must be <= {MAX_KIND_WEIGHT}"),
                ));
            }
            if t.cap.is_some_and(|c| c < t.floor) {
                return Err(invalid(
                    kind_field(k, "cap"),
                    format!(
                        "must be >= its floor ({} < {})",
                        t.cap.unwrap_or(0),
                        t.floor
                    ),
                ));
            }
            if config.private_mode && k != Source::Trusted && t.floor > 0 {
                return Err(invalid(
                    kind_field(k, "floor"),
                    "must be 0 in private mode (only trusted points are dialed)",
                ));
            }
        }
        let floors = self.floor_sum();
        if floors > config.max_connections {
            return Err(invalid(
                "targets",
                format!(
                    "floors add up to {floors}, above max_connections ({})",
                    config.max_connections
                ),
            ));
        }
        let out = config.outbound_budget();
        if floors > out {
            return Err(invalid(
                "targets",
                format!(
                    "floors add up to {floors}, above the outbound budget max_outbound ({out})"
                ),
            ));
        }
        if self.trusted.floor > config.trusted_points.len() {
            return Err(invalid(
                "targets.trusted.floor",
                format!(
                    "must be <= the number of trusted_points ({} > {})",
                    self.trusted.floor,
                    config.trusted_points.len()
                ),
            ));
        }
        // Every kind capped: the caps must leave room for what a top-up dials.
        let caps: Option<usize> = Source::ALL
            .iter()
            .map(|k| self.get(*k).cap)
            .try_fold(0usize, |acc, c| c.map(|c| acc.saturating_add(c)));
        let goal = config.bounds().min_target;
        if let Some(caps) = caps {
            if caps < goal {
                return Err(invalid(
                    "targets",
                    format!(
                        "every kind is capped and the caps add up to {caps}, below min_target ({goal}): top-ups could never reach it"
                    ),
                ));
            }
        }
        // Weights given, but every weighted kind capped at its floor: nothing to share.
        if self.weight_sum() > 0
            && Source::ALL.iter().all(|k| {
                let t = self.get(*k);
                t.weight == 0 || t.cap == Some(t.floor)
            })
        {
            return Err(invalid(
                "targets",
                "every kind with a weight is capped at its floor: the weights share nothing",
            ));
        }
        Ok(())
    }
}

fn kind_field(kind: crate::pool::Source, what: &str) -> &'static str {
    use crate::pool::Source;
    match (kind, what) {
        (Source::Trusted, "cap") => "targets.trusted.cap",
        (Source::Bootstrap, "cap") => "targets.bootstrap.cap",
        (Source::External, "cap") => "targets.external.cap",
        (Source::PeerSharing, "cap") => "targets.peer_sharing.cap",
        (Source::Incoming, "cap") => "targets.incoming.cap",
        (Source::Trusted, _) => "targets.trusted.floor",
        (Source::Bootstrap, _) => "targets.bootstrap.floor",
        (Source::External, _) => "targets.external.floor",
        (Source::PeerSharing, _) => "targets.peer_sharing.floor",
        (Source::Incoming, _) => "targets.incoming.floor",
    }
}

/// Peer sets by epoch: the settings of [`crate::core::peerset`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerSetConfig {
    /// Peer sets only (a validator network): only tracked peers (and trusted points) are
    /// admitted, inbound included; only primaries (and trusted points) are dialed; no
    /// point is shared or taken from peers.
    pub only: bool,
    /// How many sets are kept (the latest ones): a peer stays tracked while it is in any
    /// of them, so an epoch change does not drop the previous epoch's peers at once.
    /// commonware keeps 4.
    pub kept_sets: usize,
    /// Most peers in one set (primaries and secondaries together); a larger set is an
    /// error.
    pub max_set_size: usize,
    /// Most addresses in one `overwrite`; more is an error.
    pub max_overwrite: usize,
    /// Most primaries connected or being dialed at once; absent: every primary, within
    /// `max_connections`.
    pub primary_target: Option<usize>,
    /// A tracked peer is admitted inbound only from the IP address of its tracked
    /// address (commonware's allowed inbound addresses; off is its `bypass_ip_check`).
    pub check_ip: bool,
}

impl Default for PeerSetConfig {
    fn default() -> Self {
        PeerSetConfig {
            only: false,
            kept_sets: 4,
            max_set_size: 1024,
            max_overwrite: 1024,
            primary_target: None,
            check_ip: true,
        }
    }
}

/// The defences against an eclipse (one operator controlling every peer we dial), each of
/// which can be switched off to measure what it is worth (`peerkeeper simulate
/// --attackers`; see `docs/design.md`, "Against a hostile network").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defences {
    /// Outbound candidates are picked across network groups (IPv4 /16, IPv6 /32): at most
    /// one dialed connection per group while enough groups are known (Bitcoin Core's rule);
    /// trusted and protected peers exempt. Off: the best candidates whatever their group.
    pub diverse_dials: bool,
    /// Points learned from the network are kept in Bitcoin Core's partitioned address
    /// book: a *new* side whose bucket positions are keyed by the sender's group (one
    /// source cannot fill it or push out what others taught us) and a *tried* side for
    /// points that worked, evicted from only after a test that the occupant is dead. Off:
    /// one flat pool, garbage-collected by failures and age.
    pub address_buckets: bool,
    /// At start, dial the anchors saved at the last shutdown (the last outbound peers)
    /// first. Off: a restored pool is dialed like any other.
    pub anchors: bool,
    /// Unsolicited advertisements of points are taken from a per-connection budget:
    /// `discovery.answer_size` points at first, then
    /// [`ADVERT_POINTS_PER_MINUTE`](crate::core::ADVERT_POINTS_PER_MINUTE) a minute
    /// (Bitcoin Core's address rate limit); answers to our requests are not limited. Off:
    /// one advertisement per `peer_ask_interval / 4`, whole.
    pub limit_adverts: bool,
    /// An AS map file ([`crate::pool::AsMap`]: `PREFIX ASN` lines, as Bitcoin Core's
    /// `asmap-tool decode` prints): peers are grouped by the autonomous system that
    /// announces them instead of by /16 (/32), for dial diversity, trims and the address
    /// book. Read by the node at start (`peerkeeper node`, [`crate::Node`]); absent: /16.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asmap: Option<std::path::PathBuf>,
}

impl Default for Defences {
    fn default() -> Self {
        Defences {
            diverse_dials: true,
            address_buckets: true,
            anchors: true,
            limit_adverts: true,
            asmap: None,
        }
    }
}

impl Defences {
    /// Every defence off (what the eclipse experiment compares against).
    pub fn off() -> Defences {
        Defences {
            diverse_dials: false,
            address_buckets: false,
            anchors: false,
            limit_adverts: false,
            asmap: None,
        }
    }
}

/// Peer feedback: the decaying score the node core keeps per peer from the application's
/// reports ([`crate::core::feedback`]), and the thresholds at which it disconnects and
/// bans.
///
/// ```
/// use peerkeeper::Config;
/// let c = Config::from_toml(r#"
///     [feedback]
///     half_life = "5m"
///     disconnect_below = -40
///     ban_below = -90
/// "#).unwrap();
/// assert!(c.feedback.enabled);
/// assert_eq!(c.feedback.half_life, std::time::Duration::from_secs(300));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Scores are kept and acted on. Off: reports are counted and otherwise ignored (the
    /// simulator's `--no-feedback` compares the two).
    pub enabled: bool,
    /// A score halves toward 0 every this long (Lighthouse: 600 s).
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// At or below this score (in `[-100, 0)`), the peer's connection is closed.
    pub disconnect_below: f64,
    /// At or below this score (in `[-100, disconnect_below]`), or at a
    /// [`Severity::Fatal`](crate::core::Severity::Fatal) report, the peer's point is
    /// greylisted (banned for `greylist_duration`) and its connection closed.
    pub ban_below: f64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            enabled: true,
            half_life: Duration::from_secs(600),
            disconnect_below: -50.0,
            ban_below: -80.0,
        }
    }
}

/// Which connection-maintenance policy a node runs. Both run inside the same node core, so
/// the simulator's `--compare` compares policies in one program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Policy {
    /// peerkeeper's maintenance, admission and discovery.
    #[default]
    Peerkeeper,
    /// A model of octez's (see [`crate::maintenance::octez`]).
    Octez,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "peerkeeper" => Ok(Policy::Peerkeeper),
            "octez" => Ok(Policy::Octez),
            other => Err(format!(
                "unknown policy {other:?} (expected peerkeeper or octez)"
            )),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Peerkeeper => "peerkeeper",
            Policy::Octez => "octez",
        })
    }
}

/// Everything the maintainer is tuned with.
///
/// ```
/// use peerkeeper::Config;
/// let c: Config = toml::from_str(r#"
///     min_connections = 4
///     expected_connections = 8
///     max_connections = 12
///     maintenance_idle_time = "none"
/// "#).unwrap();
/// c.validate().unwrap();
/// assert_eq!(c.maintenance_idle_time, None);
/// assert_eq!(c.bounds().min_threshold, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Strict minimum number of connections.
    pub min_connections: usize,
    /// Number of connections aimed for.
    pub expected_connections: usize,
    /// Maximum number of connections.
    pub max_connections: usize,
    /// Longest wait between two maintenance cycles; `"none"` switches the idle timer off.
    #[serde(with = "optional_duration")]
    pub maintenance_idle_time: Option<Duration>,
    /// How long a cycle waits for new points after asking, and the base of discovery's
    /// ask-for-points backoff.
    #[serde(with = "humantime_serde")]
    pub time_between_looking_for_peers: Duration,
    /// Most dials in flight at once.
    pub max_concurrent_dials: usize,
    /// A dial (connect plus handshake) taking longer than this fails.
    #[serde(with = "humantime_serde")]
    pub dial_timeout: Duration,
    /// Only dial and accept trusted points (and accept the tracked peers of the peer
    /// sets, from their tracked IP address), and never share points.
    pub private_mode: bool,
    /// Points that are always kept: never trimmed, never garbage-collected, dialed first.
    pub trusted_points: Vec<SocketAddr>,
    /// Most points in the pool; past it the pool is garbage-collected.
    pub max_known_points: usize,
    /// Garbage collection shrinks the pool to this many points.
    pub known_points_gc_target: usize,
    /// Most peer ids remembered.
    pub max_known_peers: usize,
    /// Most incoming connections still handshaking at once: the handshake budget (see
    /// `node::gate`: besides it, at most 8 per address and 32 per /24 or /64, the oldest
    /// idle evicted first). A pending handshake costs a task, a socket and at most one
    /// 8 KiB frame: the default 256 cost about 5 MiB. At most 65,536.
    pub max_incoming_connections: usize,
    /// At `max_connections`, a newcomer is admitted by closing one inbound connection
    /// (never trusted, never younger than `newcomer_grace`; it is sent points first), at
    /// most once per this interval; otherwise it is refused with points. This is what lets
    /// a network that filled up admit late joiners. `"none"` always refuses.
    #[serde(with = "optional_duration")]
    pub make_room_interval: Option<Duration>,
    /// A connection younger than this is never closed to make room for a newcomer.
    #[serde(with = "humantime_serde")]
    pub newcomer_grace: Duration,
    /// A node in range still dials one known point it is not connected to about this
    /// often (between half and one and a half times it, at random), even one backed off:
    /// an exploration dial, after Bitcoin Core's feeler connections (every 2 minutes).
    /// Below its trim target `max_target` the connection is kept like any other (a trim
    /// cuts it if the node goes over its maximum); at or above it, the exploration is a
    /// swap, at most one per [`exploration_swap_interval`](Self::exploration_swap_interval).
    /// This is how islands of nodes that are each in range find each other after a
    /// partition heals. Between 1 s and 1 hour (bounding the time to merge). Not with the
    /// octez policy (a model of octez, which has none) nor in private mode.
    #[serde(with = "humantime_serde")]
    pub exploration_interval: Duration,
    /// At or above its trim target `max_target` (where an added connection would only be
    /// trimmed, and the room above stays for inbound peers), an exploration is a swap:
    /// once the explored connection is up, one of the node's other outbound connections
    /// is closed (as a trim chooses it: never a trusted or protected one, never below the
    /// outbound floor `min_outbound`), after Bitcoin Core's extra block-relay-only peer
    /// (one every 5 minutes, the least useful then evicted). At most one swap per this
    /// interval (the first one this long after the start); the explorations due in
    /// between are skipped. This is how islands merge when every node sits at or above
    /// its trim target (as with 4/4/7 or 6/6/6), and its cost in a converged network:
    /// about one dial and one replaced connection per node per interval. Between 1 minute
    /// and 1 day. A swap is made by an exploration, so swaps are never closer together
    /// than an exploration gap: an interval shorter than `exploration_interval` is
    /// accepted and amounts to "every exploration at the trim target may swap".
    #[serde(with = "humantime_serde")]
    pub exploration_swap_interval: Duration,
    /// The maintenance policy: `"peerkeeper"` or `"octez"` (a model, for comparison).
    pub policy: Policy,
    /// Backoff between redials of a failing point.
    pub reconnection: BackoffConfig,
    /// After a connection ends, its point is not redialed before this delay.
    #[serde(with = "humantime_serde")]
    pub disconnection_delay: Duration,
    /// How long a misbehaving point or address is refused.
    #[serde(with = "humantime_serde")]
    pub greylist_duration: Duration,
    /// Peer sharing.
    pub discovery: DiscoveryConfig,
    /// Targets per kind of connection (floors, weights, caps). The default expresses no
    /// preference: the planner dials the best candidates whatever their kind.
    pub targets: KindTargets,
    /// Most connections we dial (outbound), trusted ones included. Absent: `min_target`
    /// (what a top-up dials to), raised to the sum of the floors. See
    /// [`Config::outbound_budget`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound: Option<usize>,
    /// Most connections that dialed us (inbound); trusted and protected peers are admitted
    /// beyond it (within `max_connections`), and past it a newcomer gets a place only by
    /// taking an older inbound one's. Absent: `max_connections` (inbound connections may
    /// take every slot the outbound ones leave). Set it (Bitcoin Core: 125 - 11, geth: two
    /// thirds) to keep room free for the peers this node dials. See
    /// [`Config::inbound_budget`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inbound: Option<usize>,
    /// Peer sets by epoch (commonware's `track`/`overwrite`), and the validator mode that
    /// admits and dials tracked peers only.
    pub peer_sets: PeerSetConfig,
    /// Eclipse defences (all on by default).
    pub defences: Defences,
    /// The outbound floor: connections this node dialed that it keeps whatever its inbound
    /// count (inbound connections never satisfy maintenance alone: the peers a node chose
    /// are its eclipse defence). While fewer are open, a cycle dials even when the total
    /// is in range, and a trim never cuts outbound connections below it. Absent:
    /// `min(8, min_connections, max_connections / 4)`, at least 1 when `min_connections`
    /// is (Bitcoin Core keeps 8 full-relay outbound connections of 125; a quarter of
    /// `max_connections` at most, so that a network whose nodes are full, half of their
    /// connections inbound, does not churn to reach it). See [`Config::outbound_floor`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_outbound: Option<usize>,
    /// Most inbound connections from one network group (IPv4 /16, IPv6 /32, or the AS
    /// with an AS map), as [`MAX_INBOUND_PER_ADDRESS`](crate::core::MAX_INBOUND_PER_ADDRESS)
    /// bounds one address; the same exemptions (loopback and private addresses, trusted,
    /// protected and tracked peers). Absent: a quarter of the inbound budget, at least 2.
    /// See [`Config::inbound_per_group`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inbound_per_group: Option<usize>,
    /// Peer feedback: scores, their half-life, the thresholds.
    pub feedback: FeedbackConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_connections: 10,
            expected_connections: 50,
            max_connections: 100,
            maintenance_idle_time: Some(Duration::from_secs(120)),
            time_between_looking_for_peers: Duration::from_secs(5),
            max_concurrent_dials: 8,
            dial_timeout: Duration::from_secs(10),
            private_mode: false,
            trusted_points: Vec::new(),
            max_known_points: 4000,
            known_points_gc_target: 3000,
            max_known_peers: 4000,
            max_incoming_connections: 256,
            make_room_interval: Some(Duration::from_secs(1)),
            newcomer_grace: Duration::from_secs(10),
            exploration_interval: Duration::from_secs(120),
            exploration_swap_interval: Duration::from_secs(600),
            policy: Policy::Peerkeeper,
            reconnection: BackoffConfig::default(),
            disconnection_delay: Duration::from_secs(30),
            greylist_duration: Duration::from_secs(900),
            discovery: DiscoveryConfig::default(),
            targets: KindTargets::default(),
            max_outbound: None,
            max_inbound: None,
            peer_sets: PeerSetConfig::default(),
            defences: Defences::default(),
            min_outbound: None,
            max_inbound_per_group: None,
            feedback: FeedbackConfig::default(),
        }
    }
}

impl Config {
    /// The derived bounds.
    pub fn bounds(&self) -> Bounds {
        Bounds::new(
            self.min_connections,
            self.expected_connections,
            self.max_connections,
        )
    }

    /// The outbound budget: most connections we dial. `max_outbound` when set; otherwise
    /// `min_target` (the top-up's goal, so the budget never stops a top-up) raised to the
    /// sum of the floors and to `min_outbound`, at most `max_connections`.
    ///
    /// ```
    /// use peerkeeper::Config;
    /// let c = Config::default(); // 10 / 50 / 100: min_target 36
    /// assert_eq!((c.outbound_budget(), c.inbound_budget()), (36, 100));
    /// let c = Config { max_outbound: Some(40), max_inbound: Some(85), ..Config::default() };
    /// assert_eq!((c.outbound_budget(), c.inbound_budget()), (40, 85));
    /// ```
    pub fn outbound_budget(&self) -> usize {
        self.max_outbound.unwrap_or_else(|| {
            self.bounds()
                .min_target
                .max(self.targets.floor_sum())
                .max(self.min_outbound.unwrap_or(0))
                .min(self.max_connections)
        })
    }

    /// The inbound budget: most connections that dialed us (trusted and protected peers
    /// excepted). `max_inbound` when set; otherwise `max_connections`.
    ///
    /// Why not less by default: the simulator's NAT-heavy network (half the nodes
    /// unreachable, so the other half carries every connection inbound) and a network
    /// whose every node is full when late joiners arrive both need public nodes to take
    /// inbound connections in every free slot; reserving `min_target` slots for outbound
    /// connections left nodes short there. What protects the peers a node chose, whatever
    /// the budget: an inbound newcomer only ever takes an older *inbound* connection's
    /// place, and a trim cuts inbound connections before any outbound one (never a
    /// trusted or protected one).
    pub fn inbound_budget(&self) -> usize {
        self.max_inbound.unwrap_or(self.max_connections)
    }

    /// The outbound floor ([`Config::min_outbound`]): `min_outbound` when set; otherwise
    /// `min(8, min_connections, max_connections / 4)`, at least 1 when `min_connections`
    /// is, within the outbound budget. 0 with the octez policy (octez has no floor).
    ///
    /// ```
    /// use peerkeeper::Config;
    /// assert_eq!(Config::default().outbound_floor(), 8); // 10 / 50 / 100
    /// let tight = Config { min_connections: 2, expected_connections: 4, max_connections: 6,
    ///                      ..Config::default() };
    /// assert_eq!(tight.outbound_floor(), 1);
    /// ```
    pub fn outbound_floor(&self) -> usize {
        if self.policy == Policy::Octez {
            return 0;
        }
        self.min_outbound.unwrap_or_else(|| {
            8.min(self.min_connections)
                .min(self.max_connections / 4)
                .max(1.min(self.min_connections))
                .min(self.outbound_budget())
        })
    }

    /// Most inbound connections from one network group ([`Config::max_inbound_per_group`]):
    /// the setting when given; otherwise a quarter of the inbound budget, at least 2.
    ///
    /// ```
    /// use peerkeeper::Config;
    /// assert_eq!(Config::default().inbound_per_group(), 25);
    /// ```
    pub fn inbound_per_group(&self) -> usize {
        self.max_inbound_per_group
            .unwrap_or_else(|| (self.inbound_budget() / 4).max(2))
    }

    /// Parses TOML and validates it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = crate::files::read_text_capped(path, MAX_CONFIG_BYTES).map_err(|source| {
            ConfigError::Io {
                path: path.display().to_string(),
                source,
            }
        })?;
        Config::from_toml(&text)
    }

    /// Checks every rule; the first broken one is returned, naming its field.
    ///
    /// Besides the rules between fields, every count is bounded (connections and dials by
    /// [`MAX_CONNECTIONS_SETTING`], handshakes by [`MAX_INCOMING_SETTING`], points and
    /// peers by [`MAX_KNOWN_SETTING`]) and every duration is at most [`MAX_DURATION`]; a
    /// timer that drives a loop is at least [`MIN_INTERVAL`]. No accepted value can
    /// overflow a clock or spin.
    ///
    /// ```
    /// use peerkeeper::Config;
    /// use std::time::Duration;
    /// let spin = Config { maintenance_idle_time: Some(Duration::from_nanos(1)), ..Config::default() };
    /// assert_eq!(spin.validate().unwrap_err().field(), Some("maintenance_idle_time"));
    /// let huge = Config { greylist_duration: Duration::MAX, ..Config::default() };
    /// assert_eq!(huge.validate().unwrap_err().field(), Some("greylist_duration"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_ranges()?;
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be greater than 0"));
        }
        if self.min_connections > self.expected_connections {
            return Err(invalid(
                "min_connections",
                format!(
                    "must be <= expected_connections ({} > {})",
                    self.min_connections, self.expected_connections
                ),
            ));
        }
        if self.expected_connections > self.max_connections {
            return Err(invalid(
                "expected_connections",
                format!(
                    "must be <= max_connections ({} > {})",
                    self.expected_connections, self.max_connections
                ),
            ));
        }
        if self.maintenance_idle_time == Some(Duration::ZERO) {
            return Err(invalid(
                "maintenance_idle_time",
                "must be greater than 0 (use \"none\" to switch the timer off)",
            ));
        }
        nonzero(
            "time_between_looking_for_peers",
            self.time_between_looking_for_peers,
        )?;
        if self.max_concurrent_dials == 0 {
            return Err(invalid("max_concurrent_dials", "must be greater than 0"));
        }
        nonzero("dial_timeout", self.dial_timeout)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.exploration_interval)
        {
            return Err(invalid(
                "exploration_interval",
                format!(
                    "must be between 1s and 1h (got {}): it bounds how long islands of in-range nodes stay apart",
                    humantime::format_duration(self.exploration_interval)
                ),
            ));
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(86_400))
            .contains(&self.exploration_swap_interval)
        {
            return Err(invalid(
                "exploration_swap_interval",
                format!(
                    "must be between 1m and 1day (got {}): it bounds how long islands of nodes at their trim target stay apart, and how often a converged node replaces a connection",
                    humantime::format_duration(self.exploration_swap_interval)
                ),
            ));
        }
        if self.make_room_interval == Some(Duration::ZERO) {
            return Err(invalid(
                "make_room_interval",
                "must be greater than 0 (use \"none\" to never make room)",
            ));
        }
        if self.private_mode && self.trusted_points.is_empty() && self.min_connections > 0 {
            return Err(invalid(
                "trusted_points",
                "must not be empty in private mode when min_connections > 0 (nothing could be dialed)",
            ));
        }
        if self.max_known_points == 0 {
            return Err(invalid("max_known_points", "must be greater than 0"));
        }
        if self.known_points_gc_target >= self.max_known_points {
            return Err(invalid(
                "known_points_gc_target",
                format!(
                    "must be < max_known_points ({} >= {})",
                    self.known_points_gc_target, self.max_known_points
                ),
            ));
        }
        if self.trusted_points.len() > self.known_points_gc_target {
            return Err(invalid(
                "trusted_points",
                "must not hold more points than known_points_gc_target",
            ));
        }
        if self.max_known_peers == 0 {
            return Err(invalid("max_known_peers", "must be greater than 0"));
        }
        if self.max_incoming_connections == 0 {
            return Err(invalid(
                "max_incoming_connections",
                "must be greater than 0",
            ));
        }
        nonzero("reconnection.initial", self.reconnection.initial)?;
        if !(self.reconnection.factor >= 1.0 && self.reconnection.factor.is_finite()) {
            return Err(invalid(
                "reconnection.factor",
                "must be a finite number >= 1",
            ));
        }
        if self.reconnection.cap < self.reconnection.initial {
            return Err(invalid(
                "reconnection.cap",
                "must be >= reconnection.initial",
            ));
        }
        if !(0.0..1.0).contains(&self.reconnection.jitter) {
            return Err(invalid("reconnection.jitter", "must be in [0, 1)"));
        }
        nonzero("greylist_duration", self.greylist_duration)?;
        let d = &self.discovery;
        if d.fanout == 0 {
            return Err(invalid("discovery.fanout", "must be greater than 0"));
        }
        nonzero("discovery.request_timeout", d.request_timeout)?;
        if d.peer_ask_interval < Duration::from_millis(4) {
            return Err(invalid(
                "discovery.peer_ask_interval",
                "must be at least 4ms (a quarter of it limits how often a peer is answered)",
            ));
        }
        if d.max_time_between_rounds < self.time_between_looking_for_peers {
            return Err(invalid(
                "discovery.max_time_between_rounds",
                "must be >= time_between_looking_for_peers",
            ));
        }
        if d.answer_size > crate::MAX_POINTS_PER_MESSAGE {
            return Err(invalid(
                "discovery.answer_size",
                format!("must be <= {}", crate::MAX_POINTS_PER_MESSAGE),
            ));
        }
        let bounds = self.bounds();
        if let Some(out) = self.max_outbound {
            if out > self.max_connections {
                return Err(invalid(
                    "max_outbound",
                    format!(
                        "must be <= max_connections ({out} > {})",
                        self.max_connections
                    ),
                ));
            }
            if out < bounds.min_target {
                return Err(invalid(
                    "max_outbound",
                    format!(
                        "must be >= min_target ({out} < {}; a top-up dials up to min_target: lower expected_connections or raise max_outbound)",
                        bounds.min_target
                    ),
                ));
            }
        }
        if let Some(inb) = self.max_inbound {
            if inb > self.max_connections {
                return Err(invalid(
                    "max_inbound",
                    format!(
                        "must be <= max_connections ({inb} > {})",
                        self.max_connections
                    ),
                ));
            }
        }
        self.targets.validate(self)?;
        if let Some(floor) = self.min_outbound {
            let out = self.outbound_budget();
            if floor > out {
                return Err(invalid(
                    "min_outbound",
                    format!("must be <= the outbound budget max_outbound ({floor} > {out})"),
                ));
            }
        }
        if let Some(g) = self.max_inbound_per_group {
            if g == 0 {
                return Err(invalid(
                    "max_inbound_per_group",
                    "must be greater than 0 (every public inbound connection would be refused)",
                ));
            }
            if g > self.max_connections {
                return Err(invalid(
                    "max_inbound_per_group",
                    format!(
                        "must be <= max_connections ({g} > {})",
                        self.max_connections
                    ),
                ));
            }
        }
        let f = &self.feedback;
        nonzero("feedback.half_life", f.half_life)?;
        if !(f.disconnect_below >= -100.0 && f.disconnect_below < 0.0) {
            return Err(invalid(
                "feedback.disconnect_below",
                format!("must be in [-100, 0) (got {})", f.disconnect_below),
            ));
        }
        if !(f.ban_below >= -100.0 && f.ban_below <= f.disconnect_below) {
            return Err(invalid(
                "feedback.ban_below",
                format!(
                    "must be in [-100, feedback.disconnect_below] (got {}, disconnect_below {})",
                    f.ban_below, f.disconnect_below
                ),
            ));
        }
        let s = &self.peer_sets;
        if !(1..=MAX_KEPT_SETS).contains(&s.kept_sets) {
            return Err(invalid(
                "peer_sets.kept_sets",
                format!("must be in 1..={MAX_KEPT_SETS}"),
            ));
        }
        if !(1..=MAX_SET_SIZE).contains(&s.max_set_size) {
            return Err(invalid(
                "peer_sets.max_set_size",
                format!("must be in 1..={MAX_SET_SIZE}"),
            ));
        }
        if !(1..=MAX_SET_SIZE).contains(&s.max_overwrite) {
            return Err(invalid(
                "peer_sets.max_overwrite",
                format!("must be in 1..={MAX_SET_SIZE}"),
            ));
        }
        if s.primary_target == Some(0) {
            return Err(invalid(
                "peer_sets.primary_target",
                "must be greater than 0 (leave it out to dial every primary)",
            ));
        }
        Ok(())
    }
}

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The longest duration a setting may take (100 years): anything longer is a mistake, and
/// could overflow a clock it is added to.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);
/// The shortest interval of a timer that drives a loop (maintenance, discovery, dials,
/// backoff, handshakes, keepalives, status, saves): shorter would spin.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The largest connection or dial count a setting may take.
pub const MAX_CONNECTIONS_SETTING: usize = 100_000;
/// The largest `max_incoming_connections` (each pending handshake holds a socket).
pub const MAX_INCOMING_SETTING: usize = 65_536;
/// The largest `max_known_points` and `max_known_peers`.
pub const MAX_KNOWN_SETTING: usize = 1 << 24;
/// The largest weight of a kind.
pub const MAX_KIND_WEIGHT: u32 = 1_000_000;

/// `d` is at most [`MAX_DURATION`], and, for a timer that drives a loop, at least
/// [`MIN_INTERVAL`] (zero is left to the rules of each field). For settings outside
/// [`Config`] (the command's flags, an embedding node's own timers).
///
/// ```
/// use peerkeeper::config::check_duration;
/// use std::time::Duration;
/// assert!(check_duration("--save-interval", Duration::from_secs(300), true).is_ok());
/// let e = check_duration("--save-interval", Duration::MAX, true).unwrap_err();
/// assert_eq!(e.field(), Some("--save-interval"));
/// ```
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming `field` and the rule.
pub fn check_duration(
    field: &'static str,
    d: Duration,
    drives_a_loop: bool,
) -> Result<(), ConfigError> {
    if d > MAX_DURATION {
        return Err(invalid(
            field,
            format!(
                "must be at most {} (got {})",
                humantime::format_duration(MAX_DURATION),
                humantime::format_duration(d)
            ),
        ));
    }
    if drives_a_loop && !d.is_zero() && d < MIN_INTERVAL {
        return Err(invalid(
            field,
            format!(
                "must be at least {} (got {}: shorter would spin)",
                humantime::format_duration(MIN_INTERVAL),
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// The ranges of single fields: counts bounded, durations bounded (see
    /// [`validate`](Self::validate)).
    fn validate_ranges(&self) -> Result<(), ConfigError> {
        let counts = [
            (
                "min_connections",
                Some(self.min_connections),
                MAX_CONNECTIONS_SETTING,
            ),
            (
                "expected_connections",
                Some(self.expected_connections),
                MAX_CONNECTIONS_SETTING,
            ),
            (
                "max_connections",
                Some(self.max_connections),
                MAX_CONNECTIONS_SETTING,
            ),
            (
                "max_concurrent_dials",
                Some(self.max_concurrent_dials),
                MAX_CONNECTIONS_SETTING,
            ),
            ("max_outbound", self.max_outbound, MAX_CONNECTIONS_SETTING),
            ("max_inbound", self.max_inbound, MAX_CONNECTIONS_SETTING),
            ("min_outbound", self.min_outbound, MAX_CONNECTIONS_SETTING),
            (
                "max_inbound_per_group",
                self.max_inbound_per_group,
                MAX_CONNECTIONS_SETTING,
            ),
            (
                "max_incoming_connections",
                Some(self.max_incoming_connections),
                MAX_INCOMING_SETTING,
            ),
            (
                "max_known_points",
                Some(self.max_known_points),
                MAX_KNOWN_SETTING,
            ),
            (
                "known_points_gc_target",
                Some(self.known_points_gc_target),
                MAX_KNOWN_SETTING,
            ),
            (
                "max_known_peers",
                Some(self.max_known_peers),
                MAX_KNOWN_SETTING,
            ),
            (
                "discovery.fanout",
                Some(self.discovery.fanout),
                MAX_CONNECTIONS_SETTING,
            ),
        ];
        for (field, v, max) in counts {
            if let Some(v) = v.filter(|v| *v > max) {
                return Err(invalid(field, format!("must be <= {max} (got {v})")));
            }
        }
        let durations = [
            ("maintenance_idle_time", self.maintenance_idle_time, true),
            (
                "time_between_looking_for_peers",
                Some(self.time_between_looking_for_peers),
                true,
            ),
            ("dial_timeout", Some(self.dial_timeout), true),
            ("make_room_interval", self.make_room_interval, true),
            ("newcomer_grace", Some(self.newcomer_grace), false),
            ("disconnection_delay", Some(self.disconnection_delay), false),
            ("greylist_duration", Some(self.greylist_duration), false),
            (
                "reconnection.initial",
                Some(self.reconnection.initial),
                true,
            ),
            ("reconnection.cap", Some(self.reconnection.cap), false),
            (
                "discovery.peer_ask_interval",
                Some(self.discovery.peer_ask_interval),
                false,
            ),
            (
                "discovery.max_time_between_rounds",
                Some(self.discovery.max_time_between_rounds),
                true,
            ),
            (
                "discovery.request_timeout",
                Some(self.discovery.request_timeout),
                true,
            ),
            ("feedback.half_life", Some(self.feedback.half_life), false),
        ];
        for (field, d, drives_a_loop) in durations {
            if let Some(d) = d {
                check_duration(field, d, drives_a_loop)?;
            }
        }
        Ok(())
    }
}

/// The most sets [`PeerSetConfig::kept_sets`] may keep.
pub const MAX_KEPT_SETS: usize = 64;
/// The largest [`PeerSetConfig::max_set_size`] and [`PeerSetConfig::max_overwrite`].
pub const MAX_SET_SIZE: usize = 65_536;

fn nonzero(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(invalid(field, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// `Option<Duration>` as a humantime string, where `"none"` (or `"off"`) is `None`.
mod optional_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_str("none"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "none" | "off" => Ok(None),
            t => humantime::parse_duration(t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
