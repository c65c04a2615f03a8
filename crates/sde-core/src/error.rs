//! Errors of the SDE layer: bad shapes, times outside `[0, T]`, replay mismatches.

use thiserror::Error;

/// Everything in `sde-core` that can go wrong with user input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SdeError {
    /// The number of per-sample times does not match the batch dimension of `x`.
    #[error("{what}: got {got} time values for a batch of {batch} samples")]
    BatchMismatch {
        what: &'static str,
        got: usize,
        batch: usize,
    },
    /// A time value outside `[0, T]` (or not finite).
    #[error("{what}: time t = {t} is outside [0, {t_max}]")]
    TimeOutOfRange {
        what: &'static str,
        t: f32,
        t_max: f32,
    },
    /// A discrete label outside `[0, N)`.
    #[error("{what}: label {label} is outside [0, {n})")]
    LabelOutOfRange {
        what: &'static str,
        label: i64,
        n: usize,
    },
    /// Two tensors that must have the same shape do not.
    #[error("{what}: shape {got:?} does not match {expected:?}")]
    ShapeMismatch {
        what: &'static str,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// An SDE parameter is invalid (e.g. `sigma_min >= sigma_max`, `N < 2`).
    #[error("invalid SDE parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// The requested combination is not defined (e.g. discrete DSM on the sub-VP SDE).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A recorded-noise replay was asked for a draw it does not hold.
    #[error("noise replay: {0}")]
    Replay(String),
    /// The score model rejected its input (wrong image shape, label outside its table).
    #[error("score model: {0}")]
    Model(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SdeError>;
