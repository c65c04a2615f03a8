//! One training state and the reference's `get_step_fn`: a train step is loss → backward →
//! `optimize_fn` (warm-up, global clip, Adam) → `step += 1` → EMA update; an eval step is the
//! loss of the EMA weights in eval mode (no dropout), with no gradient.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sde_core::{AnySde, LossConfig, NoiseSource, training_loss};
use sgm_conv::{ConvAutodiffBackend, ConvBackend};
use sgm_nets::ScoreNet;

use crate::config::TrainConfig;
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::optim::{OptimStats, Optimizer};
use crate::rng::TrainRng;

/// RNG stream of the loss draws (the data pipeline uses its own streams).
pub const LOSS_STREAM: u64 = 0;

/// What one train step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutput {
    /// `state.step` after the step (1 after the first).
    pub step: u64,
    /// Training loss of the batch (before the update).
    pub loss: f64,
    /// Learning rate and gradient norm of the optimizer step.
    pub optim: OptimStats,
}

/// Model, EMA, optimizer, step counter and RNG of a run (the reference's `state` dict + RNG).
/// `M` is the trained network: a score network by default, or the classifier.
#[derive(Debug, Clone)]
pub struct TrainState<B: AutodiffBackend, M: AutodiffModule<B> = ScoreNet<B>> {
    /// Trained network (autodiff backend).
    pub model: M,
    /// EMA of the network (inner backend).
    pub ema: Ema<M::InnerModule>,
    /// Adam moments.
    pub optim: Optimizer<B::InnerBackend>,
    /// Completed optimizer steps (`state['step']`).
    pub step: u64,
    /// Loss-draw RNG.
    pub rng: TrainRng,
}

/// The step functions of a config: SDE, loss knobs, seed.
#[derive(Debug, Clone)]
pub struct Stepper {
    /// SDE of the loss.
    pub sde: AnySde,
    /// Loss knobs.
    pub loss: LossConfig,
    /// Run seed (dropout seeding).
    pub seed: u64,
    /// True when the network has dropout (Burn's RNG is then re-seeded every step).
    pub dropout: bool,
}

pub(crate) fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f64> {
    let v = t
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| TrainError::Internal(format!("loss to host: {e:?}")))?;
    v.first()
        .copied()
        .ok_or_else(|| TrainError::Internal("empty loss".into()))
}

impl<B: AutodiffBackend> TrainState<B> {
    /// A fresh state: EMA = the model's weights, no Adam moments, step 0, RNG from the seed.
    pub fn new(cfg: &TrainConfig, model: ScoreNet<B>) -> Self {
        Self::fresh(model, cfg.model.model.ema_rate, cfg.optim.clone(), cfg.seed)
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> TrainState<B, M> {
    /// The rest of a train step once the gradients of the batch loss (`loss_value`) are known:
    /// `optimize_fn` (warm-up, global clip, Adam), `step += 1`, EMA update. On error
    /// (non-finite gradients) the state is unchanged.
    pub fn apply(&mut self, grads: GradientsParams, loss_value: f64) -> Result<StepOutput> {
        let step = self.step + 1;
        let mut optim = self.optim.clone();
        let (model, stats) = optim.step(self.model.clone(), grads, self.step)?;
        self.model = model;
        self.optim = optim;
        self.step = step;
        self.ema.update(&self.model);
        Ok(StepOutput {
            step,
            loss: loss_value,
            optim: stats,
        })
    }

    /// A fresh state of any network: EMA (decay `ema_rate`) = the model's weights, no Adam
    /// moments, step 0, loss RNG from `seed`.
    pub fn fresh(model: M, ema_rate: f64, optim: sgm_config::OptimConfig, seed: u64) -> Self {
        let ema = Ema::new(&model, ema_rate);
        Self {
            model,
            ema,
            optim: Optimizer::new(optim),
            step: 0,
            rng: TrainRng::new(seed, LOSS_STREAM),
        }
    }
}

impl Stepper {
    /// The step functions of `cfg`.
    pub fn new(cfg: &TrainConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            sde: cfg.sde()?,
            loss: cfg.loss(),
            seed: cfg.seed,
            dropout: cfg.model.model.dropout > 0.0,
        })
    }

    /// One train step on `batch` (`[B, C, H, W]`, already scaled), drawing from the state's RNG.
    pub fn train_step<B: ConvAutodiffBackend>(
        &self,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
    ) -> Result<StepOutput> {
        let mut rng = state.rng.clone();
        let out = self.train_step_with(state, batch, &mut rng)?;
        state.rng = rng;
        Ok(out)
    }

    /// One train step drawing from `noise` (a recorded reference run in the parity test). On
    /// error (non-finite loss or gradients) `state` is left as it was before the step.
    pub fn train_step_with<B: ConvAutodiffBackend, N: NoiseSource<B>>(
        &self,
        state: &mut TrainState<B>,
        batch: Tensor<B, 4>,
        noise: &mut N,
    ) -> Result<StepOutput> {
        let (loss_value, grads) =
            self.loss_and_grads(&state.model, batch, state.step + 1, noise)?;
        state.apply(grads, loss_value)
    }

    /// Re-seeds Burn's RNG for the dropout masks of train step `step` (when the network has
    /// dropout): dropout draws from Burn's process-global RNG, so a resumed run repeats the
    /// same masks only if every step seeds it.
    pub(crate) fn seed_dropout<B: Backend>(&self, device: &B::Device, step: u64) {
        if self.dropout {
            B::seed(device, self.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
    }

    /// Forward and backward pass of train step `step` (1 for the first) on `batch`
    /// (`[B, C, H, W]`, scaled): dropout seeding, `sde_core::training_loss` drawing from
    /// `noise`, the NaN / Inf check, backward. Returns the batch loss and the gradients of
    /// `model`'s parameters. The one loss-and-gradient path of [`Stepper::train_step`] and of
    /// burn-train's `TrainStep` (`crate::learner`, feature `learner`).
    pub fn loss_and_grads<B: ConvAutodiffBackend, N: NoiseSource<B>>(
        &self,
        model: &ScoreNet<B>,
        batch: Tensor<B, 4>,
        step: u64,
        noise: &mut N,
    ) -> Result<(f64, GradientsParams)> {
        self.seed_dropout::<B>(&batch.device(), step);
        let loss = training_loss(&self.sde, model, batch, &self.loss, noise)?; // [1]
        let loss_value = scalar(loss.clone().inner())?;
        crate::parallel::check_loss(step, loss_value)?;
        let grads = GradientsParams::from_grads(loss.backward(), model);
        Ok((loss_value, grads))
    }

    /// Eval loss of the EMA weights on `batch`, drawing from the state's RNG.
    pub fn eval_step<B: ConvAutodiffBackend>(
        &self,
        state: &mut TrainState<B>,
        batch: Tensor<B::InnerBackend, 4>,
    ) -> Result<f64> {
        let mut rng = state.rng.clone();
        let out = self.eval_step_with(state, batch, &mut rng)?;
        state.rng = rng;
        Ok(out)
    }

    /// Eval loss of the EMA weights drawing from `noise`.
    pub fn eval_step_with<B: ConvAutodiffBackend, N: NoiseSource<B::InnerBackend>>(
        &self,
        state: &TrainState<B>,
        batch: Tensor<B::InnerBackend, 4>,
        noise: &mut N,
    ) -> Result<f64> {
        self.eval_loss(&state.ema.shadow, batch, noise)
    }

    /// The loss of `model` (no gradient, no dropout seeding) on `batch` drawing from `noise`:
    /// the eval loss of [`Stepper::eval_step`] and of burn-train's `InferenceStep`.
    pub fn eval_loss<B: ConvBackend, N: NoiseSource<B>>(
        &self,
        model: &ScoreNet<B>,
        batch: Tensor<B, 4>,
        noise: &mut N,
    ) -> Result<f64> {
        scalar(training_loss(&self.sde, model, batch, &self.loss, noise)?)
    }
}
