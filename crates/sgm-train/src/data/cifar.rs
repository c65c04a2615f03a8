//! CIFAR-10 in both official formats, read by one loader ([`Cifar10::load_files`] picks the
//! format of each file from its first byte):
//!
//! * **binary** (`cifar-10-batches-bin`): files of 10 000 records of 3073 bytes (label byte 0..9,
//!   then 1024 R, 1024 G, 1024 B bytes, row-major 32×32); `data_batch_{1..5}.bin`, `test_batch.bin`.
//! * **python** (`cifar-10-batches-py`): Python 2 pickles (protocol 2, first byte `0x80`) of a
//!   dict with `b'data'` (a numpy uint8 array `[n, 3072]`, rows in the same planar layout) and
//!   `b'labels'` (a list of n ints 0..9); `data_batch_{1..5}`, `test_batch`. Decoded by sgm-nets'
//!   bounded pickle reader (memory proportional to the file; no code is run).
//!
//! A missing, short, corrupt or mislabelled file is one error naming it.

use std::path::{Path, PathBuf};

use sgm_nets::pickle;

use crate::data::InMemoryImages;
use crate::error::{Result, TrainError};

/// Bytes of one image (`3 × 32 × 32`).
pub const IMAGE: usize = 3 * 32 * 32;
/// Bytes of one binary record.
pub const RECORD: usize = 1 + IMAGE;
/// Records per official batch file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// md5 of the official `cifar-10-binary.tar.gz`.
pub const BINARY_ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Name of the official binary archive.
pub const BINARY_ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// md5 of the official `cifar-10-python.tar.gz`.
pub const PYTHON_ARCHIVE_MD5: &str = "c58f30108f718f92721af3b95e74349a";
/// Name of the official python archive.
pub const PYTHON_ARCHIVE: &str = "cifar-10-python.tar.gz";
/// Folder of the binary batches inside the archive.
pub const BATCHES_DIR: &str = "cifar-10-batches-bin";
/// Folder of the python batches inside the archive.
pub const PYTHON_BATCHES_DIR: &str = "cifar-10-batches-py";
/// Where the official archives are published.
pub const CIFAR_PAGE: &str = "https://www.cs.toronto.edu/~kriz/cifar.html";

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar10Split {
    /// The five training batches (50 000 images).
    Train,
    /// The test batch (10 000 images).
    Test,
}

/// The two official file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar10Format {
    /// `cifar-10-binary.tar.gz`: 3073-byte records.
    Binary,
    /// `cifar-10-python.tar.gz`: pickled dicts.
    Python,
}

impl Cifar10Format {
    /// Both formats, binary first (the one looked for first).
    pub const ALL: [Cifar10Format; 2] = [Cifar10Format::Binary, Cifar10Format::Python];

    /// The format of a batch file's bytes: a pickle starts with `PROTO` (0x80), a binary
    /// record with its label byte (0..9).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        if bytes.first() == Some(&0x80) {
            Cifar10Format::Python
        } else {
            Cifar10Format::Binary
        }
    }
    /// Archive file name.
    pub fn archive(self) -> &'static str {
        match self {
            Cifar10Format::Binary => BINARY_ARCHIVE,
            Cifar10Format::Python => PYTHON_ARCHIVE,
        }
    }
    /// md5 of the official archive.
    pub fn md5(self) -> &'static str {
        match self {
            Cifar10Format::Binary => BINARY_ARCHIVE_MD5,
            Cifar10Format::Python => PYTHON_ARCHIVE_MD5,
        }
    }
    /// Folder of the batches inside the archive.
    pub fn batches_dir(self) -> &'static str {
        match self {
            Cifar10Format::Binary => BATCHES_DIR,
            Cifar10Format::Python => PYTHON_BATCHES_DIR,
        }
    }
    /// File names of a split.
    pub fn files(self, split: Cifar10Split) -> Vec<String> {
        let ext = match self {
            Cifar10Format::Binary => ".bin",
            Cifar10Format::Python => "",
        };
        match split {
            Cifar10Split::Train => (1..=5).map(|i| format!("data_batch_{i}{ext}")).collect(),
            Cifar10Split::Test => vec![format!("test_batch{ext}")],
        }
    }
    /// True when `dir` holds every file of both splits.
    fn complete(self, dir: &Path) -> bool {
        [Cifar10Split::Train, Cifar10Split::Test]
            .iter()
            .flat_map(|&s| self.files(s))
            .all(|f| dir.join(f).is_file())
    }
}

impl Cifar10Split {
    /// File names of the split in the binary format.
    pub fn files(self) -> Vec<String> {
        Cifar10Format::Binary.files(self)
    }
}

/// CIFAR-10 loader.
pub struct Cifar10;

fn data_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Data {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

impl Cifar10 {
    /// Loads a split from `dir`: a `cifar-10-batches-bin` folder (binary batches) or a
    /// `cifar-10-batches-py` folder (python batches). A missing file is an error saying which
    /// file to put where.
    pub fn load(dir: &Path, split: Cifar10Split) -> Result<InMemoryImages> {
        for format in Cifar10Format::ALL {
            let files: Vec<PathBuf> = format.files(split).iter().map(|f| dir.join(f)).collect();
            if files.iter().all(|f| f.is_file()) {
                return Self::load_files(&files);
            }
        }
        let missing = dir.join(&Cifar10Format::Binary.files(split)[0]);
        Err(data_err(
            &missing,
            format!(
                "missing: put the CIFAR-10 binary batches ({}) or the python batches ({}) in {} — \
                 unpack the official {BINARY_ARCHIVE} (md5 {BINARY_ARCHIVE_MD5}) or \
                 {PYTHON_ARCHIVE} (md5 {PYTHON_ARCHIVE_MD5}) and use its {BATCHES_DIR} / \
                 {PYTHON_BATCHES_DIR} folder",
                Cifar10Format::Binary.files(split).join(", "),
                Cifar10Format::Python.files(split).join(", "),
                dir.display()
            ),
        ))
    }

    /// Loads the given batch files (binary or python, each detected from its bytes), in order.
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

    /// Parses one batch file's bytes (either format) onto `pixels` / `labels`. On error
    /// nothing is appended.
    pub fn parse_into(
        path: &Path,
        bytes: &[u8],
        pixels: &mut Vec<u8>,
        labels: &mut Vec<u8>,
    ) -> Result<()> {
        match Cifar10Format::of_bytes(bytes) {
            Cifar10Format::Binary => parse_binary(path, bytes, pixels, labels),
            Cifar10Format::Python => parse_python(path, bytes, pixels, labels),
        }
    }
}

/// A binary batch: whole 3073-byte records with label bytes 0..9.
fn parse_binary(
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
    if let Some((r, rec)) = bytes
        .chunks_exact(RECORD)
        .enumerate()
        .find(|(_, rec)| rec[0] > 9)
    {
        return Err(data_err(
            path,
            format!(
                "record {r}: label byte {} is not a class 0..9 (corrupt or mislabelled file)",
                rec[0]
            ),
        ));
    }
    for rec in bytes.chunks_exact(RECORD) {
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// A python batch: the pickled dict's `data` (uint8 `[n, 3072]`, C order) and `labels`
/// (n ints 0..9).
fn parse_python(
    path: &Path,
    bytes: &[u8],
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    let bad = |msg: String| {
        data_err(
            path,
            format!("{msg} (corrupt or not a CIFAR-10 python batch)"),
        )
    };
    let top = pickle::parse(bytes).map_err(|e| bad(format!("pickle: {e}")))?;
    if !matches!(top, pickle::Value::Dict(_)) {
        return Err(bad("the pickle is not a dict".into()));
    }
    let data = top
        .get("data")
        .ok_or_else(|| bad("no `data` entry".into()))?;
    let arr = data.ndarray().map_err(|e| bad(format!("`data`: {e}")))?;
    if !matches!(arr.dtype, "u1" | "|u1" | "uint8") {
        let dtype: String = arr.dtype.chars().take(16).collect();
        return Err(bad(format!("`data` has dtype {dtype:?}, expected uint8")));
    }
    let shape: Vec<i64> = arr
        .shape
        .iter()
        .map(|v| match v {
            pickle::Value::Int(i) => Ok(*i),
            other => Err(bad(format!("`data` shape holds {}", what(other)))),
        })
        .collect::<Result<_>>()?;
    let n = match shape.as_slice() {
        [n, w] if *n >= 0 && *w == IMAGE as i64 => *n as usize,
        _ => {
            return Err(bad(format!(
                "`data` has shape {shape:?}, expected [n, {IMAGE}]"
            )));
        }
    };
    if arr.fortran_order && n > 1 {
        return Err(bad("`data` is in Fortran order".into()));
    }
    if Some(arr.data.len()) != n.checked_mul(IMAGE) {
        return Err(bad(format!(
            "`data` holds {} bytes, its shape [{n}, {IMAGE}] needs {} (truncated)",
            arr.data.len(),
            n.saturating_mul(IMAGE)
        )));
    }
    let Some(pickle::Value::List(ls)) = top.get("labels") else {
        return Err(bad("no `labels` list".into()));
    };
    if ls.len() != n {
        return Err(bad(format!(
            "{} labels for {n} images (mislabelled file)",
            ls.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    for (i, l) in ls.iter().enumerate() {
        match l {
            pickle::Value::Int(c @ 0..=9) => out.push(*c as u8),
            other => {
                let v = match other {
                    pickle::Value::Int(c) => c.to_string(),
                    o => what(o).to_string(),
                };
                return Err(bad(format!(
                    "label {i} is {v}, not a class 0..9 (mislabelled file)"
                )));
            }
        }
    }
    if n == 0 {
        return Err(bad("no images".into()));
    }
    labels.extend(out);
    pixels.extend_from_slice(arr.data);
    Ok(())
}

/// A pickle value's kind, for error messages (never its contents: they may be megabytes).
fn what(v: &pickle::Value) -> &'static str {
    use pickle::Value as V;
    match v {
        V::None => "None",
        V::Bool(_) => "a bool",
        V::Int(_) => "an int",
        V::Float(_) => "a float",
        V::Str(_) => "a string",
        V::Bytes(_) => "bytes",
        V::Tuple(_) => "a tuple",
        V::List(_) => "a list",
        V::Dict(_) => "a dict",
        _ => "an object",
    }
}

/// Makes the CIFAR-10 batches in `dir` ready and returns their folder: an unpacked
/// `cifar-10-batches-bin` or `cifar-10-batches-py` (checked), or one unpacked from the official
/// `dir/cifar-10-binary.tar.gz` / `dir/cifar-10-python.tar.gz` after its md5 is checked.
/// Without any of them the error says which file to put where.
pub fn prepare(dir: &Path) -> Result<PathBuf> {
    prepare_with_md5(dir, |f| f.md5())
}

fn prepare_with_md5(dir: &Path, md5_of: impl Fn(Cifar10Format) -> &'static str) -> Result<PathBuf> {
    let ready = Cifar10Format::ALL
        .into_iter()
        .find(|f| f.complete(&dir.join(f.batches_dir())));
    let format = match ready {
        Some(f) => f,
        None => {
            let Some(format) = Cifar10Format::ALL
                .into_iter()
                .find(|f| dir.join(f.archive()).is_file())
            else {
                let archive = dir.join(BINARY_ARCHIVE);
                return Err(data_err(
                    &archive,
                    format!(
                        "missing: download the CIFAR-10 binary version `{BINARY_ARCHIVE}` (md5 \
                         {}) or the python version `{PYTHON_ARCHIVE}` (md5 {}) from \
                         {CIFAR_PAGE}, put it in {}, and rerun (or unpack it yourself there)",
                        md5_of(Cifar10Format::Binary),
                        md5_of(Cifar10Format::Python),
                        dir.display()
                    ),
                ));
            };
            unpack(dir, format, md5_of(format))?;
            format
        }
    };
    let batches = dir.join(format.batches_dir());
    for split in [Cifar10Split::Train, Cifar10Split::Test] {
        let files: Vec<PathBuf> = format
            .files(split)
            .iter()
            .map(|f| batches.join(f))
            .collect();
        let n = Cifar10::load_files(&files)?.labels.len();
        let want = files.len() * RECORDS_PER_FILE;
        if n != want {
            return Err(data_err(
                &batches,
                format!("{split:?} split has {n} images, expected {want}"),
            ));
        }
    }
    Ok(batches)
}

/// Checks the archive's md5 and writes the regular files of its batches folder (nothing
/// outside it) atomically.
fn unpack(dir: &Path, format: Cifar10Format, md5_hex: &str) -> Result<()> {
    let archive = dir.join(format.archive());
    let out_dir = dir.join(format.batches_dir());
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
    std::fs::create_dir_all(&out_dir).map_err(|e| data_err(&out_dir, e))?;
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
        if path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            != Some(format.batches_dir())
            || !entry.header().entry_type().is_file()
        {
            continue;
        }
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).map_err(|e| data_err(&archive, e))?;
        let out = out_dir.join(&name);
        sgm_fs::write_atomic_bytes(&out, &content).map_err(|e| data_err(&out, e))?;
    }
    if !format.complete(&out_dir) {
        return Err(data_err(
            &archive,
            format!("does not contain the {} batch files", format.batches_dir()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel `j` of image `i` and its label, as `scripts/cifar_pickle_fixture.py` writes them.
    fn fixture(n: usize) -> (Vec<u8>, Vec<u8>) {
        let pixels = (0..n)
            .flat_map(|i| (0..IMAGE).map(move |j| ((7 * i + 3 * j) % 256) as u8))
            .collect();
        (pixels, (0..n).map(|i| (i % 10) as u8).collect())
    }

    fn fake_archive(dir: &Path, format: Cifar10Format) -> Vec<u8> {
        let (pixels, labels) = fixture(RECORDS_PER_FILE);
        let file = match format {
            Cifar10Format::Binary => sgm_testkit::cifar::binary_batch(&pixels, &labels),
            Cifar10Format::Python => sgm_testkit::cifar::python_batch(&pixels, &labels, "b"),
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        {
            let mut tar = tar::Builder::new(&mut gz);
            for split in [Cifar10Split::Train, Cifar10Split::Test] {
                for f in format.files(split) {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(file.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    tar.append_data(&mut h, format!("{}/{f}", format.batches_dir()), &file[..])
                        .unwrap();
                }
            }
            tar.finish().unwrap();
        }
        let bytes = gz.finish().unwrap();
        std::fs::write(dir.join(format.archive()), &bytes).unwrap();
        bytes
    }

    #[test]
    fn prepare_checks_md5_unpacks_and_says_what_is_missing() {
        for format in Cifar10Format::ALL {
            let dir = std::env::temp_dir().join(format!(
                "sgm-train-prepare-{format:?}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let e = prepare(&dir).unwrap_err().to_string();
            for want in [
                BINARY_ARCHIVE,
                BINARY_ARCHIVE_MD5,
                PYTHON_ARCHIVE,
                PYTHON_ARCHIVE_MD5,
                CIFAR_PAGE,
            ] {
                assert!(e.contains(want), "{e}");
            }
            let bytes = fake_archive(&dir, format);
            let e = prepare(&dir).unwrap_err().to_string();
            assert!(
                e.contains("does not match the official") && e.contains(format.archive()),
                "{e}"
            );
            let md5_hex: &'static str =
                Box::leak(format!("{:x}", md5::compute(&bytes)).into_boxed_str());
            let batches = prepare_with_md5(&dir, |_| md5_hex).unwrap();
            assert_eq!(batches, dir.join(format.batches_dir()));
            let train = Cifar10::load(&batches, Cifar10Split::Train).unwrap();
            assert_eq!(train.labels.len(), 50_000);
            let (pixels, labels) = fixture(RECORDS_PER_FILE);
            assert_eq!(&train.pixels[..pixels.len()], &pixels[..]);
            assert_eq!(&train.labels[..labels.len()], &labels[..]);
            // Already unpacked: no archive needed.
            std::fs::remove_file(dir.join(format.archive())).unwrap();
            assert_eq!(prepare(&dir).unwrap(), batches);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn both_formats_give_the_same_images() {
        let (pixels, labels) = fixture(7);
        for bytes in [
            sgm_testkit::cifar::binary_batch(&pixels, &labels),
            sgm_testkit::cifar::python_batch(&pixels, &labels, "training batch 1 of 5"),
        ] {
            let (mut p, mut l) = (Vec::new(), Vec::new());
            Cifar10::parse_into(Path::new("x"), &bytes, &mut p, &mut l).unwrap();
            assert_eq!((p, l), (pixels.clone(), labels.clone()));
        }
    }

    /// Pickles written by Python 3's own pickler (protocols 2, 3, 4) with numpy's globals
    /// (`scripts/cifar_pickle_fixture.py`), when python3 is on PATH.
    #[test]
    fn reads_batches_pickled_by_python() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cifar_pickle_fixture.py");
        let dir = std::env::temp_dir().join(format!("sgm-train-pyfix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pixels, labels) = fixture(12);
        for proto in [2, 3, 4] {
            let out = dir.join(format!("batch_p{proto}"));
            let Ok(status) = std::process::Command::new("python3")
                .arg(&script)
                .args(["write", out.to_str().unwrap(), "12", &proto.to_string()])
                .status()
            else {
                eprintln!("python3 not found: skipped");
                return;
            };
            assert!(status.success());
            let got = Cifar10::load_files(&[out]).unwrap();
            assert_eq!(
                (got.pixels, got.labels),
                (pixels.clone(), labels.clone()),
                "protocol {proto}"
            );
        }
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
            e.contains("data_batch_1.bin")
                && e.contains(BINARY_ARCHIVE)
                && e.contains(PYTHON_ARCHIVE),
            "{e}"
        );
    }

    #[test]
    fn bad_python_batches_are_named_errors() {
        let (pixels, labels) = fixture(3);
        let good = sgm_testkit::cifar::python_batch(&pixels, &labels, "b");
        let err = |bytes: &[u8]| {
            let (mut p, mut l) = (Vec::new(), Vec::new());
            let e = Cifar10::parse_into(Path::new("data_batch_9"), bytes, &mut p, &mut l)
                .unwrap_err()
                .to_string();
            assert!(p.is_empty() && l.is_empty());
            assert!(e.contains("data_batch_9"), "{e}");
            e
        };
        // short: cut inside the pixel string
        assert!(err(&good[..good.len() / 2]).contains("truncated"));
        // mislabelled: a label 11 (BININT1 of the first label)
        let at = sgm_testkit::corrupt::find(&good, b"(K\x00K\x01").unwrap() + 2;
        let mut bad = good.clone();
        bad[at] = 11;
        assert!(err(&bad).contains("label 0"));
        // one label too few
        let mut fewer = good.clone();
        let k = sgm_testkit::corrupt::find(&fewer, b"K\x02e").unwrap();
        fewer.drain(k..k + 2);
        assert!(err(&fewer).contains("2 labels for 3 images"));
    }
}
