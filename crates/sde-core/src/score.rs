//! Score parameterisation (reference `models/utils.get_score_fn`): a network plus an SDE give
//! `∇_x log p_t(x)`. Any network implements [`ScoreModel`]; samplers only see
//! [`ScoreFunction`], so analytic scores plug in the same way.

use burn::prelude::*;

use crate::error::Result;
use crate::sde::{ScoreLabels, ScoreScaling, Sde, check_times, per_sample};

/// Conditioning labels handed to a network: float noise levels / times, or integer indices.
#[derive(Debug, Clone)]
pub enum Labels<B: Backend> {
    /// Float labels `[B]` (σ(t), `999 t`, `t (N − 1)`).
    Float(Tensor<B, 1>),
    /// Integer labels `[B]` (discrete VE / DDPM timesteps).
    Int(Tensor<B, 1, Int>),
}

impl<B: Backend> Labels<B> {
    /// The labels as float values (integers converted exactly), `[B]`.
    pub fn to_float(&self) -> Tensor<B, 1> {
        match self {
            Labels::Float(t) => t.clone(),
            Labels::Int(t) => t.clone().float(),
        }
    }
    /// Batch size.
    pub fn len(&self) -> usize {
        match self {
            Labels::Float(t) => t.dims()[0],
            Labels::Int(t) => t.dims()[0],
        }
    }
    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A noise-conditional network `s_θ(x, labels)`: NCSN++, DDPM++, DDPM, or an analytic model.
pub trait ScoreModel<B: Backend> {
    /// Network output for images `x` `[B, C, H, W]` and labels `[B]`.
    fn forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Tensor<B, 4>;

    /// [`ScoreModel::forward`] that reports input the model cannot take (wrong channels or
    /// size, a batch that differs from the labels', a label outside its table) as
    /// [`SdeError::Model`](crate::SdeError::Model) instead of panicking. Score functions and
    /// losses call this; models with such preconditions override it.
    fn try_forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Result<Tensor<B, 4>> {
        Ok(self.forward(x, labels))
    }
}

impl<B: Backend, M: ScoreModel<B> + ?Sized> ScoreModel<B> for &M {
    fn forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Tensor<B, 4> {
        (**self).forward(x, labels)
    }
    fn try_forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Result<Tensor<B, 4>> {
        (**self).try_forward(x, labels)
    }
}

/// A time-dependent score `∇_x log p_t(x)` evaluated at per-sample times.
pub trait ScoreFunction<B: Backend> {
    /// Score at `x` `[B, C, H, W]` and times `t` (one per sample).
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> Result<Tensor<B, 4>>;
}

impl<B: Backend, F> ScoreFunction<B> for F
where
    F: Fn(Tensor<B, 4>, &[f32]) -> Result<Tensor<B, 4>>,
{
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> Result<Tensor<B, 4>> {
        self(x, t)
    }
}

/// Host label values → label tensor on `device`.
pub fn labels_to_tensor<B: Backend>(labels: ScoreLabels, device: &B::Device) -> Labels<B> {
    match labels {
        ScoreLabels::Float(v) => {
            let n = v.len();
            Labels::Float(Tensor::from_data(TensorData::new(v, [n]), device))
        }
        ScoreLabels::Int(v) => {
            let n = v.len();
            Labels::Int(Tensor::from_data(TensorData::new(v, [n]), device))
        }
    }
}

/// The reference's `get_score_fn(sde, model, train, continuous)`.
///
/// * VP / sub-VP: labels `999 t` (continuous, or always for sub-VP) or `t (N − 1)` (discrete
///   VP); `score = −model(x, labels) / std` with the marginal std (continuous) or
///   `sqrt_1m_alphas_cumprod[floor(labels)]` (discrete).
/// * VE: labels σ(t) (continuous) or `round((T − t)(N − 1))` (discrete); `score = model(x, labels)`.
///
/// Train / eval mode is the model's business (Burn enables dropout on autodiff backends).
#[derive(Debug, Clone, Copy)]
pub struct ScoreFn<'a, S: ?Sized, M: ?Sized> {
    /// The SDE whose marginals parameterise the score.
    pub sde: &'a S,
    /// The network.
    pub model: &'a M,
    /// Continuous-time (true) or discrete (false) labels.
    pub continuous: bool,
}

impl<'a, S: ?Sized, M: ?Sized> ScoreFn<'a, S, M> {
    /// Wraps `model` for `sde`.
    pub fn new(sde: &'a S, model: &'a M, continuous: bool) -> Self {
        Self {
            sde,
            model,
            continuous,
        }
    }
}

/// Turns a raw network output into a score with the SDE's scaling.
pub fn apply_score_scaling<B: Backend>(out: Tensor<B, 4>, scaling: &ScoreScaling) -> Tensor<B, 4> {
    match scaling {
        ScoreScaling::Identity => out,
        // `score = -score / std[:, None, None, None]`
        ScoreScaling::NegDivStd(std) => {
            let device = out.device();
            out.neg().div(per_sample::<B, 4>(std, &device))
        }
    }
}

impl<B: Backend, S: Sde + ?Sized, M: ScoreModel<B> + ?Sized> ScoreFunction<B>
    for ScoreFn<'_, S, M>
{
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> Result<Tensor<B, 4>> {
        check_times("score_fn", t, x.dims()[0], self.sde.t_max())?;
        let (labels, scaling) = self.sde.score_parameterisation(t, self.continuous);
        let labels = labels_to_tensor::<B>(labels, &x.device());
        let out = self.model.try_forward(x, labels)?;
        Ok(apply_score_scaling(out, &scaling))
    }
}
