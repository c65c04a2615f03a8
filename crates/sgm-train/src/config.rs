//! What the trainer needs from an experiment: the network config and the `training`, `optim`
//! and data-transform sections of `sgm-config` (one home for every key and default), the eval
//! batch size and the seed. [`TrainConfig::from_experiment`] builds it from an
//! [`ExperimentConfig`]; tests and other projects may also build it directly.

use sde_core::{AnySde, LossConfig};
use serde::{Deserialize, Serialize};
use sgm_config::{ExperimentConfig, OptimConfig, TrainingConfig};
use sgm_nets::ModelConfig;

use crate::error::{Result, TrainError};

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
    pub training: TrainingConfig,
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
fn d_seed() -> u64 {
    42
}

impl TrainConfig {
    /// The training view of an experiment config.
    pub fn from_experiment(c: &ExperimentConfig) -> Result<Self> {
        let cfg = Self {
            model: c.model_config().map_err(|e| TrainError::Config {
                key: "model".into(),
                msg: e.to_string(),
            })?,
            training: c.training.clone(),
            optim: c.optim.clone(),
            transforms: DataTransforms {
                random_flip: c.data.random_flip,
                uniform_dequantization: c.data.uniform_dequantization,
            },
            eval_batch_size: c.eval.batch_size,
            seed: c.seed,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The SDE of `training.sde` with the noise parameters of `[model]`.
    pub fn sde(&self) -> Result<AnySde> {
        let m = &self.model.model;
        Ok(AnySde::from_reference(
            self.training.sde,
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

    /// Checks what the sections' own parsing cannot.
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
        if !(0.0..1.0).contains(&o.beta1) {
            return bad("optim.beta1", "must lie in [0, 1)");
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return bad("optim.eps", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.model.model.ema_rate) {
            return bad("model.ema_rate", "must lie in [0, 1]");
        }
        self.loss().check(self.training.sde)?;
        self.model.validate()?;
        self.sde()?;
        Ok(())
    }
}
