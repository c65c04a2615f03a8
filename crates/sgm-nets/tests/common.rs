//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::Path;

use sgm_nets::{ModelConfig, ScoreNet, load_safetensors};
use sgm_testkit::{Case, TestBackend};

/// The config of a `nets/` case (or of the nets case a `losses/` case names).
pub fn nets_config(nets_case_dir: &Path) -> ModelConfig {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(nets_case_dir.join("case.json")).expect("case.json"),
    )
    .expect("case.json parses");
    ModelConfig::from_fixture_model(&json["model"])
        .unwrap_or_else(|e| panic!("{}: {e}", nets_case_dir.display()))
}

/// The network of a `nets/` case directory, with its `model.safetensors` weights.
pub fn load_net(nets_case_dir: &Path) -> ScoreNet<TestBackend> {
    let cfg = nets_config(nets_case_dir);
    load_safetensors::<TestBackend>(
        &cfg,
        &nets_case_dir.join("model.safetensors"),
        &sgm_testkit::device(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `<root>/nets/<key>` of a case whose `model` is `"nets/<key>"`.
pub fn model_dir(case: &Case) -> std::path::PathBuf {
    let m = case.json["model"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: `model` is not a nets/<key> string", case.id()));
    case.root().join(m)
}
