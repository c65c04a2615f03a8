//! `--weights`: which weights of an official checkpoint the network is loaded with
//! (`ExperimentConfig::load_network` does the loading).

use sgm_nets::CheckpointWeights;

/// Which weights of an official training checkpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Weights {
    /// The EMA weights (what the reference evaluates and samples with).
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
