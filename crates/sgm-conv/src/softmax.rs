//! Softmax over the last dimension through the backend extension
//! ([`ConvBackend::softmax_forward`] / [`ConvBackend::softmax_backward`]): Burn's composed ops by
//! default (any backend), one fused pass per direction on Flex ([`crate::flex::softmax`]), one
//! graph node under `Autodiff<B>`. Burn's `activation::softmax` builds four nodes (max
//! subtraction, `exp`, sum, division) whose backward — the division's two gradients with a
//! broadcast reduction among them — was ≈ 5 % of DDPM++ nf 32's forward + backward
//! (docs/benchmarks.md); the attention blocks' softmax over `[B, H·W, H·W]` scores is the
//! networks' only one.
//!
//! Math: `y = exp(x − max x) / Σ exp(x − max x)` per row; backward
//! `∂L/∂x = y ⊙ (dy − Σ dy ⊙ y)` per row.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation;
use burn::tensor::ops::FloatTensor;

use crate::ConvBackend;

/// `p` as `[rows, last]`, and its dimensions.
fn rows<B: Backend>(p: FloatTensor<B>) -> (Tensor<B, 2>, Vec<usize>) {
    use burn::tensor::TensorMetadata;
    let dims = p.shape().to_vec();
    let n = *dims
        .last()
        .expect("softmax of a tensor with at least one dimension");
    let m = dims.iter().product::<usize>() / n.max(1);
    let p = B::float_reshape(p, Shape::new([m, n]));
    (Tensor::from_primitive(TensorPrimitive::Float(p)), dims)
}

/// `t` back to `dims`.
fn back<B: Backend>(t: Tensor<B, 2>, dims: Vec<usize>) -> FloatTensor<B> {
    B::float_reshape(t.into_primitive().tensor(), Shape::from(dims))
}

/// Burn's softmax over the last dimension (the default of [`ConvBackend::softmax_forward`]).
pub fn composed_softmax<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let (t, dims) = rows::<B>(x);
    back(activation::softmax(t, 1), dims)
}

/// `y ⊙ (dy − Σ_last dy ⊙ y)` in Burn's ops (the default of [`ConvBackend::softmax_backward`]).
pub fn composed_softmax_backward<B: Backend>(
    y: FloatTensor<B>,
    dy: FloatTensor<B>,
) -> FloatTensor<B> {
    let (y, dims) = rows::<B>(y);
    let (dy, _) = rows::<B>(dy);
    let s = dy.clone().mul(y.clone()).sum_dim(1); // [M, 1]
    back(y.mul(dy.sub(s)), dims)
}

/// Softmax over the last dimension through [`ConvBackend`] (same values as
/// `burn::tensor::activation::softmax(x, D − 1)` up to float32 rounding).
pub fn softmax<B: ConvBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::softmax_forward(
        x.into_primitive().tensor(),
    )))
}
