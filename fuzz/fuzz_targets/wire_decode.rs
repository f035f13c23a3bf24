//! Arbitrary bytes through the wire decoder: the framed codec (`WireCodec`, as a
//! connection reads a stream) and `Message::decode` (one payload). Never a panic; a
//! message that decodes passes `check` and survives an encode/decode round trip.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use peerkeeper::wire::{Message, WireCodec, MAX_FRAME_LEN, MAX_HANDSHAKE_FRAME};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    // One payload.
    if let Ok(m) = Message::decode(data) {
        m.check().expect("a decoded message passes its checks");
        let bytes = m.encode().expect("a decoded message encodes");
        assert_eq!(Message::decode(&bytes).ok(), Some(m.clone()));
        // A clear-text codec (before the handshake) frames what fits its cap.
        if bytes.len() <= MAX_HANDSHAKE_FRAME {
            let mut framed = BytesMut::new();
            WireCodec::default()
                .encode(m.clone(), &mut framed)
                .expect("a decoded message frames");
            assert_eq!(
                WireCodec::default().decode(&mut framed).ok().flatten(),
                Some(m)
            );
        }
    }
    // A stream of frames, fed in two pieces (as reads split it): decode until an error
    // or the end. Every frame the codec yields is at most MAX_FRAME_LEN.
    let mut codec = WireCodec::default();
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut buf = BytesMut::from(&data[..cut]);
    let mut fed_rest = false;
    for _ in 0..1024 {
        match codec.decode(&mut buf) {
            Ok(Some(m)) => {
                let len = m.encode().expect("a decoded message encodes").len();
                assert!(len <= MAX_FRAME_LEN);
            }
            Ok(None) if !fed_rest => {
                buf.extend_from_slice(&data[cut..]);
                fed_rest = true;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
