//! Image grids: a `[B, C, H, W]` batch in [0, 1] as one PNG.

use std::path::Path;

use crate::error::{EvalError, Result, file_err};

fn to_u8(v: f32) -> u8 {
    (v * 255.0).clamp(0.0, 255.0).round() as u8
}

/// Writes a `[B, C, H, W]` batch in [0, 1] (`data` row-major, C = 1 or 3) as one PNG grid of
/// `ncol` columns with 2-pixel gaps.
pub fn write_grid(path: &Path, dims: [usize; 4], data: &[f32], ncol: usize) -> Result<()> {
    let [b, c, h, w] = dims;
    if !(c == 1 || c == 3) || data.len() != b * c * h * w {
        return Err(EvalError::Shape {
            what: format!("grid {}", path.display()),
            reason: format!(
                "{} values for a {dims:?} batch of 1 or 3 channels",
                data.len()
            ),
        });
    }
    let ncol = ncol.clamp(1, b.max(1));
    let nrow = b.div_ceil(ncol);
    let pad = 2;
    let (gw, gh) = (ncol * (w + pad) + pad, nrow * (h + pad) + pad);
    let mut img = image::RgbImage::new(gw as u32, gh as u32);
    for i in 0..b {
        let (ox, oy) = (pad + (i % ncol) * (w + pad), pad + (i / ncol) * (h + pad));
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| to_u8(data[((i * c + ch.min(c - 1)) * h + y) * w + x]);
                img.put_pixel(
                    (ox + x) as u32,
                    (oy + y) as u32,
                    image::Rgb([px(0), px(1), px(2)]),
                );
            }
        }
    }
    // atomically: an interrupted run leaves the old grid or the new one
    sgm_fs::write_atomic(path, |w| {
        img.write_with_encoder(image::codecs::png::PngEncoder::new(w))
            .map_err(std::io::Error::other)
    })
    .map_err(|e| file_err(path, e))
}
