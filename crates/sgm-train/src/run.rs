//! The reference's `run_lib.train` loop and run directory:
//!
//! ```text
//! workdir/
//!   checkpoints/checkpoint_{k}.safetensors   every snapshot_freq steps and at the last step
//!   checkpoints-meta/checkpoint.safetensors  every snapshot_freq_for_preemption steps (resume)
//!   samples/iter_{step}/                     EMA samples at snapshots (when a sampler is given)
//!   metrics.jsonl                            one JSON object per log / eval line
//! ```
//!
//! Loop (loop variable `step` = completed steps before the iteration, as the reference):
//! train step; every `log_freq` a metrics line; every `eval_freq` the eval loss of one eval
//! batch with the EMA weights; every `snapshot_freq_for_preemption` the pre-emption
//! checkpoint; every `snapshot_freq` (and at `n_iters`) a kept checkpoint + samples. The one
//! deliberate difference: the pre-emption checkpoint is written *after* the eval of its step
//! (the reference writes it before), so the saved RNG state includes that eval's draws and a
//! resumed run is bit-identical to an uninterrupted one. A run finds
//! `checkpoints-meta/checkpoint.safetensors` and resumes from it automatically.
//!
//! A non-finite loss or gradient stops the run with an error naming the step; the checkpoints
//! on disk are untouched (they are only ever replaced atomically by complete files).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use sgm_conv::ConvAutodiffBackend;
use sgm_nets::ScoreNet;

use crate::checkpoint::{self, Checkpoint};
use crate::config::TrainConfig;
use crate::data::{BatchHost, DataPosition, DataStream, ImageSource, Prefetcher, Transforms};
use crate::error::{Result, TrainError};
use crate::net::TrainNet;
use crate::trainer::{StepOutput, Stepper, TrainState};

/// Name of the pre-emption checkpoint inside `checkpoints-meta/`.
pub const META_CHECKPOINT: &str = "checkpoint.safetensors";
/// Purpose ids of the two data streams.
pub(crate) const TRAIN_STREAM: u64 = 0;
pub(crate) const EVAL_STREAM: u64 = 1;

/// The run directory layout.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Root (`workdir`).
    pub root: PathBuf,
}

impl RunDir {
    /// Creates `root` and its sub-directories.
    pub fn create(root: &Path) -> Result<Self> {
        for d in ["checkpoints", "checkpoints-meta", "samples"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }
    /// `checkpoints-meta/checkpoint.safetensors`.
    pub fn meta_checkpoint(&self) -> PathBuf {
        self.root.join("checkpoints-meta").join(META_CHECKPOINT)
    }
    /// `checkpoints/checkpoint_{k}.safetensors`.
    pub fn checkpoint(&self, k: u64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("checkpoint_{k}.safetensors"))
    }
    /// `samples/iter_{step}`.
    pub fn samples(&self, step: u64) -> PathBuf {
        self.root.join("samples").join(format!("iter_{step}"))
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Loop step (completed steps before the iteration).
    pub step: u64,
    /// Training loss of the step.
    pub loss: f64,
    /// Eval loss (EMA weights), on eval steps.
    pub eval_loss: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training iterations per second since the previous line.
    pub it_per_s: f64,
}

/// Where the data comes from.
pub struct RunData {
    /// Training images.
    pub train: Arc<dyn ImageSource>,
    /// Eval images (one batch every `eval_freq` steps).
    pub eval: Arc<dyn ImageSource>,
}

/// Called after every step with its metrics (progress bars).
pub type StepHook<'a> = Box<dyn FnMut(&Metrics) + 'a>;
/// Draws EMA samples of the given network into the given directory.
pub type SampleHook<'a, IB> = NetSampleHook<'a, ScoreNet<IB>>;
/// Called with the EMA module `N` and a directory at snapshots.
pub type NetSampleHook<'a, N> = Box<dyn FnMut(&N, &Path) -> Result<()> + 'a>;

/// Things the caller plugs into a score network's run.
pub type RunHooks<'a, IB> = NetHooks<'a, ScoreNet<IB>>;

/// Things the caller plugs into the loop (`N`: the EMA module).
pub struct NetHooks<'a, N> {
    /// Called after every step with the metrics of that step (progress bars).
    pub on_step: Option<StepHook<'a>>,
    /// Draws EMA samples into `samples/iter_N/` at snapshots (when `snapshot_sampling`).
    pub sample: Option<NetSampleHook<'a, N>>,
}

impl<N> Default for NetHooks<'_, N> {
    fn default() -> Self {
        Self {
            on_step: None,
            sample: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Completed steps.
    pub step: u64,
    /// Step the run started from (0, or the resumed checkpoint's).
    pub resumed_from: Option<u64>,
    /// Last training loss (a resumed run with no step left: the last one in `metrics.jsonl`;
    /// NaN when there is none).
    pub last_loss: f64,
}

struct ForceInit;
impl<B: Backend> ModuleVisitor<B> for ForceInit {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let _ = p.val();
    }
}

/// A fresh network of `cfg` initialised from `cfg.seed` (Burn's initialisers draw from its
/// RNG, which is seeded here and every parameter initialised at once).
pub fn init_model<B: AutodiffBackend>(
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<ScoreNet<B>> {
    init_net::<B, ScoreNet<B>>(&cfg.model, cfg.seed, device)
}

/// [`init_model`] for any network.
pub fn init_net<B: Backend, M: TrainNet<B>>(
    cfg: &M::Config,
    seed: u64,
    device: &B::Device,
) -> Result<M> {
    B::seed(device, seed);
    let model = M::build(cfg, device)?;
    model.visit(&mut ForceInit);
    Ok(model)
}

/// Errors unless the images of `source` have the shape of `cfg`'s data.
pub(crate) fn check_shape(cfg: &TrainConfig, what: &str, source: &dyn ImageSource) -> Result<()> {
    let d = &cfg.model.data;
    let want = [d.num_channels, d.image_size, d.image_size];
    if source.shape() != want {
        return Err(TrainError::Config {
            key: "data.image_size".into(),
            msg: format!(
                "{what} images are {:?}, the config wants {want:?}",
                source.shape()
            ),
        });
    }
    Ok(())
}

/// What a run trains: one train step and one eval loss of a host batch. [`Stepper`] is the
/// score networks' objective; `classifier::ClassifierStepper` the classifier's.
pub trait Objective<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// One optimizer step on `batch`.
    fn train_batch(
        &self,
        state: &mut TrainState<B, M>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<StepOutput>;
    /// The eval loss of the EMA weights on `batch`.
    fn eval_batch(
        &self,
        state: &mut TrainState<B, M>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<f64>;
}

impl<B: ConvAutodiffBackend> Objective<B, ScoreNet<B>> for Stepper {
    fn train_batch(
        &self,
        state: &mut TrainState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<StepOutput> {
        self.train_step(state, to_tensor::<B>(batch, device))
    }
    fn eval_batch(
        &self,
        state: &mut TrainState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<f64> {
        self.eval_step(state, to_tensor::<B::InnerBackend>(batch, device))
    }
}

/// The training loss of the last line of `metrics.jsonl` (a resumed run that has no step left
/// to do reports it); `None` without a readable line.
fn last_logged_loss(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str::<serde_json::Value>(line).ok()?["loss"].as_f64()
}

fn append_metrics(path: &Path, m: &Metrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    let line = serde_json::to_string(m).map_err(|e| TrainError::io(path, e))?;
    writeln!(f, "{line}").map_err(|e| TrainError::io(path, e))
}

/// A host batch as a `[B, C, H, W]` tensor on `device`.
pub fn to_tensor<B: Backend>(b: BatchHost, device: &B::Device) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(b.data, b.shape), device)
}

/// Runs (or resumes) training in `workdir`. `resume`: an explicit checkpoint to start from;
/// otherwise `checkpoints-meta/` is used when present.
pub fn train<B: ConvAutodiffBackend>(
    cfg: &TrainConfig,
    workdir: &Path,
    data: RunData,
    resume: Option<&Path>,
    device: &B::Device,
    hooks: RunHooks<'_, B::InnerBackend>,
) -> Result<RunSummary> {
    let stepper = Stepper::new(cfg)?;
    run_loop::<B, ScoreNet<B>, _>(
        cfg, &cfg.model, &stepper, workdir, data, resume, device, hooks,
    )
}

/// [`train`] with each training batch split across `devices` (`crate::parallel`: the first
/// device is the main one and holds the model, optimizer, EMA and eval; one device = [`train`]).
pub fn train_parallel<B: ConvAutodiffBackend>(
    cfg: &TrainConfig,
    workdir: &Path,
    data: RunData,
    resume: Option<&Path>,
    devices: &[B::Device],
    hooks: RunHooks<'_, B::InnerBackend>,
) -> Result<RunSummary> {
    let Some(main) = devices.first() else {
        return Err(TrainError::Config {
            key: "devices".into(),
            msg: "no device".into(),
        });
    };
    if devices.len() == 1 {
        return train::<B>(cfg, workdir, data, resume, main, hooks);
    }
    let par = crate::parallel::ParallelStepper::<B> {
        stepper: Stepper::new(cfg)?,
        split: crate::parallel::Devices(devices.to_vec()),
    };
    run_loop::<B, ScoreNet<B>, _>(cfg, &cfg.model, &par, workdir, data, resume, main, hooks)
}

/// The loop of [`train`] for any network `M` (config `net`) and objective: `cfg` gives the
/// schedule (`training.*`), optimizer, EMA rate (`model.ema_rate`), data shape and transforms,
/// and seed.
#[allow(clippy::too_many_arguments)]
pub fn run_loop<B, M, O>(
    cfg: &TrainConfig,
    net: &M::Config,
    objective: &O,
    workdir: &Path,
    data: RunData,
    resume: Option<&Path>,
    device: &B::Device,
    mut hooks: NetHooks<'_, M::InnerModule>,
) -> Result<RunSummary>
where
    B: AutodiffBackend,
    M: TrainNet<B> + AutodiffModule<B>,
    M::InnerModule: TrainNet<B::InnerBackend, Config = M::Config>,
    O: Objective<B, M>,
{
    let dir = RunDir::create(workdir)?;
    let meta = dir.meta_checkpoint();
    let resume_path = match resume {
        Some(p) => Some(p.to_path_buf()),
        None if meta.is_file() => Some(meta.clone()),
        None => None,
    };
    let (mut state, train_pos, eval_pos, resumed_from) = match &resume_path {
        Some(p) => {
            let ck = Checkpoint::read(p)?;
            let st: TrainState<B, M> = ck.train_state_of::<B, M>(net, &cfg.optim, device)?;
            log::info!("resuming from {} at step {}", p.display(), st.step);
            let step = st.step;
            (st, ck.meta.data, ck.meta.eval_data, Some(step))
        }
        None => {
            let model = init_net::<B, M>(net, cfg.seed, device)?;
            (
                TrainState::fresh(model, cfg.model.model.ema_rate, cfg.optim.clone(), cfg.seed),
                DataPosition::default(),
                DataPosition::default(),
                None,
            )
        }
    };
    let tf = Transforms::of(cfg);
    check_shape(cfg, "training", data.train.as_ref())?;
    check_shape(cfg, "eval", data.eval.as_ref())?;
    let train_stream = DataStream::new(
        data.train,
        cfg.training.batch_size,
        cfg.seed,
        TRAIN_STREAM,
        tf,
        train_pos,
    )?;
    let mut eval_stream = DataStream::new(
        data.eval,
        cfg.eval_batch_size,
        cfg.seed,
        EVAL_STREAM,
        tf,
        eval_pos,
    )?;
    let mut batches = Prefetcher::new(train_stream, 4);
    let mut train_pos = train_pos;
    let t = &cfg.training;
    let mut last_loss = match resumed_from {
        Some(_) => last_logged_loss(&dir.metrics()).unwrap_or(f64::NAN),
        None => f64::NAN,
    };
    let mut clock = Instant::now();
    let mut since = 0u64;
    while state.step <= t.n_iters {
        let step = state.step;
        let batch = batches.next_batch()?;
        let next_pos = batch.next;
        let out = objective.train_batch(&mut state, batch, device)?;
        train_pos = next_pos;
        last_loss = out.loss;
        since += 1;
        let eval_loss = if step % t.eval_freq == 0 {
            let b = eval_stream.next_batch()?;
            Some(objective.eval_batch(&mut state, b, device)?)
        } else {
            None
        };
        let elapsed = clock.elapsed().as_secs_f64();
        let m = Metrics {
            step,
            loss: out.loss,
            eval_loss,
            lr: out.optim.lr,
            grad_norm: out.optim.grad_norm,
            it_per_s: since as f64 / elapsed.max(1e-9),
        };
        if let Some(f) = hooks.on_step.as_mut() {
            f(&m);
        }
        if step % t.log_freq == 0 || eval_loss.is_some() {
            log::info!(
                "step {step}: loss {:.5e}{} lr {:.3e} grad_norm {:.3e} {:.2} it/s",
                out.loss,
                eval_loss
                    .map(|e| format!(" eval_loss {e:.5e}"))
                    .unwrap_or_default(),
                m.lr,
                m.grad_norm,
                m.it_per_s
            );
            append_metrics(&dir.metrics(), &m)?;
            clock = Instant::now();
            since = 0;
        }
        if step != 0 && step % t.snapshot_freq_for_preemption == 0 {
            checkpoint::save(&state, train_pos, eval_stream.position(), &meta)?;
        }
        if (step != 0 && step % t.snapshot_freq == 0) || step == t.n_iters {
            let k = step / t.snapshot_freq;
            checkpoint::save(
                &state,
                train_pos,
                eval_stream.position(),
                &dir.checkpoint(k),
            )?;
            log::info!("step {step}: snapshot {}", dir.checkpoint(k).display());
            if t.snapshot_sampling
                && let Some(sample) = hooks.sample.as_mut()
            {
                let d = dir.samples(step);
                std::fs::create_dir_all(&d).map_err(|e| TrainError::io(&d, e))?;
                sample(&state.ema.shadow, &d)?;
            }
        }
    }
    // The final state is also the pre-emption checkpoint, so a rerun is a no-op.
    checkpoint::save(&state, train_pos, eval_stream.position(), &meta)?;
    Ok(RunSummary {
        step: state.step,
        resumed_from,
        last_loss,
    })
}
