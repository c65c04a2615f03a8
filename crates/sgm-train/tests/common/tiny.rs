//! The tiny NCSN++ (8×8 images, nf 8, one block per level, attention at 4, FIR, residual input
//! pyramid, σ scaling, EMA 0.9, no dropout) of the step-equivalence tests, as a `TrainConfig`
//! with the given `training` / `optim` sections (and optional top-level keys such as `seed`).

use sgm_nets::ModelConfig;
use sgm_train::TrainConfig;

pub fn tiny_ncsnpp(extra: serde_json::Value) -> TrainConfig {
    let model: ModelConfig = serde_json::from_value(serde_json::json!({
        "model": {
            "name": "ncsnpp", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
            "attn_resolutions": [4], "dropout": 0.0, "fir": true, "progressive_input": "residual",
            "scale_by_sigma": true, "ema_rate": 0.9
        },
        "data": { "image_size": 8, "num_channels": 3, "centered": true }
    }))
    .unwrap();
    let mut cfg = serde_json::json!({ "model": model });
    for (k, v) in extra.as_object().expect("an object of sections").iter() {
        cfg[k] = v.clone();
    }
    serde_json::from_value(cfg).unwrap()
}
