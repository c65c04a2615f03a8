//! Reference initialisers (`layers.py: variance_scaling / default_init`) and the conv, dense and
//! GroupNorm constructors of the reference (`ddpm_conv3x3`, `ddpm_conv1x1`, `nn.Linear` with
//! `default_init`, `nn.GroupNorm(eps = 1e-6)`). Parameters are lazy (no allocation until used or
//! loaded), so building a full-size model only to count its parameters is cheap.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation;

use sgm_conv::ConvBackend;

use crate::config::Nonlinearity;

/// Bound of `default_init(scale)` = `variance_scaling(scale, 'fan_avg', 'uniform')`:
/// `sqrt(3 · scale / ((fan_in + fan_out) / 2))`, with the reference's `scale = 0 → 1e-10`.
pub fn default_init_bound(scale: f64, fan_in: usize, fan_out: usize) -> f64 {
    let scale = if scale == 0.0 { 1e-10 } else { scale };
    (3.0 * scale / ((fan_in + fan_out) as f64 / 2.0)).sqrt()
}

/// Lazy `U(-bound, bound)` parameter.
pub fn uniform_param<B: Backend, const D: usize>(
    shape: [usize; D],
    bound: f64,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
    .init(shape, device)
}

/// Lazy zero parameter (reference zero-initialised biases).
pub fn zeros_param<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Initializer::Zeros.init(shape, device)
}

/// `k × k` convolution, stride `stride`, symmetric zero padding `pad`, weight `default_init(init_scale)`,
/// bias 0 (reference `ddpm_conv3x3` / `ddpm_conv1x1`).
pub fn conv<B: Backend>(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    init_scale: f64,
    device: &B::Device,
) -> Conv2d<B> {
    let bound = default_init_bound(init_scale, c_in * k * k, c_out * k * k);
    let mut c = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_initializer(Initializer::Uniform {
            min: -bound,
            max: bound,
        })
        .init::<B>(device);
    c.bias = Some(zeros_param([c_out], device));
    c
}

/// `conv3x3(c_in, c_out, init_scale)`, padding 1.
pub fn conv3x3<B: Backend>(c_in: usize, c_out: usize, init_scale: f64, d: &B::Device) -> Conv2d<B> {
    conv(c_in, c_out, 3, 1, 1, init_scale, d)
}

/// `conv1x1(c_in, c_out, init_scale)`.
pub fn conv1x1<B: Backend>(c_in: usize, c_out: usize, init_scale: f64, d: &B::Device) -> Conv2d<B> {
    conv(c_in, c_out, 1, 1, 0, init_scale, d)
}

/// `nn.Linear(d_in, d_out)` with weight `default_init()` and bias 0. Burn stores the weight
/// `[d_in, d_out]` (PyTorch: `[d_out, d_in]`); the weight loaders transpose.
pub fn dense<B: Backend>(d_in: usize, d_out: usize, device: &B::Device) -> Linear<B> {
    let bound = default_init_bound(1.0, d_in, d_out);
    let mut l = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Uniform {
            min: -bound,
            max: bound,
        })
        .init::<B>(device);
    l.bias = Some(zeros_param([d_out], device));
    l
}

/// `nn.GroupNorm(num_groups = min(C / 4, 32), C, eps = 1e-6)` (NCSN++ layers).
pub fn group_norm_pp<B: Backend>(c: usize, device: &B::Device) -> GroupNorm<B> {
    group_norm((c / 4).clamp(1, 32), c, device)
}

/// `nn.GroupNorm(groups, C, eps = 1e-6)`.
pub fn group_norm<B: Backend>(groups: usize, c: usize, device: &B::Device) -> GroupNorm<B> {
    GroupNorm {
        weight: Initializer::Ones.init([c], device),
        bias: zeros_param([c], device),
        num_groups: groups,
        epsilon: 1e-6,
    }
}

/// `nn.GroupNorm` (affine). Same math as Burn's `GroupNorm`, but the per-channel affine map is
/// applied as a per-row scalar on `[B·C, H·W]`, which Flex runs on its SIMD broadcast path
/// (a `[1, C, 1, 1]` broadcast falls back to a scalar strided loop).
#[derive(Module, Debug)]
pub struct GroupNorm<B: Backend> {
    /// Scale γ `[C]` (reference `weight`).
    pub weight: Param<Tensor<B, 1>>,
    /// Shift β `[C]` (reference `bias`).
    pub bias: Param<Tensor<B, 1>>,
    /// Number of groups.
    pub num_groups: usize,
    /// ε.
    pub epsilon: f64,
}

impl<B: ConvBackend> GroupNorm<B> {
    /// `(x − mean_g) / sqrt(var_g + ε) · γ_c + β_c` over groups of channels (biased variance),
    /// through sgm-conv's extension (`sgm_conv::group_norm`: one fused kernel per direction on
    /// Flex, Burn's composed ops elsewhere).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        sgm_conv::group_norm(
            x,
            self.weight.val(),
            self.bias.val(),
            self.num_groups,
            self.epsilon,
        )
    }
}

/// Reference `get_act(config)`.
pub fn act<B: ConvBackend, const D: usize>(x: Tensor<B, D>, kind: Nonlinearity) -> Tensor<B, D> {
    match kind {
        // through sgm-conv (one fused pass per direction on Flex)
        Nonlinearity::Swish => sgm_conv::silu(x),
        Nonlinearity::Relu => activation::relu(x),
        Nonlinearity::Lrelu => activation::leaky_relu(x, 0.2),
        // ELU(x) = x for x > 0, exp(x) − 1 otherwise
        Nonlinearity::Elu => {
            let neg = x.clone().clamp_max(0.0).exp().sub_scalar(1.0);
            let mask = x.clone().greater_elem(0.0);
            neg.mask_where(mask, x)
        }
    }
}
