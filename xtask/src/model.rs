//! Config + checkpoint → score network, for every command that needs one.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use sgm_config::ExperimentConfig;
use sgm_nets::{CheckpointWeights, ScoreNet};

/// Which weights of an official training checkpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Weights {
    /// The EMA weights (what the reference evaluates and samples with); for an sgm training
    /// checkpoint, its `ema/*` tensors.
    Ema,
    /// The raw training weights.
    Model,
}

/// Loads a score network from an official `.pth` training checkpoint (model or EMA weights),
/// an sgm training checkpoint (`cargo xtask train`'s `.safetensors`, model or EMA weights), or
/// a flat safetensors state dict with the reference's key names.
pub fn load_model<B: Backend>(
    config: &ExperimentConfig,
    checkpoint: &Path,
    weights: Weights,
    device: &B::Device,
) -> Result<ScoreNet<B>> {
    let mut cfg = config.model_config()?;
    // Every command evaluates the network (the reference's `model.eval()`): no dropout, also on
    // autodiff backends where Burn would otherwise apply it.
    cfg.model.dropout = 0.0;
    if !checkpoint.is_file() {
        bail!("checkpoint {} does not exist", checkpoint.display());
    }
    let ext = checkpoint
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let which = match weights {
        Weights::Ema => CheckpointWeights::Ema,
        Weights::Model => CheckpointWeights::Model,
    };
    let net = match ext {
        "pth" | "pt" => sgm_nets::load_checkpoint::<B>(&cfg, checkpoint, which, device),
        // sgm's training checkpoint (model + EMA + optimizer state in one safetensors file)
        "safetensors" if sgm_train::checkpoint::is_train_checkpoint(checkpoint) => {
            return sgm_train::checkpoint::Checkpoint::read(checkpoint)
                .and_then(|ck| ck.weights::<B>(&cfg, which, device))
                .with_context(|| format!("cannot load checkpoint {}", checkpoint.display()));
        }
        "safetensors" => sgm_nets::load_safetensors::<B>(&cfg, checkpoint, device),
        _ => bail!(
            "checkpoint {}: unknown format (expected an official .pth checkpoint or a .safetensors state dict)",
            checkpoint.display()
        ),
    };
    net.with_context(|| format!("cannot load checkpoint {}", checkpoint.display()))
}
