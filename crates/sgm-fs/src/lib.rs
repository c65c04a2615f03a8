//! # sgm-fs — atomic file writes
//!
//! Every file sgm writes (checkpoints, samples, grids, statistics, reports) goes through
//! [`write_atomic`]: the content is written to a temporary file in the same directory, flushed
//! and synced, then renamed over the target (atomic on POSIX file systems) and the directory is
//! synced. A run killed at any point leaves either the previous file or the complete new one;
//! at worst a stray `.<name>.tmp-<pid>-<n>` file, never a torn target.
//!
//! Reading untrusted files: [`read_declared`] reads a stream with a declared length (a zip
//! entry) allocating only what arrives, within a budget tied to the file's size;
//! [`check_zip_directory`] rejects zip end records declaring more entries than they hold.
// Library code returns errors on user data; unwraps stay in tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling `path` is written to before the rename.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// Writes `path` atomically: `write` fills a buffered temp file in the same directory, which
/// is synced and renamed over `path`. On any error the temp file is removed and `path` is
/// untouched. Errors name the file.
pub fn write_atomic<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(path);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// [`write_atomic`] of a byte buffer.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Reads a stream that declares its length up front (a zip entry's uncompressed size, a
/// length field), for untrusted files: a declared length above `budget` is refused before
/// anything is allocated, the buffer grows only as bytes arrive, and a stream that ends
/// early or runs past its declared length is an error. The bytes read are charged to
/// `budget`, so several reads from one file stay bounded together (e.g. by a multiple of
/// the file's size). Reading one byte past the declared length lets checksumming readers
/// (zip's CRC) see the stream's end.
pub fn read_declared<R: Read>(r: R, declared: u64, budget: &mut u64) -> io::Result<Vec<u8>> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    if declared > *budget {
        return Err(bad(format!(
            "declares {declared} bytes, more than a file of this size can hold"
        )));
    }
    let mut buf = Vec::new();
    r.take(declared + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 != declared {
        return Err(bad(format!(
            "declares {declared} bytes, holds {}",
            buf.len()
        )));
    }
    *budget -= declared;
    Ok(buf)
}

/// Checks a zip archive's end records before a zip reader trusts them: the declared number
/// of entries must fit in the declared central directory (46 bytes at least per entry), and
/// the directory in the file. Zip readers reserve memory for every declared entry, so a
/// small file declaring millions of entries would otherwise cost memory out of proportion
/// to its size. Archives without an end record are left to the zip reader to reject.
pub fn check_zip_directory(bytes: &[u8]) -> io::Result<()> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let le = |at: usize, w: usize| -> Option<u64> {
        let s = bytes.get(at..at.checked_add(w)?)?;
        Some(s.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    };
    // end of central directory record: the last signature within its maximal size
    let from = bytes.len().saturating_sub(22 + 0xffff);
    let Some(eocd) = bytes[from..]
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .map(|p| from + p)
    else {
        return Ok(());
    };
    // entries on this disk and in total (readers may use either)
    let count = le(eocd + 8, 2).zip(le(eocd + 10, 2)).map(|(a, b)| a.max(b));
    let (mut entries, mut size) = (count, le(eocd + 12, 4));
    // zip64: the locator just before the record points at the zip64 end record
    if eocd >= 20 && bytes.get(eocd - 20..eocd - 16) == Some(&b"PK\x06\x07"[..]) {
        let rec = le(eocd - 12, 8).and_then(|r| usize::try_from(r).ok());
        if let Some(r) =
            rec.filter(|&r| bytes.get(r..).is_some_and(|s| s.starts_with(b"PK\x06\x06")))
        {
            entries = le(r + 24, 8).zip(le(r + 32, 8)).map(|(a, b)| a.max(b));
            size = le(r + 40, 8);
        }
    }
    match (entries, size) {
        (Some(n), Some(sz)) if n.saturating_mul(46) <= sz && sz <= bytes.len() as u64 => Ok(()),
        (Some(n), Some(sz)) => Err(bad(format!(
            "zip directory declares {n} entries in {sz} bytes (file: {} bytes)",
            bytes.len()
        ))),
        _ => Err(bad("truncated zip end record".into())),
    }
}

/// Syncs the directory holding `path` so the rename itself survives a crash (best effort:
/// not every platform can open a directory).
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sgm-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_content() {
        let dir = scratch("replace");
        let p = dir.join("a.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        write_atomic_bytes(&p, b"new content").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new content");
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = scratch("fail");
        let p = dir.join("a.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("interrupted"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn declared_reads_are_bounded_and_exact() {
        let mut budget = 10;
        assert_eq!(
            read_declared(&b"abcd"[..], 4, &mut budget).unwrap(),
            b"abcd"
        );
        assert_eq!(budget, 6);
        // more than the budget: refused before reading
        let e = read_declared(&b"abcdefgh"[..], 8, &mut budget).unwrap_err();
        assert!(e.to_string().contains("declares 8"), "{e}");
        // shorter and longer than declared
        assert!(read_declared(&b"ab"[..], 3, &mut budget).is_err());
        assert!(read_declared(&b"abcd"[..], 3, &mut budget).is_err());
        // a huge declared length with a huge budget allocates only what arrives
        let mut big = u64::MAX / 2;
        assert!(read_declared(&b"ab"[..], 1 << 40, &mut big).is_err());
    }

    #[test]
    fn zip_directories_declaring_more_entries_than_they_hold_are_errors() {
        // an empty archive's end record, then one declaring 65535 entries in 0 bytes
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend_from_slice(&[0; 18]);
        check_zip_directory(&eocd).unwrap();
        eocd[8..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let e = check_zip_directory(&eocd).unwrap_err();
        assert!(e.to_string().contains("65535 entries"), "{e}");
        // not a zip at all: left to the zip reader
        check_zip_directory(b"hello").unwrap();
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let p = std::env::temp_dir().join("sgm-fs-no-such-dir/x/y.bin");
        let err = write_atomic_bytes(&p, b"x").unwrap_err();
        assert!(err.to_string().contains("y.bin"), "{err}");
    }
}
