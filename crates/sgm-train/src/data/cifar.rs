//! CIFAR-10 in the official binary format (`cifar-10-batches-bin`): files of 10 000 records of
//! 3073 bytes (label byte 0..9, then 1024 R, 1024 G, 1024 B bytes, row-major 32×32).
//! `data_batch_1.bin` … `data_batch_5.bin` are the training split, `test_batch.bin` the test split.
//! A missing, short or corrupt file is one error naming it.

use std::path::{Path, PathBuf};

use crate::data::InMemoryImages;
use crate::error::{Result, TrainError};

/// Bytes of one record.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// Records per official batch file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// md5 of the official `cifar-10-binary.tar.gz`.
pub const BINARY_ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Name of the official binary archive.
pub const BINARY_ARCHIVE: &str = "cifar-10-binary.tar.gz";

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar10Split {
    /// The five training batches (50 000 images).
    Train,
    /// The test batch (10 000 images).
    Test,
}

impl Cifar10Split {
    /// File names of the split.
    pub fn files(self) -> Vec<String> {
        match self {
            Cifar10Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Cifar10Split::Test => vec!["test_batch.bin".into()],
        }
    }
}

/// Folder of the binary batches inside the archive.
pub const BATCHES_DIR: &str = "cifar-10-batches-bin";
/// Where the official archives are published.
pub const CIFAR_PAGE: &str = "https://www.cs.toronto.edu/~kriz/cifar.html";

/// CIFAR-10 loader.
pub struct Cifar10;

fn data_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Data {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

impl Cifar10 {
    /// Loads a split from `dir` (the `cifar-10-batches-bin` folder). A missing file is an error
    /// saying which file to put where.
    pub fn load(dir: &Path, split: Cifar10Split) -> Result<InMemoryImages> {
        let files: Vec<PathBuf> = split.files().iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(data_err(
                missing,
                format!(
                    "missing: put the CIFAR-10 binary batches ({}) in {} — unpack the official \
                     {BINARY_ARCHIVE} (md5 {BINARY_ARCHIVE_MD5}) and use its cifar-10-batches-bin folder",
                    split.files().join(", "),
                    dir.display()
                ),
            ));
        }
        Self::load_files(&files)
    }

    /// Loads the given binary batch files, in order.
    pub fn load_files(files: &[PathBuf]) -> Result<InMemoryImages> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| data_err(f, e))?;
            Self::parse_into(f, &bytes, &mut pixels, &mut labels)?;
        }
        Ok(InMemoryImages {
            shape: [3, 32, 32],
            pixels,
            labels,
        })
    }

    /// Parses one binary batch file's bytes.
    pub fn parse_into(
        path: &Path,
        bytes: &[u8],
        pixels: &mut Vec<u8>,
        labels: &mut Vec<u8>,
    ) -> Result<()> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
            return Err(data_err(
                path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not a CIFAR-10 binary batch; expected {} bytes)",
                    bytes.len(),
                    RECORD * RECORDS_PER_FILE
                ),
            ));
        }
        for (r, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] > 9 {
                return Err(data_err(
                    path,
                    format!(
                        "record {r}: label byte {} is not a class 0..9 (corrupt or mislabelled file)",
                        rec[0]
                    ),
                ));
            }
            labels.push(rec[0]);
            pixels.extend_from_slice(&rec[1..]);
        }
        Ok(())
    }
}

/// Makes `dir/cifar-10-batches-bin` ready: already unpacked (checked), or unpacked from the
/// official `dir/cifar-10-binary.tar.gz` after its md5 is checked. Without either, the error
/// says which file to put where. Returns the batches folder.
pub fn prepare(dir: &Path) -> Result<PathBuf> {
    prepare_with_md5(dir, BINARY_ARCHIVE_MD5)
}

fn prepare_with_md5(dir: &Path, md5_hex: &str) -> Result<PathBuf> {
    let bin = dir.join(BATCHES_DIR);
    let complete = |d: &Path| {
        Cifar10Split::Train
            .files()
            .iter()
            .chain(&Cifar10Split::Test.files())
            .all(|f| d.join(f).is_file())
    };
    if !complete(&bin) {
        let archive = dir.join(BINARY_ARCHIVE);
        if !archive.is_file() {
            return Err(data_err(
                &archive,
                format!(
                    "missing: download the CIFAR-10 binary version `{BINARY_ARCHIVE}` (md5 {md5_hex}) from {CIFAR_PAGE}, put it at this path, and rerun (or unpack it yourself into {})",
                    bin.display()
                ),
            ));
        }
        let bytes = std::fs::read(&archive).map_err(|e| data_err(&archive, e))?;
        let got = format!("{:x}", md5::compute(&bytes));
        if got != md5_hex {
            return Err(data_err(
                &archive,
                format!(
                    "md5 {got} does not match the official {md5_hex} (corrupt or incomplete download)"
                ),
            ));
        }
        std::fs::create_dir_all(&bin).map_err(|e| data_err(&bin, e))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let entries = tar.entries().map_err(|e| data_err(&archive, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| data_err(&archive, e))?;
            let path = entry
                .path()
                .map_err(|e| data_err(&archive, e))?
                .into_owned();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
                continue;
            };
            // Only the regular files of the batches folder; nothing outside it is written.
            if path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                != Some(BATCHES_DIR)
                || !entry.header().entry_type().is_file()
            {
                continue;
            }
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content)
                .map_err(|e| data_err(&archive, e))?;
            let out = bin.join(&name);
            sgm_fs::write_atomic_bytes(&out, &content).map_err(|e| data_err(&out, e))?;
        }
        if !complete(&bin) {
            return Err(data_err(
                &archive,
                format!("does not contain the {BATCHES_DIR} batch files"),
            ));
        }
    }
    for split in [Cifar10Split::Train, Cifar10Split::Test] {
        let n = Cifar10::load(&bin, split)?.labels.len();
        let want = split.files().len() * RECORDS_PER_FILE;
        if n != want {
            return Err(data_err(
                &bin,
                format!("{split:?} split has {n} images, expected {want}"),
            ));
        }
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_archive(dir: &Path) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        {
            let mut tar = tar::Builder::new(&mut gz);
            let mut record = vec![1u8];
            record.extend(std::iter::repeat_n(9u8, 3072));
            let file: Vec<u8> = record.repeat(RECORDS_PER_FILE);
            for f in Cifar10Split::Train
                .files()
                .iter()
                .chain(&Cifar10Split::Test.files())
            {
                let mut h = tar::Header::new_gnu();
                h.set_size(file.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                tar.append_data(&mut h, format!("{BATCHES_DIR}/{f}"), &file[..])
                    .unwrap();
            }
            tar.finish().unwrap();
        }
        let bytes = gz.finish().unwrap();
        std::fs::write(dir.join(BINARY_ARCHIVE), &bytes).unwrap();
        bytes
    }

    #[test]
    fn prepare_checks_md5_unpacks_and_says_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("sgm-train-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(
            e.contains(BINARY_ARCHIVE) && e.contains(BINARY_ARCHIVE_MD5) && e.contains(CIFAR_PAGE),
            "{e}"
        );
        let bytes = fake_archive(&dir);
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(e.contains("does not match the official"), "{e}");
        let md5_hex = format!("{:x}", md5::compute(&bytes));
        let bin = prepare_with_md5(&dir, &md5_hex).unwrap();
        assert_eq!(
            Cifar10::load(&bin, Cifar10Split::Train)
                .unwrap()
                .labels
                .len(),
            50_000
        );
        // Already unpacked: no archive needed.
        std::fs::remove_file(dir.join(BINARY_ARCHIVE)).unwrap();
        assert_eq!(prepare(&dir).unwrap(), bin);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_records_and_rejects_bad_files() {
        let mut rec = vec![3u8];
        rec.extend((0..3072).map(|i| (i % 251) as u8));
        let mut two = rec.clone();
        two.extend(&rec);
        let (mut p, mut l) = (Vec::new(), Vec::new());
        Cifar10::parse_into(Path::new("x.bin"), &two, &mut p, &mut l).unwrap();
        assert_eq!((p.len(), l.clone()), (2 * 3072, vec![3, 3]));
        let e = Cifar10::parse_into(Path::new("short.bin"), &two[..5000], &mut p, &mut l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("short.bin") && e.contains("truncated"), "{e}");
        two[RECORD] = 17;
        let e = Cifar10::parse_into(Path::new("bad.bin"), &two, &mut p, &mut l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.bin") && e.contains("record 1"), "{e}");
        let e = Cifar10::load(Path::new("/nonexistent-dir"), Cifar10Split::Train)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains(BINARY_ARCHIVE),
            "{e}"
        );
    }
}
