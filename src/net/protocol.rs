//! The wire protocol: length-delimited frames (a 4-byte big-endian length, then the
//! payload) carrying bincode-encoded [`Message`]s.
//!
//! Every byte read is hostile input. Frames longer than [`MAX_FRAME_LEN`] are refused by
//! the codec before any buffer grows past it, and payloads are decoded with a bincode size
//! limit of the same value, so a forged length prefix inside a payload cannot make the
//! decoder allocate more than one frame's worth. A message that decodes but breaks a rule
//! (too many points, an overlong network name) is a [`ProtocolError`] too.

use crate::pool::PeerId;
use crate::transport::CloseReason;
use crate::MAX_POINTS_PER_MESSAGE;
use bincode::Options;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tokio_util::codec::LengthDelimitedCodec;

/// The protocol version spoken by this build; a peer with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame accepted or sent, in bytes (100 IPv6 points fit in about 2.3 KiB).
pub const MAX_FRAME_LEN: usize = 8 * 1024;

/// The longest network name accepted in a handshake, in bytes.
pub const MAX_NETWORK_NAME_LEN: usize = 64;

/// Most points a refusal ([`Message::Refused`]) may carry.
pub const MAX_POINTS_PER_REFUSAL: usize = 50;

/// The first message each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The network this node belongs to; nodes of different networks do not talk.
    pub network: String,
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sender's peer id.
    pub peer: PeerId,
    /// The port the sender listens on (0: it does not listen). With the connection's
    /// remote IP, it makes the sender's *listening point*, the key of its connection.
    pub listen_port: u16,
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseReason {
    /// The node is at `max_connections`; the refusal carries other points to try.
    Full,
    /// The dialer belongs to another network.
    WrongNetwork,
    /// The dialer speaks another protocol version.
    WrongVersion,
    /// The dialer is this node itself.
    Myself,
    /// The dialer's peer id is already connected.
    AlreadyConnected,
    /// The dialer's address is greylisted.
    Greylisted,
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RefuseReason::Full => "too many connections",
            RefuseReason::WrongNetwork => "wrong network",
            RefuseReason::WrongVersion => "wrong protocol version",
            RefuseReason::Myself => "connection to oneself",
            RefuseReason::AlreadyConnected => "already connected",
            RefuseReason::Greylisted => "greylisted",
        };
        f.write_str(s)
    }
}

/// A protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The handshake (first message of each side).
    Hello(Hello),
    /// The handshake is refused; with `Full`, up to [`MAX_POINTS_PER_REFUSAL`] other
    /// points so that a refused dialer still learns something (octez's Nack).
    Refused {
        /// Why.
        reason: RefuseReason,
        /// Other points to try.
        points: Vec<SocketAddr>,
    },
    /// Asks for points.
    GetPoints,
    /// Advertises points (an answer to [`Message::GetPoints`] or unsolicited), at most
    /// [`MAX_POINTS_PER_MESSAGE`].
    Points(Vec<SocketAddr>),
    /// Nothing to say; proves the connection alive.
    KeepAlive,
    /// The sender closes the connection.
    Close(CloseReason),
}

/// A broken rule of the protocol: the connection is dropped and the sender greylisted.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame could not be read (oversized, or the connection broke mid-frame).
    #[error("bad frame: {0}")]
    Frame(String),
    /// The payload does not decode (garbage, or over the size limit).
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A message carries more points than allowed.
    #[error("{got} points in one message, more than the {max} allowed")]
    TooManyPoints {
        /// Points carried.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// The network name is longer than [`MAX_NETWORK_NAME_LEN`].
    #[error("network name too long")]
    NetworkNameTooLong,
    /// A message that is not allowed at this point of the exchange.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_FRAME_LEN as u64)
        .reject_trailing_bytes()
}

/// The frame codec: 4-byte length prefix, frames at most [`MAX_FRAME_LEN`] bytes.
///
/// ```
/// let codec = peerkeeper::net::protocol::codec();
/// assert_eq!(codec.max_frame_length(), peerkeeper::net::protocol::MAX_FRAME_LEN);
/// ```
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

/// Encodes a message into a frame payload.
///
/// ```
/// use peerkeeper::net::protocol::{decode, encode, Message};
/// let bytes = encode(&Message::GetPoints).unwrap();
/// assert_eq!(decode(&bytes).unwrap(), Message::GetPoints);
/// ```
pub fn encode(msg: &Message) -> Result<Bytes, ProtocolError> {
    options()
        .serialize(msg)
        .map(Bytes::from)
        .map_err(|e| ProtocolError::Decode(e.to_string()))
}

/// Decodes a frame payload and checks the message's own rules (point caps, name length).
pub fn decode(payload: &[u8]) -> Result<Message, ProtocolError> {
    let msg: Message = options()
        .deserialize(payload)
        .map_err(|e| ProtocolError::Decode(e.to_string()))?;
    match &msg {
        Message::Points(p) if p.len() > MAX_POINTS_PER_MESSAGE => {
            return Err(ProtocolError::TooManyPoints {
                got: p.len(),
                max: MAX_POINTS_PER_MESSAGE,
            })
        }
        Message::Refused { points, .. } if points.len() > MAX_POINTS_PER_REFUSAL => {
            return Err(ProtocolError::TooManyPoints {
                got: points.len(),
                max: MAX_POINTS_PER_REFUSAL,
            })
        }
        Message::Hello(h) if h.network.len() > MAX_NETWORK_NAME_LEN => {
            return Err(ProtocolError::NetworkNameTooLong)
        }
        _ => {}
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_message() {
        let msgs = vec![
            Message::Hello(Hello {
                network: "net".into(),
                version: PROTOCOL_VERSION,
                peer: PeerId(7),
                listen_port: 9732,
            }),
            Message::Refused {
                reason: RefuseReason::Full,
                points: vec!["127.0.0.1:1".parse().unwrap()],
            },
            Message::GetPoints,
            Message::Points(vec!["[::1]:2".parse().unwrap()]),
            Message::KeepAlive,
            Message::Close(CloseReason::Shutdown),
        ];
        for m in msgs {
            assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn hundred_ipv6_points_fit_in_a_frame() {
        let p: Vec<SocketAddr> = (0..100u16)
            .map(|i| SocketAddr::from(([0xffffu16; 8], i)))
            .collect();
        assert!(encode(&Message::Points(p)).unwrap().len() <= MAX_FRAME_LEN);
    }

    #[test]
    fn too_many_points_is_a_violation() {
        let p: Vec<SocketAddr> = (0..101u16)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], i + 1)))
            .collect();
        let bytes = encode(&Message::Points(p)).unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(ProtocolError::TooManyPoints { got: 101, .. })
        ));
    }

    #[test]
    fn garbage_and_forged_lengths_are_refused_without_allocating() {
        assert!(decode(&[0xff; 16]).is_err());
        // Variant Points (3) then a forged huge length.
        let mut forged = vec![3u8, 0xff];
        forged.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&forged).is_err());
        assert!(decode(&[]).is_err());
    }
}
