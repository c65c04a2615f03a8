//! `--weights` and checkpoint loading: an sgm training checkpoint (`cargo xtask train`'s
//! `.safetensors`) through `sgm-train`, anything else through `ExperimentConfig::load_network`
//! (official `.pth`, flat `.safetensors` state dicts).

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;
use sgm_config::ExperimentConfig;
use sgm_nets::{CheckpointWeights, ScoreNet};

/// Which weights of a training checkpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Weights {
    /// The EMA weights (what the reference evaluates and samples with); for an sgm training
    /// checkpoint, its `ema/*` tensors.
    Ema,
    /// The raw training weights.
    Model,
}

impl From<Weights> for CheckpointWeights {
    fn from(w: Weights) -> Self {
        match w {
            Weights::Ema => CheckpointWeights::Ema,
            Weights::Model => CheckpointWeights::Model,
        }
    }
}

/// The network of `config` with the weights of `checkpoint`, in evaluation mode (dropout off).
pub fn load_model<B: Backend>(
    config: &ExperimentConfig,
    checkpoint: &Path,
    weights: Weights,
    device: &B::Device,
) -> Result<ScoreNet<B>> {
    if checkpoint.extension().and_then(|e| e.to_str()) == Some("safetensors")
        && sgm_train::checkpoint::is_train_checkpoint(checkpoint)
    {
        let mut cfg = config.model_config()?;
        // The reference's `model.eval()`: no dropout, also on autodiff backends.
        cfg.model.dropout = 0.0;
        return sgm_train::checkpoint::Checkpoint::read(checkpoint)
            .and_then(|ck| ck.weights::<B>(&cfg, weights.into(), device))
            .with_context(|| format!("cannot load checkpoint {}", checkpoint.display()));
    }
    Ok(config.load_network(checkpoint, weights.into(), device)?)
}
