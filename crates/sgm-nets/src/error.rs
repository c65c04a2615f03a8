//! Errors of the crate: every bad input (config key, weight file, tensor name / shape) is one
//! variant naming what was wrong.

use std::path::PathBuf;

/// Error of config parsing, model construction and weight loading.
#[derive(Debug, thiserror::Error)]
pub enum NetsError {
    /// A config could not be read (unknown key, wrong type, missing section).
    #[error("model config: {0}")]
    Config(String),
    /// A config value is out of range or a combination is unsupported.
    #[error("model config `{key}`: {msg}")]
    InvalidKnob {
        /// Knob name (reference spelling).
        key: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{}: {msg}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A weight the model needs is absent from the state dict.
    #[error("{file}: missing weight `{key}` (expected shape {expected:?})")]
    MissingKey {
        /// File (or source) of the state dict.
        file: String,
        /// Reference key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
    },
    /// A weight has the wrong shape.
    #[error("{file}: weight `{key}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// File (or source) of the state dict.
        file: String,
        /// Reference key.
        key: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the model expects.
        expected: Vec<usize>,
    },
    /// The state dict holds keys the model does not have.
    #[error("{file}: unexpected weight(s) not used by the model: {keys:?}")]
    UnexpectedKeys {
        /// File (or source) of the state dict.
        file: String,
        /// The unused keys.
        keys: Vec<String>,
    },
    /// Images or labels the network cannot take (wrong channels / size, batch mismatch).
    #[error("score network input: {0}")]
    Input(String),
    /// A label indexes outside the `sigmas` table.
    #[error(transparent)]
    Label(#[from] LabelOutOfRange),
    /// A tensor in a weight file has an unsupported dtype or is malformed.
    #[error("{file}: weight `{key}`: {msg}")]
    BadTensor {
        /// File (or source).
        file: String,
        /// Key.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// A noise-level label indexes outside the `sigmas` table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("label {label} indexes outside the sigmas table of length {len}")]
pub struct LabelOutOfRange {
    /// The label.
    pub label: f64,
    /// Table length (`num_scales`).
    pub len: usize,
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, NetsError>;
