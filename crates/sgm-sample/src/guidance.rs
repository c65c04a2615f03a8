//! Class-conditional sampling (JAX reference `controllable_generation.get_pc_conditional_sampler`;
//! paper §5, eq. 14): `∇ log p_t(x | y) = ∇ log p_t(x) + ∇ log p_t(y | x)`, the second term
//! from a noise-conditional classifier through Burn's autodiff. The guided score is an ordinary
//! [`ScoreFunction`], so it drives every sampler of this crate.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use sde_core::{ScoreFunction, SdeError};

/// A time-conditional classifier `p_t(y | x)`.
pub trait NoiseConditionalClassifier<B: AutodiffBackend> {
    /// Logits `[B, K]` at images `x` `[B, C, H, W]` and per-sample times `t`.
    fn logits(&self, x: Tensor<B, 4>, t: &[f32]) -> Tensor<B, 2>;
}

/// `score(x, t) + scale · ∇_x log softmax(classifier(x, t))[y]` (scale 1 = exact Bayes).
pub struct GuidedScore<'a, B: AutodiffBackend> {
    /// Unconditional score on the inner (no-tape) backend.
    pub score: &'a dyn ScoreFunction<B::InnerBackend>,
    /// The classifier on the autodiff backend.
    pub classifier: &'a dyn NoiseConditionalClassifier<B>,
    /// Target class per sample.
    pub labels: Vec<usize>,
    /// Guidance scale.
    pub scale: f32,
}

impl<'a, B: AutodiffBackend> GuidedScore<'a, B> {
    /// `∇_x log p_t(y | x)` per sample `[B, C, H, W]` (one forward + backward of the classifier).
    pub fn classifier_grad(
        &self,
        x: Tensor<B::InnerBackend, 4>,
        t: &[f32],
    ) -> sde_core::Result<Tensor<B::InnerBackend, 4>> {
        let b = x.dims()[0];
        if self.labels.len() != b {
            return Err(SdeError::BatchMismatch {
                what: "guided score labels",
                got: self.labels.len(),
                batch: b,
            });
        }
        let device = x.device();
        let xa = Tensor::<B, 4>::from_inner(x).require_grad();
        let logp = log_softmax(self.classifier.logits(xa.clone(), t), 1); // [B, K]
        let k = logp.dims()[1];
        if let Some(&bad) = self.labels.iter().find(|&&l| l >= k) {
            return Err(SdeError::LabelOutOfRange {
                what: "guided score labels",
                label: bad as i64,
                n: k,
            });
        }
        let mut onehot = vec![0f32; b * k];
        for (i, &l) in self.labels.iter().enumerate() {
            onehot[i * k + l] = 1.0;
        }
        let onehot = Tensor::<B, 2>::from_data(TensorData::new(onehot, [b, k]), &device);
        // Σ_b log p(y_b | x_b): the gradient w.r.t. x_b is the per-sample term.
        let grads = (logp * onehot).sum().backward();
        xa.grad(&grads).ok_or_else(|| {
            SdeError::Unsupported("classifier input is not tracked by autodiff".into())
        })
    }
}

impl<B: AutodiffBackend> ScoreFunction<B::InnerBackend> for GuidedScore<'_, B> {
    fn score(
        &self,
        x: Tensor<B::InnerBackend, 4>,
        t: &[f32],
    ) -> sde_core::Result<Tensor<B::InnerBackend, 4>> {
        let s = self.score.score(x.clone(), t)?;
        let g = self.classifier_grad(x, t)?;
        Ok(s + g.mul_scalar(self.scale))
    }
}
