//! StyleGAN2 FIR resampling (reference `up_or_down_sampling.py`, `op/upfirdn2d.py`,
//! reference §7.2), written with Burn convolutions: `upfirdn2d` = zero insertion, zero pad
//! (negative pads crop), correlation with the flipped kernel, then keep every `down`-th sample.

use burn::prelude::*;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use sgm_conv::{ConvBackend, conv2d};

/// Reference `_setup_kernel`: 1-D taps `k` → `outer(k, k) / sum`, times `gain`. Row-major `[n, n]`.
pub fn setup_kernel(k: &[f64], gain: f64) -> Vec<f32> {
    let s: f64 = k.iter().sum();
    let mut out = Vec::with_capacity(k.len() * k.len());
    for a in k {
        for b in k {
            out.push((a * b / (s * s) * gain) as f32);
        }
    }
    out
}

/// Zero pad (or crop, for negative values) the two spatial axes by `p0` before and `p1` after.
fn pad_or_crop<B: Backend>(x: Tensor<B, 4>, p0: i64, p1: i64) -> Tensor<B, 4> {
    let pos = |p: i64| p.max(0) as usize;
    let x = if p0 > 0 || p1 > 0 {
        x.pad((pos(p0), pos(p1), pos(p0), pos(p1)), PadMode::Constant(0.0))
    } else {
        x
    };
    if p0 < 0 || p1 < 0 {
        let [_, _, h, w] = x.dims();
        let c0 = (-p0).max(0) as usize;
        let c1 = (-p1).max(0) as usize;
        x.slice(s![.., .., c0..h - c1, c0..w - c1])
    } else {
        x
    }
}

/// `upfirdn2d(x, kernel, up, down, pad = (p0, p1))` on `[N, C, H, W]` with a square kernel
/// `[n, n]` (row-major host values). Output side `(in·up + p0 + p1 − n) / down + 1`.
pub fn upfirdn2d<B: ConvBackend>(
    x: Tensor<B, 4>,
    kernel: &[f32],
    up: usize,
    down: usize,
    p0: i64,
    p1: i64,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let kn = (kernel.len() as f64).sqrt() as usize;
    let x = x.reshape([n * c, 1, h, w]); // [NC, 1, H, W]
    // zero insertion: up − 1 zeros after every sample along H and W
    let x = if up > 1 {
        let x = x.reshape([n * c, h, 1, w, 1]);
        let z = Tensor::<B, 5>::zeros([n * c, h, up - 1, w, 1], &device);
        let x = Tensor::cat(vec![x, z], 2); // [NC, H, up, W, 1]
        let z = Tensor::<B, 5>::zeros([n * c, h, up, w, up - 1], &device);
        let x = Tensor::cat(vec![x, z], 4); // [NC, H, up, W, up]
        x.reshape([n * c, 1, h * up, w * up])
    } else {
        x
    };
    let x = pad_or_crop(x, p0, p1);
    // true convolution = correlation with the flipped kernel
    let flipped: Vec<f32> = kernel.iter().rev().copied().collect();
    let k = Tensor::<B, 4>::from_data(TensorData::new(flipped, [1, 1, kn, kn]), &device);
    let y = conv2d(
        x,
        k,
        None,
        ConvOptions::new([down, down], [0, 0], [1, 1], 1),
    ); // [NC, 1, H', W']
    let [_, _, ho, wo] = y.dims();
    y.reshape([n, c, ho, wo])
}

/// Reference `upsample_2d(x, k, factor = 2)`: FIR upsampling without a convolution.
pub fn upsample_2d<B: ConvBackend>(x: Tensor<B, 4>, k: &[f64]) -> Tensor<B, 4> {
    let factor = 2i64;
    let kern = setup_kernel(k, (factor * factor) as f64);
    let p = k.len() as i64 - factor;
    upfirdn2d(
        x,
        &kern,
        2,
        1,
        (p + 1).div_euclid(2) + factor - 1,
        p.div_euclid(2),
    )
}

/// Reference `downsample_2d(x, k, factor = 2)`: FIR downsampling without a convolution.
pub fn downsample_2d<B: ConvBackend>(x: Tensor<B, 4>, k: &[f64]) -> Tensor<B, 4> {
    let kern = setup_kernel(k, 1.0);
    let p = k.len() as i64 - 2;
    upfirdn2d(x, &kern, 1, 2, (p + 1).div_euclid(2), p.div_euclid(2))
}

/// Reference `conv_downsample_2d(x, w, k, factor = 2)`: FIR blur, then a stride-2 valid conv with `w`.
pub fn conv_downsample_2d<B: ConvBackend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    k: &[f64],
) -> Tensor<B, 4> {
    let kw = w.dims()[3] as i64;
    let kern = setup_kernel(k, 1.0);
    let p = (k.len() as i64 - 2) + (kw - 1);
    let x = upfirdn2d(x, &kern, 1, 1, (p + 1).div_euclid(2), p.div_euclid(2));
    conv2d(x, w, None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1))
}

/// `upsample_conv_2d(x, w, k, factor = 2)`: stride-2 transposed conv with the spatially flipped,
/// in/out-swapped conv weight, then FIR filtering. The PyTorch port raises here (negative-step
/// slicing, reference §7.3 item 2); this follows the JAX original, which works.
pub fn upsample_conv_2d<B: ConvBackend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    k: &[f64],
) -> Tensor<B, 4> {
    let factor = 2i64;
    let kw = w.dims()[3] as i64;
    // w [out, in, kh, kw] → flip(kh, kw) → [in, out, kh, kw]
    let wt = w.flip([2, 3]).swap_dims(0, 1);
    let x = conv_transpose2d(
        x,
        wt,
        None,
        ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
    ); // [N, out, 2H + kh − 2, …]
    let kern = setup_kernel(k, (factor * factor) as f64);
    let p = (k.len() as i64 - factor) - (kw - 1);
    upfirdn2d(
        x,
        &kern,
        1,
        1,
        (p + 1).div_euclid(2) + factor - 1,
        p.div_euclid(2) + 1,
    )
}

/// Reference `naive_upsample_2d`: nearest-neighbour ×2.
pub fn naive_upsample_2d<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// Reference `naive_downsample_2d` / `F.avg_pool2d(x, 2, 2)`: mean over 2×2 blocks.
pub fn naive_downsample_2d<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h / 2, 2, w / 2, 2])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([n, c, h / 2, w / 2])
}
