//! Image sources for the metrics (and the CLI): PNG folders, CIFAR-10 binary batches, and
//! sample arrays written by `cargo xtask sample`. All give 8-bit RGB images `[N, 3, H, W]`.

use std::path::Path;

use crate::error::{EvalError, Result, file_err};

/// Bytes of one CIFAR-10 binary record: 1 label byte + 3 × 32 × 32 pixels (R, G, B planes).
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Name of the tensor in a sample array file (safetensors, float32 NCHW in [0, 1], or uint8).
pub const SAMPLES_TENSOR: &str = "samples";

/// 8-bit images, row-major `[n, channels, height, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct U8Images {
    /// Number of images.
    pub n: usize,
    /// Channels (3 for RGB).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Pixel values.
    pub data: Vec<u8>,
}

impl U8Images {
    /// Values per image.
    pub fn per_image(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Largest width or height of an image sgm decodes.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Most memory one image's decoder may allocate (a 4096 × 4096 RGBA16 image fits).
pub const MAX_IMAGE_ALLOC: u64 = 256 << 20;

/// Range `first .. first + count` (`None`: to `n`) of `n` items, or why it is not one.
fn range(
    first: usize,
    count: Option<usize>,
    n: usize,
    what: &str,
) -> std::result::Result<usize, String> {
    let end = match count {
        None => Some(n),
        Some(c) => first.checked_add(c),
    };
    match end {
        Some(end) if first < end && end <= n => Ok(end),
        _ => Err(format!(
            "{what} {first}..{} requested, the file holds {n}",
            end.map_or_else(
                || format!("({first} + {})", count.unwrap_or_default()),
                |e| e.to_string()
            )
        )),
    }
}

/// Decodes an image file in memory (`path` only names it in errors) with decoder limits:
/// sides up to [`MAX_IMAGE_SIDE`], at most [`MAX_IMAGE_ALLOC`] bytes, so a small file that
/// declares huge dimensions is an error, not an allocation failure.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| file_err(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| file_err(path, e))
}

/// [`decode_image`] of a file.
pub fn open_image(path: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    decode_image(path, &bytes)
}

/// Records `first .. first + count` of a CIFAR-10 binary batch (`count = None`: to the end).
pub fn read_cifar10_bin(path: &Path, first: usize, count: Option<usize>) -> Result<U8Images> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_cifar10_bin(path, &bytes, first, count)
}

/// [`read_cifar10_bin`] of a batch already in memory (`path` only names it in errors).
pub fn parse_cifar10_bin(
    path: &Path,
    bytes: &[u8],
    first: usize,
    count: Option<usize>,
) -> Result<U8Images> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(file_err(
            path,
            format!(
                "{} bytes is not a whole number of CIFAR-10 records ({CIFAR_RECORD} bytes each): truncated or not a CIFAR-10 batch",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD;
    let end = range(first, count, n, "records").map_err(|e| file_err(path, e))?;
    let mut data = Vec::with_capacity((end - first) * 3072);
    for r in first..end {
        data.extend_from_slice(&bytes[r * CIFAR_RECORD + 1..(r + 1) * CIFAR_RECORD]);
    }
    Ok(U8Images {
        n: end - first,
        channels: 3,
        height: 32,
        width: 32,
        data,
    })
}

/// PNG files of a folder (sorted by name), `first .. first + count`, all of one size, as RGB.
pub fn read_png_folder(dir: &Path, first: usize, count: Option<usize>) -> Result<U8Images> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| file_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        })
        .collect();
    files.sort();
    let end = count.map_or(files.len(), |c| first.saturating_add(c).min(files.len()));
    if first >= end {
        return Err(file_err(
            dir,
            format!("no PNG images in range {first}..{end}"),
        ));
    }
    let mut out: Option<U8Images> = None;
    for p in &files[first..end] {
        let img = open_image(p)?.to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let acc = out.get_or_insert_with(|| U8Images {
            n: 0,
            channels: 3,
            height: h,
            width: w,
            data: Vec::new(),
        });
        if (acc.height, acc.width) != (h, w) {
            return Err(EvalError::Shape {
                what: p.display().to_string(),
                reason: format!(
                    "{w}×{h} differs from the first image's {}×{}",
                    acc.width, acc.height
                ),
            });
        }
        for ch in 0..3 {
            acc.data.extend(img.pixels().map(|px| px[ch]));
        }
        acc.n += 1;
    }
    out.ok_or_else(|| file_err(dir, "no PNG images"))
}

/// A sample array file: safetensors with tensor `samples`, float32 `[N, C, H, W]` in [0, 1]
/// (quantised as `round(clip(x · 255))`) or uint8.
pub fn read_sample_array(path: &Path, first: usize, count: Option<usize>) -> Result<U8Images> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_sample_array(path, &bytes, first, count)
}

/// [`read_sample_array`] of a file already in memory (`path` only names it in errors).
pub fn parse_sample_array(
    path: &Path,
    bytes: &[u8],
    first: usize,
    count: Option<usize>,
) -> Result<U8Images> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| file_err(path, e))?;
    let t = st
        .tensor(SAMPLES_TENSOR)
        .map_err(|_| file_err(path, format!("no tensor `{SAMPLES_TENSOR}`")))?;
    let shape = t.shape().to_vec();
    let [n, c, h, w] = <[usize; 4]>::try_from(shape.as_slice()).map_err(|_| {
        file_err(
            path,
            format!("`{SAMPLES_TENSOR}` has shape {shape:?}, expected [N, C, H, W]"),
        )
    })?;
    let end = range(first, count, n, "images").map_err(|e| file_err(path, e))?;
    // safetensors checked that the data holds exactly n·c·h·w elements
    let per = c * h * w;
    let data: Vec<u8> = match t.dtype() {
        safetensors::Dtype::F32 => t.data()[first * per * 4..end * per * 4]
            .chunks_exact(4)
            .map(|b| {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                (v * 255.0).clamp(0.0, 255.0).round() as u8
            })
            .collect(),
        safetensors::Dtype::U8 => t.data()[first * per..end * per].to_vec(),
        other => {
            return Err(file_err(
                path,
                format!("unsupported dtype {other:?} (float32 or uint8)"),
            ));
        }
    };
    Ok(U8Images {
        n: end - first,
        channels: c,
        height: h,
        width: w,
        data,
    })
}

/// Any image source by its path: a folder (PNG; for an output folder of `cargo xtask sample`,
/// its `images/`), a `.bin` file (CIFAR-10), or a `.safetensors` sample array.
pub fn read_images(path: &Path, first: usize, count: Option<usize>) -> Result<U8Images> {
    // An output folder of `cargo xtask sample`: its one-PNG-per-image `images/`.
    let generated = path.join("images");
    if path
        .join(SAMPLES_TENSOR)
        .with_extension("safetensors")
        .is_file()
        && generated.is_dir()
    {
        return read_png_folder(&generated, first, count);
    }
    if path.is_dir() {
        return read_png_folder(path, first, count);
    }
    if !path.exists() {
        return Err(file_err(path, "no such file or folder"));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("bin") => read_cifar10_bin(path, first, count),
        Some("safetensors") => read_sample_array(path, first, count),
        _ => Err(file_err(
            path,
            "unknown image source (a PNG folder, a CIFAR-10 .bin batch or a .safetensors sample array)",
        )),
    }
}

/// Writes a sample array file (tensor `samples`, float32 `[N, C, H, W]` in [0, 1]) atomically:
/// the layout [`read_sample_array`] reads.
pub fn write_sample_array(path: &Path, dims: [usize; 4], data: &[f32]) -> Result<()> {
    if data.len() != dims.iter().product::<usize>() {
        return Err(EvalError::Shape {
            what: path.display().to_string(),
            reason: format!("{} values for samples of shape {dims:?}", data.len()),
        });
    }
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.to_vec(), &bytes)
        .map_err(|e| file_err(path, e))?;
    let file =
        safetensors::serialize([(SAMPLES_TENSOR, view)], None).map_err(|e| file_err(path, e))?;
    sgm_fs::write_atomic_bytes(path, &file).map_err(|e| file_err(path, e))
}
