//! The `Sde` trait (reference `sde_lib.SDE`) and the pieces every SDE shares.
//!
//! Time is passed as one `f32` per sample (`t: &[f32]`, the reference's `[B]` vector). The
//! per-sample coefficients are computed on the host in the reference's float32 operation
//! order (see [`crate::f32math`]) and broadcast over the other dimensions of `x`.

use burn::prelude::*;

use crate::error::{Result, SdeError};
use crate::noise::NoiseSource;

/// Which family an SDE belongs to (the reference dispatches on `isinstance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdeKind {
    /// Variance exploding (SMLD / NCSN), `VESDE`.
    Ve,
    /// Variance preserving (DDPM), `VPSDE`.
    Vp,
    /// Sub-variance preserving, `subVPSDE`.
    SubVp,
}

impl SdeKind {
    /// Every kind, in the paper's order.
    pub const ALL: [SdeKind; 3] = [SdeKind::Ve, SdeKind::Vp, SdeKind::SubVp];

    /// The reference class name (`VESDE`, `VPSDE`, `subVPSDE`).
    pub fn reference_name(self) -> &'static str {
        match self {
            SdeKind::Ve => "VESDE",
            SdeKind::Vp => "VPSDE",
            SdeKind::SubVp => "subVPSDE",
        }
    }

    /// The config name of `training.sde` (`vesde`, `vpsde`, `subvpsde`): the class name in
    /// lower case.
    pub fn config_name(self) -> &'static str {
        match self {
            SdeKind::Ve => "vesde",
            SdeKind::Vp => "vpsde",
            SdeKind::SubVp => "subvpsde",
        }
    }

    /// Parses a class name or config name, case-insensitively (`VESDE`, `vesde`, `subVPSDE`, …).
    pub fn from_name(name: &str) -> Option<SdeKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.reference_name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A per-sample linear map `x ↦ f(x)`. Every drift of the paper's SDEs is linear in `x`; the
/// variants keep the reference's float32 operation order, which matters where it cancels.
#[derive(Debug, Clone, PartialEq)]
pub enum LinearMap {
    /// `f(x) = 0`.
    Zero,
    /// `f(x) = x`.
    Identity,
    /// `f(x) = c_b · x`.
    Scale(Vec<f32>),
    /// `f(x) = (c_b · x) · dt` — the Euler–Maruyama discretisation `drift * dt` (two roundings).
    ScaleThenScalar(Vec<f32>, f32),
    /// `f(x) = s_b · x − x` — the DDPM discretisation `sqrt(alpha) * x - x` (kept unfused).
    ScaleMinusIdentity(Vec<f32>),
}

impl LinearMap {
    /// Applies the map to `x` (`[B, …]`).
    pub fn apply<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let device = x.device();
        match self {
            LinearMap::Zero => x.zeros_like(),
            LinearMap::Identity => x,
            LinearMap::Scale(c) => x.mul(per_sample::<B, D>(c, &device)),
            LinearMap::ScaleThenScalar(c, dt) => {
                x.mul(per_sample::<B, D>(c, &device)).mul_scalar(*dt)
            }
            LinearMap::ScaleMinusIdentity(s) => x.clone().mul(per_sample::<B, D>(s, &device)) - x,
        }
    }
}

/// How a network output becomes a score for a given SDE (reference `get_score_fn`).
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreLabels {
    /// Float labels (noise level σ(t), `999·t`, or `t·(N−1)`).
    Float(Vec<f32>),
    /// Integer labels (discrete VE: `round((T − t)(N − 1))`).
    Int(Vec<i64>),
}

/// What is done to the network output to get the score.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreScaling {
    /// `score = model(x, labels)` (VE: the network divides by σ itself).
    Identity,
    /// `score = −model(x, labels) / std_b` (VP / sub-VP: the network predicts ε).
    NegDivStd(Vec<f32>),
}

/// Shortcut for `per-sample vector → tensor of shape [B, 1, …, 1]`.
pub fn per_sample<B: Backend, const D: usize>(v: &[f32], device: &B::Device) -> Tensor<B, D> {
    let mut shape = [1usize; D];
    shape[0] = v.len();
    Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device).reshape(shape)
}

/// Checks that `t` has one finite value in `[0, t_max]` per sample of a batch of `batch`.
pub fn check_times(what: &'static str, t: &[f32], batch: usize, t_max: f32) -> Result<()> {
    if t.len() != batch {
        return Err(SdeError::BatchMismatch {
            what,
            got: t.len(),
            batch,
        });
    }
    if let Some(&bad) = t
        .iter()
        .find(|&&v| !(v.is_finite() && (0.0..=t_max).contains(&v)))
    {
        return Err(SdeError::TimeOutOfRange {
            what,
            t: bad,
            t_max,
        });
    }
    Ok(())
}

/// A forward SDE `dx = f(x, t) dt + g(t) dw` of the paper, with everything the reference
/// `sde_lib.SDE` offers. Implementors provide per-sample coefficients; the tensor methods are
/// provided.
pub trait Sde: Send + Sync + std::fmt::Debug {
    /// Which family this SDE is.
    fn kind(&self) -> SdeKind;
    /// End time `T` (1 for every SDE of the paper).
    fn t_max(&self) -> f32 {
        1.0
    }
    /// Number of discretisation steps `N`.
    fn num_steps(&self) -> usize;
    /// Smallest time used by the samplers of `run_lib` (1e-5 for VE, 1e-3 for VP / sub-VP).
    fn default_sampling_eps(&self) -> f32;

    /// Forward drift `f(·, t)` as a linear map, per sample.
    fn drift_map(&self, t: &[f32]) -> LinearMap;
    /// Diffusion `g(t)`, per sample.
    fn diffusion_coefs(&self, t: &[f32]) -> Vec<f32>;
    /// Perturbation kernel `p_0t(x(t) | x(0))`: mean map and std, per sample (`marginal_prob`).
    fn marginal_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>);
    /// One discretised step `x_{i+1} = x_i + f_i(x_i) + G_i z_i`: the map `f_i` and `G_i`.
    fn discretize_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>);
    /// Standard deviation of the (isotropic, zero-mean Gaussian) prior `p_T`.
    fn prior_std(&self) -> f32;
    /// Network labels and output scaling of the reference's `get_score_fn`.
    fn score_parameterisation(&self, t: &[f32], continuous: bool) -> (ScoreLabels, ScoreScaling);

    /// `sde(x, t)`: drift tensor and per-sample diffusion.
    fn sde<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        t: &[f32],
    ) -> Result<(Tensor<B, D>, Vec<f32>)> {
        check_times("sde", t, x.dims()[0], self.t_max())?;
        Ok((self.drift_map(t).apply(x), self.diffusion_coefs(t)))
    }

    /// `marginal_prob(x, t)`: mean tensor and per-sample std of `p_0t(x(t) | x(0) = x)`.
    fn marginal_prob<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        t: &[f32],
    ) -> Result<(Tensor<B, D>, Vec<f32>)> {
        check_times("marginal_prob", t, x.dims()[0], self.t_max())?;
        let (mean, std) = self.marginal_coefs(t);
        Ok((mean.apply(x), std))
    }

    /// `discretize(x, t)`: `f_i(x)` tensor and per-sample `G_i`.
    fn discretize<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        t: &[f32],
    ) -> Result<(Tensor<B, D>, Vec<f32>)> {
        check_times("discretize", t, x.dims()[0], self.t_max())?;
        let (f, g) = self.discretize_coefs(t);
        Ok((f.apply(x), g))
    }

    /// `prior_sampling(shape)`: one standard-normal draw from `noise`, times the prior std
    /// (float32 multiply, as the reference's VE `randn * sigma_max`).
    fn prior_sampling<B: Backend, const D: usize, N: NoiseSource<B>>(
        &self,
        shape: [usize; D],
        noise: &mut N,
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let z = noise.normal(shape, device)?;
        let s = self.prior_std();
        Ok(if s == 1.0 { z } else { z.mul_scalar(s) })
    }

    /// `prior_logp(z)`: log-density of the prior per sample, summed over all but the batch dim:
    /// `−D/2·ln(2π s²) − Σ z² / (2 s²)` (reference op order; the constant in float64).
    fn prior_logp<B: Backend, const D: usize>(&self, z: Tensor<B, D>) -> Tensor<B, 1> {
        let dims = z.dims();
        let n: usize = dims[1..].iter().product();
        let s = self.prior_std() as f64;
        let b = dims[0];
        let sq = z.square().reshape([b, n]).sum_dim(1).reshape([b]);
        if self.prior_std() == 1.0 {
            // `-N / 2. * np.log(2 * np.pi) - torch.sum(z ** 2, dim=(1, 2, 3)) / 2.`
            let c = -(n as f64) / 2.0 * (2.0 * std::f64::consts::PI).ln();
            sq.div_scalar(2.0).neg().add_scalar(c as f32)
        } else {
            // `-N / 2. * np.log(2 * np.pi * sigma_max ** 2) - sum(z ** 2) / (2 * sigma_max ** 2)`
            let c = -(n as f64) / 2.0 * (2.0 * std::f64::consts::PI * s * s).ln();
            sq.div_scalar((2.0 * s * s) as f32)
                .neg()
                .add_scalar(c as f32)
        }
    }

    /// The reverse-time SDE (or, with `probability_flow`, the probability-flow ODE) driven by
    /// `score` (reference `SDE.reverse`).
    fn reverse<F>(
        &self,
        score: F,
        probability_flow: bool,
    ) -> crate::reverse::ReverseSde<'_, Self, F>
    where
        Self: Sized,
    {
        crate::reverse::ReverseSde::new(self, score, probability_flow)
    }
}

/// Most discretisation steps `N` an SDE accepts (official configs: ≤ 2000). A sanity limit
/// for untrusted configs: VE / VP build `N`-long float32 tables, and an inflated `N` would
/// abort the process on an impossible allocation instead of failing with an error.
pub const MAX_STEPS: usize = 1 << 22;

/// `N` within `[min, MAX_STEPS]`, else the error naming it.
pub(crate) fn check_steps(n: usize, min: usize) -> crate::error::Result<()> {
    let reason = if n < min {
        if min == 1 {
            "needs at least 1 discretisation step"
        } else {
            "needs at least 2 discretisation steps"
        }
    } else if n > MAX_STEPS {
        "exceeds the sanity limit sde_core::MAX_STEPS (4194304)"
    } else {
        return Ok(());
    };
    Err(crate::error::SdeError::InvalidParameter {
        name: "N",
        value: n as f64,
        reason,
    })
}
