//! Group normalisation through the backend extension ([`ConvBackend::group_norm_forward`] /
//! [`ConvBackend::group_norm_backward`]): Burn's composed tensor ops by default (any backend),
//! one fused kernel per direction on Flex ([`crate::flex::norm`]), and for `Autodiff<B>` one
//! graph node whose backward is `B`'s [`ConvBackend::group_norm_backward`] — instead of the ≈ 12
//! element-wise nodes (and passes over the activation) of the composed form.
//!
//! Math (PyTorch's `F.group_norm`, biased variance): over each group `g` of `C/G` channels of a
//! sample, `K = C/G·H·W` values, `μ = Σx/K`, `σ² = Σ(x−μ)²/K`, `r = 1/√(σ²+ε)`, `x̂ = (x−μ)·r`,
//! `y = x̂·γ_c + β_c`. Backward, with `d = dy·γ_c`: `∂β_c = Σ dy`, `∂γ_c = Σ dy·x̂`,
//! `∂x = r·(d − mean_g(d) − x̂·mean_g(d·x̂))`.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;

use crate::ConvBackend;

/// Forward result: `y` `[N, C, H, W]` and the statistics the backward needs, `mean` and
/// `rstd = 1/√(σ²+ε)`, both `[N, G]`.
#[derive(Debug)]
pub struct GroupNormOut<B: Backend> {
    /// Normalised, scaled and shifted output.
    pub y: FloatTensor<B>,
    /// Group means `[N, G]`.
    pub mean: FloatTensor<B>,
    /// Reciprocal group standard deviations `[N, G]`.
    pub rstd: FloatTensor<B>,
}

/// Gradients of a group normalisation.
#[derive(Debug)]
pub struct GroupNormGrads<B: Backend> {
    /// `∂L/∂x` `[N, C, H, W]`.
    pub x: FloatTensor<B>,
    /// `∂L/∂γ` `[C]`.
    pub gamma: FloatTensor<B>,
    /// `∂L/∂β` `[C]`.
    pub beta: FloatTensor<B>,
}

fn t<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn p<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// The composed forward (the default of [`ConvBackend::group_norm_forward`]).
pub fn composed_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    eps: f64,
) -> GroupNormOut<B> {
    let x: Tensor<B, 4> = t(x);
    let [n, c, h, w] = x.dims();
    let k = c / groups * h * w;
    let xg = x.reshape([n, groups, k]); // [N, G, K]
    let mean = xg.clone().sum_dim(2).div_scalar(k as f64); // [N, G, 1]
    let xc = xg.sub(mean.clone());
    let var = xc.clone().square().sum_dim(2).div_scalar(k as f64); // [N, G, 1]
    let std = var.add_scalar(eps).sqrt(); // [N, G, 1]
    let xn = xc.div(std.clone()).reshape([n * c, h * w]); // [NC, HW]
    let per_sample = |v: Tensor<B, 1>| v.unsqueeze_dim::<2>(0).expand([n, c]).reshape([n * c, 1]);
    let y = xn
        .mul(per_sample(t(gamma)))
        .add(per_sample(t(beta)))
        .reshape([n, c, h, w]);
    GroupNormOut {
        y: p(y),
        mean: p(mean.reshape([n, groups])),
        rstd: p(std.recip().reshape([n, groups])),
    }
}

/// The composed backward (the default of [`ConvBackend::group_norm_backward`]).
pub fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    rstd: FloatTensor<B>,
    dy: FloatTensor<B>,
    groups: usize,
) -> GroupNormGrads<B> {
    let x: Tensor<B, 4> = t(x);
    let [n, c, h, w] = x.dims();
    let k = c / groups * h * w;
    let (mean, rstd): (Tensor<B, 3>, Tensor<B, 3>) = (
        t::<B, 2>(mean).reshape([n, groups, 1]),
        t::<B, 2>(rstd).reshape([n, groups, 1]),
    );
    let xhat = x.reshape([n, groups, k]).sub(mean).mul(rstd.clone()); // [N, G, K]
    let dy: Tensor<B, 3> = t::<B, 4>(dy).reshape([n, c, h * w]); // [N, C, HW]
    let xhat_c = xhat.clone().reshape([n, c, h * w]);
    let dbeta = dy.clone().sum_dim(2).sum_dim(0).reshape([c]);
    let dgamma = dy.clone().mul(xhat_c).sum_dim(2).sum_dim(0).reshape([c]);
    let gamma: Tensor<B, 1> = t(gamma);
    let d = dy.mul(gamma.reshape([1, c, 1])).reshape([n, groups, k]); // dy·γ [N, G, K]
    let m1 = d.clone().mean_dim(2); // [N, G, 1]
    let m2 = d.clone().mul(xhat.clone()).mean_dim(2); // [N, G, 1]
    let dx = d.sub(m1).sub(xhat.mul(m2)).mul(rstd).reshape([n, c, h, w]);
    GroupNormGrads {
        x: p(dx),
        gamma: p(dgamma),
        beta: p(dbeta),
    }
}

/// PyTorch's `F.group_norm(x, groups, γ, β, ε)` through [`ConvBackend`]: `x` `[N, C, H, W]`,
/// `γ`, `β` `[C]`.
///
/// # Panics
/// When `C` is not a multiple of `groups` or `γ`, `β` are not `[C]` (a programming error).
pub fn group_norm<B: ConvBackend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<B, 4> {
    let c = x.dims()[1];
    assert!(
        groups > 0 && c.is_multiple_of(groups) && gamma.dims() == [c] && beta.dims() == [c],
        "group_norm: input {:?}, {groups} groups, γ {:?}, β {:?} do not fit together",
        x.dims(),
        gamma.dims(),
        beta.dims()
    );
    let out = B::group_norm_forward(p(x), p(gamma), p(beta), groups, eps);
    t(out.y)
}
