//! SiLU (swish, `x·σ(x)`) through the backend extension ([`ConvBackend::silu_forward`] /
//! [`ConvBackend::silu_backward`]): Burn's ops by default, one fused pass per direction on Flex
//! ([`crate::flex::act`]), one graph node with `B`'s backward under `Autodiff<B>`. Burn's
//! `activation::silu` builds a sigmoid and a product node, each a pass over the activation in
//! both directions; SiLU follows every GroupNorm of the score networks.
//!
//! Backward: `∂/∂x [x·σ(x)] = σ(x)·(1 + x·(1 − σ(x)))`.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation;
use burn::tensor::ops::FloatTensor;

use crate::ConvBackend;

fn t<B: Backend>(p: FloatTensor<B>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Burn's SiLU (the default of [`ConvBackend::silu_forward`]).
pub fn composed_silu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    activation::silu(t::<B>(x)).into_primitive().tensor()
}

/// `dy·σ(x)·(1 + x·(1 − σ(x)))` in Burn's ops (the default of [`ConvBackend::silu_backward`]).
pub fn composed_silu_backward<B: Backend>(x: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let (x, dy) = (t::<B>(x), t::<B>(dy));
    let s = activation::sigmoid(x.clone());
    let ds = s
        .clone()
        .mul(x.mul(s.neg().add_scalar(1.0)).add_scalar(1.0));
    dy.mul(ds).into_primitive().tensor()
}

/// `x·σ(x)` through [`ConvBackend`] (same values as `burn::tensor::activation::silu`).
pub fn silu<B: ConvBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::silu_forward(
        x.into_primitive().tensor(),
    )))
}
