//! Images → Inception inputs → pool3 features (and logits), batched on the device, as
//! pytorch-fid: uint8 → float [0, 1] → bilinear resize to 299×299 (align_corners = false, no
//! antialias) → `2x − 1`.

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::error::{EvalError, Result};
use crate::images::U8Images;
use crate::inception::InceptionV3;

/// Side of the Inception input.
pub const INCEPTION_SIZE: usize = 299;
/// Dimension of pool3 features.
pub const POOL3_DIM: usize = 2048;

/// Features of a set of images: `pool3` `[N, 2048]` row-major (float64 for the statistics) and,
/// with `fc`, the `[N, 1008]` logits.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Number of images.
    pub n: usize,
    /// `[n, 2048]` pool3 activations.
    pub pool3: Vec<f64>,
    /// `[n, 1008]` logits when the network has `fc`.
    pub logits: Option<Vec<f64>>,
}

/// `[B, 3, H, W]` uint8 → `[B, 3, 299, 299]` in [-1, 1] (pytorch-fid `resize_input` +
/// `normalize_input`).
pub fn preprocess<B: Backend>(x01: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x01.dims();
    let x = if h == INCEPTION_SIZE && w == INCEPTION_SIZE {
        x01
    } else {
        let opts = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
        interpolate(x01, [INCEPTION_SIZE, INCEPTION_SIZE], opts)
    };
    x.mul_scalar(2.0).sub_scalar(1.0)
}

fn host64<B: Backend>(t: Tensor<B, 2>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("converted to f64")
}

/// Runs the network over `images` in batches of `batch_size`; `progress(done)` is called after
/// every batch.
pub fn extract<B: Backend>(
    net: &InceptionV3<B>,
    images: &U8Images,
    batch_size: usize,
    device: &B::Device,
    mut progress: impl FnMut(usize),
) -> Result<Features> {
    if images.channels != 3 {
        return Err(EvalError::Shape {
            what: "Inception input".into(),
            reason: format!(
                "images have {} channels, Inception needs 3 (RGB)",
                images.channels
            ),
        });
    }
    if batch_size == 0 {
        return Err(EvalError::Shape {
            what: "batch size".into(),
            reason: "must be positive".into(),
        });
    }
    let per = images.per_image();
    let mut out = Features {
        n: images.n,
        pool3: Vec::with_capacity(images.n * POOL3_DIM),
        logits: net.has_logits().then(Vec::new),
    };
    for start in (0..images.n).step_by(batch_size) {
        let b = batch_size.min(images.n - start);
        let px: Vec<f32> = images.data[start * per..(start + b) * per]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let x = Tensor::<B, 4>::from_data(
            TensorData::new(px, [b, 3, images.height, images.width]),
            device,
        );
        let y = net.forward(preprocess(x));
        out.pool3.extend(host64(y.pool3));
        if let (Some(acc), Some(l)) = (out.logits.as_mut(), y.logits) {
            acc.extend(host64(l));
        }
        progress(start + b);
    }
    Ok(out)
}
