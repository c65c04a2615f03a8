//! The small model and schedule of the "it learns" test (`tests/learns.rs`), shared with the
//! sample-quality benchmark of that model (`examples/learns_quality.rs`).

use sgm_nets::ModelConfig;
use sgm_train::TrainConfig;

/// A DDPM++-style network (nf 16, two downsamplings, no attention) on the VP SDE, continuous
/// DSM, batch 32 for 45 steps (`n_iters` 44: the reference's loop runs `n_iters + 1` steps).
pub fn config() -> TrainConfig {
    let model: ModelConfig = serde_json::from_value(serde_json::json!({
        "model": {
            "name": "ncsnpp", "nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1,
            "attn_resolutions": [], "dropout": 0.0, "resamp_with_conv": true,
            "conditional": true, "fir": false, "skip_rescale": true, "resblock_type": "biggan",
            "progressive": "none", "progressive_input": "none", "embedding_type": "positional",
            "init_scale": 0.0, "scale_by_sigma": false, "ema_rate": 0.0
        },
        "data": { "image_size": 32, "num_channels": 3, "centered": true }
    }))
    .expect("model config");
    serde_json::from_value(serde_json::json!({
        "model": model,
        "training": {
            "sde": "vpsde", "continuous": true, "reduce_mean": true, "batch_size": 32,
            "n_iters": 44, "log_freq": 10, "eval_freq": 30, "snapshot_freq": 1000,
            "snapshot_freq_for_preemption": 1000, "snapshot_sampling": false
        },
        "optim": { "lr": 1e-3, "warmup": 20 },
        "eval_batch_size": 32,
        "seed": 42
    }))
    .expect("train config")
}
