//! The noise-conditional classifier `p_t(y | x(t))` of class-conditional sampling (paper §5,
//! eq. 14; score_sde's JAX `models/wideresnet_noise_conditional.py`): training and its use as
//! `sgm_sample::NoiseConditionalClassifier`.
//!
//! * Objective ([`ClassifierStepper`]): the cross-entropy of the classifier on perturbed data
//!   `x(t) = mean(x, t) + σ(t) z` (`sde.marginal_prob`, `t ~ U[eps, T]`, eps = 1e-5 as the
//!   score loss), the classifier conditioned on `σ(t)` (the "VE noise scale" of the reference's
//!   `get_pc_conditional_sampler`). score_sde ships no training code for it; this is the
//!   objective its sampler assumes (the classifier of App. I was trained on noisy images at
//!   the SDE's noise levels).
//! * Loop: the run loop of the score models ([`crate::run_loop`]): Adam with warm-up and global
//!   clipping, EMA, run directory, atomic checkpoints in the one checkpoint format, resume.
//! * Sampling: [`SdeClassifier`] maps the sampler's times to `σ(t)` and gives the logits to
//!   `sgm_sample::GuidedScore`.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use sde_core::{AnySde, NoiseSource, Sde, per_sample};
use sgm_conv::{ConvAutodiffBackend, ConvBackend};
use sgm_nets::{WideResNet, WideResNetConfig};
use sgm_sample::NoiseConditionalClassifier;

use crate::config::TrainConfig;
use crate::data::BatchHost;
use crate::error::{Result, TrainError};
use crate::run::{NetHooks, Objective, RunData, RunSummary, run_loop, to_tensor};
use crate::trainer::{StepOutput, TrainState};

/// Smallest time of the training draws (`t ~ U[eps, T]`), as the score loss.
pub const CLASSIFIER_EPS: f32 = 1e-5;

/// The classifier's training state.
pub type ClassifierState<B> = TrainState<B, WideResNet<B>>;

/// The classifier objective of a run: the SDE whose noise levels it learns.
#[derive(Debug, Clone)]
pub struct ClassifierStepper {
    /// SDE of the perturbations.
    pub sde: AnySde,
    /// Smallest time drawn.
    pub eps: f32,
}

/// What one classifier loss evaluation gives.
#[derive(Debug, Clone)]
pub struct ClassifierLoss<B: Backend> {
    /// Mean cross-entropy `[1]`.
    pub loss: Tensor<B, 1>,
    /// Fraction of the batch classified correctly.
    pub accuracy: f64,
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| TrainError::Internal(format!("loss to host: {e:?}")))?
        .first()
        .copied()
        .ok_or_else(|| TrainError::Internal("empty loss".into()))
}

fn labels_of(batch: &BatchHost) -> Result<Vec<usize>> {
    if batch.labels.len() != batch.shape[0] {
        return Err(TrainError::Config {
            key: "data".into(),
            msg:
                "the classifier needs labelled images (CIFAR-10 batches); this source has no labels"
                    .into(),
        });
    }
    Ok(batch.labels.iter().map(|&l| l as usize).collect())
}

impl ClassifierStepper {
    /// The objective of `cfg`'s SDE.
    pub fn new(cfg: &TrainConfig) -> Result<Self> {
        Ok(Self {
            sde: cfg.sde()?,
            eps: CLASSIFIER_EPS,
        })
    }

    /// Cross-entropy of `net` on `x0` `[B, C, H, W]` (scaled data) perturbed to a random time
    /// per sample, labels `y`: draws `uniform(B)` then `normal([B, C, H, W])` from `noise`.
    pub fn loss<B: ConvBackend, N: NoiseSource<B>>(
        &self,
        net: &WideResNet<B>,
        x0: Tensor<B, 4>,
        y: &[usize],
        noise: &mut N,
    ) -> Result<ClassifierLoss<B>> {
        let device = x0.device();
        let dims = x0.dims();
        let b = dims[0];
        let k = net.config().num_classes;
        if y.len() != b {
            return Err(TrainError::Internal(format!(
                "{} labels for {b} images",
                y.len()
            )));
        }
        if let Some(bad) = y.iter().find(|&&l| l >= k) {
            return Err(TrainError::Config {
                key: "classifier.num_classes".into(),
                msg: format!("label {bad} needs more than {k} classes"),
            });
        }
        let u = noise.uniform(b, &device)?.into_data().convert::<f32>();
        let u = u
            .to_vec::<f32>()
            .map_err(|e| TrainError::Internal(format!("{e:?}")))?;
        let span = self.sde.t_max() - self.eps;
        let t: Vec<f32> = u.iter().map(|&u| u * span + self.eps).collect();
        let z = noise.normal(dims, &device)?; // [B, C, H, W]
        let (mean, std) = self.sde.marginal_prob(x0, &t)?;
        let xt = mean + per_sample::<B, 4>(&std, &device) * z; // x(t) = mean + σ(t) z
        let sigma = Tensor::<B, 1>::from_data(TensorData::new(std, [b]), &device);
        let logits = net.forward(xt, sigma); // [B, K]
        let mut onehot = vec![0f32; b * k];
        for (i, &l) in y.iter().enumerate() {
            onehot[i * k + l] = 1.0;
        }
        let onehot = Tensor::<B, 2>::from_data(TensorData::new(onehot, [b, k]), &device);
        let pred = logits.clone().argmax(1).into_data().convert::<i64>();
        let pred = pred
            .to_vec::<i64>()
            .map_err(|e| TrainError::Internal(format!("{e:?}")))?;
        let correct = pred
            .iter()
            .zip(y)
            .filter(|(p, l)| **p as usize == **l)
            .count();
        // −(1/B) Σ_b log softmax(logits_b)[y_b]
        let loss = (log_softmax(logits, 1) * onehot)
            .sum()
            .neg()
            .div_scalar(b as f64);
        Ok(ClassifierLoss {
            loss,
            accuracy: correct as f64 / b as f64,
        })
    }

    /// One optimizer step (loss → backward → warm-up / global clip / Adam → EMA) drawing
    /// from the state's RNG. On error the state is unchanged.
    pub fn train_step<B: ConvAutodiffBackend>(
        &self,
        state: &mut ClassifierState<B>,
        x0: Tensor<B, 4>,
        y: &[usize],
    ) -> Result<StepOutput> {
        let step = state.step + 1;
        let mut rng = state.rng.clone();
        let out = self.loss(&state.model, x0, y, &mut rng)?;
        let loss_value = scalar(out.loss.clone().inner())?;
        if !loss_value.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                what: "loss",
                value: loss_value,
            });
        }
        let grads = GradientsParams::from_grads(out.loss.backward(), &state.model);
        let out = state.apply(grads, loss_value)?;
        state.rng = rng;
        Ok(out)
    }

    /// Cross-entropy of the EMA classifier on `x0`, drawing from the state's RNG.
    pub fn eval_step<B: ConvAutodiffBackend>(
        &self,
        state: &mut ClassifierState<B>,
        x0: Tensor<B::InnerBackend, 4>,
        y: &[usize],
    ) -> Result<f64> {
        let mut rng = state.rng.clone();
        let out = self.loss(&state.ema.shadow, x0, y, &mut rng)?;
        state.rng = rng;
        scalar(out.loss)
    }
}

impl<B: ConvAutodiffBackend> Objective<B, WideResNet<B>> for ClassifierStepper {
    fn train_batch(
        &self,
        state: &mut ClassifierState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<StepOutput> {
        let y = labels_of(&batch)?;
        self.train_step(state, to_tensor::<B>(batch, device), &y)
    }
    fn eval_batch(
        &self,
        state: &mut ClassifierState<B>,
        batch: BatchHost,
        device: &B::Device,
    ) -> Result<f64> {
        let y = labels_of(&batch)?;
        self.eval_step(state, to_tensor::<B::InnerBackend>(batch, device), &y)
    }
}

/// Trains (or resumes) the classifier `net` in `workdir` with the schedule, optimizer, EMA,
/// data transforms, SDE and seed of `cfg` (an experiment's training view), on labelled data.
pub fn train_classifier<B: ConvAutodiffBackend>(
    cfg: &TrainConfig,
    net: &WideResNetConfig,
    workdir: &Path,
    data: RunData,
    resume: Option<&Path>,
    device: &B::Device,
    hooks: NetHooks<'_, WideResNet<B::InnerBackend>>,
) -> Result<RunSummary> {
    net.validate()?;
    let c = cfg.model.data.num_channels;
    if net.in_channels != c {
        return Err(TrainError::Config {
            key: "classifier.in_channels".into(),
            msg: format!("{} but the data has {c} channels", net.in_channels),
        });
    }
    if data.train.label(0).is_none() {
        return Err(TrainError::Config {
            key: "data".into(),
            msg: "the classifier needs labelled images (CIFAR-10 batches); the training source has no labels".into(),
        });
    }
    let stepper = ClassifierStepper::new(cfg)?;
    run_loop::<B, WideResNet<B>, _>(cfg, net, &stepper, workdir, data, resume, device, hooks)
}

/// A classifier on the autodiff backend seen through an SDE: the sampler's time `t` becomes
/// the classifier's noise level `σ(t)` (`sde.marginal_prob(x, t)[1]`, as the reference's
/// `get_pc_conditional_sampler`). Plug it into `sgm_sample::GuidedScore`.
pub struct SdeClassifier<'a, B: AutodiffBackend, S: Sde> {
    /// The classifier.
    pub net: &'a WideResNet<B>,
    /// The SDE whose σ(t) conditions it.
    pub sde: &'a S,
}

impl<B: ConvAutodiffBackend, S: Sde> NoiseConditionalClassifier<B> for SdeClassifier<'_, B, S> {
    fn logits(&self, x: Tensor<B, 4>, t: &[f32]) -> Tensor<B, 2> {
        let (_, std) = self.sde.marginal_coefs(t);
        let n = std.len();
        let sigma = Tensor::<B, 1>::from_data(TensorData::new(std, [n]), &x.device());
        self.net.forward(x, sigma)
    }
}
