//! # sgm-conv — one convolution extension for every Burn backend
//!
//! Burn 0.21's CPU convolution kernels (and its CUDA conv backward) are several times slower than
//! PyTorch's, and convolution is most of a score network's time. This crate puts the 2-D
//! convolution behind one backend extension trait, [`ConvBackend`], the way Burn's
//! `custom-wgpu-kernel` example extends a backend:
//!
//! * every method has Burn's own op as its default (`ModuleOps::conv2d`, `conv2d_x_backward`,
//!   `conv2d_weight_backward`), so a backend without a faster kernel is a one-line `impl`;
//! * `burn::backend::Flex` (CPU) overrides them with a batch-parallel im2col / per-tap GEMM kernel
//!   on `matrixmultiply` (and `gemm` when the batch is smaller than the thread pool), accumulating
//!   in f32 ([`Precision::Fast`], the default) or in f64 so every output is its exact sum rounded
//!   once to f32 ([`Precision::Exact`]: order-independent, which the likelihood's ODE solve needs
//!   for parity), chosen per thread for a scope with [`with_precision`] ([`flex`] module docs);
//! * `Autodiff<B>` runs `B`'s forward and wires its backward to `B`'s
//!   [`ConvBackend::conv2d_backward`] (input and weight gradient in one call), so the fast kernel
//!   is used in training too;
//! * CubeCL backends (wgpu, CUDA) route every matrix product — [`ConvBackend::matmul`] and the
//!   1×1 convolutions — through a fixed CubeCL matmul strategy instead of Burn's autotuned one,
//!   which may pick a kernel that computes wrong products (docs/gpu.md, "The autotune fault");
//!   with feature `cudnn`, f32 convolutions on CUDA run through cuDNN;
//! * `Fusion<B>` queues the convolution and matrix-product methods as custom ops that run `B`'s.
//!
//! The element-wise work between the convolutions goes through the same trait: GroupNorm
//! ([`group_norm`]), SiLU ([`silu`]) and softmax over the last dimension ([`softmax`], the
//! attention blocks') are Burn's composed ops by default, one fused pass per direction on Flex
//! (compiled per instruction set with identical results: `flex::simd`), one graph node under
//! `Autodiff`; dropout masks ([`dropout`]) come from the backend (Flex: a parallel hash keyed from
//! Burn's RNG). [`in_pool`] runs a whole computation where the backend's kernels run best (Flex:
//! on a worker of rayon's pool, so parallel kernels never wait for a sleeping thread to wake).
//!
//! Layers call [`conv2d`] (functional), [`conv2d_module`] (a Burn [`Conv2d`] with its own
//! parameters, so weights and checkpoints are unchanged), [`matmul`], [`linear`],
//! [`group_norm`], [`silu`], [`softmax`] and [`dropout`].
//!
//! Backends implemented: Flex (fast, feature `flex`, default), NdArray (`ndarray`), CubeCL
//! backends (`cubecl`: wgpu, CUDA without fusion) and Fusion (`fusion`: wgpu, CUDA with fusion),
//! and `Autodiff<B>` over any of them.

mod activation;
mod autodiff;
#[cfg(feature = "cubecl")]
mod cube;
#[cfg(feature = "cubecl")]
pub mod cubecl_cache;
#[cfg(feature = "cudnn")]
pub mod cudnn;
mod dropout;
#[cfg(feature = "flex")]
pub mod flex;
#[cfg(feature = "fusion")]
mod fusion_ops;
mod norm;
mod precision;
mod softmax;

pub use activation::{composed_silu, composed_silu_backward, silu};
pub use dropout::{bernoulli_mask, dropout};
pub use norm::{GroupNormGrads, GroupNormOut, composed_backward, composed_forward, group_norm};
pub use precision::{Precision, current_precision, with_precision};
pub use softmax::{composed_softmax, composed_softmax_backward, softmax};

use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{ConvOptions, FloatTensor, PadMode};

/// Which gradients a [`ConvBackend::conv2d_backward`] call must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradsNeeded {
    /// Gradient with respect to the input `x`.
    pub x: bool,
    /// Gradient with respect to the weight.
    pub weight: bool,
}

impl GradsNeeded {
    /// Only `∂L/∂x`.
    pub const INPUT: Self = Self {
        x: true,
        weight: false,
    };
    /// Only `∂L/∂w`.
    pub const WEIGHT: Self = Self {
        x: false,
        weight: true,
    };
}

/// Gradients of a 2-D convolution (`None` where not requested).
#[derive(Debug)]
pub struct ConvGrads<B: Backend> {
    /// `∂L/∂x` `[N, C_in, H, W]`.
    pub x: Option<FloatTensor<B>>,
    /// `∂L/∂w` `[C_out, C_in / groups, kH, kW]`.
    pub weight: Option<FloatTensor<B>>,
}

/// The convolution backend extension. Shapes and options are those of Burn's
/// `ModuleOps::conv2d`: `x` `[N, C_in, H, W]`, `weight` `[C_out, C_in / groups, kH, kW]`,
/// `bias` `[C_out]`, output `[N, C_out, H_out, W_out]`, symmetric padding.
pub trait ConvBackend: Backend {
    /// Forward convolution (cross-correlation, as PyTorch's `F.conv2d`).
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// The requested gradients (what `Autodiff` calls), from the output gradient `output_grad`
    /// `[N, C_out, H_out, W_out]`. The one gradient method a backend overrides: a fast kernel
    /// shares work or synchronisation between the two (one pass over the batch on CPU, one stream
    /// bracket for cuDNN); the default is Burn's two kernels ([`burn_conv2d_grads`]).
    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        needed: GradsNeeded,
    ) -> ConvGrads<Self> {
        burn_conv2d_grads::<Self>(x, weight, output_grad, options, needed)
    }

    /// The bias gradient `Σ_{n, y, x} dy[n, o, y, x]` `[C_out]` of a convolution with output
    /// gradient `output_grad` `[N, C_out, H_out, W_out]` (Burn's `conv2d_bias_backward` by
    /// default, which transposes a copy of `dy` first; Flex sums each plane in place).
    fn conv2d_bias_grad(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv2d_bias_backward(x, bias, output_grad)
    }

    /// Matrix product `lhs · rhs` of `[…, M, K]` and `[…, K, N]` with equal batch dimensions
    /// (sgm's NIN, attention and dense layers, and the 1×1 convolutions of CubeCL backends).
    /// Burn's `float_matmul` by default; CubeCL backends run it with a fixed kernel strategy
    /// instead of the autotuned one (docs/gpu.md, "The autotune fault").
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }

    /// Group normalisation forward ([`group_norm`]): `x` `[N, C, H, W]`, `gamma`, `beta` `[C]`;
    /// the output and the group statistics the backward needs. Burn's composed ops by default
    /// ([`composed_forward`]); Flex runs one fused kernel.
    fn group_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> GroupNormOut<Self> {
        composed_forward::<Self>(x, gamma, beta, groups, eps)
    }

    /// Group normalisation gradients from the output gradient `dy` and the forward's `mean`,
    /// `rstd` `[N, G]` ([`composed_backward`] by default; Flex runs one fused kernel).
    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        groups: usize,
    ) -> GroupNormGrads<Self> {
        composed_backward::<Self>(x, gamma, mean, rstd, dy, groups)
    }

    /// SiLU `x·σ(x)` ([`silu`]; Burn's `activation::silu` by default, one fused pass on Flex).
    fn silu_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_silu::<Self>(x)
    }

    /// SiLU's input gradient `dy·σ(x)·(1 + x·(1 − σ(x)))` ([`composed_silu_backward`] by
    /// default, one fused pass on Flex).
    fn silu_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_silu_backward::<Self>(x, dy)
    }

    /// Softmax over the last dimension ([`softmax`]; Burn's composed ops by default, one fused
    /// pass on Flex).
    fn softmax_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax::<Self>(x)
    }

    /// Softmax's input gradient `y ⊙ (dy − Σ_last dy ⊙ y)` from its output `y`
    /// ([`composed_softmax_backward`] by default, one fused pass on Flex).
    fn softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax_backward::<Self>(y, dy)
    }

    /// A dropout mask of `shape`: `1/keep` with probability `keep`, else 0 ([`dropout`];
    /// Burn's Bernoulli draw by default, a parallel counter-based hash keyed from Burn's RNG on
    /// Flex). Never tracked by autodiff.
    fn dropout_mask(shape: Shape, keep: f64, device: &Self::Device) -> FloatTensor<Self> {
        bernoulli_mask::<Self>(shape, keep, device)
    }

    /// Runs `f` — a whole computation: a training loop, a sampler, a benchmark — where this
    /// backend's kernels run best ([`in_pool`]). Flex runs it on a worker of rayon's global pool
    /// (`sgm_conv::flex::pool`); every other backend calls `f` directly.
    fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// `∂L/∂x` alone ([`ConvBackend::conv2d_backward`] with [`GradsNeeded::INPUT`]).
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_backward(x, weight, output_grad, options, GradsNeeded::INPUT)
            .x
            .expect("input gradient requested")
    }

    /// `∂L/∂w` alone ([`ConvBackend::conv2d_backward`] with [`GradsNeeded::WEIGHT`]).
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_backward(x, weight, output_grad, options, GradsNeeded::WEIGHT)
            .weight
            .expect("weight gradient requested")
    }
}

/// The requested gradients from Burn's own kernels (`ModuleOps::conv2d_x_backward` /
/// `conv2d_weight_backward`): the default of [`ConvBackend::conv2d_backward`] and the fallback
/// of the fast kernels for shapes they do not take.
pub fn burn_conv2d_grads<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
    needed: GradsNeeded,
) -> ConvGrads<B> {
    let gx = needed.x.then(|| {
        B::conv2d_x_backward(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
        )
    });
    let gw = needed
        .weight
        .then(|| B::conv2d_weight_backward(x, weight, output_grad, options));
    ConvGrads { x: gx, weight: gw }
}

/// An autodiff backend whose inner backend has the extension too (training code: forward on
/// `Self`, validation on `Self::InnerBackend`).
pub trait ConvAutodiffBackend: ConvBackend + AutodiffBackend<InnerBackend: ConvBackend> {}

impl<B> ConvAutodiffBackend for B where B: ConvBackend + AutodiffBackend<InnerBackend: ConvBackend> {}

/// Runs `f` — a whole computation on backend `B`: a training loop, a sampler, a benchmark —
/// where `B`'s kernels run best ([`ConvBackend::in_pool`]). On Flex that is a worker thread of
/// rayon's global pool, which makes a small network's forward + backward 8–12 % faster on a
/// 2-core machine (`sgm_conv::flex::pool`); on other backends `f` runs directly. The precision scope
/// ([`with_precision`]) of the caller carries over.
pub fn in_pool<B: ConvBackend, R: Send>(f: impl FnOnce() -> R + Send) -> R {
    B::in_pool(f)
}

/// `F.conv2d(x, weight, bias, stride, padding, dilation, groups)` through [`ConvBackend`].
///
/// # Panics
/// On inconsistent shapes (a programming error), with both shapes in the message.
pub fn conv2d<B: ConvBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    check_shapes(
        &x.dims(),
        &weight.dims(),
        bias.as_ref().map(|b| b.dims()[0]),
        &options,
    );
    let out = B::conv2d_forward(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.map(|b| b.into_primitive().tensor()),
        options,
    );
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `lhs · rhs` through [`ConvBackend::matmul`]: `[…, M, K] · […, K, N] → […, M, N]`, equal
/// batch dimensions (no broadcasting).
///
/// # Panics
/// On shapes that do not fit together (a programming error), with both shapes in the message.
pub fn matmul<B: ConvBackend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
) -> Tensor<B, D> {
    let (l, r) = (lhs.dims(), rhs.dims());
    assert!(
        D >= 2 && l[..D - 2] == r[..D - 2] && l[D - 1] == r[D - 2],
        "matmul: shapes {l:?} and {r:?} do not fit together"
    );
    let out = B::matmul(lhs.into_primitive().tensor(), rhs.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// A Burn [`Linear`] layer on `[B, d_in]` through [`ConvBackend::matmul`] (same result as
/// `linear.forward(x)`: `x · W + b`, `W` stored `[d_in, d_out]`).
pub fn linear<B: ConvBackend>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let y = matmul(x, linear.weight.val()); // [B, d_out]
    match &linear.bias {
        Some(b) => y + b.val().unsqueeze::<2>(),
        None => y,
    }
}

/// A Burn [`Conv2d`] layer applied through [`ConvBackend`] (same result as `conv.forward(x)`).
/// Asymmetric padding (`Explicit` with unequal sides, `Same` with an even kernel) is applied as
/// an explicit zero pad before a symmetric-padding convolution, as Burn's layer does.
pub fn conv2d_module<B: ConvBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let ((top, bottom), (left, right)) = padding_pairs(&conv.padding, [h, w], conv);
    let (x, padding) = if top == bottom && left == right {
        (x, [top, left])
    } else {
        (
            x.pad((left, right, top, bottom), PadMode::Constant(0.0)),
            [0, 0],
        )
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `((top, bottom), (left, right))` of a [`PaddingConfig2d`] (Burn's `calculate_padding_2d_pairs`,
/// which is crate-private): `Same` pads `total = max((⌈in/s⌉ − 1)·s + (k − 1)·d + 1 − in, 0)`,
/// the smaller half first (TensorFlow's rule).
fn padding_pairs<B: Backend>(
    cfg: &PaddingConfig2d,
    input: [usize; 2],
    conv: &Conv2d<B>,
) -> ((usize, usize), (usize, usize)) {
    match cfg {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((*top, *bottom), (*left, *right)),
        PaddingConfig2d::Same => {
            let pair = |i: usize| {
                let (n, s, k, d) = (
                    input[i],
                    conv.stride[i],
                    conv.kernel_size[i],
                    conv.dilation[i],
                );
                let total = ((n.div_ceil(s) - 1) * s + (k - 1) * d + 1).saturating_sub(n);
                (total / 2, total - total / 2)
            };
            (pair(0), pair(1))
        }
    }
}

fn check_shapes(x: &[usize; 4], w: &[usize; 4], bias: Option<usize>, o: &ConvOptions<2>) {
    let ok_channels = x[1] == w[1] * o.groups && w[0].is_multiple_of(o.groups);
    let ok_bias = bias.is_none_or(|b| b == w[0]);
    let fits = (0..2).all(|i| x[2 + i] + 2 * o.padding[i] > o.dilation[i] * (w[2 + i] - 1));
    assert!(
        ok_channels && ok_bias && fits,
        "conv2d: input {x:?}, weight {w:?}, bias {bias:?} and {o:?} do not fit together"
    );
}

#[cfg(feature = "ndarray")]
impl<E, I, Q> ConvBackend for burn::backend::NdArray<E, I, Q>
where
    E: burn::backend::ndarray::FloatNdArrayElement,
    I: burn::backend::ndarray::IntNdArrayElement,
    Q: burn::backend::ndarray::QuantElement,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>>,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<I>>,
{
}

/// CubeCL backends: sgm's routing of [`cube`] (no autotuned matmul — docs/gpu.md), and on the
/// CUDA runtime with feature `cudnn`, f32 convolutions through cuDNN ([`cudnn`]; the runtime is
/// checked at run time, since a separate `impl` for `CudaRuntime` would overlap this one).
#[cfg(feature = "cubecl")]
impl<R, F, I, BT> ConvBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
    Self: Backend<FloatTensorPrimitive = burn_cubecl::tensor::CubeTensor<R>>,
{
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        #[cfg(feature = "cudnn")]
        {
            let others: Vec<_> = bias.iter().collect();
            if let Some(key) = cudnn::applies(&x, &weight, &others, &options) {
                return cudnn::forward(key, x, weight, bias);
            }
        }
        cube::conv2d_forward::<R, F, I, BT>(x, weight, bias, options)
    }

    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        needed: GradsNeeded,
    ) -> ConvGrads<Self> {
        if !needed.x && !needed.weight {
            return ConvGrads {
                x: None,
                weight: None,
            };
        }
        #[cfg(feature = "cudnn")]
        {
            let key = cudnn::applies(&x, &weight, &[&output_grad], &options)
                .filter(|k| output_grad.meta.shape().as_slice() == k.out().as_slice());
            if let Some(key) = key {
                let (dx, dw) = cudnn::backward(key, x, weight, output_grad, needed);
                return ConvGrads { x: dx, weight: dw };
            }
        }
        cube::conv2d_backward::<R, F, I, BT>(x, weight, output_grad, options, needed)
    }

    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        cube::matmul(lhs, rhs)
    }
}
