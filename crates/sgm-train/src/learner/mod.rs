//! burn-train's step traits for sgm's score networks (feature `learner`): train an sgm network
//! inside your own burn-train `Learner`.
//!
//! * [`ScoreLearner`]: a [`ScoreNet`] plus the objective of a [`TrainConfig`] (SDE, loss knobs,
//!   seed). Its `TrainStep` is [`Stepper::loss_and_grads`], the same loss-and-gradient code
//!   `sgm-train`'s own loop runs (`sde_core::training_loss`); its `InferenceStep` is
//!   [`Stepper::eval_loss`] on the current weights.
//! * [`ScoreOutput`]: the batch loss, fed to burn-train's `LossMetric` (any backend).
//! * [`data`]: a burn `Dataset` over any [`ImageSource`](crate::data::ImageSource) (CIFAR-10,
//!   image folders, in memory) and a `Batcher` applying the reference's transforms.
//!
//! **Random draws.** The loss draws (times, noise) come from a [`TrainRng`] seeded with
//! `cfg.seed` on [`LOSS_STREAM`], the stream sgm's own loop starts from, so the first steps
//! draw what `xtask train`'s first steps draw. The stream sits behind an `Arc<Mutex<_>>` (the
//! steps take `&self`); every clone of the learner — the Learner's per-step copies and its
//! validation model (`valid()`) — shares it, in call order, as sgm's loop shares one stream
//! between train and eval steps. Dropout masks are seeded per step from `(seed, step)` as in
//! sgm's loop; the step number is the learner's own counter of train steps.
//!
//! **Not carried** (burn-train's `Learner` does not express them; `xtask train` / [`crate::train`]
//! keep them): the reference's global gradient-norm clipping (`grad_clip`; burn's
//! `GradientClippingConfig::Norm` clips each tensor by its own norm), the linear warm-up with
//! the lr-0 first step (use a burn `LrScheduler`), Adam with ε = 1e-8 in torch's form (set
//! `AdamConfig::with_epsilon(1e-8)`; Burn rounds it differently), the EMA, sgm checkpoints
//! (burn-train writes Burn records; the loss stream position and step counter are not in them,
//! so a resumed Learner does not repeat the draws), and the iteration-based schedule
//! (`n_iters`, snapshots; the Learner counts epochs).
//!
//! **Errors.** The step traits return no `Result`: a non-finite loss or a batch the network
//! rejects (wrong shape) panics with sgm's error message (naming the step), which stops the
//! Learner. A bad config is an error of [`ScoreLearner::new`], before training starts.

pub mod data;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn_train::metric::{Adaptor, ItemLazy, LossInput};
use burn_train::{InferenceStep, TrainOutput, TrainStep};
use sgm_conv::{ConvAutodiffBackend, ConvBackend};
use sgm_nets::ScoreNet;

use crate::config::TrainConfig;
use crate::error::Result;
use crate::rng::{RngState, TrainRng};
use crate::trainer::{LOSS_STREAM, Stepper};

/// A score network and its training objective as a burn-train model: `TrainStep` on an
/// autodiff backend, `InferenceStep` on its inner backend. Batches are `[B, C, H, W]` tensors,
/// already scaled ([`data::ImageBatcher`] makes them). The parameters are the network's (a
/// Burn record of this module holds them under `net.`).
#[derive(Module, Debug)]
pub struct ScoreLearner<B: Backend> {
    /// The score network.
    pub net: ScoreNet<B>,
    #[module(skip)]
    objective: Objective,
}

/// What the steps need besides the weights; shared by every clone of a learner.
#[derive(Clone)]
struct Objective {
    stepper: Stepper,
    /// Loss draws, in call order.
    rng: Arc<Mutex<TrainRng>>,
    /// Train steps taken (dropout seeding).
    steps: Arc<AtomicU64>,
}

/// Compact (burn-train prints the model; the SDE's discrete tables would fill the screen).
impl std::fmt::Debug for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objective")
            .field("sde", &sde_core::Sde::kind(&self.stepper.sde))
            .field("loss", &self.stepper.loss)
            .field("seed", &self.stepper.seed)
            .field("steps", &self.steps.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ScoreLearner<B> {
    /// `net` trained with `cfg`'s objective (validated: SDE, loss knobs, network config).
    pub fn with_net(cfg: &TrainConfig, net: ScoreNet<B>) -> Result<Self> {
        Ok(Self {
            net,
            objective: Objective {
                stepper: Stepper::new(cfg)?,
                rng: Arc::new(Mutex::new(TrainRng::new(cfg.seed, LOSS_STREAM))),
                steps: Arc::new(AtomicU64::new(0)),
            },
        })
    }

    /// Train steps taken so far by this learner and its clones.
    pub fn steps(&self) -> u64 {
        self.objective.steps.load(Ordering::SeqCst)
    }

    /// Where the loss-draw stream stands.
    pub fn rng_state(&self) -> RngState {
        self.rng().state()
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, TrainRng> {
        // a panicking step leaves the stream usable (it only advanced)
        self.objective
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: AutodiffBackend> ScoreLearner<B> {
    /// A fresh network of `cfg`, initialised from `cfg.seed` as `xtask train` initialises it
    /// ([`crate::init_model`]), with `cfg`'s objective.
    pub fn new(cfg: &TrainConfig, device: &B::Device) -> Result<Self> {
        Self::with_net(cfg, crate::init_model::<B>(cfg, device)?)
    }
}

/// The loss of one batch, for burn-train's metrics (`LossMetric` of any backend).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOutput {
    /// Batch loss (the reference's `reduce_mean` / sum convention of the config).
    pub loss: f64,
}

impl ItemLazy for ScoreOutput {
    type ItemSync = Self;
    fn sync(self) -> Self {
        self
    }
}

impl<B: Backend> Adaptor<LossInput<B>> for ScoreOutput {
    fn adapt(&self) -> LossInput<B> {
        // one value per batch, as burn's own outputs report a mean loss
        LossInput::new(Tensor::from_data(
            TensorData::new(vec![self.loss], [1]),
            &Default::default(),
        ))
    }
}

/// The step's result, or a panic with sgm's message (the traits have no error channel).
fn or_panic<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("sgm ScoreLearner: {e}"))
}

impl<B: ConvAutodiffBackend> TrainStep for ScoreLearner<B> {
    type Input = Tensor<B, 4>;
    type Output = ScoreOutput;

    fn step(&self, batch: Tensor<B, 4>) -> TrainOutput<ScoreOutput> {
        let step = self.objective.steps.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rng = self.rng();
        let (loss, grads) = or_panic(
            self.objective
                .stepper
                .loss_and_grads(&self.net, batch, step, &mut *rng),
        );
        TrainOutput {
            grads,
            item: ScoreOutput { loss },
        }
    }
}

impl<B: ConvBackend> InferenceStep for ScoreLearner<B> {
    type Input = Tensor<B, 4>;
    type Output = ScoreOutput;

    fn step(&self, batch: Tensor<B, 4>) -> ScoreOutput {
        let mut rng = self.rng();
        let loss = or_panic(
            self.objective
                .stepper
                .eval_loss(&self.net, batch, &mut *rng),
        );
        ScoreOutput { loss }
    }
}
