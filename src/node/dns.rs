//! Host names where addresses go (issue 18): `--peer seed.example.net:9732`, `--trusted`,
//! `--dns-seed`. A name is a point source ([`DnsSource`]): resolved when the node starts
//! and again in every discovery round (whenever the node looks for points), so an
//! address that changes is followed and a name that does not resolve yet (a container's
//! name before its service is up) is tried again, with a warning, rather than stopping
//! the node.
//!
//! ```
//! use peerkeeper::node::dns::HostPort;
//! let hp: HostPort = "seed.example.net:9732".parse().unwrap();
//! assert_eq!((hp.host.as_str(), hp.port), ("seed.example.net", 9732));
//! assert!("no-port".parse::<HostPort>().is_err());
//! ```

use super::PointSource;
use crate::pool::Source;
use crate::MAX_POINTS_PER_MESSAGE;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::net::SocketAddr;
use std::time::Duration;

/// Most addresses taken from one name (a DNS seed may answer with many).
pub const MAX_ADDRESSES_PER_NAME: usize = 32;

/// A host name and a port (`HOST:PORT`), as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The host name.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Why a `HOST:PORT` cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not IP:PORT or HOST:PORT")]
pub struct HostPortError(String);

impl std::str::FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<HostPort, HostPortError> {
        let bad = || HostPortError(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // A DNS name: letters, digits, '-', '.', '_' (as resolvers take), 1 to 253 bytes.
        let name_like = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_like || port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How long one name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `name`, at most [`MAX_ADDRESSES_PER_NAME`] addresses, within
/// [`RESOLVE_TIMEOUT`]; a failure is logged as a warning (the caller tries again later)
/// and gives none. Cancel-safe.
pub async fn resolve(name: &HostPort) -> Vec<SocketAddr> {
    let lookup = tokio::net::lookup_host((name.host.as_str(), name.port));
    let error = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => return addrs.take(MAX_ADDRESSES_PER_NAME).collect(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {RESOLVE_TIMEOUT:?}"),
    };
    tracing::warn!(name = %name, error = %error, "cannot resolve the name: trying again later");
    Vec::new()
}

/// Host names as a [`PointSource`] of one kind: bootstrap for `--peer`, trusted for
/// `--trusted`, external for `--dns-seed`. Each fetch resolves every name again.
#[derive(Clone, Debug)]
pub struct DnsSource {
    label: String,
    names: Vec<HostPort>,
    kind: Source,
}

impl DnsSource {
    /// A source resolving `names`, whose points are of `kind`.
    pub fn new(names: Vec<HostPort>, kind: Source) -> DnsSource {
        let label = format!("dns ({} names, {kind:?})", names.len());
        DnsSource { label, names, kind }
    }
}

impl PointSource for DnsSource {
    fn name(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> Source {
        self.kind
    }

    fn fetch(&self) -> BoxFuture<'static, Vec<SocketAddr>> {
        let names = self.names.clone();
        async move {
            let mut out = Vec::new();
            for name in &names {
                out.extend(resolve(name).await);
                if out.len() >= MAX_POINTS_PER_MESSAGE {
                    break;
                }
            }
            out.truncate(MAX_POINTS_PER_MESSAGE);
            out
        }
        .boxed()
    }
}
