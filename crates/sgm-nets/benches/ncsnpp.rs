//! NCSN++ cont. deep (reference `ve/cifar10_ncsnpp_deep_continuous`: 8 blocks, FIR, residual
//! input pyramid, Fourier embedding) at nf = 32 and nf = 128, batch 8, 32×32, on the CPU test
//! backend (Flex): forward (eval) and forward + backward (loss = mean(out²)).
//! `cargo bench -p sgm-nets --bench ncsnpp` (env `SGM_BENCH_ITERS` = timed iterations, default 3;
//! `SGM_BENCH_NF` = widths, default `32,128`).

use std::time::Instant;

use burn::prelude::*;
use sde_core::{Labels, ScoreModel};
use sgm_nets::{ModelConfig, ScoreNet};
use sgm_testkit::{TestAutodiff, TestBackend, device};

fn cfg(nf: usize) -> ModelConfig {
    ModelConfig::from_json_str(&format!(
        r#"{{"model": {{"name": "ncsnpp", "nf": {nf}, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 8,
        "attn_resolutions": [16], "resblock_type": "biggan", "fir": true, "skip_rescale": true,
        "progressive": "none", "progressive_input": "residual", "embedding_type": "fourier",
        "fourier_scale": 16, "scale_by_sigma": true, "dropout": 0.0}},
        "data": {{"image_size": 32, "centered": false}}}}"#
    ))
    .expect("bench config")
}

fn inputs<B: Backend>(d: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1>) {
    let n = 8 * 3 * 32 * 32;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect();
    let x = Tensor::from_data(TensorData::new(x, [8, 3, 32, 32]), d);
    let s = Tensor::from_data(
        TensorData::new(vec![0.5f32, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0], [8]),
        d,
    );
    (x, s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let iters: usize = std::env::var("SGM_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let d = device();
    println!(
        "NCSN++ cont. deep, batch 8, 32x32, Flex (CPU), {iters} timed iterations after 1 warm-up"
    );
    // env `SGM_BENCH_NF` = comma-separated widths (default 32,128)
    let nfs: Vec<usize> = std::env::var("SGM_BENCH_NF")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![32, 128]);
    for nf in nfs {
        let c = cfg(nf);
        let net = ScoreNet::<TestBackend>::new(&c, &d).expect("net");
        let (x, s) = inputs::<TestBackend>(&d);
        let mut fwd = Vec::new();
        for i in 0..=iters {
            let t0 = Instant::now();
            let out = net.forward(x.clone(), Labels::Float(s.clone()));
            let _ = out.into_data();
            if i > 0 {
                fwd.push(t0.elapsed().as_secs_f64());
            }
        }
        let net = ScoreNet::<TestAutodiff>::new(&c, &d).expect("net");
        let (x, s) = inputs::<TestAutodiff>(&d);
        let mut fb = Vec::new();
        for i in 0..=iters {
            let t0 = Instant::now();
            let out = net.forward(x.clone(), Labels::Float(s.clone()));
            let grads = out.square().mean().backward();
            drop(grads);
            if i > 0 {
                fb.push(t0.elapsed().as_secs_f64());
            }
        }
        println!(
            "nf={nf:4}: forward {:.3} s (min {:.3}), forward+backward {:.3} s (min {:.3})",
            median(fwd.clone()),
            fwd.iter().cloned().fold(f64::INFINITY, f64::min),
            median(fb.clone()),
            fb.iter().cloned().fold(f64::INFINITY, f64::min)
        );
    }
}
