//! The peer-sharing protocol, `/peerkeeper/points/1`: request-response messages and their
//! bounded codec.
//!
//! Every message is read whole, at most [`MAX_MESSAGE`] bytes, and decoded exactly: a
//! longer, truncated or malformed message is an [`io::ErrorKind::InvalidData`] error,
//! which the behaviour counts as a protocol violation of the peer that sent it. A message
//! carries at most [`MAX_POINTS`] points, as the native wire caps a refusal's.
//!
//! Encoding: one tag byte, then for messages with points a count byte and each point as
//! a family byte (4 or 6), the address's bytes and the port in big-endian order. A
//! hello carries a port (big-endian); a verdict a flag byte (admitted or not) and a
//! reason byte before its points.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use peerkeeper::core::RefuseReason;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peerkeeper/points/1");

/// Most points one message carries (more are never sent, and a message with more is
/// malformed).
pub const MAX_POINTS: usize = peerkeeper::core::MAX_REFUSAL_POINTS;

/// Most bytes in one message: a full verdict with IPv6 points.
pub const MAX_MESSAGE: usize = 4 + MAX_POINTS * 19;

/// A request on `/peerkeeper/points/1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The dialer's hello, first on a new connection: the port it listens on (its point
    /// is the connection's IP address and this port, as in the native handshake; 0 when
    /// it listens nowhere). Answered with [`Response::Verdict`].
    Hello {
        /// The dialer's listening port.
        listen_port: u16,
    },
    /// Ask for points (answered with [`Response::Points`]).
    Ask,
    /// Points sent unasked: an advert, or a farewell before a close.
    Points(Vec<SocketAddr>),
}

/// A response on `/peerkeeper/points/1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The answer to [`Request::Ask`].
    Points(Vec<SocketAddr>),
    /// The receipt of [`Request::Points`].
    Ack,
    /// The acceptor's answer to a [`Request::Hello`]: admitted, or refused with a reason
    /// and, when it is full, points to try instead. The connection closes after a refusal.
    Verdict {
        /// Whether the connection is admitted.
        admitted: bool,
        /// Why not (ignored when admitted).
        reason: RefuseReason,
        /// Points to try instead.
        points: Vec<SocketAddr>,
    },
}

/// The codec of `/peerkeeper/points/1`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Codec;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

const REASONS: [RefuseReason; 9] = [
    RefuseReason::Full,
    RefuseReason::Myself,
    RefuseReason::AlreadyConnected,
    RefuseReason::Greylisted,
    RefuseReason::PrivateMode,
    RefuseReason::WrongNetwork,
    RefuseReason::WrongVersion,
    RefuseReason::BadAuth,
    RefuseReason::WrongAddress,
];

fn reason_byte(r: RefuseReason) -> u8 {
    REASONS.iter().position(|x| *x == r).unwrap_or(0) as u8
}

fn put_points(out: &mut Vec<u8>, points: &[SocketAddr]) {
    let points = &points[..points.len().min(MAX_POINTS)];
    out.push(points.len() as u8);
    for p in points {
        match p.ip() {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&p.port().to_be_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("truncated message"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn byte(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn points(&mut self) -> io::Result<Vec<SocketAddr>> {
        let n = self.byte()? as usize;
        if n > MAX_POINTS {
            return Err(bad("too many points"));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let ip: IpAddr = match self.byte()? {
                4 => {
                    let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
                    Ipv4Addr::from(b).into()
                }
                6 => {
                    let b: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
                    Ipv6Addr::from(b).into()
                }
                _ => return Err(bad("unknown address family")),
            };
            let port = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes"));
            v.push(SocketAddr::new(ip, port));
        }
        Ok(v)
    }

    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

/// Encodes a request.
pub fn encode_request(r: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    match r {
        Request::Ask => out.push(0),
        Request::Points(p) => {
            out.push(1);
            put_points(&mut out, p);
        }
        Request::Hello { listen_port } => {
            out.push(2);
            out.extend_from_slice(&listen_port.to_be_bytes());
        }
    }
    out
}

/// Decodes a request, exactly.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidData`] for a malformed message.
pub fn decode_request(b: &[u8]) -> io::Result<Request> {
    let mut r = Reader(b);
    let req = match r.byte()? {
        0 => Request::Ask,
        1 => Request::Points(r.points()?),
        2 => Request::Hello {
            listen_port: u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes")),
        },
        _ => return Err(bad("unknown request")),
    };
    r.end()?;
    Ok(req)
}

/// Encodes a response.
pub fn encode_response(r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match r {
        Response::Points(p) => {
            out.push(0);
            put_points(&mut out, p);
        }
        Response::Ack => out.push(1),
        Response::Verdict {
            admitted,
            reason,
            points,
        } => {
            out.push(2);
            out.push(u8::from(*admitted));
            out.push(reason_byte(*reason));
            put_points(&mut out, points);
        }
    }
    out
}

/// Decodes a response, exactly.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidData`] for a malformed message.
pub fn decode_response(b: &[u8]) -> io::Result<Response> {
    let mut r = Reader(b);
    let res = match r.byte()? {
        0 => Response::Points(r.points()?),
        1 => Response::Ack,
        2 => {
            let admitted = match r.byte()? {
                0 => false,
                1 => true,
                _ => return Err(bad("bad verdict flag")),
            };
            let reason = *REASONS
                .get(r.byte()? as usize)
                .ok_or_else(|| bad("unknown refusal reason"))?;
            Response::Verdict {
                admitted,
                reason,
                points: r.points()?,
            }
        }
        _ => return Err(bad("unknown response")),
    };
    r.end()?;
    Ok(res)
}

async fn read_capped<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut buf)
        .await?;
    if buf.len() > MAX_MESSAGE {
        return Err(bad("message too long"));
    }
    Ok(buf)
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode_request(&read_capped(io).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode_response(&read_capped(io).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_request(&r)).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_response(&r)).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let pts: Vec<SocketAddr> = vec!["1.2.3.4:5".parse().unwrap(), "[::1]:9".parse().unwrap()];
        for r in [
            Request::Ask,
            Request::Points(pts.clone()),
            Request::Hello { listen_port: 4001 },
        ] {
            assert_eq!(decode_request(&encode_request(&r)).unwrap(), r);
        }
        for r in [
            Response::Points(pts.clone()),
            Response::Ack,
            Response::Verdict {
                admitted: false,
                reason: RefuseReason::Full,
                points: pts,
            },
        ] {
            assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
        }
    }

    #[test]
    fn a_full_message_fits_and_more_points_are_not_sent() {
        let many: Vec<SocketAddr> = (0..200)
            .map(|i| SocketAddr::new(Ipv6Addr::from(i as u128).into(), 1))
            .collect();
        let r = Response::Verdict {
            admitted: false,
            reason: RefuseReason::Full,
            points: many,
        };
        let b = encode_response(&r);
        assert!(b.len() <= MAX_MESSAGE);
        match decode_response(&b).unwrap() {
            Response::Verdict { points, .. } => assert_eq!(points.len(), MAX_POINTS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_invalid_data_never_a_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[9],
            &[1, 1, 4, 1, 2],             // truncated point
            &[1, 1, 5, 1, 2, 3, 4, 0, 1], // unknown family
            &[1, 255],                    // too many points
            &[0, 0],                      // trailing byte
            &[2, 1],                      // short hello
        ];
        for c in cases {
            let e = decode_request(c).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{c:?}");
        }
        let cases: &[&[u8]] = &[&[7], &[2, 2, 0, 0], &[2, 0, 99, 0], &[1, 0]];
        for c in cases {
            let e = decode_response(c).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{c:?}");
        }
    }

    #[test]
    fn an_oversized_message_is_refused_after_max_message_bytes() {
        let long = vec![1u8; MAX_MESSAGE * 10];
        let mut io = futures::io::Cursor::new(long);
        let e = futures::executor::block_on(read_capped(&mut io)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(io.position() as usize <= MAX_MESSAGE + 1);
    }
}
