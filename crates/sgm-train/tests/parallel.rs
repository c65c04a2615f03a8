//! Data parallelism: a step split across two (or three, unevenly) devices equals the
//! single-device step on the union batch — same draws, loss, gradient norm, parameters, Adam
//! moments and EMA (to float rounding). On CPU the "devices" are the same device used twice,
//! which exercises the sharding, the gradient transfer and the weighted reduction.

use burn::prelude::*;
use sgm_nets::ModelConfig;
use sgm_nets::weights::state_dict;
use sgm_testkit::{TestAutodiff, device};
use sgm_train::parallel::{devices, shard_sizes};
use sgm_train::{Stepper, TrainConfig, TrainState, init_model};

fn config() -> TrainConfig {
    let model: ModelConfig = serde_json::from_value(serde_json::json!({
        "model": {
            "name": "ncsnpp", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
            "attn_resolutions": [4], "dropout": 0.0, "fir": true, "progressive_input": "residual",
            "scale_by_sigma": true, "ema_rate": 0.9
        },
        "data": { "image_size": 8, "num_channels": 3, "centered": true }
    }))
    .unwrap();
    serde_json::from_value(serde_json::json!({
        "model": model,
        "training": { "sde": "vesde", "batch_size": 5, "continuous": true },
        "optim": { "warmup": 2, "lr": 1e-3 }
    }))
    .unwrap()
}

fn max_rel_diff(a: &sgm_nets::StateDict, b: &sgm_nets::StateDict) -> f64 {
    let mut worst = 0.0f64;
    for (k, ta) in &a.tensors {
        let tb = &b.tensors[k];
        let (va, vb) = match (&ta.data, &tb.data) {
            (sgm_nets::weights::HostData::F32(x), sgm_nets::weights::HostData::F32(y)) => (
                x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                y.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            ),
            (sgm_nets::weights::HostData::F64(x), sgm_nets::weights::HostData::F64(y)) => {
                (x.clone(), y.clone())
            }
            _ => panic!("dtype of {k} differs"),
        };
        for (x, y) in va.iter().zip(&vb) {
            worst = worst.max((x - y).abs() / (1e-3 + x.abs()));
        }
    }
    worst
}

#[test]
fn shards_are_even_and_devices_are_checked() {
    assert_eq!(shard_sizes(5, 3), [2, 2, 1]);
    assert_eq!(shard_sizes(6, 2), [3, 3]);
    assert_eq!(shard_sizes(2, 4), [1, 1]);
    assert_eq!(shard_sizes(7, 1), [7]);
    assert_eq!(devices::<TestAutodiff>(1).unwrap().len(), 1);
    let e = devices::<TestAutodiff>(2).unwrap_err().to_string();
    assert!(e.contains("devices") && e.contains("1 device"), "{e}");
}

#[test]
fn a_step_split_across_devices_equals_the_union_step() {
    let dev = device();
    let cfg = config();
    let stepper = Stepper::new(&cfg).unwrap();
    let init = TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap());
    let batches: Vec<Tensor<TestAutodiff, 4>> = (0..3)
        .map(|k| {
            Tensor::<TestAutodiff, 4>::random(
                [5, 3, 8, 8],
                burn::tensor::Distribution::Uniform(-1.0, 1.0),
                &dev,
            )
            .add_scalar(0.1 * k as f64)
        })
        .collect();
    let mut single = init.clone();
    let single_out: Vec<_> = batches
        .iter()
        .map(|x| stepper.train_step(&mut single, x.clone()).unwrap())
        .collect();
    for n in [2usize, 3] {
        let devs = vec![dev; n];
        let mut par = init.clone();
        for (x, want) in batches.iter().zip(&single_out) {
            let got = stepper
                .train_step_parallel(&mut par, x.clone(), &devs)
                .unwrap();
            assert_eq!((got.step, got.optim.lr), (want.step, want.optim.lr));
            assert!(
                (got.loss - want.loss).abs() <= 1e-5 * want.loss.abs(),
                "{n} devices: loss {} vs {}",
                got.loss,
                want.loss
            );
            assert!(
                (got.optim.grad_norm - want.optim.grad_norm).abs() <= 1e-4 * want.optim.grad_norm,
                "{n} devices: grad norm {} vs {}",
                got.optim.grad_norm,
                want.optim.grad_norm
            );
        }
        // the same draws were consumed
        assert_eq!(par.rng.state(), single.rng.state());
        let d = max_rel_diff(&state_dict(&par.model), &state_dict(&single.model));
        let e = max_rel_diff(
            &state_dict(&par.ema.shadow),
            &state_dict(&single.ema.shadow),
        );
        eprintln!("{n} devices: max relative difference params {d:.2e}, EMA {e:.2e}");
        assert!(d < 5e-4 && e < 5e-4, "{n} devices: params {d}, EMA {e}");
        for (a, b) in par.optim.state.iter().zip(&single.optim.state) {
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(a.step, b.step);
                let (va, vb) = (
                    a.exp_avg.to_data().to_vec::<f32>().unwrap(),
                    b.exp_avg.to_data().to_vec::<f32>().unwrap(),
                );
                for (x, y) in va.iter().zip(&vb) {
                    assert!((x - y).abs() <= 1e-4 * y.abs() + 1e-7, "exp_avg {x} vs {y}");
                }
            }
        }
    }
    // A control: a different split of draws (one device, other RNG) does differ, so the
    // tolerance above is far below what a wrong reduction or wrong draws would give.
    let mut other = init.clone();
    other.rng = sgm_train::TrainRng::new(999, 0);
    let o = stepper.train_step(&mut other, batches[0].clone()).unwrap();
    assert!((o.loss - single_out[0].loss).abs() > 1e-3 * single_out[0].loss.abs());
}
