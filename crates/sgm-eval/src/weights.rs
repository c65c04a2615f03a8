//! pytorch-fid's Inception weights file: its name, where it is published, its hash, and the
//! check of a local copy ([`prepare_inception`], behind `cargo xtask data inception`).
//!
//! The download itself is the caller's (the CLI passes a function that runs `curl`); this
//! module decides where the file goes, checks what arrived, and moves it in place atomically.
//! Offline it says which file to put where.
//!
//! The hash: pytorch-fid's file name carries the first 8 hex digits of its SHA-256
//! (`6726825d`, torch.hub's `check_hash` convention), which is what is checked. An fc-less
//! conversion of the same network (`pt_inception-2015-12-05.pth`, no `fc`: FID and KID, no
//! Inception Score) is recognised by its full SHA-256.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, file_err};

/// pytorch-fid's file name (`FID_WEIGHTS_URL`'s last component).
pub const FID_WEIGHTS_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";

/// Where pytorch-fid publishes it (release `fid_weights` of mseitzer/pytorch-fid).
pub const FID_WEIGHTS_URL: &str = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";

/// Environment variable the CLI reads the weights path from when `--inception` is not given.
pub const WEIGHTS_ENV: &str = "SGM_INCEPTION_WEIGHTS";

/// A weights file sgm recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownWeights {
    /// File name.
    pub file: &'static str,
    /// The SHA-256 (hex) starts with this.
    pub sha256_prefix: &'static str,
    /// Holds the 1008-way `fc` (logits, Inception Score).
    pub has_fc: bool,
    /// What it is.
    pub what: &'static str,
}

/// The files sgm recognises, the one it downloads first.
pub const KNOWN_WEIGHTS: [KnownWeights; 2] = [
    KnownWeights {
        file: FID_WEIGHTS_FILE,
        sha256_prefix: "6726825d",
        has_fc: true,
        what: "pytorch-fid's FID Inception weights (pool3 features and the 1008-way fc)",
    },
    KnownWeights {
        file: "pt_inception-2015-12-05.pth",
        sha256_prefix: "3449c5157edb5563efbd7efb818690fcac07c4c32a59528f0e6324ce69976eb3",
        has_fc: false,
        what: "the same network converted without its classifier: FID and KID, no Inception Score",
    },
];

/// Lower-case hex SHA-256 of a file (streamed).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| file_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A checked weights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedWeights {
    /// Where it is.
    pub path: PathBuf,
    /// Which file it is.
    pub known: KnownWeights,
    /// Its SHA-256.
    pub sha256: String,
    /// True when this call downloaded it.
    pub downloaded: bool,
}

/// Downloads `url` to the given path (e.g. by running `curl`); `Err` says why it could not.
pub type Fetch<'a> = &'a dyn Fn(&str, &Path) -> std::result::Result<(), String>;

fn check(path: &Path, known: &KnownWeights) -> Result<String> {
    let sha = sha256_file(path)?;
    if !sha.starts_with(known.sha256_prefix) {
        return Err(file_err(
            path,
            format!(
                "SHA-256 {sha} does not match {} ({}…): a corrupt or incomplete copy; delete it \
                 and rerun `cargo xtask data inception`",
                known.what, known.sha256_prefix
            ),
        ));
    }
    Ok(sha)
}

/// Makes the Inception weights ready in `dir`: a file of [`KNOWN_WEIGHTS`] already there
/// (hash checked), or pytorch-fid's downloaded with `fetch` (to a temporary name, checked, then
/// renamed). Without a file and without a working `fetch`, the error says which file to put
/// where.
pub fn prepare_inception(dir: &Path, fetch: Option<Fetch<'_>>) -> Result<PreparedWeights> {
    prepare_with(dir, fetch, &KNOWN_WEIGHTS, FID_WEIGHTS_URL)
}

fn prepare_with(
    dir: &Path,
    fetch: Option<Fetch<'_>>,
    known: &[KnownWeights],
    url: &str,
) -> Result<PreparedWeights> {
    for k in known {
        let path = dir.join(k.file);
        if path.is_file() {
            let sha256 = check(&path, k)?;
            return Ok(PreparedWeights {
                path,
                known: *k,
                sha256,
                downloaded: false,
            });
        }
    }
    let first = known
        .first()
        .ok_or_else(|| file_err(dir, "no known weights file"))?;
    let target = dir.join(first.file);
    let offline = |why: &str| {
        file_err(
            &target,
            format!(
                "missing, and {why}: download {url} ({}), put it at this path and rerun \
                 `cargo xtask data inception --dir {}`; then pass it as --inception {} or set \
                 {WEIGHTS_ENV}",
                first.what,
                dir.display(),
                target.display()
            ),
        )
    };
    let Some(fetch) = fetch else {
        return Err(offline("downloading is off"));
    };
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let part = dir.join(format!(".{}.part", first.file));
    if let Err(why) = fetch(url, &part) {
        let _ = std::fs::remove_file(&part);
        return Err(offline(&format!("the download failed ({why})")));
    }
    let sha256 = match check(&part, first) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, &target).map_err(|e| file_err(&target, e))?;
    Ok(PreparedWeights {
        path: target,
        known: *first,
        sha256,
        downloaded: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgm-weights-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn known() -> [KnownWeights; 2] {
        [
            KnownWeights {
                file: "w.pth",
                sha256_prefix: "ba7816bf",
                has_fc: true,
                what: "test weights",
            },
            KnownWeights {
                file: "w-nofc.pth",
                sha256_prefix: ABC_SHA256,
                has_fc: false,
                what: "test weights without fc",
            },
        ]
    }

    #[test]
    fn sha256_of_a_file() {
        let d = scratch("sha");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("abc"), b"abc").unwrap();
        assert_eq!(sha256_file(&d.join("abc")).unwrap(), ABC_SHA256);
    }

    #[test]
    fn downloads_checks_and_says_where_to_put_the_file() {
        let d = scratch("prep");
        let k = known();
        // Offline: the message names the target path and the URL.
        let e = prepare_with(&d, None, &k, "https://x/w.pth")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&d.join("w.pth").display().to_string()) && e.contains("https://x/w.pth"),
            "{e}"
        );
        // A failing download says why, and leaves nothing behind.
        let fail: Fetch<'_> = &|_, p: &Path| {
            std::fs::write(p, b"partial").unwrap();
            Err("no network".into())
        };
        let e = prepare_with(&d, Some(fail), &k, "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no network"), "{e}");
        assert!(!d.join("w.pth").exists() && !d.join(".w.pth.part").exists());
        // A download with the wrong content is rejected and removed.
        let wrong: Fetch<'_> = &|_, p: &Path| std::fs::write(p, b"abd").map_err(|e| e.to_string());
        let e = prepare_with(&d, Some(wrong), &k, "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(!d.join("w.pth").exists() && !d.join(".w.pth.part").exists());
        // The right content lands under the final name.
        let right: Fetch<'_> = &|_, p: &Path| std::fs::write(p, b"abc").map_err(|e| e.to_string());
        let w = prepare_with(&d, Some(right), &k, "u").unwrap();
        assert!(w.downloaded && w.known.has_fc && w.path == d.join("w.pth"));
        // Present: checked, not downloaded again.
        let w = prepare_with(&d, Some(fail), &k, "u").unwrap();
        assert!(!w.downloaded && w.sha256 == ABC_SHA256);
        // A corrupt copy is an error naming it.
        std::fs::write(d.join("w.pth"), b"abx").unwrap();
        let e = prepare_with(&d, None, &k, "u").unwrap_err().to_string();
        assert!(e.contains("w.pth") && e.contains("corrupt"), "{e}");
        // The fc-less variant is recognised by its full hash.
        std::fs::remove_file(d.join("w.pth")).unwrap();
        std::fs::write(d.join("w-nofc.pth"), b"abc").unwrap();
        let w = prepare_with(&d, None, &k, "u").unwrap();
        assert!(!w.known.has_fc);
        let _ = std::fs::remove_dir_all(&d);
    }
}
