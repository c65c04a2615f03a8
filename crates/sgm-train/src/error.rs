//! Errors of training: every bad input (data file, checkpoint, config) or numerical failure is
//! one variant naming the file, key or step.

use std::path::PathBuf;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// Everything that can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data file is missing, short, corrupt or mislabelled.
    #[error("data file {}: {msg}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A checkpoint could not be read, or does not belong to this config.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Another file (run directory, metrics, samples) could not be written or read.
    #[error("{}: {msg}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// An invalid training config value.
    #[error("training config `{key}`: {msg}")]
    Config {
        /// Key (reference spelling, e.g. `training.batch_size`).
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// The loss or the gradients became NaN / Inf.
    #[error(
        "step {step}: {what} is not finite ({value}); training stopped, the last checkpoint is intact"
    )]
    NonFinite {
        /// Step being taken (1-based, as `state.step` after it).
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value seen.
        value: f64,
    },
    /// The SDE layer rejected the loss inputs.
    #[error("loss: {0}")]
    Sde(#[from] sde_core::SdeError),
    /// The network rejected its config or weights.
    #[error(transparent)]
    Nets(#[from] sgm_nets::NetsError),
    /// Sampling or likelihood failed (the demo).
    #[error("sampling: {0}")]
    Sample(#[from] sgm_sample::SampleError),
    /// A statistic or image file of the evaluation crate failed (the demo).
    #[error(transparent)]
    Eval(#[from] sgm_eval::EvalError),
    /// burn-collective failed (joining, all-reduce, leaving: feature `collective`).
    #[cfg(feature = "collective")]
    #[error("collective: {0}")]
    Collective(String),
    /// A broken internal invariant (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TrainError {
    /// A [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            msg: e.to_string(),
        }
    }
}
