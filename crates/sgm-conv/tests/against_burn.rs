//! The extension against Burn's own convolution on the test backend (Flex by default, so this
//! checks the fast CPU kernel): forward, input gradient and weight gradient through the trait,
//! and the same three plus the bias gradient end to end through `Autodiff`, for every conv
//! shape of the score networks (CIFAR-10 and 256² channel counts, small batches; `common`).
//!
//! Bound on the CPU: `max |fast − burn| ≤ 2e-5 · max |burn|` per tensor. Both are f32 sums of up
//! to `C_in·9 = 2304` products in different orders; the rounding difference grows like
//! `√K · 2⁻²⁴` relative to the largest value (≈ 3e-6 at K = 2304), so 2e-5 leaves room without
//! hiding an indexing error (which shows as O(1)).
//!
//! On a GPU test backend (`--features sgm-testkit/cuda` or `sgm-testkit/cudnn`, where the
//! extension is cuDNN) both sides multiply TF32-rounded operands (10-bit mantissa, relative
//! rounding 2⁻¹¹ ≈ 4.9e-4 per operand; Burn's CUDA conv measured ≈ 1.4e-3 forward and 2e-3 to
//! 5e-3 on gradients against fp32): the bound is then the TF32 level, `1e-2 · max |burn|`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::{ConvOptions, ModuleOps};
use sgm_conv::{ConvBackend, GradsNeeded, conv2d, conv2d_module};
use sgm_testkit::{TestAutodiff, TestBackend, device};

mod common;
use common::{Case, values};

const BOUND: f64 = if sgm_testkit::GPU { 1e-2 } else { 2e-5 };

fn rand<B: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed), shape), &Default::default())
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 tensor")
}

fn assert_close(case: &str, what: &str, got: Vec<f32>, want: Vec<f32>) {
    common::assert_close(case, what, got, want, BOUND);
}

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> burn::tensor::ops::FloatTensor<B> {
    t.into_primitive().tensor()
}

fn tensor<B: Backend, const D: usize>(p: burn::tensor::ops::FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Forward and both gradients through the trait vs Burn's `ModuleOps`, then the autodiff graph.
fn check(c: &Case) {
    type B = TestBackend;
    type A = TestAutodiff;
    let [_, ci, _, _] = c.x;
    let wshape = [c.o, ci, c.k, c.k];
    let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [1, 1], 1);
    let x = rand::<B, 4>(c.x, 1);
    let w = rand::<B, 4>(wshape, 2);
    let b = rand::<B, 1>([c.o], 3);

    let fast = conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone());
    let want = burn_conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone());
    let dy = rand::<B, 4>(want.dims(), 4);
    assert_close(c.name, "forward", host(fast), host(want));

    let grads = B::conv2d_backward(
        prim(x.clone()),
        prim(w.clone()),
        prim(dy.clone()),
        opts.clone(),
        GradsNeeded {
            x: true,
            weight: true,
        },
    );
    let want_dx = B::conv2d_x_backward(
        prim(x.clone()),
        prim(w.clone()),
        prim(dy.clone()),
        opts.clone(),
    );
    let want_dw = B::conv2d_weight_backward(
        prim(x.clone()),
        prim(w.clone()),
        prim(dy.clone()),
        opts.clone(),
    );
    let (dx, dw) = (grads.x.unwrap(), grads.weight.unwrap());
    assert_close(
        c.name,
        "input grad",
        host(tensor::<B, 4>(dx)),
        host(tensor::<B, 4>(want_dx)),
    );
    assert_close(
        c.name,
        "weight grad",
        host(tensor::<B, 4>(dw)),
        host(tensor::<B, 4>(want_dw)),
    );

    // end to end: L = Σ y ⊙ dy, so ∂L/∂y = dy
    let run = |fast: bool| {
        let xa = Tensor::<A, 4>::from_inner(x.clone()).require_grad();
        let wa = Tensor::<A, 4>::from_inner(w.clone()).require_grad();
        let ba = Tensor::<A, 1>::from_inner(b.clone()).require_grad();
        let y = if fast {
            conv2d(xa.clone(), wa.clone(), Some(ba.clone()), opts.clone())
        } else {
            burn_conv2d(xa.clone(), wa.clone(), Some(ba.clone()), opts.clone())
        };
        let g = (y * Tensor::from_inner(dy.clone())).sum().backward();
        let grad = |t: &Tensor<A, 4>| host(t.grad(&g).expect("tracked"));
        (grad(&xa), grad(&wa), host(ba.grad(&g).expect("tracked")))
    };
    let (fx, fw, fb) = run(true);
    let (bx, bw, bb) = run(false);
    assert_close(c.name, "autodiff input grad", fx, bx);
    assert_close(c.name, "autodiff weight grad", fw, bw);
    assert_close(c.name, "autodiff bias grad", fb, bb);
}

#[test]
fn conv3x3_stride1_body_convs() {
    common::BODY.iter().for_each(check);
}

#[test]
fn conv1x1_skip_and_combine_convs() {
    common::SKIP.iter().for_each(check);
}

#[test]
fn stride2_downsampling_convs() {
    common::STRIDE2.iter().for_each(check);
}

#[test]
fn fir_resampling_convs() {
    common::FIR.iter().for_each(check);
}

#[test]
fn input_and_output_convs() {
    common::IN_OUT.iter().for_each(check);
}

#[test]
fn convs_of_the_256px_configs() {
    common::HIRES.iter().for_each(check);
}

#[test]
fn grouped_and_dilated_convs_fall_back_or_match() {
    type B = TestBackend;
    // grouped: Burn's kernel (not the fast path) — same numbers as burn::tensor::module::conv2d
    let x = rand::<B, 4>([2, 8, 9, 9], 5);
    let w = rand::<B, 4>([8, 2, 3, 3], 6);
    let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
    let got = conv2d(x.clone(), w.clone(), None, o.clone());
    assert_close(
        "groups 4",
        "forward",
        host(got),
        host(burn_conv2d(x, w, None, o)),
    );
    // dilation 2, stride 2, padding 2 on an odd size: the fast path's general indexing
    let x = rand::<B, 4>([3, 5, 11, 10], 7);
    let w = rand::<B, 4>([4, 5, 3, 3], 8);
    let o = ConvOptions::new([2, 2], [2, 2], [2, 2], 1);
    let got = conv2d(x.clone(), w.clone(), None, o.clone());
    assert_close(
        "dilated",
        "forward",
        host(got),
        host(burn_conv2d(x, w, None, o)),
    );
}

#[test]
fn conv2d_module_matches_burn_layer_for_every_padding() {
    type B = TestBackend;
    let x = rand::<B, 4>([2, 4, 10, 9], 9);
    for (padding, stride) in [
        (PaddingConfig2d::Explicit(1, 1, 1, 1), 1),
        (PaddingConfig2d::Explicit(0, 1, 2, 0), 1),
        (PaddingConfig2d::Valid, 2),
        (PaddingConfig2d::Same, 2),
        (PaddingConfig2d::Same, 1),
    ] {
        let conv = Conv2dConfig::new([4, 6], [3, 3])
            .with_stride([stride, stride])
            .with_padding(padding.clone())
            .init::<B>(&device());
        let got = conv2d_module(&conv, x.clone());
        let want = conv.forward(x.clone());
        assert_eq!(got.dims(), want.dims(), "{padding:?}");
        assert_close(&format!("{padding:?}"), "layer", host(got), host(want));
    }
}

/// `sgm_conv::matmul` / `linear` against Burn's `matmul` / `Linear::forward`: values and both
/// operand gradients through `Autodiff` (the extension's own backward step), 2-D and batched
/// 3-D (NIN and attention shapes), with transposed-view operands as attention builds them.
#[test]
fn matmul_and_linear_match_burn() {
    type A = TestAutodiff;
    let d = device();
    for (shape_l, shape_r, seed) in [
        ([1, 2 * 24 * 24, 24], [1, 24, 24], 1u64),
        ([2, 144, 16], [2, 16, 144], 2),
        ([3, 5, 7], [3, 7, 2], 3),
    ] {
        // attention multiplies qᵀ, a swapped view: the lhs is a non-contiguous view here
        let [b, m, k] = shape_l;
        let l: Tensor<A, 3> = rand::<A, 3>([b, k, m], seed).to_device(&d).require_grad();
        let r: Tensor<A, 3> = rand::<A, 3>(shape_r, seed + 10)
            .to_device(&d)
            .require_grad();
        let w: Tensor<A, 3> = rand([b, m, shape_r[2]], seed + 20);
        let w = w.to_device(&d);
        let ours = sgm_conv::matmul(l.clone().swap_dims(1, 2), r.clone());
        let burn = l.clone().swap_dims(1, 2).matmul(r.clone());
        let case = format!("matmul {shape_l:?} x {shape_r:?}");
        assert_close(&case, "product", host(ours.clone()), host(burn.clone()));
        let g_ours = (ours * w.clone()).sum().backward();
        let g_burn = (burn * w).sum().backward();
        for (what, t) in [("lhs grad", &l), ("rhs grad", &r)] {
            let a = host(t.grad(&g_ours).expect("grad"));
            let b = host(t.grad(&g_burn).expect("grad"));
            assert_close(&case, what, a, b);
        }
    }
    let lin = burn::nn::LinearConfig::new(16, 32).init::<A>(&d);
    let x: Tensor<A, 2> = rand::<A, 2>([3, 16], 7).to_device(&d);
    assert_close(
        "linear [3, 16] -> 32",
        "output",
        host(sgm_conv::linear(&lin, x.clone())),
        host(lin.forward(x)),
    );
}
