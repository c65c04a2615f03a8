//! NCSN++ cont. deep (reference `ve/cifar10_ncsnpp_deep_continuous`: 8 blocks, FIR, residual
//! input pyramid, Fourier embedding) at nf = 32 and nf = 128, and DDPM++ cont. (reference
//! `vp/cifar10_ddpmpp_continuous`: 4 blocks, no FIR, positional embedding, nf = 128), batch 8,
//! 32×32, on the CPU test backend (Flex): forward (eval) and forward + backward (loss = mean(out²)).
//! `cargo test -p sgm-nets --bench ncsnpp` (env `SGM_BENCH_ITERS` = timed iterations, default 3;
//! `SGM_BENCH_NETS` = rows, default `ncsnpp32,ncsnpp128,ddpmpp128`). Prints `ROW <net>_fwd <s>`
//! and `ROW <net>_fwdbwd <s>` (medians) for `scripts/bench_vs_pytorch.sh`.

use std::time::Instant;

use burn::prelude::*;
use sde_core::{Labels, ScoreModel};
use sgm_nets::{ModelConfig, ScoreNet};
use sgm_testkit::{TestAutodiff, TestBackend, device};

fn cfg(net: &str) -> ModelConfig {
    if net == "ddpmpp128" {
        return ModelConfig::from_json_str(
            r#"{"model": {"name": "ncsnpp", "nf": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 4,
            "attn_resolutions": [16], "resblock_type": "biggan", "fir": false, "skip_rescale": true,
            "progressive": "none", "progressive_input": "none", "embedding_type": "positional",
            "init_scale": 0.0, "scale_by_sigma": false, "dropout": 0.0},
            "data": {"image_size": 32, "centered": true}}"#,
        )
        .expect("bench config");
    }
    let nf: usize = net
        .trim_start_matches("ncsnpp")
        .parse()
        .expect("ncsnpp<nf>");
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
    println!("score nets, batch 8, 32x32, Flex (CPU), {iters} timed iterations after 1 warm-up");
    let nets: Vec<String> = std::env::var("SGM_BENCH_NETS")
        .unwrap_or_else(|_| "ncsnpp32,ncsnpp128,ddpmpp128".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    for name in nets {
        let c = cfg(&name);
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
        println!("ROW {name}_fwd {:.4}", median(fwd));
        println!("ROW {name}_fwdbwd {:.4}", median(fb));
    }
}
