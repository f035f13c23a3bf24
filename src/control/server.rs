//! The control socket itself (Unix only): the server and a blocking one-call client.

use super::{handle, ControlConfig, ControlError, Request, Response, MAX_RESPONSE};
use crate::node::Node;
use futures::StreamExt;
use std::io::{BufRead, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running control socket; see the [module docs](super). Stops, and removes its file,
/// on [`shutdown`](Self::shutdown) or when dropped.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl ControlServer {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving: clients are disconnected, the socket file removed, every task
    /// ended when this returns.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the server stops anyway; only the wait for its tasks is lost.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        // The file goes in `drop`.
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `node`'s control socket at `path` with the default bounds
/// ([`ControlConfig::default`]); see [`serve_with`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use peerkeeper::{control, identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
/// let net = MemoryNetwork::new();
/// let node = Node::builder(Config::default(), net.bind("10.0.0.1:1".parse().unwrap()).unwrap())
///     .identity(Keypair::from_seed(1)).start().unwrap();
/// let path = std::env::temp_dir().join(format!("pk-control-doc-{}.sock", std::process::id()));
/// let server = control::serve(node.clone(), &path).await.unwrap();
/// // Any client: one JSON request a line, one JSON response a line.
/// let answer = tokio::task::spawn_blocking({
///     let path = path.clone();
///     move || control::call(&path, &control::Request::Status)
/// }).await.unwrap().unwrap();
/// assert_eq!(answer["peer_id"], node.peer_id().to_string());
/// server.shutdown().await;
/// assert!(!path.exists());
/// # }
/// ```
///
/// # Errors
///
/// As [`serve_with`].
pub async fn serve(node: Node, path: impl AsRef<Path>) -> Result<ControlServer, ControlError> {
    serve_with(node, path, ControlConfig::default()).await
}

/// Serves `node`'s control socket at `path`: binds it (replacing a stale socket file
/// left by a dead node), makes it mode 0600, and answers clients in tasks of the current
/// tokio runtime until [`ControlServer::shutdown`], the server is dropped, or the node
/// stops.
///
/// # Errors
///
/// [`ControlError::InUse`] when a live node answers at `path`,
/// [`ControlError::NotASocket`] when something else is there, [`ControlError::Io`] when
/// the socket cannot be bound or its mode set.
pub async fn serve_with(
    node: Node,
    path: impl AsRef<Path>,
    config: ControlConfig,
) -> Result<ControlServer, ControlError> {
    let path = path.as_ref().to_path_buf();
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => return Err(ControlError::InUse { path }),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "replacing a stale control socket (its node is gone)");
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(_) => return Err(ControlError::NotASocket { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    let server = ControlServer {
        path: path.clone(),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    // From here on, dropping `server` removes the file.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let owner = unsafe { libc::geteuid() };
    let clients = Arc::new(tokio::sync::Semaphore::new(config.max_clients));
    let tracker = server.tracker.clone();
    let cancel = server.cancel.clone();
    let config = Arc::new(config);
    server.tracker.spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                // Stop with the node: nobody to answer for.
                _ = wait_stopped(&node) => break,
                a = listener.accept() => match a {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
                        }
                    }
                },
            };
            let Ok(permit) = clients.clone().try_acquire_owned() else {
                tracker.spawn(refuse(stream, "too many control clients at once: try again"));
                continue;
            };
            let (node, config, cancel) = (node.clone(), config.clone(), cancel.clone());
            tracker.spawn(async move {
                client(node, stream, owner, &config, cancel).await;
                drop(permit);
            });
        }
    });
    Ok(server)
}

async fn wait_stopped(node: &Node) {
    let mut status = node.status_watch();
    while status.changed().await.is_ok() {}
}

/// Tells a client why it is not served, within a second, and hangs up.
async fn refuse(mut stream: UnixStream, why: &str) {
    let line = response_line(&Response::error(why));
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(line.as_bytes()),
    )
    .await;
}

fn response_line(r: &Response) -> String {
    let mut line = serde_json::to_string(r)
        .unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode the response"}"#.into());
    line.push('\n');
    line
}

async fn client(
    node: Node,
    stream: UnixStream,
    owner: u32,
    config: &ControlConfig,
    cancel: CancellationToken,
) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == owner => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = ?cred.pid(),
                owner,
                "control socket: refused a client of another user"
            );
            refuse(
                stream,
                "refused: only the node's owner may use its control socket",
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "control socket: cannot read the client's credentials; refused");
            return;
        }
    }
    let (read, mut write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(config.max_request));
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = tokio::time::timeout(config.idle_timeout, lines.next()) => n,
        };
        let (response, last) = match next {
            Err(_) | Ok(None) => return,
            Ok(Some(Ok(line))) if line.trim().is_empty() => continue,
            Ok(Some(Ok(line))) => {
                let response = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => {
                        tracing::debug!(?request, "control request");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            r = handle(&node, request, config) => r,
                        }
                    }
                    Err(e) => Response::error(format!("bad request: {e}")),
                };
                (response, false)
            }
            Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => (
                Response::error(format!(
                    "bad request: longer than {} bytes",
                    config.max_request
                )),
                true,
            ),
            Ok(Some(Err(LinesCodecError::Io(e)))) => {
                (Response::error(format!("bad request: {e}")), true)
            }
        };
        let line = response_line(&response);
        let written = tokio::select! {
            _ = cancel.cancelled() => return,
            w = tokio::time::timeout(config.idle_timeout, write.write_all(line.as_bytes())) => w,
        };
        if last || !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// Sends one request to the control socket at `path` and waits (at most `timeout`,
/// for the connection and for the answer) for its response: the result on success, the
/// node's error as [`ControlError::Refused`]. Blocking: for a command-line client (in an
/// async context, call it from `spawn_blocking`).
///
/// # Errors
///
/// [`ControlError::Io`] when the socket cannot be reached or read,
/// [`ControlError::BadResponse`] for an answer that is not a response line (or longer
/// than [`MAX_RESPONSE`]), [`ControlError::Refused`] for an error response.
pub fn call(path: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    call_with_timeout(path, request, std::time::Duration::from_secs(300))
}

fn call_with_timeout(
    path: &Path,
    request: &Request,
    timeout: std::time::Duration,
) -> Result<serde_json::Value, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ControlError::BadResponse(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reader = std::io::BufReader::new(std::io::Read::take(stream, MAX_RESPONSE as u64 + 1));
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(io)?;
    if answer.len() > MAX_RESPONSE {
        return Err(ControlError::BadResponse(format!(
            "longer than {MAX_RESPONSE} bytes"
        )));
    }
    if answer.is_empty() {
        return Err(ControlError::BadResponse(
            "the node hung up without an answer".into(),
        ));
    }
    let response: Response =
        serde_json::from_str(&answer).map_err(|e| ControlError::BadResponse(e.to_string()))?;
    match (response.ok, response.result, response.error) {
        (true, Some(v), _) => Ok(v),
        (true, None, _) => Ok(serde_json::Value::Null),
        (false, _, e) => {
            Err(ControlError::Refused(e.unwrap_or_else(|| {
                "the node refused, without saying why".into()
            })))
        }
    }
}
