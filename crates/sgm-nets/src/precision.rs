//! [`WithPrecision`]: a [`ScoreFunction`] decorator that evaluates its inner score — every
//! convolution of the network — under a chosen convolution [`Precision`] (sgm-conv's scoped
//! setting; the backward of those convolutions, e.g. the likelihood's divergence, follows the
//! precision recorded at the forward).
//!
//! The likelihood flows use [`LIKELIHOOD_PRECISION`] (exact accumulation): the probability-flow
//! ODE's adaptive RK45 solve amplifies float32 summation-order differences (docs/parity.md,
//! fixtures README §3.1), and order-independent sums keep bits/dim within the official code's
//! allowance and identical across thread counts. Training and sampling keep the default
//! [`Precision::Fast`].

use burn::prelude::*;
use sde_core::ScoreFunction;
pub use sgm_conv::Precision;

/// The convolution precision of the likelihood (bits/dim) flows.
pub const LIKELIHOOD_PRECISION: Precision = Precision::Exact;

/// `inner`'s score, computed with convolutions under `precision`.
#[derive(Debug, Clone, Copy)]
pub struct WithPrecision<S> {
    /// The decorated score.
    pub inner: S,
    /// Accumulation precision of the CPU convolution kernel during `inner`'s evaluation.
    pub precision: Precision,
}

impl<S> WithPrecision<S> {
    /// `inner` under `precision`.
    pub fn new(inner: S, precision: Precision) -> Self {
        Self { inner, precision }
    }
}

impl<B: Backend, S: ScoreFunction<B>> ScoreFunction<B> for WithPrecision<S> {
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> sde_core::Result<Tensor<B, 4>> {
        sgm_conv::with_precision(self.precision, || self.inner.score(x, t))
    }
}
