//! The reverse-time SDE and the probability-flow ODE (reference `SDE.reverse`; paper eq. 6 / 13).

use burn::prelude::*;

use crate::error::Result;
use crate::score::ScoreFunction;
use crate::sde::{Sde, check_times, per_sample};

/// `dx = [f(x,t) − g(t)² ∇ log p_t(x) · (½ if probability_flow)] dt + g(t) dw̄`, with the
/// diffusion set to zero for the probability-flow ODE. Drifts are in forward-time sign
/// convention; samplers integrate with a negative time step.
#[derive(Debug, Clone)]
pub struct ReverseSde<'a, S: ?Sized, F> {
    sde: &'a S,
    score: F,
    probability_flow: bool,
}

impl<'a, S: Sde + ?Sized, F> ReverseSde<'a, S, F> {
    /// Wraps a forward SDE and a score function.
    pub fn new(sde: &'a S, score: F, probability_flow: bool) -> Self {
        Self {
            sde,
            score,
            probability_flow,
        }
    }
    /// The forward SDE.
    pub fn forward_sde(&self) -> &S {
        self.sde
    }
    /// The score function.
    pub fn score_fn(&self) -> &F {
        &self.score
    }
    /// Whether this is the probability-flow ODE.
    pub fn probability_flow(&self) -> bool {
        self.probability_flow
    }
    /// Same `N` as the forward SDE.
    pub fn num_steps(&self) -> usize {
        self.sde.num_steps()
    }
    /// Same `T` as the forward SDE.
    pub fn t_max(&self) -> f32 {
        self.sde.t_max()
    }

    /// `base − (c_b² · score) · (½ if probability flow)`, the reference's op order.
    fn subtract_score_term<B: Backend>(
        &self,
        base: Tensor<B, 4>,
        c: &[f32],
        score: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let c2: Vec<f32> = c.iter().map(|&g| g * g).collect();
        let term = score.mul(per_sample::<B, 4>(&c2, &base.device()));
        let term = if self.probability_flow {
            term.mul_scalar(0.5)
        } else {
            term
        };
        base - term
    }

    fn zero_if_flow(&self, g: Vec<f32>) -> Vec<f32> {
        if self.probability_flow {
            vec![0.0; g.len()]
        } else {
            g
        }
    }

    /// Reverse drift and diffusion at `(x, t)` (one score evaluation).
    pub fn sde<B: Backend>(&self, x: Tensor<B, 4>, t: &[f32]) -> Result<(Tensor<B, 4>, Vec<f32>)>
    where
        F: ScoreFunction<B>,
    {
        check_times("reverse sde", t, x.dims()[0], self.sde.t_max())?;
        let (drift, g) = self.sde.sde(x.clone(), t)?;
        let score = self.score.score(x, t)?;
        let drift = self.subtract_score_term(drift, &g, score);
        Ok((drift, self.zero_if_flow(g)))
    }

    /// Reverse discretisation `(rev_f, rev_G)` at `(x, t)` (one score evaluation).
    pub fn discretize<B: Backend>(
        &self,
        x: Tensor<B, 4>,
        t: &[f32],
    ) -> Result<(Tensor<B, 4>, Vec<f32>)>
    where
        F: ScoreFunction<B>,
    {
        let (f, g) = self.sde.discretize(x.clone(), t)?;
        let score = self.score.score(x, t)?;
        let rev_f = self.subtract_score_term(f, &g, score);
        Ok((rev_f, self.zero_if_flow(g)))
    }
}
