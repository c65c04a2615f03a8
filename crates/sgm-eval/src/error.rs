//! Errors of the evaluation crate: missing / malformed files and wrong image shapes.

use thiserror::Error;

/// Everything `sgm-eval` reports to the user.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The Inception weights file is missing.
    #[error(
        "Inception weights {path} not found: pass the pytorch-fid weights file \
         `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid's FID_WEIGHTS_URL), or a converted \
         copy in the same layout"
    )]
    MissingWeights { path: String },
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// A tensor of the weights file is missing or has the wrong shape.
    #[error("Inception weights {path}: {reason}")]
    Weights { path: String, reason: String },
    /// Images of the wrong shape.
    #[error("{what}: {reason}")]
    Shape { what: String, reason: String },
    /// Not enough data for a statistic.
    #[error("{0}")]
    Insufficient(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;

pub(crate) fn file_err(path: &std::path::Path, reason: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}
