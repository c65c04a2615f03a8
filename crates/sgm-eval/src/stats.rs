//! Statistics files, two layouts:
//! * pytorch-fid: `np.savez(path, mu=mu, sigma=sigma)` — a zip of `mu.npy` (`[d]`) and
//!   `sigma.npy` (`[d, d]`), float64 (float32 is accepted when reading); what we write.
//! * score_sde (`cifar10_stats.npz` of `evaluation.py`): `pool_3` — the Inception pool_3
//!   features `[n, d]` of the dataset (plus e.g. `logits`); μ, Σ are computed from them
//!   ([`Stats::from_features`], as pytorch-fid computes them).

use std::io::Write;
use std::path::Path;

use crate::error::{Result, file_err};
use crate::fid::Stats;

/// Parses one `.npy` array: (shape, values as f64). Little-endian f8 / f4, C order.
fn parse_npy(bytes: &[u8], what: &str) -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{what}: not a .npy array"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("{what}: unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| format!("{what}: truncated header"))?;
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .ok_or_else(|| format!("{what}: no descr in header"))?;
    if header.contains("'fortran_order': True") {
        return Err(format!("{what}: Fortran-order arrays are not supported"));
    }
    let shape_txt = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format!("{what}: no shape in header"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{what}: bad shape `{shape_txt}`"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let width = match descr {
        "<f8" => 8,
        "<f4" => 4,
        other => {
            return Err(format!(
                "{what}: unsupported dtype {other} (float64 or float32)"
            ));
        }
    };
    let data = &bytes[start + hlen..];
    // the declared size must be present before anything is allocated
    let n = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(width).is_some_and(|b| b <= data.len()))
        .ok_or_else(|| {
            format!(
                "{what}: shape {shape:?} of {descr} needs more than the {} data bytes present (truncated?)",
                data.len()
            )
        })?;
    let values: Vec<f64> = if width == 8 {
        data.chunks_exact(8)
            .take(n)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    } else {
        data.chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect()
    };
    Ok((shape, values))
}

/// Encodes a float64 C-order `.npy` (format 1.0).
fn npy_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims = match shape {
        [a] => format!("({a},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {dims}, }}");
    // 10-byte preamble + header (ending in '\n') is a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads a statistics file of either layout (see the module docs); any other content is an
/// error naming the arrays found.
pub fn read_stats(path: &Path) -> Result<Stats> {
    Ok(read_stats_file(path)?.stats)
}

/// The content of a statistics file: μ, Σ, and the features themselves when the file holds
/// them (score_sde's `pool_3`; KID needs them).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFile {
    /// μ, Σ (read, or computed from the features).
    pub stats: Stats,
    /// `[n, d]` features, row-major, with `n` (score_sde layout only).
    pub features: Option<(usize, Vec<f64>)>,
}

/// [`read_stats`] keeping the features of a score_sde file.
pub fn read_stats_file(path: &Path) -> Result<StatsFile> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_stats_file(path, &bytes)
}

/// [`read_stats`] of a file already in memory (`path` only names it in errors). Declared
/// sizes (zip entries, `.npy` headers) are checked against the bytes present before anything
/// is allocated; decompressed (`np.savez_compressed`) arrays may expand to at most 16 × the
/// file's size, so memory stays bounded by the file's size.
pub fn parse_stats(path: &Path, bytes: &[u8]) -> Result<Stats> {
    Ok(parse_stats_file(path, bytes)?.stats)
}

/// [`read_stats_file`] of a file already in memory (same checks as [`parse_stats`]).
pub fn parse_stats_file(path: &Path, bytes: &[u8]) -> Result<StatsFile> {
    let mut npz = Npz::open(path, bytes)?;
    let has = |n: &str| npz.names.iter().any(|m| m == n);
    let (has_mu_sigma, has_pool3) = (has("mu") && has("sigma"), has("pool_3"));
    let names = npz.names.clone();
    if !has_mu_sigma && has_pool3 {
        let (shape, features) = npz.get("pool_3")?;
        let [n, d] = <[usize; 2]>::try_from(shape.as_slice()).map_err(|_| {
            file_err(
                path,
                format!("`pool_3` has shape {shape:?}, expected [n, d] features"),
            )
        })?;
        let stats = Stats::from_features(&features, n, d).map_err(|e| file_err(path, e))?;
        return Ok(StatsFile {
            stats,
            features: Some((n, features)),
        });
    }
    if !has_mu_sigma {
        return Err(file_err(
            path,
            format!(
                "unknown statistics layout: arrays {names:?}; expected `mu` + `sigma` \
                 (pytorch-fid) or `pool_3` features (score_sde)"
            ),
        ));
    }
    let (ms, mu) = npz.get("mu")?;
    let (ss, sigma) = npz.get("sigma")?;
    let d = mu.len();
    if ms.len() != 1 || ss != [d, d] {
        return Err(file_err(
            path,
            format!("mu has shape {ms:?} and sigma {ss:?}; expected [d] and [d, d]"),
        ));
    }
    Ok(StatsFile {
        stats: Stats { mu, sigma },
        features: None,
    })
}

/// One array of a `.npz`: shape and values (as float64).
pub type NpyArray = (Vec<usize>, Vec<f64>);

/// An opened `.npz`: array names and a bounded reader of each.
struct Npz<'a> {
    path: &'a Path,
    zip: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    budget: u64,
    names: Vec<String>,
}

impl<'a> Npz<'a> {
    /// Declared sizes (zip entries, `.npy` headers) are checked against the bytes present
    /// before anything is allocated; decompressed arrays may expand to at most 16 × the file's
    /// size.
    fn open(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        sgm_fs::check_zip_directory(bytes)
            .map_err(|e| file_err(path, format!("not a .npz (zip) file: {e}")))?;
        let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| file_err(path, format!("not a .npz (zip) file: {e}")))?;
        let names = zip
            .file_names()
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect();
        Ok(Self {
            path,
            zip,
            budget: (bytes.len() as u64).saturating_mul(16) + (1 << 20),
            names,
        })
    }

    /// Array `name`: (shape, values as f64).
    fn get(&mut self, name: &str) -> Result<NpyArray> {
        let path = self.path;
        let entry = self
            .zip
            .by_name(&format!("{name}.npy"))
            .map_err(|_| file_err(path, format!("no array `{name}`")))?;
        let declared = entry.size();
        let bytes = sgm_fs::read_declared(entry, declared, &mut self.budget)
            .map_err(|e| file_err(path, format!("array `{name}`: {e}")))?;
        parse_npy(&bytes, name).map_err(|e| file_err(path, e))
    }
}

/// Reads the arrays `names` of a `.npz` file (float64 or float32, C order) as
/// (shape, float64 values); a missing array is an error naming it and the file. `None` for a
/// name in `optional` that the file lacks.
pub fn read_npz(path: &Path, names: &[&str], optional: &[&str]) -> Result<Vec<Option<NpyArray>>> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let mut npz = Npz::open(path, &bytes)?;
    names
        .iter()
        .map(|n| {
            if optional.contains(n) && !npz.names.iter().any(|m| m == n) {
                Ok(None)
            } else {
                npz.get(n).map(Some)
            }
        })
        .collect()
}

/// Writes float64 arrays as a `.npz` (uncompressed zip of `.npy`) atomically
/// ([`sgm_fs::write_atomic`]): a run killed mid-write leaves the old file or the new one.
pub fn write_npz(path: &Path, arrays: &[(&str, &[usize], &[f64])]) -> Result<()> {
    sgm_fs::write_atomic(path, |file| {
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, shape, values) in arrays {
            zip.start_file(format!("{name}.npy"), opts)?;
            zip.write_all(&npy_f64(shape, values))?;
        }
        zip.finish()?;
        Ok(())
    })
    .map_err(|e| file_err(path, e))
}

/// Writes a pytorch-fid `.npz` statistics file (atomically, through [`write_npz`]).
pub fn write_stats(path: &Path, stats: &Stats) -> Result<()> {
    let d = stats.dim();
    write_npz(
        path,
        &[("mu", &[d], &stats.mu), ("sigma", &[d, d], &stats.sigma)],
    )
}
