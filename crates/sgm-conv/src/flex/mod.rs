//! [`ConvBackend`] for `burn::backend::Flex`: float32, `groups = 1` convolutions run on
//! [`kernel`] (batch-parallel im2col + GEMM on `matrixmultiply` / `gemm`, 1×1 convs as plain matrix
//! products, both gradients in one parallel pass over the batch, sums accumulated in f32 or — under
//! [`Precision::Exact`] — in f64 and rounded once to f32). Other dtypes and grouped convolutions
//! use Burn's Flex kernels. GroupNorm, SiLU and softmax run fused kernels ([`norm`], [`act`],
//! [`softmax`]) compiled per instruction set ([`simd`]); dropout masks are a parallel hash
//! ([`dropout`]); [`pool`] runs whole computations on a rayon worker.

pub mod act;
pub mod dropout;
pub mod kernel;
pub mod norm;
pub mod pool;
pub mod simd;
pub mod softmax;

/// A `Vec<f32>` of length `n` filled by `fill` without zeroing it first (zeroing a freshly
/// recycled activation-sized block was ≈ 13 % of a small network's forward: docs/benchmarks.md).
///
/// # Safety
/// `fill` must write every one of the `n` elements of the slice it is given.
pub(crate) unsafe fn filled(
    n: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: `fill` wrote all `n` elements (the caller's contract).
    unsafe { v.set_len(n) };
    v
}

use burn::tensor::TensorData;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, TensorMetadata};
use burn_flex::{Flex, FlexTensor};

use crate::{
    ConvBackend, ConvGrads, GradsNeeded, GroupNormGrads, GroupNormOut, Precision,
    burn_conv2d_grads, composed_backward, composed_forward, composed_silu, composed_silu_backward,
    composed_softmax, composed_softmax_backward, current_precision,
};
use kernel::Geometry;

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// The fast kernel's geometry when it applies (f32 everywhere, groups = 1).
fn fast_geometry(
    x: &FlexTensor,
    w: &FlexTensor,
    others: &[&FlexTensor],
    o: &ConvOptions<2>,
) -> Option<Geometry> {
    let f32s = [x, w].iter().chain(others).all(|t| t.dtype() == DType::F32);
    if !f32s || x.shape().num_dims() != 4 || w.shape().num_dims() != 4 {
        return None;
    }
    Geometry::new(dims4(x), dims4(w), o)
}

/// Contiguous f32 values of `t` (copies only a non-contiguous view).
fn values(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("contiguous f32 tensor (checked by fast_geometry)")
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// The fused group-norm kernel's geometry when it applies (f32, `x` 4-D, `C` a multiple of
/// `groups`, `[C]` parameters).
fn norm_geometry(
    x: &FlexTensor,
    params: &[&FlexTensor],
    groups: usize,
) -> Option<norm::NormGeometry> {
    let f32s = std::iter::once(x)
        .chain(params.iter().copied())
        .all(|t| t.dtype() == DType::F32);
    if !f32s || x.shape().num_dims() != 4 {
        return None;
    }
    let [n, c, h, w] = dims4(x);
    let ok = groups > 0
        && c.is_multiple_of(groups)
        && params
            .iter()
            .all(|t| t.shape().num_dims() == 1 && t.shape()[0] == c);
    (ok && n * c * h * w > 0).then_some(norm::NormGeometry {
        n,
        c,
        hw: h * w,
        groups,
    })
}

impl ConvBackend for Flex {
    fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        pool::in_pool(f)
    }

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let others: Vec<&FlexTensor> = bias.iter().collect();
        let Some(g) = fast_geometry(&x, &weight, &others, &options) else {
            return <Flex as burn::tensor::ops::ModuleOps<Flex>>::conv2d(x, weight, bias, options);
        };
        let (x, weight, bias) = (values(&x), values(&weight), bias.as_ref().map(values));
        let (x, w, b) = (slice(&x), slice(&weight), bias.as_ref().map(slice));
        let y = match current_precision() {
            Precision::Fast => kernel::forward::<f32>(&g, x, w, b),
            Precision::Exact => kernel::forward::<f64>(&g, x, w, b),
        };
        tensor(y, [g.n, g.o, g.ho, g.wo])
    }

    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        needed: GradsNeeded,
    ) -> ConvGrads<Self> {
        let fast = fast_geometry(&x, &weight, &[&output_grad], &options)
            .filter(|g| dims4(&output_grad) == [g.n, g.o, g.ho, g.wo]);
        let Some(g) = fast else {
            return burn_conv2d_grads::<Flex>(x, weight, output_grad, options, needed);
        };
        let wshape = dims4(&weight);
        let (x, weight, dy) = (values(&x), values(&weight), values(&output_grad));
        let (x, w, dy) = (slice(&x), slice(&weight), slice(&dy));
        let (dx, dw) = match current_precision() {
            Precision::Fast => kernel::backward::<f32>(&g, x, w, dy, needed.x, needed.weight),
            Precision::Exact => kernel::backward::<f64>(&g, x, w, dy, needed.x, needed.weight),
        };
        ConvGrads {
            x: dx.map(|v| tensor(v, [g.n, g.c, g.h, g.w])),
            weight: dw.map(|v| tensor(v, wshape)),
        }
    }

    fn group_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> GroupNormOut<Self> {
        let Some(g) = norm_geometry(&x, &[&gamma, &beta], groups) else {
            return composed_forward::<Flex>(x, gamma, beta, groups, eps);
        };
        let shape = dims4(&x);
        let (x, gamma, beta) = (values(&x), values(&gamma), values(&beta));
        let (y, mean, rstd) = norm::forward(&g, slice(&x), slice(&gamma), slice(&beta), eps);
        GroupNormOut {
            y: tensor(y, shape),
            mean: tensor(mean, [g.n, groups]),
            rstd: tensor(rstd, [g.n, groups]),
        }
    }

    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        groups: usize,
    ) -> GroupNormGrads<Self> {
        let fast = norm_geometry(&x, &[&gamma], groups)
            .filter(|_| dy.shape() == x.shape() && rstd.dtype() == DType::F32);
        let Some(g) = fast else {
            return composed_backward::<Flex>(x, gamma, mean, rstd, dy, groups);
        };
        let shape = dims4(&x);
        let (x, gamma, dy) = (values(&x), values(&gamma), values(&dy));
        let rstd = values(&rstd);
        let (dx, dgamma, dbeta) =
            norm::backward(&g, slice(&x), slice(&gamma), slice(&rstd), slice(&dy));
        GroupNormGrads {
            x: tensor(dx, shape),
            gamma: tensor(dgamma, [g.c]),
            beta: tensor(dbeta, [g.c]),
        }
    }

    fn dropout_mask(
        shape: burn::tensor::Shape,
        keep: f64,
        device: &Self::Device,
    ) -> FloatTensor<Self> {
        use burn::tensor::ops::FloatTensorOps;
        // the hash key: two uniforms from Burn's RNG (so `Backend::seed` fixes the masks)
        let draw = Flex::float_random(
            burn::tensor::Shape::new([2]),
            burn::tensor::Distribution::Default,
            device,
            burn::tensor::FloatDType::F32,
        );
        let draw = values(&draw);
        let [a, b] = [0, 1].map(|i| u64::from(slice(&draw)[i].to_bits()));
        let key = (a << 32) | b;
        let n = shape.num_elements();
        FlexTensor::from_data(TensorData::new(dropout::mask(n, keep, key), shape))
    }

    fn softmax_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.shape();
        let n = shape.last().copied().unwrap_or(0);
        if x.dtype() != DType::F32 || n == 0 || shape.num_elements() == 0 {
            return composed_softmax::<Flex>(x);
        }
        let x = values(&x);
        let y = softmax::forward(slice(&x), n, current_precision());
        FlexTensor::from_data(TensorData::new(y, shape))
    }

    fn softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = y.shape();
        let n = shape.last().copied().unwrap_or(0);
        let f32s = y.dtype() == DType::F32 && dy.dtype() == DType::F32;
        if !f32s || n == 0 || shape.num_elements() == 0 || dy.shape() != shape {
            return composed_softmax_backward::<Flex>(y, dy);
        }
        let (y, dy) = (values(&y), values(&dy));
        let dx = softmax::backward(slice(&y), slice(&dy), n, current_precision());
        FlexTensor::from_data(TensorData::new(dx, shape))
    }

    fn silu_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return composed_silu::<Flex>(x);
        }
        let shape = x.shape();
        let x = values(&x);
        FlexTensor::from_data(TensorData::new(act::forward(slice(&x)), shape))
    }

    fn silu_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || dy.dtype() != DType::F32 || x.shape() != dy.shape() {
            return composed_silu_backward::<Flex>(x, dy);
        }
        let shape = x.shape();
        let (x, dy) = (values(&x), values(&dy));
        FlexTensor::from_data(TensorData::new(act::backward(slice(&x), slice(&dy)), shape))
    }

    fn conv2d_bias_grad(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if output_grad.dtype() != DType::F32 || output_grad.shape().num_dims() != 4 {
            return <Flex as burn::tensor::ops::ModuleOps<Flex>>::conv2d_bias_backward(
                x,
                bias,
                output_grad,
            );
        }
        let [n, o, h, w] = dims4(&output_grad);
        let dy = values(&output_grad);
        tensor(kernel::bias_grad(slice(&dy), n, o, h * w), [o])
    }
}
