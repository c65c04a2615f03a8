//! Small helpers shared by the samplers: host transfers, NFE counting, data scalers.

use std::cell::Cell;

use burn::prelude::*;
use sde_core::ScoreFunction;

use crate::error::{Result, SampleError};

/// Host copy of a float tensor as `f32` values (row-major).
pub fn to_host_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// `[B, C, H, W]` float tensor from host values.
pub fn from_host<B: Backend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A score function that counts its evaluations (the NFE really spent).
pub struct Counted<'a, B: Backend> {
    inner: &'a dyn ScoreFunction<B>,
    calls: Cell<usize>,
}

impl<'a, B: Backend> Counted<'a, B> {
    /// Wraps `inner`, starting at zero calls.
    pub fn new(inner: &'a dyn ScoreFunction<B>) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
        }
    }
    /// Number of score evaluations so far.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }
}

impl<B: Backend> ScoreFunction<B> for Counted<'_, B> {
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> sde_core::Result<Tensor<B, 4>> {
        self.calls.set(self.calls.get() + 1);
        self.inner.score(x, t)
    }
}

/// The data scaler of the reference (`datasets.get_data_scaler` / `get_data_inverse_scaler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataScaler {
    /// Data in `[0, 1]`, no rescaling (`data.centered = False`).
    #[default]
    Identity,
    /// Data in `[-1, 1]`: scaler `2x − 1`, inverse scaler `(x + 1) / 2` (`data.centered = True`).
    Centered,
}

impl DataScaler {
    /// `scaler(x)`: `[0, 1]` → model space.
    pub fn scale<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            DataScaler::Identity => x,
            DataScaler::Centered => x.mul_scalar(2.0).sub_scalar(1.0),
        }
    }
    /// `inverse_scaler(x)`: model space → `[0, 1]`.
    pub fn inverse<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            DataScaler::Identity => x,
            DataScaler::Centered => x.add_scalar(1.0).div_scalar(2.0),
        }
    }
    /// The likelihood offset `7 − inverse_scaler(−1)` of `likelihood.py`: 7 for centered data
    /// (bin width 2/256), 8 for `[0, 1]` data (bin width 1/256).
    pub fn bpd_offset(self) -> f64 {
        match self {
            DataScaler::Identity => 8.0,
            DataScaler::Centered => 7.0,
        }
    }
    /// Parses the fixtures' / configs' names: `identity`, `(x+1)/2`, `centered`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim() {
            "identity" | "none" | "uncentered" => Ok(DataScaler::Identity),
            "(x+1)/2" | "centered" | "2x-1" => Ok(DataScaler::Centered),
            other => Err(SampleError::InvalidOption {
                name: "inverse_scaler",
                reason: format!("unknown scaler `{other}` (identity | centered)"),
            }),
        }
    }
}

/// Uniform dequantisation of 8-bit images (reference `datasets.py`, `uniform_dequantization`):
/// pixel values `p ∈ {0, …, 255}` (as floats) and `u ~ U[0, 1)` → `(u + p) / 256 ∈ [0, 1)`.
/// The reference writes `(u + (p/255)·255) / 256`; `p/255·255` rounds back to `p` for 8-bit
/// values in float32.
pub fn uniform_dequantize<B: Backend, const D: usize>(
    pixels: Tensor<B, D>,
    u: Tensor<B, D>,
) -> Result<Tensor<B, D>> {
    if pixels.dims() != u.dims() {
        return Err(SampleError::Shape {
            what: "uniform_dequantize: noise",
            expected: pixels.dims().to_vec(),
            got: u.dims().to_vec(),
        });
    }
    // (u + (pixels / 255) * 255) / 256
    Ok((u + pixels.div_scalar(255.0).mul_scalar(255.0)).div_scalar(256.0))
}

/// Checks `x` has `shape`.
pub fn check_shape(what: &'static str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got != expected {
        return Err(SampleError::Shape {
            what,
            expected: expected.to_vec(),
            got: got.to_vec(),
        });
    }
    Ok(())
}

impl<B: Backend> ScoreFunction<B> for &Counted<'_, B> {
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> sde_core::Result<Tensor<B, 4>> {
        (**self).score(x, t)
    }
}
