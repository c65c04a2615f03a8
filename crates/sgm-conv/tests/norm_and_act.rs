//! The fused GroupNorm, SiLU and softmax of the extension (Flex kernels, one `Autodiff` node
//! each) against Burn's composed ops — forward, statistics, and every gradient through the
//! autodiff graph — on the score networks' shapes, with a stated bound; the normalisation's
//! defining property; and the extension's dropout.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation;
use sgm_conv::{ConvBackend, composed_forward, group_norm, silu};
use sgm_testkit::{TestAutodiff, TestBackend};

mod common;
use common::values;

/// Relative bound (of the tensor's largest value): both sides are f32, the fused kernels sum in
/// f64 and in another order.
const BOUND: f64 = if sgm_testkit::GPU { 1e-2 } else { 1e-5 };

/// Values in roughly `[offset − scale, offset + scale]`.
fn rand<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    offset: f32,
    scale: f32,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    let v: Vec<f32> = values(n, seed)
        .into_iter()
        .map(|a| offset + scale * a)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 tensor")
}

fn assert_close(case: &str, what: &str, got: Vec<f32>, want: Vec<f32>) {
    common::assert_close(case, what, got, want, BOUND);
}

fn composed<B: ConvBackend>(
    x: Tensor<B, 4>,
    g: Tensor<B, 1>,
    b: Tensor<B, 1>,
    groups: usize,
) -> Tensor<B, 4> {
    let p = |t: Tensor<B, 1>| t.into_primitive().tensor();
    let out = composed_forward::<B>(x.into_primitive().tensor(), p(g), p(b), groups, 1e-6);
    Tensor::from_primitive(TensorPrimitive::Float(out.y))
}

/// `(shape, groups, input offset, input scale)`: NCSN++ / DDPM++ CIFAR-10 and 256² levels, a
/// one-channel-per-group case, odd sizes, a 1×1 plane, and inputs with a large mean (where the
/// composed f32 ops cancel: that case's forward is checked against an f64 reference only).
const CASES: [([usize; 4], usize, f32, f32); 6] = [
    ([4, 128, 16, 16], 32, 0.0, 1.0),
    ([2, 256, 4, 4], 32, 0.5, 3.0),
    ([3, 6, 5, 7], 3, -2.0, 0.5),
    ([2, 8, 3, 3], 8, 0.0, 1.0),
    ([2, 64, 1, 1], 16, 1.0, 1.0),
    ([2, 32, 8, 8], 8, 100.0, 0.01),
];

/// Group normalisation in f64 on the host (ε = 1e-6), rounded to f32.
fn f64_group_norm(x: &[f32], g: &[f32], b: &[f32], shape: [usize; 4], groups: usize) -> Vec<f32> {
    let [_, c, h, w] = shape;
    let k = c / groups * h * w;
    let mut y = Vec::with_capacity(x.len());
    for (ng, grp) in x.chunks(k).enumerate() {
        let mean = grp.iter().map(|&a| a as f64).sum::<f64>() / k as f64;
        let var = grp.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        let r = 1.0 / (var + 1e-6).sqrt();
        for (i, &v) in grp.iter().enumerate() {
            let ch = (ng % groups) * (c / groups) + i / (h * w);
            y.push(((v as f64 - mean) * r * g[ch] as f64 + b[ch] as f64) as f32);
        }
    }
    y
}

#[test]
fn group_norm_matches_the_composed_ops_forward_and_backward() {
    for (i, (shape, groups, offset, scale)) in CASES.into_iter().enumerate() {
        let case = format!("{shape:?} / {groups} groups");
        let c = shape[1];
        let seed = 10 * i as u64;
        // forward on the plain backend, statistics included
        let x = rand::<TestBackend, 4>(shape, seed, offset, scale);
        let (g, b) = (
            rand::<TestBackend, 1>([c], seed + 1, 1.0, 0.5),
            rand([c], seed + 2, 0.0, 0.5),
        );
        let p = |t: Tensor<TestBackend, 1>| t.into_primitive().tensor();
        let fused = TestBackend::group_norm_forward(
            x.clone().into_primitive().tensor(),
            p(g.clone()),
            p(b.clone()),
            groups,
            1e-6,
        );
        let want =
            composed_forward::<TestBackend>(x.into_primitive().tensor(), p(g), p(b), groups, 1e-6);
        let h = |t| host::<TestBackend, 2>(Tensor::from_primitive(TensorPrimitive::Float(t)));
        let y = host::<TestBackend, 4>(Tensor::from_primitive(TensorPrimitive::Float(fused.y)));
        let input = |s, o, k, shape: &[usize]| {
            values(shape.iter().product(), s)
                .into_iter()
                .map(move |a| o + k * a)
        };
        let reference = f64_group_norm(
            &input(seed, offset, scale, &shape).collect::<Vec<_>>(),
            &input(seed + 1, 1.0, 0.5, &[c]).collect::<Vec<_>>(),
            &input(seed + 2, 0.0, 0.5, &[c]).collect::<Vec<_>>(),
            shape,
            groups,
        );
        assert_close(&case, "y vs f64", y.clone(), reference);
        if offset.abs() / scale > 1e3 {
            continue; // the composed f32 ops lose ~1e-3 to cancellation here
        }
        let want_y = host::<TestBackend, 4>(Tensor::from_primitive(TensorPrimitive::Float(want.y)));
        assert_close(&case, "y", y, want_y);
        assert_close(&case, "mean", h(fused.mean), h(want.mean));
        assert_close(&case, "rstd", h(fused.rstd), h(want.rstd));

        // every gradient through the autodiff graph, loss = Σ y·r
        let grads = |fused: bool| {
            let x = rand::<TestAutodiff, 4>(shape, seed, offset, scale).require_grad();
            let g = rand::<TestAutodiff, 1>([c], seed + 1, 1.0, 0.5).require_grad();
            let b = rand::<TestAutodiff, 1>([c], seed + 2, 0.0, 0.5).require_grad();
            let r = rand::<TestAutodiff, 4>(shape, seed + 3, 0.0, 1.0);
            let y = if fused {
                group_norm(x.clone(), g.clone(), b.clone(), groups, 1e-6)
            } else {
                composed(x.clone(), g.clone(), b.clone(), groups)
            };
            let gr = y.mul(r).sum().backward();
            (
                host(x.grad(&gr).expect("x grad")),
                host(g.grad(&gr).expect("γ grad")),
                host(b.grad(&gr).expect("β grad")),
            )
        };
        let (fx, fg, fb) = grads(true);
        let (cx, cg, cb) = grads(false);
        assert_close(&case, "∂x", fx, cx);
        assert_close(&case, "∂γ", fg, cg);
        assert_close(&case, "∂β", fb, cb);
    }
}

/// The defining property, independent of any implementation: with γ = 1, β = 0 every group of
/// the output has mean 0 and variance σ²/(σ² + ε) ≈ 1; and only `x` tracked still differentiates.
#[test]
fn group_norm_normalises_each_group() {
    let (n, c, groups, hw) = (3, 12, 4, 25);
    let x = rand::<TestAutodiff, 4>([n, c, 5, 5], 7, 3.0, 2.0).require_grad();
    let ones = Tensor::<TestAutodiff, 1>::ones([c], &Default::default());
    let y = group_norm(x.clone(), ones.clone(), ones.zeros_like(), groups, 1e-6);
    let v = host(y.clone());
    let k = c / groups * hw;
    for grp in v.chunks(k) {
        let mean = grp.iter().map(|&a| a as f64).sum::<f64>() / k as f64;
        let var = grp.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "group mean {mean}, var {var}"
        );
    }
    // Σ y is constant in x (each group sums to 0 · K): its gradient vanishes
    let gr = y.sum().backward();
    let gx = host(x.grad(&gr).expect("x grad"));
    assert!(
        gx.iter().all(|g| g.abs() < 1e-5),
        "∂(Σy)/∂x = 0, got {:?}",
        &gx[..4]
    );
}

#[test]
fn silu_matches_burn_forward_and_backward() {
    for (i, (shape, _, offset, scale)) in CASES.into_iter().enumerate() {
        let case = format!("{shape:?}");
        let seed = 100 + i as u64;
        let x = rand::<TestBackend, 4>(shape, seed, offset.clamp(-3.0, 3.0), scale.max(4.0));
        assert_close(
            &case,
            "silu",
            host(silu(x.clone())),
            host(activation::silu(x)),
        );
        let grad = |fused: bool| {
            let x = rand::<TestAutodiff, 4>(shape, seed, offset.clamp(-3.0, 3.0), scale.max(4.0))
                .require_grad();
            let r = rand::<TestAutodiff, 4>(shape, seed + 1, 0.0, 1.0);
            let y = if fused {
                silu(x.clone())
            } else {
                activation::silu(x.clone())
            };
            let gr = y.mul(r).sum().backward();
            host(x.grad(&gr).expect("x grad"))
        };
        assert_close(&case, "∂x", grad(true), grad(false));
    }
}

/// The composed backward methods (what every backend without a fused kernel runs: wgpu, CUDA,
/// NdArray) against the fused Flex kernels, on the same inputs and output gradient.
#[test]
fn composed_backwards_match_the_fused_kernels() {
    use sgm_conv::{composed_backward, composed_silu_backward};
    let p4 = |t: Tensor<TestBackend, 4>| t.into_primitive().tensor();
    let p1 = |t: Tensor<TestBackend, 1>| t.into_primitive().tensor();
    let h4 = |t| host::<TestBackend, 4>(Tensor::from_primitive(TensorPrimitive::Float(t)));
    let h1 = |t| host::<TestBackend, 1>(Tensor::from_primitive(TensorPrimitive::Float(t)));
    for (i, (shape, groups, offset, scale)) in CASES.into_iter().enumerate() {
        if offset.abs() / scale > 1e3 {
            continue; // composed f32 statistics cancel there (see above)
        }
        let case = format!("{shape:?} / {groups} groups");
        let seed = 200 + 10 * i as u64;
        let c = shape[1];
        let x = rand::<TestBackend, 4>(shape, seed, offset, scale);
        let g = rand::<TestBackend, 1>([c], seed + 1, 1.0, 0.5);
        let b = rand::<TestBackend, 1>([c], seed + 2, 0.0, 0.5);
        let dy = rand::<TestBackend, 4>(shape, seed + 3, 0.0, 1.0);
        let stats =
            TestBackend::group_norm_forward(p4(x.clone()), p1(g.clone()), p1(b), groups, 1e-6);
        let fused = TestBackend::group_norm_backward(
            p4(x.clone()),
            p1(g.clone()),
            stats.mean.clone(),
            stats.rstd.clone(),
            p4(dy.clone()),
            groups,
        );
        let composed = composed_backward::<TestBackend>(
            p4(x.clone()),
            p1(g),
            stats.mean,
            stats.rstd,
            p4(dy.clone()),
            groups,
        );
        assert_close(&case, "composed ∂x", h4(composed.x), h4(fused.x));
        assert_close(&case, "composed ∂γ", h1(composed.gamma), h1(fused.gamma));
        assert_close(&case, "composed ∂β", h1(composed.beta), h1(fused.beta));
        let fused = TestBackend::silu_backward(p4(x.clone()), p4(dy.clone()));
        let composed = composed_silu_backward::<TestBackend>(p4(x), p4(dy));
        assert_close(&case, "composed silu ∂x", h4(composed), h4(fused));
    }
}

/// The extension's softmax over the last dimension (fused on Flex, one `Autodiff` node) against
/// Burn's `activation::softmax`, forward and input gradient, on the attention blocks' score
/// shapes `[B, H·W, H·W]` (scores of either sign and size), plus the composed backward method
/// (other backends) against the fused one; both precisions.
#[test]
fn softmax_matches_burn_forward_and_backward() {
    use sgm_conv::{Precision, composed_softmax_backward, softmax, with_precision};
    let shapes: [[usize; 3]; 3] = [[2, 64, 64], [1, 16, 16], [3, 5, 37]];
    for precision in [Precision::Fast, Precision::Exact] {
        for (i, shape) in shapes.into_iter().enumerate() {
            let case = format!("{shape:?}, {precision}");
            let seed = 300 + i as u64;
            let x = rand::<TestBackend, 3>(shape, seed, 0.5, 6.0);
            let fwd = with_precision(precision, || host(softmax(x.clone())));
            assert_close(&case, "softmax", fwd, host(activation::softmax(x, 2)));
            let grad = |fused: bool| {
                let x = rand::<TestAutodiff, 3>(shape, seed, 0.5, 6.0).require_grad();
                let r = rand::<TestAutodiff, 3>(shape, seed + 1, 0.0, 1.0);
                let y = with_precision(precision, || {
                    if fused {
                        softmax(x.clone())
                    } else {
                        activation::softmax(x.clone(), 2)
                    }
                });
                let gr = y.mul(r).sum().backward();
                host(x.grad(&gr).expect("x grad"))
            };
            assert_close(&case, "softmax ∂x", grad(true), grad(false));
            let y = activation::softmax(rand::<TestBackend, 3>(shape, seed, 0.5, 6.0), 2);
            let dy = rand::<TestBackend, 3>(shape, seed + 2, 0.0, 1.0);
            let (yp, dyp) = (y.into_primitive().tensor(), dy.into_primitive().tensor());
            let fused = with_precision(precision, || {
                TestBackend::softmax_backward(yp.clone(), dyp.clone())
            });
            let composed = composed_softmax_backward::<TestBackend>(yp, dyp);
            assert_close(
                &case,
                "composed softmax ∂x",
                host::<TestBackend, 3>(Tensor::from_primitive(TensorPrimitive::Float(composed))),
                host::<TestBackend, 3>(Tensor::from_primitive(TensorPrimitive::Float(fused))),
            );
        }
    }
}

/// Dropout through the extension: on a gradient-tracking backend each value is dropped (0) or
/// kept and scaled by `1/keep`, about `keep` of them kept; the gradient is the mask times the
/// output gradient (one product node); `Backend::seed` repeats a mask, and successive calls
/// draw new ones; on the inner backend (no gradients) and with `p = 0` it is the identity.
#[test]
fn dropout_is_an_inverted_bernoulli_mask_seeded_by_burn() {
    use sgm_conv::dropout;
    let (shape, p) = ([4, 8, 16, 16], 0.25);
    let device = Default::default();
    let x = rand::<TestAutodiff, 4>(shape, 400, 2.0, 0.5).require_grad(); // all > 0
    let run = |seed: u64| {
        TestAutodiff::seed(&device, seed);
        let y = dropout(x.clone(), p);
        let grads = y.clone().sum().backward();
        (host(y), host(x.grad(&grads).expect("x grad")))
    };
    let (y, dx) = run(7);
    let xs = host(x.clone());
    let scale = 1.0 / (1.0 - p) as f32;
    let mut kept = 0usize;
    for ((&yi, &xi), &gi) in y.iter().zip(&xs).zip(&dx) {
        if yi == 0.0 {
            assert_eq!(gi, 0.0);
        } else {
            kept += 1;
            assert!(
                (yi - xi * scale).abs() <= 1e-6 * yi.abs(),
                "{yi} vs {xi}·{scale}"
            );
            assert!((gi - scale).abs() <= 1e-6, "gradient {gi}");
        }
    }
    let n = y.len() as f64;
    let sd = ((1.0 - p) * p / n).sqrt();
    assert!(
        (kept as f64 / n - (1.0 - p)).abs() < 5.0 * sd,
        "kept {kept} of {n}"
    );
    assert_eq!(run(7).0, y, "same seed, same mask");
    assert_ne!(run(8).0, y, "another seed, another mask");
    TestAutodiff::seed(&device, 7);
    let first = host(dropout(x.clone(), p));
    assert_ne!(
        host(dropout(x.clone(), p)),
        first,
        "successive calls draw new masks"
    );
    assert_eq!(host(dropout(x.clone(), 0.0)), xs);
    let inner = x.inner();
    assert_eq!(host(dropout(inner.clone(), p)), host(inner));
}
