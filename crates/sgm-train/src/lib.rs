//! # sgm-train — training as the reference's `run_lib.train`
//!
//! * [`Stepper`] / [`TrainState`]: the reference's `get_step_fn` — loss (continuous DSM, SMLD
//!   or DDPM, from `sde-core`), backward, `optimize_fn`, EMA update; eval with EMA weights.
//! * [`Optimizer`]: Adam exactly as torch's single-tensor path, linear warm-up with the lr-0
//!   first step, global `clip_grad_norm_`.
//! * [`Ema`]: the EMA with the `num_updates` ramp.
//! * [`bench`]: the benchmark tables of `cargo xtask bench` (networks, train step, sampler
//!   overhead, Inception features) for any backend.
//! * [`demo`]: the small end-to-end run of `cargo xtask demo` (train, sample, measure).
//! * [`generate`]: many samples in batches, seeded per image, one PNG each, resumable.
//! * [`TrainRng`]: the trainer's own resumable random stream (Burn's CPU RNG is global).
//!
//! Generic over any Burn `AutodiffBackend`; no global state except that dropout masks come from
//! Burn's RNG, which the step re-seeds from the run seed and step number.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod demo;
pub mod ema;
pub mod error;
pub mod generate;
pub mod optim;
pub mod rng;
pub mod run;
pub mod trainer;

pub use config::{DataTransforms, TrainConfig};
pub use ema::{Ema, ema_decay};
pub use error::{Result, TrainError};
pub use optim::{Moments, OptimStats, Optimizer, lr_at};
pub use rng::{RngState, TrainRng};
pub use run::{Metrics, RunData, RunDir, RunHooks, RunSummary, StepHook, init_model, train};
pub use sgm_config::{OptimConfig, TrainingConfig};
pub use trainer::{StepOutput, Stepper, TrainState};
