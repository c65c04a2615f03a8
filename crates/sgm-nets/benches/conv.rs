//! Convolution micro-benchmarks on the CPU test backend (Flex), forward + backward
//! (loss = mean(out²)) on `Autodiff<Flex>`, batch 8, 128 channels, 32×32:
//! * `conv3x3`: one 3×3 conv 128→128 through sgm-conv's extension (the fast kernel, f32
//!   accumulation), the same under `Precision::Exact` (`_exact`: f64 accumulation) and through
//!   Burn's own `conv2d` (what the layers used before);
//! * `conv3x3_fwd`: the same conv, forward only on Flex (no autodiff), both ways;
//! * `stack`: 4 × [conv3x3, GroupNorm(32), SiLU] through the extension;
//! * `groupnorm`: GroupNorm(32) alone, through the extension (fused on Flex) and as Burn's
//!   composed ops (`_composed`, what the layer ran before); `silu`: SiLU alone, through the extension and
//!   Burn's (`_burn`).
//!
//! Runs inside `sgm_conv::in_pool`, as sgm's commands do. `cargo test -p sgm-nets --bench conv` (dev/test profile: dependencies and sgm-conv at
//! opt-level 3). Env `SGM_BENCH_ITERS` (default 5). Prints one `ROW <name> <median s>` line per
//! row for `scripts/bench_vs_pytorch.sh`.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::ops::ConvOptions;
use sgm_nets::layers::init::{conv3x3, group_norm};
use sgm_testkit::{TestAutodiff, device};

type A = TestAutodiff;

fn input(shape: [usize; 4]) -> Tensor<A, 4> {
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 251) as f32 / 125.5 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(x, shape), &device()).require_grad()
}

/// Median wall time of `iters` runs after one warm-up.
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    // as sgm runs computations: on a rayon worker (`sgm_conv::in_pool`)
    sgm_conv::in_pool::<A, _>(rows);
}

fn rows() {
    let iters: usize = std::env::var("SGM_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let d = device();
    println!(
        "conv benches, Autodiff<Flex>, fwd+bwd, {iters} iterations, {} rayon threads",
        rayon_threads()
    );
    let x = input([8, 128, 32, 32]);
    let conv = conv3x3::<A>(128, 128, 1.0, &d);
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let step = |y: Tensor<A, 4>| drop(y.square().mean().backward());

    let fast = time(iters, || {
        step(sgm_conv::conv2d_module(&conv, x.clone()));
    });
    println!("ROW conv3x3 {fast:.4}");
    let exact = time(iters, || {
        sgm_conv::with_precision(sgm_conv::Precision::Exact, || {
            step(sgm_conv::conv2d_module(&conv, x.clone()))
        });
    });
    println!("ROW conv3x3_exact {exact:.4}");
    let burn = time(iters, || {
        let w = conv.weight.val();
        let b = conv.bias.as_ref().map(|b| b.val());
        step(burn::tensor::module::conv2d(x.clone(), w, b, opts.clone()));
    });
    println!("ROW conv3x3_burn {burn:.4}");

    let (conv_in, x_in) = (conv.valid(), x.clone().inner());
    let fwd = time(iters, || {
        drop(sgm_conv::conv2d_module(&conv_in, x_in.clone()));
    });
    println!("ROW conv3x3_fwd {fwd:.4}");
    let fwd_exact = time(iters, || {
        sgm_conv::with_precision(sgm_conv::Precision::Exact, || {
            drop(sgm_conv::conv2d_module(&conv_in, x_in.clone()))
        });
    });
    println!("ROW conv3x3_fwd_exact {fwd_exact:.4}");
    let fwd_burn = time(iters, || {
        let w = conv_in.weight.val();
        let b = conv_in.bias.as_ref().map(|b| b.val());
        drop(burn::tensor::module::conv2d(
            x_in.clone(),
            w,
            b,
            opts.clone(),
        ));
    });
    println!("ROW conv3x3_fwd_burn {fwd_burn:.4}");

    let convs: Vec<_> = (0..4).map(|_| conv3x3::<A>(128, 128, 1.0, &d)).collect();
    let norms: Vec<_> = (0..4).map(|_| group_norm::<A>(32, 128, &d)).collect();
    let stack = time(iters, || {
        let mut h = x.clone();
        for (c, n) in convs.iter().zip(&norms) {
            h = sgm_conv::silu(n.forward(sgm_conv::conv2d_module(c, h)));
        }
        step(h);
    });
    println!("ROW stack {stack:.4}");

    let gn = &norms[0];
    let groupnorm = time(iters, || step(gn.forward(x.clone())));
    println!("ROW groupnorm {groupnorm:.4}");
    let composed = time(iters, || {
        let out = sgm_conv::composed_forward::<A>(
            x.clone().into_primitive().tensor(),
            gn.weight.val().into_primitive().tensor(),
            gn.bias.val().into_primitive().tensor(),
            32,
            gn.epsilon,
        );
        step(Tensor::from_primitive(
            burn::tensor::TensorPrimitive::Float(out.y),
        ));
    });
    println!("ROW groupnorm_composed {composed:.4}");
    let act = time(iters, || step(sgm_conv::silu(x.clone())));
    println!("ROW silu {act:.4}");
    let act_burn = time(iters, || step(silu(x.clone())));
    println!("ROW silu_burn {act_burn:.4}");
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
