//! # sde-core — the SDE math of score-based generative modeling
//!
//! Pure math, generic over any Burn [`Backend`](burn::prelude::Backend); no I/O, no global state.
//! It reproduces the official `score_sde_pytorch` (`sde_lib.py`, `losses.py`,
//! `models/utils.get_score_fn`) number for number:
//!
//! * [`Sde`]: `T`, `N`, drift and diffusion, marginals (`marginal_prob`), prior sampling and
//!   log-density, `discretize`, and [`Sde::reverse`] (reverse-time SDE / probability-flow ODE).
//! * [`VeSde`], [`VpSde`], [`SubVpSde`] with the reference's defaults and quirks (float32
//!   discrete tables and index flooring, VE std = σ(t), sub-VP std without square root,
//!   sub-VP Euler–Maruyama `discretize`); [`AnySde`] picks one at run time.
//! * [`ScoreModel`] / [`ScoreFunction`] / [`ScoreFn`]: network output → score, continuous or
//!   discrete labels.
//! * [`losses`]: continuous DSM, SMLD and DDPM losses.
//! * [`NoiseSource`]: every random draw is injectable ([`BackendNoise`] in production,
//!   [`RecordedNoise`] to replay a reference run).
//!
//! ## Time and precision
//! Times are per-sample `f32` values (`t: &[f32]`), and the per-sample coefficients are
//! evaluated on the host with correctly rounded `f32` math in the reference's operation order
//! ([`f32math`]), then broadcast. This makes every backend (CPU or GPU) use the reference's
//! coefficients bit for bit; only the tensor arithmetic itself runs on the device.
//!
//! ## Errors
//! Wrong batch sizes and times outside `[0, T]` return [`SdeError`]; nothing is clamped.
// Library code returns errors on user data; unwraps stay in tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod analytic;
pub mod any;
pub mod error;
pub mod f32math;
pub mod losses;
pub mod noise;
pub mod reverse;
pub mod score;
pub mod sde;
pub mod subvp;
pub mod ve;
pub mod vp;

pub use any::AnySde;
pub use error::{Result, SdeError};
pub use losses::{LossConfig, ddpm_loss, dsm_loss, smld_loss, training_loss};
pub use noise::{BackendNoise, DrawKind, NoiseSource, RecordedDraw, RecordedNoise};
pub use reverse::ReverseSde;
pub use score::{Labels, ScoreFn, ScoreFunction, ScoreModel};
pub use sde::{LinearMap, MAX_STEPS, ScoreLabels, ScoreScaling, Sde, SdeKind, per_sample};
pub use subvp::SubVpSde;
pub use ve::VeSde;
pub use vp::{DdpmTables, VpSde};
