//! Shared helpers of the parity tests: score models of a case (analytic or network), options
//! parsed from `case.json` (the README §3 NFE allowance is `sgm_testkit::Case::nfe_slack`).
#![allow(dead_code)]

use burn::prelude::*;
use sde_core::analytic::{GaussianData, GaussianScoreModel};
use sde_core::{AnySde, ScoreModel};
use sgm_sample::{Corrector, DataScaler, PcConfig, Predictor};
use sgm_testkit::Case;

/// A score model of a case: the analytic Gaussian model or a fixture network.
pub enum CaseModel<B: Backend> {
    /// Exact score of N(0, s² I) data (fixtures §5.4).
    Analytic(GaussianScoreModel<AnySde>),
    /// A network loaded with sgm-nets.
    Net(Box<sgm_nets::ScoreNet<B>>),
}

impl<B: sgm_nets::ConvBackend> ScoreModel<B> for CaseModel<B> {
    fn forward(&self, x: Tensor<B, 4>, labels: sde_core::Labels<B>) -> Tensor<B, 4> {
        match self {
            CaseModel::Analytic(m) => m.forward(x, labels),
            CaseModel::Net(n) => n.forward(x, labels),
        }
    }
}

/// The model named by `case.model`: `analytic_gaussian` or `nets/<key>`.
pub fn case_model<B: Backend>(case: &Case, device: &B::Device) -> Result<CaseModel<B>, String> {
    let name = case.json["model"]
        .as_str()
        .ok_or_else(|| format!("{}: `model` is not a string", case.id()))?;
    if name == "analytic_gaussian" {
        let s = case.json["analytic_model"]["data_std_s"]
            .as_f64()
            .ok_or_else(|| format!("{}: analytic_model.data_std_s missing", case.id()))?;
        let data = GaussianData {
            mean: 0.0,
            data_std: s as f32,
        };
        return Ok(CaseModel::Analytic(GaussianScoreModel::new(
            case.sde(),
            data,
        )));
    }
    load_net(case, name, device).map(|n| CaseModel::Net(Box::new(n)))
}

/// The fixture network `nets/<key>` of the case's fixtures root (its `case.json` model config
/// and `model.safetensors`).
pub fn load_net<B: Backend>(
    case: &Case,
    key: &str,
    device: &B::Device,
) -> Result<sgm_nets::ScoreNet<B>, String> {
    let dir = case.root().join(key);
    let text = std::fs::read_to_string(dir.join("case.json"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cfg = sgm_nets::ModelConfig::from_fixture_model(&json["model"])
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    sgm_nets::load_safetensors::<B>(&cfg, &dir.join("model.safetensors"), device)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// `inverse_scaler` of a case (`identity` or `(x+1)/2`).
pub fn scaler(case: &Case) -> DataScaler {
    DataScaler::from_name(case.json["inverse_scaler"].as_str().unwrap_or("identity"))
        .unwrap_or_else(|e| panic!("{}: {e}", case.id()))
}

/// A float key of `case.json`.
pub fn f64_key(case: &Case, key: &str) -> f64 {
    case.json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: `{key}` missing", case.id()))
}

/// A string key of `case.json`.
pub fn str_key<'a>(case: &'a Case, key: &str) -> &'a str {
    case.json[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: `{key}` missing", case.id()))
}

/// `shape` of a case as `[B, C, H, W]`.
pub fn shape4(case: &Case) -> [usize; 4] {
    let v: Vec<usize> = case.json["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: `shape` missing", case.id()))
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as usize)
        .collect();
    v.try_into()
        .unwrap_or_else(|_| panic!("{}: `shape` is not 4-D", case.id()))
}

/// The replay queue must be empty at the end (README §4).
pub fn check_exhausted(
    checker: &mut sgm_testkit::Checker,
    case: &Case,
    noise: &sde_core::RecordedNoise,
) {
    if !noise.is_exhausted() {
        checker.fail(
            case,
            format!(
                "{} recorded draws left unused ({} consumed)",
                noise.remaining(),
                noise.consumed()
            ),
        );
    }
}

/// The PC options of a `sampling` / `controllable` case (`get_pc_sampler` arguments).
pub fn pc_config(case: &Case) -> PcConfig {
    PcConfig {
        predictor: Predictor::from_name(str_key(case, "predictor"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.id())),
        corrector: Corrector::from_name(str_key(case, "corrector"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.id())),
        snr: f64_key(case, "snr") as f32,
        n_steps: case.json["n_steps"].as_u64().unwrap_or(1) as usize,
        probability_flow: case.json["probability_flow"].as_bool().unwrap_or(false),
        denoise: case.json["denoise"].as_bool().unwrap_or(true),
        eps: f64_key(case, "eps"),
        scaler: scaler(case),
    }
}
