//! The training checkpoint round-trips the whole state exactly (model, EMA, Adam moments and
//! step counts, RNG, data positions), and a checkpoint of another network, a plain weights file
//! or a truncated file is one error naming the file.

use sgm_nets::weights::state_dict;
use sgm_nets::{CheckpointWeights, ModelConfig};
use sgm_testkit::{TestAutodiff, TestBackend, device};
use sgm_train::checkpoint::{self, Checkpoint, is_train_checkpoint};
use sgm_train::data::DataPosition;
use sgm_train::{Stepper, TrainConfig, TrainState, init_model};

fn config(nf: usize) -> TrainConfig {
    let model: ModelConfig = serde_json::from_value(serde_json::json!({
        "model": {
            "name": "ncsnpp", "nf": nf, "ch_mult": [1, 2], "num_res_blocks": 1,
            "attn_resolutions": [8], "dropout": 0.0, "fir": true, "progressive_input": "residual",
            "scale_by_sigma": true, "ema_rate": 0.999
        },
        "data": { "image_size": 16, "num_channels": 3, "centered": false }
    }))
    .unwrap();
    serde_json::from_value(serde_json::json!({
        "model": model,
        "training": { "sde": "vesde", "batch_size": 2 },
        "optim": { "warmup": 2 }
    }))
    .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sgm-train-ck-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn round_trip_is_exact_and_bad_files_are_named() {
    let dev = device();
    let cfg = config(8);
    let stepper = Stepper::new(&cfg).unwrap();
    let mut state = TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap());
    for _ in 0..3 {
        let x = burn::tensor::Tensor::<TestAutodiff, 4>::ones([2, 3, 16, 16], &dev).mul_scalar(0.5);
        stepper.train_step(&mut state, x).unwrap();
    }
    let dir = scratch("rt");
    let path = dir.join("ck.safetensors");
    let pos = DataPosition {
        epoch: 3,
        index: 14,
    };
    let eval_pos = DataPosition { epoch: 1, index: 2 };
    checkpoint::save(&state, pos, eval_pos, &path).unwrap();
    assert!(is_train_checkpoint(&path));

    let ck = Checkpoint::read(&path).unwrap();
    assert_eq!(
        (ck.meta.step, ck.meta.data, ck.meta.eval_data),
        (3, pos, eval_pos)
    );
    let back: TrainState<TestAutodiff> = ck.train_state(&cfg.model, &cfg.optim, &dev).unwrap();
    assert_eq!(
        state_dict(&back.model).tensors,
        state_dict(&state.model).tensors
    );
    assert_eq!(
        state_dict(&back.ema.shadow).tensors,
        state_dict(&state.ema.shadow).tensors
    );
    assert_eq!((back.step, back.ema.num_updates), (3, 3));
    assert_eq!(back.rng.state(), state.rng.state());
    assert_eq!(back.optim.state.len(), state.optim.state.len());
    for (a, b) in back.optim.state.iter().zip(&state.optim.state) {
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(a.step, b.step);
                let v = |t: &burn::tensor::Tensor<TestBackend, 1>| {
                    t.clone().into_data().to_vec::<f32>().unwrap()
                };
                assert_eq!(v(&a.exp_avg), v(&b.exp_avg));
                assert_eq!(v(&a.exp_avg_sq), v(&b.exp_avg_sq));
            }
            (None, None) => {}
            _ => panic!("moments present in one state only"),
        }
    }
    // EMA weights for sampling.
    let ema = ck
        .weights::<TestBackend>(&cfg.model, CheckpointWeights::Ema, &dev)
        .unwrap();
    assert_eq!(
        state_dict(&ema).tensors,
        state_dict(&state.ema.shadow).tensors
    );

    // Another network: one error naming the file and the differing knob.
    let e = ck
        .weights::<TestBackend>(&config(16).model, CheckpointWeights::Model, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ck.safetensors") && e.contains("model.nf = 8"),
        "{e}"
    );

    // A plain weights file is not a training checkpoint.
    let plain = dir.join("weights.safetensors");
    sgm_nets::save_safetensors(&state.model, &plain).unwrap();
    assert!(!is_train_checkpoint(&plain));
    let e = Checkpoint::read(&plain).unwrap_err().to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("not a training checkpoint"),
        "{e}"
    );

    // A truncated checkpoint.
    let short = dir.join("short.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::read(&short).unwrap_err().to_string();
    assert!(e.contains("short.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[global_allocator]
static ALLOC: sgm_testkit::corrupt::CountingAlloc = sgm_testkit::corrupt::CountingAlloc;

/// Issue 15: mutated training checkpoints (bit flips, truncation, inflated header lengths,
/// shapes and offsets, dtype swaps, duplicated keys) are each `Ok` or one error when read and
/// turned into weights and a training state — never a panic, abort or hang, memory bounded.
/// `SGM_FUZZ_VARIANTS=100000` is the long mode (docs/reliability.md).
#[test]
fn corrupted_checkpoints_are_errors_never_crashes() {
    use sgm_testkit::corrupt;
    let dev = device();
    let cfg = config(8);
    let state = TrainState::new(&cfg, init_model::<TestAutodiff>(&cfg, &dev).unwrap());
    let dir = scratch("fuzz");
    let seed_path = dir.join("seed.safetensors");
    let pos = DataPosition { epoch: 0, index: 0 };
    checkpoint::save(&state, pos, pos, &seed_path).unwrap();
    let file = std::fs::read(&seed_path).unwrap();
    let seeds = [(file.clone(), corrupt::safetensors_layout(&file))];
    let variant = dir.join("v.safetensors");
    let r = corrupt::run(
        "training checkpoint",
        &seeds,
        corrupt::variants(150),
        33,
        |(f, l), rng| corrupt::mutate(f, l, rng),
        |_, b| {
            std::fs::write(&variant, b).map_err(|e| e.to_string())?;
            let kind = |e: sgm_train::TrainError| corrupt::kind_of(&e, "v.safetensors");
            let ck = Checkpoint::read(&variant).map_err(kind)?;
            ck.weights::<TestBackend>(&cfg.model, CheckpointWeights::Ema, &dev)
                .map_err(kind)?;
            ck.train_state::<TestAutodiff>(&cfg.model, &cfg.optim, &dev)
                .map_err(kind)?;
            Ok(())
        },
    );
    // the file, its tensors on the host, and two networks built from them
    corrupt::assert_clean(
        &r,
        8 * file.len() + (32 << 20),
        std::time::Duration::from_secs(20),
    );
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
