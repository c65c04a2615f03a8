//! Errors of the samplers: unsupported predictor/corrector/SDE combinations, bad shapes,
//! failing ODE solves, and everything `sde-core` reports.

use sde_core::SdeError;
use thiserror::Error;

/// Everything in `sgm-sample` that can go wrong with user input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SampleError {
    /// An error of the SDE layer (bad times, batch mismatch, noise replay).
    #[error(transparent)]
    Sde(#[from] SdeError),
    /// A predictor / corrector / SDE combination the reference does not define
    /// (see `sampling/known_errors.json` of the fixtures).
    #[error("unsupported sampler combination: {0}")]
    Unsupported(String),
    /// An invalid option value (e.g. `eps` outside `(0, T)`, `N = 0`, negative tolerance).
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// Option name.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// Two tensors that must agree in shape do not.
    #[error("{what}: shape {got:?} does not match {expected:?}")]
    Shape {
        /// What was checked.
        what: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape given.
        got: Vec<usize>,
    },
    /// The adaptive ODE solver could not finish (step size underflow, non-finite state, too
    /// many evaluations).
    #[error("ODE solver failed at t = {t}: {reason}")]
    Solver {
        /// Time reached.
        t: f64,
        /// Why it stopped.
        reason: String,
    },
    /// A gradient that must exist (input of the Hutchinson VJP) was not tracked.
    #[error("autodiff: {0}")]
    Autodiff(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SampleError>;
