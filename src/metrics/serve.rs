//! A small HTTP server for `GET /metrics`, hardened for an address strangers can reach:
//! at most [`ServeConfig::max_connections`] connections at once (more are closed at once),
//! request headers of at most [`ServeConfig::max_header_bytes`] read within
//! [`ServeConfig::header_read_timeout`] (else `431` or the connection is closed), one
//! request per connection, and every connection closed after
//! [`ServeConfig::connection_timeout`] whatever it does. Anything but `GET /metrics` gets
//! `404`. A scrape only encodes the registry: it never reaches the node.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The limits of [`serve_with`]; [`serve`] uses the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Connections served at once; more are closed as soon as accepted. Default 16.
    pub max_connections: usize,
    /// Longest a connection stays open, whatever it does (a slow reader of the response
    /// included). Default 10 s.
    pub connection_timeout: Duration,
    /// The request line and headers must arrive within this. Default 5 s.
    pub header_read_timeout: Duration,
    /// Most bytes of request line and headers; more is answered `431` and closed.
    /// Default 8 KiB.
    pub max_header_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 16,
            connection_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 8 * 1024,
        }
    }
}

/// A running metrics endpoint ([`serve`]). Stops on [`shutdown`](Self::shutdown) or
/// when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl MetricsServer {
    /// The address it listens on (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, ends the connections in progress, and returns when every task of
    /// the server has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the server stops anyway; only the wait is lost.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for MetricsServer {
    /// Stops the server's tasks (without waiting for them).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves `registry` at `http://addr/metrics` in the OpenMetrics text format, with the
/// default limits ([`ServeConfig`]), in tasks of the current tokio runtime.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use prometheus_client::registry::Registry;
/// let mut registry = Registry::default();
/// let metrics = peerkeeper::metrics::Metrics::new(&mut registry);
/// let server = peerkeeper::metrics::serve("127.0.0.1:9100".parse().unwrap(), registry).await?;
/// println!("metrics at http://{}/metrics", server.local_addr());
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// When `addr` cannot be listened on.
pub async fn serve(
    addr: SocketAddr,
    registry: impl Into<Arc<Registry>>,
) -> io::Result<MetricsServer> {
    serve_with(addr, registry, ServeConfig::default()).await
}

/// As [`serve`], with the given limits.
///
/// # Errors
///
/// When `addr` cannot be listened on.
///
/// # Panics
///
/// If `max_header_bytes` is below 1 or `max_connections` is 0.
pub async fn serve_with(
    addr: SocketAddr,
    registry: impl Into<Arc<Registry>>,
    config: ServeConfig,
) -> io::Result<MetricsServer> {
    assert!(config.max_connections > 0, "max_connections must be > 0");
    assert!(config.max_header_bytes > 0, "max_header_bytes must be > 0");
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(accept_loop(
        listener,
        registry.into(),
        Arc::new(config),
        cancel.clone(),
        tracker.clone(),
    ));
    Ok(MetricsServer {
        local_addr,
        cancel,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    registry: Arc<Registry>,
    config: Arc<ServeConfig>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a little, go on.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "metrics: too many connections: closed");
            drop(stream);
            continue;
        };
        let (registry, config, cancel) = (registry.clone(), config.clone(), cancel.clone());
        tracker.spawn(async move {
            connection(stream, registry, &config, cancel).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    registry: Arc<Registry>,
    config: &ServeConfig,
    cancel: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        // The smallest read buffer hyper takes: a request is a line and a few headers.
        .max_buf_size(8192.max(config.max_header_bytes))
        .keep_alive(false);
    let conn = http.serve_connection(
        TokioIo::new(stream),
        service_fn(move |req| {
            let registry = registry.clone();
            async move { Ok::<_, Infallible>(respond(&req, &registry)) }
        }),
    );
    tokio::select! {
        _ = cancel.cancelled() => {}
        r = tokio::time::timeout(config.connection_timeout, conn) => match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "metrics: connection failed"),
            Err(_) => tracing::debug!("metrics: connection timed out"),
        }
    }
}

fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: GET /metrics\n");
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "metrics: cannot encode the registry");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
    );
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
