//! # sgm-train — training as the reference's `run_lib.train`
//!
//! * [`Stepper`] / [`TrainState`]: the reference's `get_step_fn` — loss (continuous DSM, SMLD
//!   or DDPM, from `sde-core`), backward, `optimize_fn`, EMA update; eval with EMA weights.
//! * [`Optimizer`]: Adam exactly as torch's single-tensor path, linear warm-up with the lr-0
//!   first step, global `clip_grad_norm_`.
//! * [`Ema`]: the EMA with the `num_updates` ramp.
//! * [`classifier`]: the noise-conditional WideResNet classifier of class-conditional
//!   sampling: its objective, training through the same loop, its `GuidedScore` adapter.
//! * [`bench`]: the benchmark tables of `cargo xtask bench` (networks, train step, sampler
//!   overhead, Inception features) for any backend.
//! * [`demo`]: the small end-to-end run of `cargo xtask demo` (train, sample, measure).
//! * [`generate`]: many samples in batches, seeded per image, one PNG each, resumable.
//! * [`evaluate`]: the reference's `run_lib.evaluate` over a run's checkpoints — eval loss,
//!   bits/dim, samples → FID / KID / IS — resumable mid-checkpoint, one report per checkpoint.
//! * [`parallel`]: data parallelism over several devices of one process (exact: equals the
//!   single-device step on the union batch).
//! * `collective` (feature `collective`): data parallelism through burn-collective's
//!   all-reduce (equals one process on the union batch; several nodes are blocked upstream).
//! * `learner` (feature `learner`): burn-train's `TrainStep` / `InferenceStep` for the score
//!   networks, a `Dataset` / `Batcher` of sgm's image sources: train inside your own
//!   burn-train `Learner` (without the reference's clipping, warm-up, EMA or sgm checkpoints).
//! * [`TrainRng`]: the trainer's own resumable random stream (Burn's CPU RNG is global).
//!
//! Generic over any Burn `AutodiffBackend`; no global state except that dropout masks come from
//! Burn's RNG, which the step re-seeds from the run seed and step number.

pub mod bench;
pub mod checkpoint;
pub mod classifier;
#[cfg(feature = "collective")]
pub mod collective;
pub mod config;
pub mod data;
pub mod demo;
pub mod ema;
pub mod error;
pub mod evaluate;
pub mod generate;
#[cfg(feature = "learner")]
pub mod learner;
pub mod net;
pub mod optim;
pub mod parallel;
pub mod rng;
pub mod run;
pub mod trainer;

pub use config::{DataTransforms, TrainConfig};
pub use ema::{Ema, ema_decay};
pub use error::{Result, TrainError};
pub use net::{NetConfig, TrainNet};
pub use optim::{Moments, OptimStats, Optimizer, lr_at};
pub use rng::{RngState, TrainRng};
pub use run::{
    Metrics, NetHooks, Objective, RunData, RunDir, RunHooks, RunSummary, StepHook, init_model,
    init_net, run_loop, train, train_parallel,
};
pub use sgm_config::{OptimConfig, TrainingConfig};
pub use trainer::{StepOutput, Stepper, TrainState};
