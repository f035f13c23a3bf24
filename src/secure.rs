//! Encrypted, authenticated links: the session keys of one connection and the cipher that
//! seals every frame after the handshake (protocol v4).
//!
//! Each side of a connection draws a fresh X25519 key pair ([`Ephemeral`]) and puts its
//! public half in its hello ([`crate::wire::Hello::ephemeral`]). The Diffie-Hellman
//! secret of the two, expanded by HKDF-SHA256 with a hash of both hellos as the salt,
//! gives one ChaCha20-Poly1305 key per direction ([`SessionKeys`]). Each side then signs
//! both hellos, ephemeral keys included, with its identity key ([`crate::handshake`]):
//! someone who substitutes an ephemeral key breaks a signature, so the key exchange is
//! bound to both proven identities (signed Diffie-Hellman, the shape of TLS 1.3's
//! `CertificateVerify` and of SIGMA). From the first message after the hellos, every frame
//! is sealed ([`Cipher`]): a frame altered, dropped, replayed or reordered on the path
//! fails to open, and the connection is dropped.
//!
//! Nothing here is cryptography of our own: the dalek project's `x25519-dalek` and
//! RustCrypto's `hkdf`, `sha2` and `chacha20poly1305` do all of it. The nonce of each
//! frame is a per-direction counter (never reused under one key: the counter is 64 bits
//! and a connection that would wrap it is closed).
//!
//! ```
//! use peerkeeper::secure::Ephemeral;
//! let (a, b) = (Ephemeral::generate(), Ephemeral::generate());
//! let (pa, pb) = (a.public(), b.public());
//! let salt = [9u8; 32];
//! let dialer = a.agree(&pb, &salt, true).unwrap();
//! let acceptor = b.agree(&pa, &salt, false).unwrap();
//! let (mut d_send, mut a_recv) = (dialer.send, acceptor.recv);
//! let mut frame = b"hello".to_vec();
//! d_send.seal(&mut frame).unwrap();
//! assert_ne!(&frame[..5], b"hello");
//! a_recv.open(&mut frame).unwrap();
//! assert_eq!(frame, b"hello");
//! ```

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;

/// Bytes a sealed frame carries beyond its plaintext (the Poly1305 tag).
pub const TAG_LEN: usize = 16;

/// The HKDF labels of the two directions.
const DIALER_TO_ACCEPTOR: &[u8] = b"peerkeeper v4 keys: dialer to acceptor";
const ACCEPTOR_TO_DIALER: &[u8] = b"peerkeeper v4 keys: acceptor to dialer";

/// What can go wrong securing a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// The other side's ephemeral key gives no shared secret (a low-order point): it is
    /// not a key exchange at all.
    #[error("the peer's ephemeral key is degenerate")]
    Degenerate,
    /// A frame did not open: altered, replayed, reordered or not ours.
    #[error("a frame failed authentication")]
    BadFrame,
    /// A frame shorter than its tag.
    #[error("a frame shorter than its authentication tag")]
    Short,
    /// 2^64 frames one way under one key: the connection must end.
    #[error("frame counter exhausted")]
    Exhausted,
}

/// One side's ephemeral X25519 key pair for one connection: drawn from the operating
/// system's generator, used once, wiped when dropped.
pub struct Ephemeral {
    secret: x25519_dalek::EphemeralSecret,
    public: [u8; 32],
}

impl fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ephemeral")
            .field("public", &hex::encode(&self.public[..4]))
            .finish_non_exhaustive()
    }
}

impl Ephemeral {
    /// A fresh key pair.
    pub fn generate() -> Ephemeral {
        let secret = x25519_dalek::EphemeralSecret::random_from_rng(rand::rngs::OsRng);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ephemeral { secret, public }
    }

    /// The public half, for our hello.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The session keys with the other side's public key `theirs`: `salt` is the hash of
    /// both hellos ([`crate::handshake::hellos_hash`]), `dialer` says which side we are.
    /// Consumes the secret (used once).
    pub fn agree(
        self,
        theirs: &[u8; 32],
        salt: &[u8; 32],
        dialer: bool,
    ) -> Result<SessionKeys, SecureError> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*theirs));
        if !shared.was_contributory() {
            return Err(SecureError::Degenerate);
        }
        let hk = Hkdf::<Sha256>::new(Some(salt), shared.as_bytes());
        let key = |label: &[u8]| {
            let mut k = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
            hk.expand(label, &mut k).expect("a 32-byte HKDF output");
            let c = Cipher::new(&k);
            k.fill(0);
            c
        };
        let (d2a, a2d) = (key(DIALER_TO_ACCEPTOR), key(ACCEPTOR_TO_DIALER));
        Ok(if dialer {
            SessionKeys {
                send: d2a,
                recv: a2d,
            }
        } else {
            SessionKeys {
                send: a2d,
                recv: d2a,
            }
        })
    }
}

/// The two ciphers of one side of a connection.
#[derive(Debug)]
pub struct SessionKeys {
    /// Seals what we send.
    pub send: Cipher,
    /// Opens what we receive.
    pub recv: Cipher,
}

/// ChaCha20-Poly1305 under one key, with the frame counter as nonce: frames must be
/// opened in the order they were sealed, each once.
pub struct Cipher {
    aead: ChaCha20Poly1305,
    counter: u64,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    fn new(key: &[u8; 32]) -> Cipher {
        Cipher {
            aead: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    fn next_nonce(&mut self) -> Result<Nonce, SecureError> {
        if self.counter == u64::MAX {
            return Err(SecureError::Exhausted);
        }
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        Ok(n.into())
    }

    /// Encrypts `buf` in place and appends the tag ([`TAG_LEN`] bytes).
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> Result<(), SecureError> {
        let nonce = self.next_nonce()?;
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce, b"", buf)
            .map_err(|_| SecureError::BadFrame)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Encrypts `buf` in place and returns the tag to send after it.
    pub fn seal_detached(&mut self, buf: &mut [u8]) -> Result<[u8; TAG_LEN], SecureError> {
        let nonce = self.next_nonce()?;
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce, b"", buf)
            .map_err(|_| SecureError::BadFrame)?;
        Ok(tag.into())
    }

    /// Checks and decrypts a sealed frame in place, removing its tag.
    pub fn open(&mut self, buf: &mut Vec<u8>) -> Result<(), SecureError> {
        let len = self.open_in_place(buf)?;
        buf.truncate(len);
        Ok(())
    }

    /// Checks and decrypts a sealed frame in place: the plaintext is `buf[..n]` for the
    /// `n` returned.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SecureError> {
        let Some(len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(SecureError::Short);
        };
        let nonce = self.next_nonce()?;
        let (text, tag) = buf.split_at_mut(len);
        let tag = Tag::clone_from_slice(tag);
        self.aead
            .decrypt_in_place_detached(&nonce, b"", text, &tag)
            .map_err(|_| SecureError::BadFrame)?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SessionKeys, SessionKeys) {
        let (a, b) = (Ephemeral::generate(), Ephemeral::generate());
        let (pa, pb) = (a.public(), b.public());
        (
            a.agree(&pb, &[1; 32], true).unwrap(),
            b.agree(&pa, &[1; 32], false).unwrap(),
        )
    }

    #[test]
    fn frames_open_once_in_order_and_only_unaltered() {
        let (mut d, mut a) = pair();
        let mut f1 = b"one".to_vec();
        let mut f2 = b"two".to_vec();
        d.send.seal(&mut f1).unwrap();
        d.send.seal(&mut f2).unwrap();
        // Out of order: the second frame does not open as the first.
        let mut swapped = f2.clone();
        let mut probe = Cipher {
            aead: a.recv.aead.clone(),
            counter: 0,
        };
        assert_eq!(probe.open(&mut swapped), Err(SecureError::BadFrame));
        let mut altered = f1.clone();
        altered[0] ^= 1;
        let mut probe = Cipher {
            aead: a.recv.aead.clone(),
            counter: 0,
        };
        assert_eq!(probe.open(&mut altered), Err(SecureError::BadFrame));
        a.recv.open(&mut f1).unwrap();
        a.recv.open(&mut f2).unwrap();
        assert_eq!((&f1[..], &f2[..]), (&b"one"[..], &b"two"[..]));
        // The directions have their own keys: what the dialer sends does not open as
        // what the acceptor sends.
        let mut back = b"x".to_vec();
        d.send.seal(&mut back).unwrap();
        assert!(d.recv.open(&mut back).is_err());
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let e = Ephemeral::generate();
        assert_eq!(
            e.agree(&[0; 32], &[0; 32], true).unwrap_err(),
            SecureError::Degenerate
        );
    }

    #[test]
    fn another_salt_gives_other_keys() {
        let (a, b) = (Ephemeral::generate(), Ephemeral::generate());
        let (pa, pb) = (a.public(), b.public());
        let mut d = a.agree(&pb, &[1; 32], true).unwrap();
        let mut x = b.agree(&pa, &[2; 32], false).unwrap();
        let mut f = b"m".to_vec();
        d.send.seal(&mut f).unwrap();
        assert!(x.recv.open(&mut f).is_err());
    }
}
