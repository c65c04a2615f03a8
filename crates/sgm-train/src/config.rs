//! The typed training sections of an experiment (`config.training`, `config.optim`, the
//! transform keys of `config.data`, `config.seed`) plus the network config. The experiment
//! config crate builds a [`TrainConfig`]; everything here is plain serde data.

use sde_core::{AnySde, LossConfig, SdeKind};
use serde::{Deserialize, Serialize};
use sgm_nets::ModelConfig;

use crate::error::{Result, TrainError};
pub use crate::optim::OptimConfig;

/// `training.sde`, spelled as in the reference configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeName {
    /// VE SDE.
    Vesde,
    /// VP SDE.
    Vpsde,
    /// sub-VP SDE.
    Subvpsde,
}

impl SdeName {
    /// The SDE family.
    pub fn kind(self) -> SdeKind {
        match self {
            SdeName::Vesde => SdeKind::Ve,
            SdeName::Vpsde => SdeKind::Vp,
            SdeName::Subvpsde => SdeKind::SubVp,
        }
    }
}

/// `config.training` (reference defaults of `default_cifar10_configs.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    /// SDE the loss perturbs with.
    pub sde: SdeName,
    /// Continuous DSM (true) or the discrete SMLD / DDPM loss.
    #[serde(default = "d_true")]
    pub continuous: bool,
    /// Per-sample mean (true) or `0.5 · sum` over C·H·W.
    #[serde(default)]
    pub reduce_mean: bool,
    /// λ(t) = g(t)² instead of σ_t².
    #[serde(default)]
    pub likelihood_weighting: bool,
    /// Training batch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Last step (the loop runs `initial_step ..= n_iters`, as `run_lib.train`).
    #[serde(default = "d_iters")]
    pub n_iters: u64,
    /// Training-loss log period.
    #[serde(default = "d_log")]
    pub log_freq: u64,
    /// Eval-loss period (one eval batch, EMA weights).
    #[serde(default = "d_eval")]
    pub eval_freq: u64,
    /// Period of `checkpoints/checkpoint_{step / snapshot_freq}`.
    #[serde(default = "d_snap")]
    pub snapshot_freq: u64,
    /// Period of the pre-emption checkpoint `checkpoints-meta/checkpoint`.
    #[serde(default = "d_preempt")]
    pub snapshot_freq_for_preemption: u64,
    /// Sample an EMA grid at every snapshot.
    #[serde(default = "d_true")]
    pub snapshot_sampling: bool,
}

/// Transform keys of `config.data` (the network keys live in [`ModelConfig::data`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataTransforms {
    /// Random horizontal flip of training images.
    #[serde(default = "d_true")]
    pub random_flip: bool,
    /// `(U[0,1) + 255 x) / 256` on the 8-bit values.
    #[serde(default)]
    pub uniform_dequantization: bool,
}

impl Default for DataTransforms {
    fn default() -> Self {
        Self {
            random_flip: true,
            uniform_dequantization: false,
        }
    }
}

/// Everything the trainer needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Network (`[model]` + network keys of `[data]`; `model.ema_rate` is the EMA decay).
    pub model: ModelConfig,
    /// `[training]`.
    pub training: TrainingSection,
    /// `[optim]`.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Transforms of `[data]`.
    #[serde(default)]
    pub transforms: DataTransforms,
    /// Eval batch size (`eval.batch_size`).
    #[serde(default = "d_batch")]
    pub eval_batch_size: usize,
    /// `config.seed`.
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_true() -> bool {
    true
}
fn d_batch() -> usize {
    128
}
fn d_iters() -> u64 {
    1_300_001
}
fn d_log() -> u64 {
    50
}
fn d_eval() -> u64 {
    100
}
fn d_snap() -> u64 {
    50_000
}
fn d_preempt() -> u64 {
    10_000
}
fn d_seed() -> u64 {
    42
}

impl TrainConfig {
    /// The SDE of `training.sde` with the noise parameters of `[model]`.
    pub fn sde(&self) -> Result<AnySde> {
        let m = &self.model.model;
        Ok(AnySde::from_reference(
            self.training.sde.kind(),
            m.sigma_min,
            m.sigma_max,
            m.beta_min,
            m.beta_max,
            m.num_scales,
        )?)
    }

    /// The loss knobs (`eps` = 1e-5, as `get_step_fn` uses).
    pub fn loss(&self) -> LossConfig {
        LossConfig {
            reduce_mean: self.training.reduce_mean,
            continuous: self.training.continuous,
            likelihood_weighting: self.training.likelihood_weighting,
            ..LossConfig::default()
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: &str| {
            Err(TrainError::Config {
                key: key.into(),
                msg: msg.into(),
            })
        };
        let t = &self.training;
        for (key, v) in [
            ("training.batch_size", t.batch_size as u64),
            ("eval.batch_size", self.eval_batch_size as u64),
            ("training.log_freq", t.log_freq),
            ("training.eval_freq", t.eval_freq),
            ("training.snapshot_freq", t.snapshot_freq),
            (
                "training.snapshot_freq_for_preemption",
                t.snapshot_freq_for_preemption,
            ),
        ] {
            if v == 0 {
                return bad(key, "must be positive");
            }
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr >= 0.0) {
            return bad("optim.lr", "must be a finite non-negative number");
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return bad("optim.beta1", "Adam betas must lie in [0, 1)");
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return bad("optim.eps", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.model.model.ema_rate) {
            return bad("model.ema_rate", "must lie in [0, 1]");
        }
        if !t.continuous && t.likelihood_weighting {
            return bad(
                "training.likelihood_weighting",
                "not supported with the discrete SMLD / DDPM losses",
            );
        }
        if !t.continuous && t.sde == SdeName::Subvpsde {
            return bad(
                "training.continuous",
                "discrete training of the sub-VP SDE is not defined",
            );
        }
        self.model.validate()?;
        self.sde()?;
        Ok(())
    }
}
