//! Image files in and out: PNG grids, PNG inputs (inpainting / colorization), and the raw
//! sample arrays (`samples` in a safetensors file, float32 NCHW in [0, 1]).

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::prelude::*;

/// Host copy of a `[B, C, H, W]` float tensor.
pub fn to_host<B: Backend>(x: Tensor<B, 4>) -> (Vec<usize>, Vec<f32>) {
    let dims = x.dims().to_vec();
    let v = x
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32");
    (dims, v)
}

/// `uint8 = clip(x · 255, 0, 255)` rounded, as the reference's `np.clip(x * 255, 0, 255).astype(uint8)`
/// (which truncates; we round half up to keep 1.0 → 255 and 0.5/255 → 1 symmetric).
/// Writes a `[B, C, H, W]` batch in [0, 1] as one PNG grid (`ncol` columns, 2-pixel gaps).
pub fn write_grid(path: &Path, dims: &[usize], data: &[f32], ncol: usize) -> Result<()> {
    let dims = <[usize; 4]>::try_from(dims).map_err(|_| anyhow::anyhow!("grid needs NCHW"))?;
    Ok(sgm_eval::write_grid(path, dims, data, ncol)?)
}

/// Writes the raw samples (`samples`: float32 `[B, C, H, W]` in [0, 1]) as safetensors.
pub fn write_samples(path: &Path, dims: &[usize], data: &[f32]) -> Result<()> {
    let dims = <[usize; 4]>::try_from(dims).map_err(|_| anyhow::anyhow!("samples need NCHW"))?;
    Ok(sgm_eval::images::write_sample_array(path, dims, data)?)
}

/// Reads PNG images (all the same size) into a `[B, 3, H, W]` float batch in [0, 1].
pub fn read_pngs(paths: &[impl AsRef<Path>]) -> Result<(Vec<usize>, Vec<f32>)> {
    ensure!(!paths.is_empty(), "no input images");
    let mut data = Vec::new();
    let mut size = None;
    for p in paths {
        let p = p.as_ref();
        let img = sgm_eval::images::open_image(p)
            .with_context(|| format!("cannot read image {}", p.display()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        match size {
            None => size = Some((w, h)),
            Some(s) if s != (w, h) => bail!(
                "{}: {w}×{h} differs from the first image's {}×{}",
                p.display(),
                s.0,
                s.1
            ),
            _ => {}
        }
        for ch in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    data.push(img.get_pixel(x, y)[ch] as f32 / 255.0);
                }
            }
        }
    }
    let (w, h) = size.context("no input images")?;
    Ok((vec![paths.len(), 3, h as usize, w as usize], data))
}

/// Reads a mask PNG (`[H, W]`, white = known) and repeats it over 3 channels and `batch` images.
pub fn read_mask(path: &Path, batch: usize, h: usize, w: usize) -> Result<Vec<f32>> {
    let img = sgm_eval::images::open_image(path)
        .with_context(|| format!("cannot read mask {}", path.display()))?
        .to_luma8();
    ensure!(
        img.dimensions() == (w as u32, h as u32),
        "mask {} is {}×{}, images are {w}×{h}",
        path.display(),
        img.width(),
        img.height()
    );
    let plane: Vec<f32> = img
        .pixels()
        .map(|p| if p[0] >= 128 { 1.0 } else { 0.0 })
        .collect();
    Ok((0..batch * 3).flat_map(|_| plane.iter().copied()).collect())
}
