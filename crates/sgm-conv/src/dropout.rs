//! Inverted dropout through the backend extension ([`ConvBackend::dropout_mask`]): `x·m` with
//! `m = 1/keep` with probability `keep = 1 − p`, else 0 — the values of Burn's `nn::Dropout`
//! (and PyTorch's), applied only when the backend tracks gradients (training), as Burn's module
//! does. The mask is one tensor made by the backend and the product one autodiff node (backward
//! `dy·m`). Burn's module draws a Bernoulli tensor element by element from its single-threaded
//! host RNG and builds two nodes (`x·bernoulli`, `·1/keep`): ≈ 6 % of a DDPM++ nf 32 training step
//! on Flex, whose mask is a counter-based hash in parallel ([`crate::flex::dropout`]).
//!
//! Randomness stays Burn's: the default draws the mask with `Distribution::Bernoulli`, and Flex
//! keys its hash with two values drawn from Burn's RNG, so `Backend::seed` (sgm's trainer seeds
//! every step) makes the masks reproducible, and resumed runs repeat them. The masks of
//! different backends differ (as Burn's own do).

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Distribution, TensorPrimitive};

use crate::ConvBackend;

/// Burn's mask: Bernoulli(`keep`) values scaled by `1/keep` (the default of
/// [`ConvBackend::dropout_mask`]).
pub fn bernoulli_mask<B: Backend>(shape: Shape, keep: f64, device: &B::Device) -> FloatTensor<B> {
    let n = shape.num_elements();
    let m: Tensor<B, 1> = Tensor::random([n], Distribution::Bernoulli(keep), device);
    B::float_reshape(m.mul_scalar(1.0 / keep).into_primitive().tensor(), shape)
}

/// Inverted dropout with drop probability `prob` of `x` (module docs); `x` itself when the
/// backend does not track gradients or `prob` is 0 (Burn's `Dropout::forward` semantics).
///
/// # Panics
/// When `prob` is not in `[0, 1)` (configs validate it first).
pub fn dropout<B: ConvBackend, const D: usize>(x: Tensor<B, D>, prob: f64) -> Tensor<B, D> {
    assert!(
        (0.0..1.0).contains(&prob),
        "dropout probability {prob} not in [0, 1)"
    );
    if prob == 0.0 || !B::ad_enabled(&x.device()) {
        return x;
    }
    let mask = B::dropout_mask(x.shape(), 1.0 - prob, &x.device());
    x * Tensor::from_primitive(TensorPrimitive::Float(mask))
}
