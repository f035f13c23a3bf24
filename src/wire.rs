//! The wire protocol: length-delimited frames carrying bincode-encoded [`Message`]s.
//!
//! The wire has its own types ([`Hello`], [`RefuseCode`], [`CloseCode`]): nothing of the
//! library's is serialised as is, so the library's types can change without changing
//! the protocol; the tokio shell converts at the edge ([`crate::node`]).
//!
//! Every frame is untrusted. A frame longer than [`MAX_FRAME_LEN`] is refused by the
//! length codec before any allocation; a payload is decoded with a byte limit and must be
//! consumed exactly; then [`Message::check`] enforces the semantic caps (network name
//! length, points per message). Any failure is a [`WireError`], which the connection turns
//! into a dropped connection and, for a protocol violation, a greylisting.

use bincode::Options;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The protocol version this build speaks (2: swap messages, wire-own close and refusal
/// codes).
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest frame payload accepted or sent, bytes.
pub const MAX_FRAME_LEN: usize = 8 * 1024;
/// Longest network name.
pub const MAX_NETWORK_NAME: usize = 64;
/// Most points in a refusal (octez's Nack carries up to 50).
pub const MAX_REFUSAL_POINTS: usize = crate::core::MAX_REFUSAL_POINTS;

/// The first message on a connection, from each side: who we are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The network name; a peer of another network is refused.
    pub network: String,
    /// The protocol version; another version is refused.
    pub version: u16,
    /// The sender's peer id.
    pub peer_id: u64,
    /// The port the sender listens on (its point is the connection's IP and this port).
    pub listen_port: u16,
}

/// Why a handshake was refused, on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseCode {
    /// Not the same network name.
    WrongNetwork,
    /// Not the same protocol version.
    WrongVersion,
    /// The node is full (the refusal carries other points).
    Full,
    /// The dialer reached itself.
    Myself,
    /// The peer id already has a connection.
    AlreadyConnected,
    /// The dialer is greylisted.
    Greylisted,
    /// The node only admits trusted peers.
    PrivateMode,
}

/// Why the sender closes the connection, on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseCode {
    /// Trimmed, or room made for a newcomer.
    TooManyConnections,
    /// A protocol violation.
    ProtocolViolation,
    /// A duplicate connection.
    Duplicate,
    /// The sender shuts down.
    Shutdown,
    /// The address changed.
    AddressChanged,
    /// Replaced in a swap.
    Swapped,
    /// Silent for too long.
    Timeout,
    /// Anything else.
    Other,
    /// The receiver left every peer set the sender keeps (appended: older peers decode
    /// the codes before it unchanged).
    Untracked,
}

/// A protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Who we are (first message each way).
    Hello(Hello),
    /// The handshake is refused; when full, with up to 50 points to try instead.
    Refused {
        /// Why.
        reason: RefuseCode,
        /// Other points (only with [`RefuseCode::Full`]).
        points: Vec<SocketAddr>,
    },
    /// Please send points.
    AskForPoints,
    /// Points (at most [`crate::MAX_POINTS_PER_MESSAGE`]).
    Advertise(Vec<SocketAddr>),
    /// Nothing: keeps the connection alive.
    KeepAlive,
    /// The sender closes the connection.
    Close(CloseCode),
    /// A swap proposal: the receiver may connect to this point (the octez policy).
    SwapRequest(SocketAddr),
    /// A swap accepted: the receiver may connect to this point (the octez policy).
    SwapAck(SocketAddr),
}

/// What can go wrong reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame over [`MAX_FRAME_LEN`] (protocol violation).
    #[error("frame too large")]
    FrameTooLarge,
    /// Bytes that are not a message (protocol violation).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message over a cap (protocol violation).
    #[error("message over a limit: {0}")]
    OverLimit(String),
}

impl WireError {
    /// Whether the peer broke the protocol (as opposed to a network failure).
    pub fn is_violation(&self) -> bool {
        !matches!(self, WireError::Io(_))
    }
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_FRAME_LEN as u64)
        .reject_trailing_bytes()
}

impl Message {
    /// Checks the semantic caps of a decoded message.
    pub fn check(&self) -> Result<(), WireError> {
        match self {
            Message::Hello(h) if h.network.len() > MAX_NETWORK_NAME => Err(WireError::OverLimit(
                format!("network name of {} bytes", h.network.len()),
            )),
            Message::Advertise(p) if p.len() > crate::MAX_POINTS_PER_MESSAGE => Err(
                WireError::OverLimit(format!("advertisement of {} points", p.len())),
            ),
            Message::Refused { points, .. } if points.len() > MAX_REFUSAL_POINTS => Err(
                WireError::OverLimit(format!("refusal with {} points", points.len())),
            ),
            _ => Ok(()),
        }
    }

    /// Decodes and checks one frame payload.
    ///
    /// ```
    /// use peerkeeper::wire::Message;
    /// let bytes = Message::AskForPoints.encode().unwrap();
    /// assert_eq!(Message::decode(&bytes).unwrap(), Message::AskForPoints);
    /// assert!(Message::decode(&[0xff; 7]).is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let m: Message = options()
            .deserialize(bytes)
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// Encodes a message as a frame payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        options()
            .serialize(self)
            .map_err(|e| WireError::OverLimit(e.to_string()))
    }
}

/// The tokio-util codec: length-delimited frames (4-byte big-endian length) of at most
/// [`MAX_FRAME_LEN`] bytes, each one [`Message`].
#[derive(Debug)]
pub struct WireCodec {
    frames: LengthDelimitedCodec,
}

impl Default for WireCodec {
    fn default() -> Self {
        WireCodec {
            frames: LengthDelimitedCodec::builder()
                .max_frame_length(MAX_FRAME_LEN)
                .new_codec(),
        }
    }
}

impl Decoder for WireCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.frames.decode(src) {
            Ok(Some(frame)) => Message::decode(&frame).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(WireError::FrameTooLarge),
            Err(e) => Err(WireError::Io(e)),
        }
    }
}

impl Encoder<Message> for WireCodec {
    type Error = WireError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let bytes = item.encode()?;
        self.frames
            .encode(Bytes::from(bytes), dst)
            .map_err(|_| WireError::FrameTooLarge)
    }
}
