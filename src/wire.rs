//! The wire protocol: length-delimited frames carrying [`postcard`]-encoded [`Message`]s,
//! sealed with ChaCha20-Poly1305 from the first frame after the hellos
//! ([`crate::secure`], [`WireCodec::secure`]).
//!
//! The wire has its own types ([`Hello`], [`RefuseCode`], [`CloseCode`]): nothing of the
//! library's is serialised as is, so the library's types can change without changing
//! the protocol; the tokio shell converts at the edge ([`crate::node`]).
//!
//! Every frame is untrusted. A frame longer than [`MAX_HANDSHAKE_FRAME`] before the link is
//! secured, or [`MAX_FRAME_LEN`] after, is refused by the length codec before any
//! allocation; a sealed frame that does not open is refused before it is decoded; a payload must be consumed exactly; a list's length
//! prefix is checked against its cap before anything is allocated (so a hostile length of
//! four billion costs nothing); then [`Message::check`] enforces the semantic caps
//! (network name length, points per message). Any failure is a [`WireError`], which the
//! connection turns into a dropped connection and, for a protocol violation, a
//! greylisting.
//!
//! ## Versions
//!
//! [`PROTOCOL_VERSION`] 4 (3 had no key exchange: its links were in clear text). The encoding is postcard's (varint integers, length-prefixed
//! strings and lists, an enum as its variant's index then its fields), over the types of
//! this module only. Two rules keep versions apart cleanly, and every later version must
//! keep them:
//!
//! * a [`Hello`] starts with the network name then the version, and [`Message::Hello`] is
//!   variant 0 (as in version 2): a node decodes that much of any version's hello
//!   ([`WireError::Foreign`]) and refuses it with [`RefuseCode::WrongVersion`] or
//!   [`RefuseCode::WrongNetwork`] instead of calling it garbage;
//! * [`Message::Refused`] stays variant 1 and the refusal codes keep their indexes (new
//!   ones are added at the end), so an older peer reads why it was refused.
//!
//! The handshake of version 4 (hellos with identity and ephemeral keys, then signatures of
//! both hellos, sealed) is described in [`crate::handshake`].

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The protocol version this build speaks (4: an ephemeral key exchange signed with both
/// identity keys, then every frame sealed; 3 had authenticated identities over clear text;
/// 2 was bincode).
pub const PROTOCOL_VERSION: u16 = 4;
/// Largest frame payload accepted or sent before the link is secured (the hellos and a
/// refusal): every byte before a peer has proven its key is an attacker's, so little.
pub const MAX_HANDSHAKE_FRAME: usize = 8 * 1024;
/// Largest application message ([`Message::App`]) a channel may carry, bytes.
pub const MAX_APP_MESSAGE: usize = 1024 * 1024;
/// Largest frame payload accepted or sent once the link is secured: an application
/// message with its header and tag.
pub const MAX_FRAME_LEN: usize = MAX_APP_MESSAGE + 64;
/// Longest network name.
pub const MAX_NETWORK_NAME: usize = 64;
/// Most points in a refusal (octez's Nack carries up to 50).
pub const MAX_REFUSAL_POINTS: usize = crate::core::MAX_REFUSAL_POINTS;

/// The first message on a connection, from each side, in clear text: who we claim to be
/// and our half of the key exchange. Every field is signed by its sender in the
/// [`Message::Auth`] that follows (over both hellos), so none can be altered on the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The network name; a peer of another network is refused. First, in every version.
    pub network: String,
    /// The protocol version; another version is refused. Second, in every version.
    pub version: u16,
    /// The sender's peer id (its public key, see [`crate::identity`]).
    pub key: [u8; 32],
    /// The sender's ephemeral X25519 public key, fresh for this connection
    /// ([`crate::secure::Ephemeral`]).
    pub ephemeral: [u8; 32],
    /// The port the sender listens on (its point is the connection's IP and this port).
    pub listen_port: u16,
    /// From the dialer: the address it dialed. The acceptor refuses a hello that did not
    /// dial one of its own addresses ([`RefuseCode::WrongAddress`]), so a relay cannot
    /// splice two nodes and have either accept the other at the relay's address. `None`
    /// from the acceptor.
    pub dialed: Option<SocketAddr>,
}

/// The start of any version's hello: what is read of a hello that is not ours.
#[derive(Deserialize)]
struct HelloPrefix {
    network: String,
    version: u16,
}

/// A message as far as its hello prefix.
#[derive(Deserialize)]
enum Prefix {
    Hello(HelloPrefix),
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
    /// The handshake's signature did not verify (v3).
    BadAuth,
    /// The dialer dialed an address that is not the acceptor's (v4): a relay, or a node
    /// behind a port mapping it was not told of.
    WrongAddress,
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
        #[serde(deserialize_with = "bounded::<_, _, MAX_REFUSAL_POINTS>")]
        points: Vec<SocketAddr>,
    },
    /// Please send points.
    AskForPoints,
    /// Points (at most [`crate::MAX_POINTS_PER_MESSAGE`]).
    Advertise(
        #[serde(deserialize_with = "bounded::<_, _, { crate::MAX_POINTS_PER_MESSAGE }>")]
        Vec<SocketAddr>,
    ),
    /// Nothing: keeps the connection alive.
    KeepAlive,
    /// The sender closes the connection.
    Close(CloseCode),
    /// A swap proposal: the receiver may connect to this point (the octez policy).
    SwapRequest(SocketAddr),
    /// A swap accepted: the receiver may connect to this point (the octez policy).
    SwapAck(SocketAddr),
    /// The sender's signature of the handshake transcript (second message each way, v3;
    /// see [`crate::identity`]): at most [`MAX_SIGNATURE_LEN`] bytes.
    Auth {
        /// The signature.
        #[serde(deserialize_with = "bounded::<_, _, MAX_SIGNATURE_LEN>")]
        signature: Vec<u8>,
    },
    /// A keepalive that asks for a [`Message::Pong`] with the same number: the round-trip
    /// time of the answer is the connection's latency (v4).
    Ping(u64),
    /// The answer to a [`Message::Ping`] (v4).
    Pong(u64),
    /// An application message on a channel ([`crate::node::Node::channel`]), at most
    /// [`MAX_APP_MESSAGE`] bytes (v4).
    App {
        /// The channel.
        channel: u16,
        /// The message.
        payload: Bytes,
    },
}

/// Longest signature an [`Message::Auth`] carries.
pub const MAX_SIGNATURE_LEN: usize = crate::identity::MAX_SIGNATURE_LEN;

/// Deserialises a list of at most `N` items: a longer length prefix is refused before
/// anything is allocated, and no more than `N` items are ever read.
fn bounded<'de, D, T, const N: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {N} items")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let len = seq.size_hint().unwrap_or(0);
            if len > N {
                return Err(serde::de::Error::invalid_length(len, &self));
            }
            let mut v = Vec::with_capacity(len);
            while let Some(item) = seq.next_element()? {
                if v.len() == N {
                    return Err(serde::de::Error::invalid_length(N + 1, &self));
                }
                v.push(item);
            }
            Ok(v)
        }
    }
    d.deserialize_seq(Bounded::<T, N>(std::marker::PhantomData))
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
    /// A hello of another protocol version (or of ours, on another network) whose rest we
    /// cannot read: the sender is answered with a refusal, not treated as hostile.
    #[error("hello of network {network:?}, protocol version {version}")]
    Foreign {
        /// Its network name.
        network: String,
        /// Its protocol version.
        version: u16,
    },
}

impl WireError {
    /// Whether the peer broke the protocol (as opposed to a network failure).
    pub fn is_violation(&self) -> bool {
        !matches!(self, WireError::Io(_) | WireError::Foreign { .. })
    }
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
            Message::Auth { signature } if signature.len() > MAX_SIGNATURE_LEN => Err(
                WireError::OverLimit(format!("signature of {} bytes", signature.len())),
            ),
            Message::App { payload, .. } if payload.len() > MAX_APP_MESSAGE => Err(
                WireError::OverLimit(format!("application message of {} bytes", payload.len())),
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
        if bytes.len() > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge);
        }
        let m: Message = match postcard::take_from_bytes(bytes) {
            Ok((m, [])) => m,
            Ok((_, rest)) => {
                return Err(WireError::Malformed(format!(
                    "{} trailing bytes",
                    rest.len()
                )))
            }
            Err(e) => {
                return Err(foreign_hello(bytes).unwrap_or(WireError::Malformed(e.to_string())))
            }
        };
        m.check()?;
        Ok(m)
    }

    /// Encodes a message as a frame payload. The semantic caps are the receiver's to
    /// check ([`Message::check`]); the frame limit is enforced here.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let bytes = postcard::to_allocvec(self).map_err(|e| WireError::OverLimit(e.to_string()))?;
        if bytes.len() > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge);
        }
        Ok(bytes)
    }
}

/// A payload that is not a message of ours but starts as a hello of another version (or
/// network): [`WireError::Foreign`].
fn foreign_hello(bytes: &[u8]) -> Option<WireError> {
    let (Prefix::Hello(h), _) = postcard::take_from_bytes::<Prefix>(bytes).ok()?;
    (h.version != PROTOCOL_VERSION && h.network.len() <= MAX_NETWORK_NAME).then_some(
        WireError::Foreign {
            network: h.network,
            version: h.version,
        },
    )
}

/// The tokio-util codec: length-delimited frames (4-byte big-endian length), each one
/// [`Message`]. Frames are at most [`MAX_HANDSHAKE_FRAME`] bytes and in clear text until
/// [`WireCodec::secure`]; then every frame is sealed ([`crate::secure::Cipher`]) and may
/// be up to [`MAX_FRAME_LEN`] bytes.
#[derive(Debug)]
pub struct WireCodec {
    frames: LengthDelimitedCodec,
    keys: Option<crate::secure::SessionKeys>,
}

impl Default for WireCodec {
    fn default() -> Self {
        WireCodec {
            frames: LengthDelimitedCodec::builder()
                .max_frame_length(MAX_HANDSHAKE_FRAME)
                .new_codec(),
            keys: None,
        }
    }
}

impl WireCodec {
    /// Seals every frame from now on, both ways, with `keys`; frames may then be up to
    /// [`MAX_FRAME_LEN`] bytes. Bytes already received and not yet decoded are opened with
    /// the keys too: the peer switched at the same message.
    pub fn secure(&mut self, keys: crate::secure::SessionKeys) {
        self.keys = Some(keys);
        self.frames
            .set_max_frame_length(MAX_FRAME_LEN + crate::secure::TAG_LEN);
    }

    /// Whether frames are sealed.
    pub fn is_secure(&self) -> bool {
        self.keys.is_some()
    }
}

impl Decoder for WireCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.frames.decode(src) {
            Ok(Some(mut frame)) => match &mut self.keys {
                None => Message::decode(&frame).map(Some),
                Some(keys) => {
                    let n = keys
                        .recv
                        .open_in_place(&mut frame)
                        .map_err(|e| WireError::Malformed(e.to_string()))?;
                    Message::decode(&frame[..n]).map(Some)
                }
            },
            Ok(None) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(WireError::FrameTooLarge),
            Err(e) => Err(WireError::Io(e)),
        }
    }
}

impl Encoder<Message> for WireCodec {
    type Error = WireError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let mut bytes = item.encode()?;
        let limit = match &mut self.keys {
            None => MAX_HANDSHAKE_FRAME,
            Some(keys) => {
                keys.send
                    .seal(&mut bytes)
                    .map_err(|e| WireError::OverLimit(e.to_string()))?;
                MAX_FRAME_LEN + crate::secure::TAG_LEN
            }
        };
        if bytes.len() > limit {
            return Err(WireError::FrameTooLarge);
        }
        self.frames
            .encode(Bytes::from(bytes), dst)
            .map_err(|_| WireError::FrameTooLarge)
    }
}
