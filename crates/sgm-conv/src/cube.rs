//! sgm's kernel routing on CubeCL backends (wgpu, CUDA): matrix products never go through
//! Burn-CubeCL's matmul *autotune* (docs/gpu.md, "The autotune fault").
//!
//! CubeCL 0.10's matmul autotune (`burn_cubecl::kernel::matmul::tune`) may pick the
//! double-buffered unit matmul (`Strategy::DoubleUnit`, tunables
//! `matmul_double_unit_{min,max}_tile_size`), which computes wrong products for some shapes on
//! Mesa's lavapipe. The autotuned matmul is reached from sgm's own products (NIN layers,
//! attention, dense layers) and from inside Burn's convolution kernels: the 1×1 convolution
//! (`conv_im2col_1x1`) and the GEMM transposed convolution (`conv_transpose2d_col2im`) that the
//! input gradient's fallback uses. So, on a CubeCL backend:
//!
//! * every product of [`crate::ConvBackend::matmul`] runs with the fixed strategy
//!   `MatmulStrategy::Cube` — CubeCL's `Strategy::Auto`: the cooperative-matrix kernel
//!   (`SimpleCyclicCmma`) where the device has one, else the single-buffered unit kernel
//!   (`SimpleUnit`), never `DoubleUnit`;
//! * a 1×1, stride-1, unpadded convolution (forward, input and weight gradient) is that product
//!   on `[N·H·W, C]` rows ([`conv1x1_forward`], [`conv1x1_backward`]);
//! * other convolutions keep Burn's autotuned forward and weight gradient (their candidates —
//!   direct, implicit GEMM, and the 1×1 im2col that rejects these shapes — hold no autotuned
//!   matmul), and take the input gradient from Burn's *direct* transposed convolution.
//!
//! Burn's kernels with `autotune` off run the same fixed strategies; autotune stays on for every
//! other op (reductions, fused element-wise kernels, convolution forward).

use burn::tensor::ops::conv::calculate_padding_out;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::conv::{ConvTranspose2dStrategy, conv_transpose2d};
use burn_cubecl::kernel::matmul::{MatmulStrategy, matmul as cube_matmul};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use crate::{ConvBackend, ConvGrads, GradsNeeded};

/// `lhs · rhs` with the fixed strategy `MatmulStrategy::Cube` (module docs).
pub(crate) fn matmul<R: CubeRuntime>(lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> CubeTensor<R> {
    let dtype = lhs.dtype;
    let (ls, rs) = (lhs.shape(), rhs.shape());
    cube_matmul(lhs, rhs, None, MatmulStrategy::Cube, dtype)
        .unwrap_or_else(|e| panic!("CubeCL matmul {ls:?} x {rs:?} failed to launch: {e:?}"))
}

/// Whether a convolution is the 1×1 product that [`conv1x1_forward`] computes.
pub(crate) fn is_1x1(weight: &Shape, options: &ConvOptions<2>) -> bool {
    weight[2] == 1
        && weight[3] == 1
        && options.stride == [1, 1]
        && options.padding == [0, 0]
        && options.groups == 1
}

/// `[N, C, H, W]` → `[N·H·W, C]` rows.
fn to_rows<B: ConvBackend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let s = x.shape();
    let rows = B::float_permute(x, &[0, 2, 3, 1]); // [N, H, W, C]
    B::float_reshape(rows, Shape::new([s[0] * s[2] * s[3], s[1]]))
}

/// `[N·H·W, C]` rows → `[N, C, H, W]`.
fn from_rows<B: ConvBackend>(y: FloatTensor<B>, n: usize, h: usize, w: usize) -> FloatTensor<B> {
    let c = y.shape()[1];
    let y = B::float_reshape(y, Shape::new([n, h, w, c])); // [N, H, W, C]
    B::float_permute(y, &[0, 3, 1, 2])
}

/// `[C_out, C_in, 1, 1]` → `[C_out, C_in]`.
fn weight_matrix<B: ConvBackend>(weight: FloatTensor<B>) -> FloatTensor<B> {
    let s = weight.shape();
    B::float_reshape(weight, Shape::new([s[0], s[1]]))
}

/// 1×1 convolution `y[n, :, h, w] = W x[n, :, h, w] + b` as one product on rows.
pub(crate) fn conv1x1_forward<B: ConvBackend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let [n, _, h, w] = dims4(&x);
    let wt = B::float_transpose(weight_matrix::<B>(weight)); // [C_in, C_out]
    let y = B::matmul(to_rows::<B>(x), wt); // [NHW, C_out]
    let y = match bias {
        Some(b) => {
            let c = b.shape()[0];
            B::float_add(y, B::float_reshape(b, Shape::new([1, c])))
        }
        None => y,
    };
    from_rows::<B>(y, n, h, w)
}

/// Gradients of [`conv1x1_forward`]: `∂L/∂x = Wᵀ dy` per pixel, `∂L/∂W = Σ dy xᵀ` over pixels.
pub(crate) fn conv1x1_backward<B: ConvBackend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    needed: GradsNeeded,
) -> ConvGrads<B> {
    let [n, _, h, w] = dims4(&x);
    let wshape = weight.shape();
    let dy = to_rows::<B>(output_grad); // [NHW, C_out]
    let gx = needed.x.then(|| {
        let g = B::matmul(dy.clone(), weight_matrix::<B>(weight)); // [NHW, C_in]
        from_rows::<B>(g, n, h, w)
    });
    let gw = needed.weight.then(|| {
        let g = B::matmul(B::float_transpose(dy), to_rows::<B>(x)); // [C_out, C_in]
        B::float_reshape(g, wshape)
    });
    ConvGrads { x: gx, weight: gw }
}

fn dims4<T: TensorMetadata>(t: &T) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

/// `∂L/∂x` of any convolution by Burn's direct transposed-convolution kernel (no matmul).
fn conv2d_input_grad_direct<R: CubeRuntime>(
    x_shape: &Shape,
    weight: CubeTensor<R>,
    output_grad: CubeTensor<R>,
    o: &ConvOptions<2>,
) -> CubeTensor<R> {
    let (ks, out) = (weight.shape(), output_grad.shape());
    let padding_out = std::array::from_fn(|i| {
        calculate_padding_out(
            ks[2 + i],
            o.stride[i],
            o.padding[i],
            o.dilation[i],
            x_shape[2 + i],
            out[2 + i],
        )
    });
    let options = ConvTransposeOptions::new(o.stride, o.padding, padding_out, o.dilation, o.groups);
    conv_transpose2d(
        output_grad,
        weight,
        None,
        options,
        ConvTranspose2dStrategy::Direct,
    )
    .unwrap_or_else(|e| panic!("CubeCL direct transposed convolution failed: {e:?}"))
}

/// The forward convolution on a CubeCL backend (module docs).
pub(crate) fn conv2d_forward<R, F, I, BT>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    options: ConvOptions<2>,
) -> CubeTensor<R>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
    CubeBackend<R, F, I, BT>: ConvBackend<FloatTensorPrimitive = CubeTensor<R>>,
{
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    if is_1x1(&weight.shape(), &options) {
        conv1x1_forward::<B<R, F, I, BT>>(x, weight, bias)
    } else {
        <B<R, F, I, BT> as burn::tensor::ops::ModuleOps<_>>::conv2d(x, weight, bias, options)
    }
}

/// The convolution gradients on a CubeCL backend (module docs).
pub(crate) fn conv2d_backward<R, F, I, BT>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    output_grad: CubeTensor<R>,
    options: ConvOptions<2>,
    needed: GradsNeeded,
) -> ConvGrads<CubeBackend<R, F, I, BT>>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
    CubeBackend<R, F, I, BT>: ConvBackend<FloatTensorPrimitive = CubeTensor<R>>,
{
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    if is_1x1(&weight.shape(), &options) {
        return conv1x1_backward::<B<R, F, I, BT>>(x, weight, output_grad, needed);
    }
    let gw = needed.weight.then(|| {
        <B<R, F, I, BT> as burn::tensor::ops::ModuleOps<_>>::conv2d_weight_backward(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
        )
    });
    let gx = needed
        .x
        .then(|| conv2d_input_grad_direct(&x.shape(), weight, output_grad, &options));
    ConvGrads { x: gx, weight: gw }
}
