//! GPU figures of issue 16 (conv, stack, networks and train steps at b128), on the test
//! backend (Burn's `Cuda` with sgm-conv's cuDNN convolutions when built with
//! `--features sgm-testkit/cudnn`; `scripts/gpu_check.sh` builds and runs it on a GPU machine).
//! Sections (env `SGM_BENCH_SECTIONS`, default `conv,stack,nets`); the CPU-vs-GPU agreement of
//! the full-size networks is `crates/sgm-nets/tests/backend_grid.rs` with
//! `SGM_GRID_ONLY=official` (the one CPU-vs-GPU comparison):
//!
//! * `conv`: conv3x3 128→128 on `[B, 128, 32, 32]`: forward, input gradient (bwd-data), weight
//!   gradient (bwd-weight) and forward + backward through sgm-conv's extension, and the same
//!   through Burn's own ops (`_burn` rows);
//! * `stack`: 4 × [conv3x3 128→128, GroupNorm(32), SiLU] forward + backward, both ways;
//! * `nets`: NCSN++ cont. deep (`ve/cifar10_ncsnpp_deep_continuous`) and DDPM++ cont.
//!   (`vp/cifar10_ddpmpp_continuous`): forward (inner backend) and one real training step
//!   (`Stepper::train_step`: loss, backward, Adam with warm-up and clipping, EMA).
//!
//! Env: `SGM_BENCH_BATCH` (default 128), `SGM_BENCH_ITERS` (timed runs, default 10, after 3
//! warm-ups that absorb JIT, autotune and `cudnnFind`), `SGM_BENCH_BURN_ROWS=0` (skip the `_burn`
//! rows: on a fresh autotune cache Burn's conv autotune compiles dozens of candidate kernels per
//! shape, minutes in all). Every timed run ends with the backend's
//! `sync`. Prints `ROW <name> <median ms> <min ms>`; with `SGM_BENCH_OUT` set, also appends the
//! rows to that file.

use std::io::Write as _;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation::silu;
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use sde_core::{Labels, ScoreModel};
use sgm_config::ExperimentConfig;
use sgm_conv::ConvBackend;
use sgm_nets::layers::init::{conv3x3, group_norm};
use sgm_testkit::{TestAutodiff, TestBackend, device};
use sgm_train::{Stepper, TrainConfig, TrainState};

type G = TestBackend;
type A = TestAutodiff;

const NETS: [(&str, &str); 2] = [
    ("ncsnpp_deep", "ve/cifar10_ncsnpp_deep_continuous"),
    ("ddpmpp", "vp/cifar10_ddpmpp_continuous"),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Rows to stdout and, with `SGM_BENCH_OUT`, to that file.
struct Report {
    file: Option<std::fs::File>,
}

impl Report {
    fn line(&mut self, s: &str) {
        println!("{s}");
        if let Some(f) = &mut self.file {
            writeln!(f, "{s}").expect("write SGM_BENCH_OUT");
        }
    }
}

fn sync() {
    G::sync(&device()).expect("backend sync");
}

/// `(median, min)` in ms of `iters` runs after `warm` warm-ups, each ending with a sync.
fn time(warm: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warm {
        f();
        sync();
    }
    let mut t: Vec<f64> = (0..iters.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            sync();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    (t[t.len() / 2], t[0])
}

fn input<B: Backend>(shape: [usize; 4], seed: usize) -> Tensor<B, 4> {
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| (((i + seed) * 7919) % 251) as f32 / 125.5 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(x, shape), &Default::default())
}

fn labels<B: Backend>(b: usize) -> Labels<B> {
    let s: Vec<f32> = (0..b).map(|i| 0.01 + (i % 16) as f32 * 3.0).collect();
    Labels::Float(Tensor::from_data(
        TensorData::new(s, [b]),
        &Default::default(),
    ))
}

fn prim<B: Backend>(t: Tensor<B, 4>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn drop_prim<B: Backend>(p: FloatTensor<B>) {
    drop(Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(p)));
}

fn conv_rows(b: usize, warm: usize, iters: usize, burn_rows: bool, report: &mut Report) {
    let d = device();
    let x = input::<G>([b, 128, 32, 32], 1);
    let w = input::<G>([128, 128, 3, 3], 2).mul_scalar(0.03);
    let dy = input::<G>([b, 128, 32, 32], 3);
    let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let mut row = |name: &str, f: &mut dyn FnMut()| {
        let (med, min) = time(warm, iters, f);
        report.line(&format!("ROW {name} {med:.3} {min:.3}"));
    };
    let (px, pw, pdy) = (|| prim(x.clone()), || prim(w.clone()), || prim(dy.clone()));
    row("conv_fwd", &mut || {
        drop_prim::<G>(G::conv2d_forward(px(), pw(), None, o.clone()))
    });
    row("conv_bwd_data", &mut || {
        drop_prim::<G>(G::conv2d_input_grad(px(), pw(), pdy(), o.clone()))
    });
    row("conv_bwd_weight", &mut || {
        drop_prim::<G>(G::conv2d_weight_grad(px(), pw(), pdy(), o.clone()))
    });
    if burn_rows {
        row("conv_fwd_burn", &mut || {
            drop_prim::<G>(G::conv2d(px(), pw(), None, o.clone()))
        });
        row("conv_bwd_data_burn", &mut || {
            drop_prim::<G>(G::conv2d_x_backward(px(), pw(), pdy(), o.clone()))
        });
        row("conv_bwd_weight_burn", &mut || {
            drop_prim::<G>(G::conv2d_weight_backward(px(), pw(), pdy(), o.clone()))
        });
    }
    let conv = conv3x3::<A>(128, 128, 1.0, &d);
    let xa = Tensor::<A, 4>::from_inner(x.clone()).require_grad();
    let dya = Tensor::<A, 4>::from_inner(dy.clone());
    row("conv_fwdbwd", &mut || {
        let y = sgm_conv::conv2d_module(&conv, xa.clone());
        drop((y * dya.clone()).sum().backward());
    });
    if burn_rows {
        row("conv_fwdbwd_burn", &mut || {
            let y = conv.forward(xa.clone());
            drop((y * dya.clone()).sum().backward());
        });
    }
}

fn stack_rows(b: usize, warm: usize, iters: usize, burn_rows: bool, report: &mut Report) {
    let d = device();
    let x = Tensor::<A, 4>::from_inner(input::<G>([b, 128, 32, 32], 4)).require_grad();
    let convs: Vec<_> = (0..4).map(|_| conv3x3::<A>(128, 128, 1.0, &d)).collect();
    let norms: Vec<_> = (0..4).map(|_| group_norm::<A>(32, 128, &d)).collect();
    let ways: &[(&str, bool)] = if burn_rows {
        &[("stack", true), ("stack_burn", false)]
    } else {
        &[("stack", true)]
    };
    for &(name, ext) in ways {
        let (med, min) = time(warm, iters, || {
            let mut h = x.clone();
            for (c, n) in convs.iter().zip(&norms) {
                let y = if ext {
                    sgm_conv::conv2d_module(c, h)
                } else {
                    c.forward(h)
                };
                h = silu(n.forward(y));
            }
            drop(h.square().mean().backward());
        });
        report.line(&format!("ROW {name} {med:.3} {min:.3}"));
    }
}

fn net_rows(b: usize, warm: usize, iters: usize, report: &mut Report) {
    let d = device();
    for (name, config) in NETS {
        let exp = ExperimentConfig::load(config).expect("official config");
        let cfg = TrainConfig::from_experiment(&exp).expect("train config");
        let stepper = Stepper::new(&cfg).expect("stepper");
        let model = exp.network::<A>(&d).expect("network");
        let inner = model.valid();
        let (x, y) = (input::<G>([b, 3, 32, 32], 5), labels::<G>(b));
        let (med, min) = time(warm, iters, || {
            drop(inner.forward(x.clone(), y.clone()));
        });
        report.line(&format!("ROW {name}_fwd {med:.3} {min:.3}"));
        let mut state = TrainState::new(&cfg, model);
        let batch = Tensor::<A, 4>::from_inner(input::<G>([b, 3, 32, 32], 6).mul_scalar(0.5));
        let (med, min) = time(warm, iters, || {
            stepper
                .train_step(&mut state, batch.clone())
                .expect("train step");
        });
        report.line(&format!("ROW {name}_step {med:.3} {min:.3}"));
    }
}

fn main() {
    let batch = env_usize("SGM_BENCH_BATCH", 128);
    let iters = env_usize("SGM_BENCH_ITERS", 10);
    let warm = 3;
    let burn_rows = env_usize("SGM_BENCH_BURN_ROWS", 1) != 0;
    let sections = std::env::var("SGM_BENCH_SECTIONS").unwrap_or_else(|_| "conv,stack,nets".into());
    let file = std::env::var_os("SGM_BENCH_OUT").map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open SGM_BENCH_OUT")
    });
    let mut report = Report { file };
    report.line(&format!(
        "# gpu bench: backend {}, batch {batch}, {iters} timed runs after {warm} warm-ups, \
         ms (median, min); sgm_testkit::GPU = {}",
        std::any::type_name::<G>(),
        sgm_testkit::GPU
    ));
    for s in sections.split(',').map(str::trim) {
        match s {
            "conv" => conv_rows(batch, warm, iters, burn_rows, &mut report),
            "stack" => stack_rows(batch, warm, iters, burn_rows, &mut report),
            "nets" => net_rows(batch, warm, iters, &mut report),
            "" => {}
            other => panic!("SGM_BENCH_SECTIONS: unknown section `{other}`"),
        }
    }
}
