//! cuDNN on a real GPU (feature `cudnn`; needs an NVIDIA GPU and libcudnn 9, so it only builds
//! with the feature and CI never runs it: `scripts/gpu_check.sh` does). For every convolution
//! shape of the networks (`common::all`, the shapes of the CPU test), with bias:
//!
//! * the reference is the CPU (Flex) extension under `Precision::Exact`, whose sums are
//!   accumulated in f64 and rounded once — exact to f32 rounding;
//! * cuDNN is run three ways: on the raw CubeCL backend (`CubeBackend<CudaRuntime>`), under
//!   Fusion (Burn's `Cuda`, the custom ops) and end to end under `Autodiff<Cuda>` (forward,
//!   input, weight and bias gradients of `L = Σ y ⊙ dy`);
//! * in both modes: [`CudnnMode::Deterministic`] (fp32 FMA math, deterministic algorithms) with
//!   bound `1e-4 · max |reference|` — fp32 sums of up to 2304 products, plus the transform error
//!   of Winograd / FFT algorithms, which cuDNN may pick (≈ 1e-5 relative) — and bit-identical
//!   reruns; [`CudnnMode::Fast`] (TF32 tensor cores allowed) with the TF32-level bound
//!   `1e-2 · max |reference|` (operands rounded to a 10-bit mantissa, relative 2⁻¹¹ ≈ 4.9e-4
//!   each, growing with the √K of the sum).
//!
//! The mode is per-device state, so the tests take a lock and never run two modes at once.

#![cfg(feature = "cudnn")]

mod common;

use std::sync::Mutex;

use burn::backend::{Autodiff, Cuda, Flex};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::cuda::{CudaDevice, CudaRuntime};
use common::{Case, values};
use sgm_conv::cudnn::{self, CudnnMode};
use sgm_conv::{ConvBackend, GradsNeeded, conv2d};

type Raw = CubeBackend<CudaRuntime, f32, i32, u8>;
type Fused = Cuda;
type Cpu = Flex;

static MODE: Mutex<()> = Mutex::new(());

fn gpu() -> CudaDevice {
    CudaDevice::new(0)
}

/// The five tensors of one case on the host: x, w, b, dy (values) and the options.
struct Inputs {
    x: TensorData,
    w: TensorData,
    b: TensorData,
    dy: TensorData,
    opts: ConvOptions<2>,
}

fn inputs(c: &Case) -> Inputs {
    let [_, ci, _, _] = c.x;
    let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [1, 1], 1);
    inputs_with(c.x, [c.o, ci, c.k, c.k], opts)
}

/// Inputs of a convolution of `x` `[N, C, H, W]` by `w` `[O, C / groups, kH, kW]`.
fn inputs_with(x: [usize; 4], w: [usize; 4], opts: ConvOptions<2>) -> Inputs {
    let out = |i: usize| {
        (x[2 + i] + 2 * opts.padding[i] - opts.dilation[i] * (w[2 + i] - 1) - 1) / opts.stride[i]
            + 1
    };
    let y = [x[0], w[0], out(0), out(1)];
    let data = |shape: &[usize], seed| {
        let len = shape.iter().product();
        TensorData::new(values(len, seed), shape.to_vec())
    };
    Inputs {
        x: data(&x, 11),
        w: data(&w, 12),
        b: data(&[w[0]], 13),
        dy: data(&y, 14),
        opts,
    }
}

fn host<B: Backend>(p: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(p))
        .into_data()
        .to_vec::<f32>()
        .expect("f32")
}

fn prim<B: Backend, const D: usize>(d: &TensorData, dev: &B::Device) -> FloatTensor<B> {
    Tensor::<B, D>::from_data(d.clone(), dev)
        .into_primitive()
        .tensor()
}

/// Forward (with bias), input gradient and weight gradient through [`ConvBackend`] on `B`.
fn run<B: ConvBackend>(i: &Inputs, dev: &B::Device) -> [Vec<f32>; 3] {
    let y = B::conv2d_forward(
        prim::<B, 4>(&i.x, dev),
        prim::<B, 4>(&i.w, dev),
        Some(prim::<B, 1>(&i.b, dev)),
        i.opts.clone(),
    );
    let g = B::conv2d_backward(
        prim::<B, 4>(&i.x, dev),
        prim::<B, 4>(&i.w, dev),
        prim::<B, 4>(&i.dy, dev),
        i.opts.clone(),
        GradsNeeded {
            x: true,
            weight: true,
        },
    );
    [
        host::<B>(y),
        host::<B>(g.x.expect("dx")),
        host::<B>(g.weight.expect("dw")),
    ]
}

/// Forward, then ∂/∂x, ∂/∂w, ∂/∂b of `Σ y ⊙ dy` through `Autodiff<B>`.
fn run_autodiff<B: ConvBackend>(i: &Inputs, dev: &B::Device) -> [Vec<f32>; 4] {
    let x = Tensor::<Autodiff<B>, 4>::from_data(i.x.clone(), dev).require_grad();
    let w = Tensor::<Autodiff<B>, 4>::from_data(i.w.clone(), dev).require_grad();
    let b = Tensor::<Autodiff<B>, 1>::from_data(i.b.clone(), dev).require_grad();
    let y = conv2d(x.clone(), w.clone(), Some(b.clone()), i.opts.clone());
    let dy = Tensor::<Autodiff<B>, 4>::from_data(i.dy.clone(), dev);
    let out = y.clone().into_data().to_vec::<f32>().expect("f32");
    let g = (y * dy).sum().backward();
    let grad = |t: Tensor<B, 1>| t.into_data().to_vec::<f32>().expect("f32");
    [
        out,
        grad(x.grad(&g).expect("x tracked").flatten(0, 3)),
        grad(w.grad(&g).expect("w tracked").flatten(0, 3)),
        grad(b.grad(&g).expect("b tracked")),
    ]
}

/// `max |got − want| / max |want|`.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    err / scale.max(1e-30)
}

const WHAT: [&str; 4] = ["forward", "input grad", "weight grad", "bias grad"];

/// Every shape, three ways, in `mode`; failures collected and reported together.
fn check_mode(mode: CudnnMode, bound: f64) {
    let _lock = MODE.lock().unwrap_or_else(|e| e.into_inner());
    let dev = gpu();
    cudnn::check(&dev).unwrap_or_else(|e| panic!("{e}"));
    cudnn::set_mode(&dev, mode).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut worst = 0f64;
    // the nets' shapes, then a grouped and a dilated / strided one (not used by the nets)
    let grouped = inputs_with(
        [2, 8, 9, 9],
        [8, 2, 3, 3],
        ConvOptions::new([1, 1], [1, 1], [1, 1], 4),
    );
    let dilated = inputs_with(
        [3, 5, 11, 10],
        [4, 5, 3, 3],
        ConvOptions::new([2, 2], [2, 2], [2, 2], 1),
    );
    let cases = common::all()
        .map(|c| (c.name, inputs(c)))
        .chain([("groups 4", grouped), ("dilation 2 stride 2", dilated)]);
    for (name, i) in cases {
        // exact sums: the reference is the correctly rounded f32 convolution
        let want = sgm_conv::with_precision(sgm_conv::Precision::Exact, || {
            run_autodiff::<Cpu>(&i, &Default::default())
        });
        let raw = run::<Raw>(&i, &dev);
        let fused = run::<Fused>(&i, &dev);
        let auto = run_autodiff::<Fused>(&i, &dev);
        let got = raw
            .iter()
            .map(|v| ("raw", v))
            .zip(&WHAT)
            .chain(fused.iter().map(|v| ("fusion", v)).zip(&WHAT))
            .chain(auto.iter().map(|v| ("autodiff", v)).zip(&WHAT));
        for ((how, v), what) in got {
            let k = WHAT.iter().position(|w| w == what).expect("known");
            let e = rel_err(v, &want[k]);
            worst = worst.max(e);
            if e > bound || e.is_nan() {
                failures.push(format!("{name} [{how}] {what}: {e:.3e} > {bound:e}"));
            }
        }
    }
    println!("cuDNN {mode:?}: worst relative error {worst:.3e} (bound {bound:e})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deterministic_mode_matches_the_fp32_reference_on_every_net_shape() {
    check_mode(CudnnMode::Deterministic, 1e-4);
}

#[test]
fn fast_mode_matches_the_reference_at_tf32_level_on_every_net_shape() {
    check_mode(CudnnMode::Fast, 1e-2);
}

#[test]
fn deterministic_mode_reruns_are_bit_identical() {
    let _lock = MODE.lock().unwrap_or_else(|e| e.into_inner());
    let dev = gpu();
    cudnn::set_mode(&dev, CudnnMode::Deterministic).expect("set mode");
    // the weight gradient is where non-deterministic algorithms use atomics
    let i = inputs(&common::BODY[0]);
    let a = run::<Fused>(&i, &dev);
    let b = run::<Fused>(&i, &dev);
    for k in 0..3 {
        assert!(a[k] == b[k], "{} differs between two runs", WHAT[k]);
    }
    cudnn::set_mode(&dev, CudnnMode::Fast).expect("set mode");
}

#[test]
fn unsupported_inputs_fall_back_to_burn() {
    let _lock = MODE.lock().unwrap_or_else(|e| e.into_inner());
    let dev = gpu();
    // f16 is not on the cuDNN path: Burn's kernel, same numbers as Burn's conv2d
    let x = Tensor::<Fused, 4>::from_data(
        TensorData::new(values(2 * 4 * 8 * 8, 1), [2, 4, 8, 8]),
        &dev,
    )
    .cast(burn::tensor::DType::F16);
    let w =
        Tensor::<Fused, 4>::from_data(TensorData::new(values(4 * 4 * 9, 2), [4, 4, 3, 3]), &dev)
            .cast(burn::tensor::DType::F16);
    let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let got = conv2d(x.clone(), w.clone(), None, o.clone());
    let want = burn::tensor::module::conv2d(x, w, None, o);
    let (got, want) = (
        got.cast(burn::tensor::DType::F32)
            .into_data()
            .to_vec::<f32>()
            .expect("f32"),
        want.cast(burn::tensor::DType::F32)
            .into_data()
            .to_vec::<f32>()
            .expect("f32"),
    );
    assert!(
        rel_err(&got, &want) < 1e-6,
        "f16 fallback differs from Burn"
    );
}
