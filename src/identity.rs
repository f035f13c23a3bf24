//! Node identities: a peer id is a public key, proven in the handshake.
//!
//! Every node has a key pair. Its [`PeerId`] is 32 bytes naming the public key (with the
//! default [`Keypair`], the Ed25519 public key itself). The handshake
//! ([`crate::handshake`], run by the tokio shell) proves it: each side signs both hellos of
//! the connection, its fresh ephemeral key-exchange key among them, so the peer holds the
//! secret key of the id it claims, the signature is good for this connection only, and
//! the session keys that seal every later frame ([`crate::secure`]) are bound to both
//! ids. A proven id says nothing of the peer's honesty: one operator can make any number
//! of keys.
//!
//! A node with an identity of its own (a secp256k1 or BLS key, ...) implements
//! [`Identity`] and hands it to [`crate::node::NodeBuilder::identity`]; the library never
//! looks inside keys or signatures. Its [`PeerId`] stays 32 opaque bytes: a public key
//! longer than that is named by a 32-byte hash of it, and sent with the signature (the
//! signature field holds up to [`MAX_SIGNATURE_LEN`] bytes, enough for a key and a
//! signature):
//!
//! ```
//! use peerkeeper::identity::{Identity, Keypair};
//! use peerkeeper::PeerId;
//!
//! /// An embedding node's own identity, here wrapping an Ed25519 key for brevity: a real
//! /// one would call its own crypto (and put `hash(long_key) == peer` in `verify`).
//! #[derive(Debug)]
//! struct MyIdentity(Keypair);
//!
//! impl Identity for MyIdentity {
//!     fn peer_id(&self) -> PeerId { self.0.peer_id() }
//!     fn sign(&self, transcript: &[u8]) -> Vec<u8> { self.0.sign(transcript) }
//!     fn verify(&self, peer: &PeerId, transcript: &[u8], signature: &[u8]) -> bool {
//!         self.0.verify(peer, transcript, signature)
//!     }
//! }
//!
//! let me = MyIdentity(Keypair::generate());
//! let sig = me.sign(b"transcript");
//! assert!(me.verify(&me.peer_id(), b"transcript", &sig));
//! assert!(!me.verify(&me.peer_id(), b"another transcript", &sig));
//! ```
//!
//! The command (`peerkeeper node --key FILE`) keeps its key in a file
//! ([`load_or_generate`]): generated on first run, written with owner-only permissions,
//! loaded thereafter.

use crate::pool::PeerId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest signature (or key and signature, see the module docs) an `Auth` message may
/// carry.
pub const MAX_SIGNATURE_LEN: usize = 256;

/// A node's identity: its id and its signatures, and the check of another's.
///
/// The default is [`Keypair`] (Ed25519). Implementations must be deterministic in
/// `verify` and must never panic on hostile input (any bytes as `signature`).
pub trait Identity: Send + Sync + fmt::Debug + 'static {
    /// Our id: 32 bytes naming our public key.
    fn peer_id(&self) -> PeerId;
    /// Our signature of a handshake transcript (at most [`MAX_SIGNATURE_LEN`] bytes).
    fn sign(&self, transcript: &[u8]) -> Vec<u8>;
    /// Whether `signature` is `peer`'s signature of `transcript`.
    fn verify(&self, peer: &PeerId, transcript: &[u8], signature: &[u8]) -> bool;
}

/// An Ed25519 key pair (`ed25519-dalek`): the default [`Identity`]. Its peer id is its
/// public key. The secret is wiped from memory when dropped, and never printed.
///
/// ```
/// use peerkeeper::identity::{Identity, Keypair};
/// let key = Keypair::generate();
/// let again = Keypair::from_secret_bytes(&key.secret_bytes());
/// assert_eq!(key.peer_id(), again.peer_id());
/// ```
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    /// A new key pair from the operating system's random generator.
    pub fn generate() -> Keypair {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let key = Keypair::from_secret_bytes(&secret);
        secret.fill(0);
        key
    }

    /// The key pair of a 32-byte secret key.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(secret))
    }

    /// A key pair made of a number: the same for the same number, everywhere. For tests,
    /// demos and simulations only: anybody can make it.
    pub fn from_seed(seed: u64) -> Keypair {
        let mut secret = [0u8; 32];
        for (i, chunk) in secret.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&crate::rng::derive(seed, 0x6b65_7900 + i as u64).to_le_bytes());
        }
        Keypair::from_secret_bytes(&secret)
    }

    /// The 32-byte secret key (what the key file holds). Keep it secret.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.peer_id().short())
    }
}

impl Identity for Keypair {
    fn peer_id(&self) -> PeerId {
        PeerId::from_bytes(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, transcript: &[u8]) -> Vec<u8> {
        self.0.sign(transcript).to_bytes().to_vec()
    }

    fn verify(&self, peer: &PeerId, transcript: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(peer.as_bytes()) else {
            return false; // not a point of the curve
        };
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        // Strict: no malleable signatures, no small-order keys.
        key.verify_strict(transcript, &sig).is_ok()
    }
}

/// A fresh 32-byte nonce from the operating system's random generator (never the seeded
/// generator of decisions: a nonce must not be predictable).
pub fn fresh_nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
    n
}

/// The largest key file read (a key is 65 bytes; whitespace and a comment fit).
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A key file that cannot be read, written or understood.
#[derive(Debug, thiserror::Error)]
#[error("key file {}: {what}{}", .path.display(), .source.as_ref().map_or(String::new(), |e| format!(": {e}")))]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub what: String,
    /// The I/O error, if one.
    #[source]
    pub source: Option<std::io::Error>,
}

impl KeyFileError {
    fn new(path: &Path, what: impl Into<String>, source: Option<std::io::Error>) -> KeyFileError {
        KeyFileError {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }
}

/// Loads the key pair in `path`, or, when there is no such file, generates one and
/// writes it there. Returns the key and whether it was generated.
///
/// The file holds the 32-byte secret key as 64 hex characters and a newline. It is
/// created with owner-only permissions (0600 on Unix) under a temporary name and linked
/// into place only when complete, so a crash never leaves half a key, and two processes
/// racing to create it end up with the same key (the loser loads the winner's).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pk-doc-key-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("node.key");
/// let (key, created) = peerkeeper::identity::load_or_generate(&path).unwrap();
/// let (again, created_again) = peerkeeper::identity::load_or_generate(&path).unwrap();
/// assert!(created && !created_again);
/// use peerkeeper::identity::Identity;
/// assert_eq!(key.peer_id(), again.peer_id());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// # Errors
///
/// [`KeyFileError`] naming the file: unreadable, not a key, or not writable.
pub fn load_or_generate(path: &Path) -> Result<(Keypair, bool), KeyFileError> {
    match crate::files::read_text_capped(path, MAX_KEY_FILE_BYTES) {
        Ok(text) => return parse_key_file(path, &text).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(KeyFileError::new(path, "cannot read it", Some(e))),
    }
    let key = Keypair::generate();
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(format!("{}\n", hex::encode(key.secret_bytes())).as_bytes())?;
        f.sync_all()
    };
    let _ = std::fs::remove_file(&tmp);
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(KeyFileError::new(path, "cannot write a new key", Some(e)));
    }
    // A hard link fails if the file appeared meanwhile: then the other process's key wins.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((key, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = crate::files::read_text_capped(path, MAX_KEY_FILE_BYTES)
                .map_err(|e| KeyFileError::new(path, "cannot read it", Some(e)))?;
            parse_key_file(path, &text).map(|k| (k, false))
        }
        Err(e) => Err(KeyFileError::new(path, "cannot write a new key", Some(e))),
    }
}

fn parse_key_file(path: &Path, text: &str) -> Result<Keypair, KeyFileError> {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).map_err(|_| {
        KeyFileError::new(
            path,
            "not a key (expected 64 hex characters: a 32-byte Ed25519 secret key)",
            None,
        )
    })?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the key file is readable by others (chmod 600 it)");
        }
    }
    let key = Keypair::from_secret_bytes(&secret);
    secret.fill(0);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_transcript_and_key() {
        let (a, b) = (Keypair::from_seed(1), Keypair::from_seed(2));
        let sig = a.sign(b"t");
        assert!(a.verify(&a.peer_id(), b"t", &sig));
        assert!(b.verify(&a.peer_id(), b"t", &sig), "anyone can check it");
        assert!(!a.verify(&b.peer_id(), b"t", &sig));
        assert!(!a.verify(&a.peer_id(), b"u", &sig));
        assert!(!a.verify(&a.peer_id(), b"t", &sig[..63]));
        assert!(!a.verify(&PeerId::from_bytes([0xff; 32]), b"t", &[0; 64]));
    }

    #[test]
    fn a_bad_key_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("pk-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.key");
        std::fs::write(&path, "not hex\n").unwrap();
        let e = load_or_generate(&path).unwrap_err();
        assert!(e.to_string().contains("bad.key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_key_file_is_owner_only_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pk-key-test2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let (k, created) = load_or_generate(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(k.peer_id(), again.peer_id());
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
