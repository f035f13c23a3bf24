//! The wire format (protocol v4, postcard, sealed after the hellos) against hostile input: every message round
//! trips; truncated, oversized, trailing and random bytes are errors, never panics; a
//! huge length prefix is refused before anything is allocated; another version's hello
//! is read far enough to be refused with a reason (a version 2 peer's, in bincode, too),
//! and the refusal it gets back is one version 2 reads.

use bytes::BytesMut;
use peerkeeper::wire::{
    CloseCode, Hello, Message, RefuseCode, WireCodec, WireError, MAX_APP_MESSAGE, MAX_FRAME_LEN,
    MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION,
};
use proptest::prelude::*;
use std::net::SocketAddr;
use tokio_util::codec::{Decoder, Encoder};

fn hello() -> Message {
    Message::Hello(Hello {
        network: "peerkeeper".into(),
        version: PROTOCOL_VERSION,
        key: [3; 32],
        ephemeral: [9; 32],
        listen_port: 9732,
        dialed: Some("192.0.2.1:9732".parse().unwrap()),
    })
}

fn points(n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 9732)))
        .collect()
}

fn every_message() -> Vec<Message> {
    vec![
        hello(),
        Message::Refused {
            reason: RefuseCode::Full,
            points: points(50),
        },
        Message::AskForPoints,
        Message::Advertise(points(100)),
        Message::Advertise(vec!["[2001:db8::1]:9732".parse().unwrap()]),
        Message::KeepAlive,
        Message::Close(CloseCode::Duplicate),
        Message::SwapRequest("10.1.2.3:9732".parse().unwrap()),
        Message::SwapAck("10.1.2.3:9732".parse().unwrap()),
        Message::Auth {
            signature: vec![7; 64],
        },
        Message::Ping(7),
        Message::Pong(u64::MAX),
        Message::App {
            channel: 3,
            payload: bytes::Bytes::from_static(b"an application message"),
        },
    ]
}

#[test]
fn every_message_round_trips_and_every_strict_prefix_is_an_error() {
    for m in every_message() {
        let bytes = m.encode().unwrap();
        assert!(bytes.len() <= MAX_FRAME_LEN);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..cut]).is_err(),
                "{m:?} cut at {cut} decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let e = Message::decode(&long).unwrap_err();
        assert!(matches!(e, WireError::Malformed(_)), "{e}");
    }
}

#[test]
fn over_cap_lists_are_refused_and_a_huge_length_prefix_allocates_nothing() {
    // Over the caps, correctly encoded: refused.
    let over = Message::Advertise(points(101)).encode().unwrap();
    assert!(Message::decode(&over).is_err());
    let sig = postcard::to_allocvec(&Message::Auth {
        signature: vec![0; 257],
    })
    .unwrap();
    assert!(Message::decode(&sig).is_err());
    // Advertise (variant 3) claiming u32::MAX points, then nothing: refused at the
    // length, not after trying to reserve room for four billion addresses.
    let huge = [3, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let e = Message::decode(&huge).unwrap_err();
    assert!(e.is_violation(), "{e}");
    // A network name claiming 2^63 bytes.
    let mut name = vec![0u8];
    name.extend([0xff; 9]);
    name.push(0x7f);
    assert!(Message::decode(&name).is_err());
}

#[test]
fn the_codec_refuses_a_frame_over_the_cap_before_reading_it() {
    let mut codec = WireCodec::default();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&((MAX_HANDSHAKE_FRAME as u32) + 1).to_be_bytes());
    assert!(matches!(
        codec.decode(&mut buf),
        Err(WireError::FrameTooLarge)
    ));
    // A frame of u32::MAX bytes announced: the same, with 4 bytes read.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(WireError::FrameTooLarge)
    ));
    // And we never send one.
    let mut out = BytesMut::new();
    let too_big = Message::Advertise(points(1_200));
    assert!(codec.encode(too_big, &mut out).is_err());
}

#[test]
fn a_version_2_hello_in_bincode_is_read_as_far_as_its_version() {
    // What a version 2 node sends (bincode 1, varint): variant 0, the network name, the
    // version, a u64 peer id, the port (251 = a u16 follows, little-endian).
    let mut v2 = vec![0u8, 10];
    v2.extend_from_slice(b"peerkeeper");
    v2.extend_from_slice(&[2, 42, 251, 0x04, 0x26]);
    match Message::decode(&v2) {
        Err(WireError::Foreign { network, version }) => {
            assert_eq!((network.as_str(), version), ("peerkeeper", 2));
        }
        other => panic!("expected a foreign hello, got {other:?}"),
    }
    assert!(!Message::decode(&v2).unwrap_err().is_violation());
    // What it gets back: variant 1, WrongVersion (1), no points: the same bytes in
    // version 2's encoding, so it reads why.
    let refusal = Message::Refused {
        reason: RefuseCode::WrongVersion,
        points: vec![],
    };
    assert_eq!(refusal.encode().unwrap(), [1, 1, 0]);
}

#[test]
fn a_later_versions_hello_is_refused_by_version_not_as_garbage() {
    // A version 5 hello with more fields than ours: its first two fields say enough.
    let mut v5 = vec![0u8, 10];
    v5.extend_from_slice(b"peerkeeper");
    v5.push(5);
    v5.extend_from_slice(&[0xaa; 100]);
    assert!(matches!(
        Message::decode(&v5),
        Err(WireError::Foreign { version: 5, .. })
    ));
}

/// Two codecs secured with the keys of one key exchange: the dialer's and the acceptor's.
fn sealed_pair() -> (WireCodec, WireCodec) {
    use peerkeeper::secure::Ephemeral;
    let (a, b) = (Ephemeral::generate(), Ephemeral::generate());
    let (pa, pb) = (a.public(), b.public());
    let (mut d, mut x) = (WireCodec::default(), WireCodec::default());
    d.secure(a.agree(&pb, &[5; 32], true).unwrap());
    x.secure(b.agree(&pa, &[5; 32], false).unwrap());
    (d, x)
}

#[test]
fn sealed_frames_hide_their_text_and_any_change_is_a_violation() {
    let (mut d, mut x) = sealed_pair();
    let secret = b"the text nobody on the path may read";
    let m = Message::App {
        channel: 1,
        payload: bytes::Bytes::from_static(secret),
    };
    let mut buf = BytesMut::new();
    d.encode(m.clone(), &mut buf).unwrap();
    assert!(
        !buf.windows(secret.len()).any(|w| w == secret),
        "the text is not on the wire"
    );
    // Altered on the path: refused, as a violation.
    let mut altered = buf.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let (mut _d2, mut x2) = sealed_pair();
    let e = x2.decode(&mut altered).unwrap_err();
    assert!(e.is_violation(), "{e}");
    // As sent: read back.
    assert_eq!(x.decode(&mut buf).unwrap(), Some(m.clone()));
    // Replayed: the frame counter moved on, so it does not open again.
    let mut again = BytesMut::new();
    let (mut d3, _) = sealed_pair();
    d3.encode(m, &mut again).unwrap();
    assert!(x.decode(&mut again).is_err(), "not ours");
    // A clear-text frame once sealed: refused.
    let (_, mut x4) = sealed_pair();
    let clear = Message::AskForPoints.encode().unwrap();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(clear.len() as u32).to_be_bytes());
    buf.extend_from_slice(&clear);
    assert!(x4.decode(&mut buf).unwrap_err().is_violation());
}

#[test]
fn a_sealed_link_carries_application_messages_up_to_the_cap_and_no_more() {
    let (mut d, mut x) = sealed_pair();
    let big = Message::App {
        channel: 2,
        payload: bytes::Bytes::from(vec![1u8; MAX_APP_MESSAGE]),
    };
    let mut buf = BytesMut::new();
    d.encode(big.clone(), &mut buf).unwrap();
    assert!(buf.len() <= MAX_FRAME_LEN + 4 + 16);
    assert_eq!(x.decode(&mut buf).unwrap(), Some(big));
    // One byte more: the receiver refuses it, as a violation.
    let over = Message::App {
        channel: 2,
        payload: bytes::Bytes::from(vec![1u8; MAX_APP_MESSAGE + 1]),
    };
    let mut buf = BytesMut::new();
    d.encode(over, &mut buf).unwrap();
    assert!(x.decode(&mut buf).unwrap_err().is_violation());
    // Before the link is sealed, nothing over the handshake cap goes either way.
    let mut clear = WireCodec::default();
    let app = Message::App {
        channel: 2,
        payload: bytes::Bytes::from(vec![1u8; MAX_HANDSHAKE_FRAME]),
    };
    assert!(clear.encode(app, &mut BytesMut::new()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes is within the caps, and round trips.
            prop_assert!(m.check().is_ok());
            prop_assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(i in 0usize..13, at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = every_message()[i].encode().unwrap();
        let k = at.index(bytes.len());
        bytes[k] = b;
        let _ = Message::decode(&bytes);
        let mut codec = WireCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(&bytes);
        let _ = codec.decode(&mut buf);
    }
}
