//! Local files read with a cap: the key, the config, the AS map and the saved pool.
//!
//! An operator's mistake must not hang or exhaust the node: a FIFO named as a config
//! would block the open forever (and SIGTERM with it), `/dev/zero` would be read until
//! memory runs out. So every such file is checked to be a regular file before it is
//! opened (and again, on the open handle, after), opened non-blocking, and read up to a
//! cap. Errors carry the OS reason.

use std::io::{self, Read};
use std::path::Path;

/// What a path is, for an error message.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn not_regular(meta: &std::fs::Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({})", kind_of(meta)),
    )
}

/// Reads the regular file `path`, of at most `max` bytes. A FIFO, a device or a
/// directory is refused without being read; a larger file is refused after reading
/// `max + 1` bytes of it. The error is the OS's, or says which rule failed.
pub(crate) fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Whether the regular file `path` can be read (its first byte): `Ok(())` also when there
/// is no file. A FIFO, a device or a directory is an error.
pub(crate) fn check_readable_or_missing(path: &Path) -> io::Result<()> {
    match open_regular(path) {
        Ok(mut f) => f.read(&mut [0u8; 1]).map(|_| ()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens the regular file `path` for reading, without blocking on a FIFO.
fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        // Swapped for a FIFO after the check above: the open does not block.
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok(file)
}

/// As [`read_capped`], as UTF-8 text.
pub(crate) fn read_text_capped(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let e = read_capped(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = read_capped(Path::new("/"), 1024).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("pk-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = read_capped(&fifo, 1024).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(check_readable_or_missing(&fifo).is_err());
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        let e = read_capped(&big, 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        assert_eq!(read_capped(&big, 4096).unwrap().len(), 2048);
        assert!(check_readable_or_missing(&dir.join("none")).is_ok());
        assert!(check_readable_or_missing(&big).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
