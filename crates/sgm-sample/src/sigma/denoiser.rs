//! The σ-space denoiser `D(x, σ) ≈ E[x₀ | x₀ + σ·n = x]` every fast sampler runs on (Karras et
//! al. 2022, eq. 2–3; k-diffusion's `model(x, sigma)`), and the adapters that turn the
//! paper's score functions into one (fixtures `fast_samplers/README.md`).

use std::cell::Cell;

use burn::prelude::*;
use sde_core::{AnySde, ScoreFunction, Sde, per_sample};

use crate::error::{Result, SampleError};

/// A denoiser in the σ-parameterisation: for images `x` `[B, C, H, W]` at noise level `σ`
/// (one value per sample), an estimate of the clean image.
pub trait Denoiser<B: Backend> {
    /// `D(x, σ)`, `[B, C, H, W]`.
    fn denoise(&self, x: Tensor<B, 4>, sigma: &[f32]) -> Result<Tensor<B, 4>>;
}

impl<B: Backend, F> Denoiser<B> for F
where
    F: Fn(Tensor<B, 4>, &[f32]) -> Result<Tensor<B, 4>>,
{
    fn denoise(&self, x: Tensor<B, 4>, sigma: &[f32]) -> Result<Tensor<B, 4>> {
        self(x, sigma)
    }
}

/// A denoiser that counts its calls (the NFE of a fast sampler).
pub(crate) struct CountedDenoiser<'a, B: Backend> {
    inner: &'a dyn Denoiser<B>,
    calls: Cell<usize>,
}

impl<'a, B: Backend> CountedDenoiser<'a, B> {
    pub(crate) fn new(inner: &'a dyn Denoiser<B>) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
        }
    }
    pub(crate) fn calls(&self) -> usize {
        self.calls.get()
    }
    /// `D(x, σ)` at one σ for the whole batch (k-diffusion's `sigma * s_in`).
    pub(crate) fn at(&self, x: Tensor<B, 4>, sigma: f64) -> Result<Tensor<B, 4>> {
        self.calls.set(self.calls.get() + 1);
        let b = x.dims()[0];
        self.inner.denoise(x, &vec![sigma as f32; b])
    }
}

/// The exact denoiser of Gaussian data `x₀ ~ N(μ, diag v)`:
/// `D(x, σ) = μ + v / (v + σ²) · (x − μ)` (per element, broadcast over the batch).
#[derive(Debug, Clone)]
pub struct GaussianDenoiser<B: Backend> {
    /// Mean μ, `[C, H, W]`.
    pub mu: Tensor<B, 3>,
    /// Variance v, `[C, H, W]`.
    pub var: Tensor<B, 3>,
}

impl<B: Backend> GaussianDenoiser<B> {
    /// The denoiser of `N(mu, diag var)`; `mu` and `var` must have the same shape.
    pub fn new(mu: Tensor<B, 3>, var: Tensor<B, 3>) -> Result<Self> {
        crate::util::check_shape("GaussianDenoiser: var", &var.dims(), &mu.dims())?;
        Ok(Self { mu, var })
    }

    /// The exact probability-flow ODE solution `x(σ_to)` from `x(σ_from)`:
    /// `dx/dσ = (x − D)/σ` gives `x(σ) − μ = (x(σ₀) − μ)·√((v + σ²)/(v + σ₀²))`.
    pub fn ode_solution(&self, x: Tensor<B, 4>, sigma_from: f64, sigma_to: f64) -> Tensor<B, 4> {
        let mu = self.mu.clone().unsqueeze::<4>(); // [1, C, H, W]
        let var = self.var.clone().unsqueeze::<4>(); // [1, C, H, W]
        let ratio = var
            .clone()
            .add_scalar(sigma_to * sigma_to)
            .div(var.add_scalar(sigma_from * sigma_from))
            .sqrt(); // [1, C, H, W]
        (x - mu.clone()).mul(ratio) + mu
    }
}

impl<B: Backend> Denoiser<B> for GaussianDenoiser<B> {
    fn denoise(&self, x: Tensor<B, 4>, sigma: &[f32]) -> Result<Tensor<B, 4>> {
        let [b, c, h, w] = x.dims();
        crate::util::check_shape("GaussianDenoiser: x", &[c, h, w], &self.mu.dims())?;
        if sigma.len() != b {
            return Err(SampleError::Shape {
                what: "GaussianDenoiser: sigma",
                expected: vec![b],
                got: vec![sigma.len()],
            });
        }
        let device = x.device();
        let mu = self.mu.clone().unsqueeze::<4>(); // [1, C, H, W]
        let var = self.var.clone().unsqueeze::<4>(); // [1, C, H, W]
        let s2: Vec<f32> = sigma.iter().map(|s| s * s).collect();
        let s2 = per_sample::<B, 4>(&s2, &device); // [B, 1, 1, 1]
        // μ + v / (v + σ²) · (x − μ)
        let gain = var.clone().div(var + s2); // [B, C, H, W]
        Ok(mu.clone() + gain.mul(x - mu))
    }
}

/// A score function `∇ₓ log p_t` of one of the paper's SDEs seen as a σ-space denoiser
/// (fixtures `fast_samplers/README.md`, "model.kind: network"):
/// * VE: `t = ln(σ/σ_min) / ln(σ_max/σ_min)`, `D = x + σ²·s(x, t)`;
/// * VP: `α = 1/√(1+σ²)`, `t = (√(β_min² + 2(β_max−β_min)·ln(1+σ²)) − β_min) / (β_max−β_min)`,
///   `D = x + σ²·α·s(α·x, t)`; the sampler's `x` is the VP state divided by its mean
///   coefficient α(t), and `σ = std(t)/α(t)`;
/// * sub-VP: the same with sub-VP's std `1 − α²`: `σ = (1 − α²)/α`, i.e.
///   `α = (√(σ² + 4) − σ)/2`, and `t` from `−2 ln α` by the VP formula.
///
/// σ outside the SDE's range `[σ(0), σ(T)]` (beyond float rounding, 1e-4 in t) is an error: the
/// score network was never trained there (lower `s_tmax` or the schedule's `sigma_max`).
pub struct ScoreDenoiser<'a, B: Backend> {
    sde: AnySde,
    score: &'a dyn ScoreFunction<B>,
}

/// Slack on `t ∈ [0, T]` for σ that round across the ends of the SDE's range.
const T_SLACK: f64 = 1e-4;

impl<'a, B: Backend> ScoreDenoiser<'a, B> {
    /// Wraps the score function of `sde`.
    pub fn new(sde: &AnySde, score: &'a dyn ScoreFunction<B>) -> Self {
        Self {
            sde: sde.clone(),
            score,
        }
    }
}

/// `(t, α)` of noise level σ for `sde`: the time with `std(t)/α(t) = σ` and the mean
/// coefficient α(t) (1 for VE).
pub fn time_and_scale(sde: &AnySde, sigma: f64) -> (f64, f64) {
    match sde {
        AnySde::Ve(ve) => {
            let (lo, hi) = (ve.sigma_min(), ve.sigma_max());
            ((sigma / lo).ln() / (hi / lo).ln(), 1.0)
        }
        AnySde::Vp(vp) => {
            let alpha = 1.0 / (1.0 + sigma * sigma).sqrt();
            (vp_time(vp.beta_min(), vp.beta_max(), alpha), alpha)
        }
        AnySde::SubVp(sv) => {
            let alpha = ((sigma * sigma + 4.0).sqrt() - sigma) / 2.0;
            (vp_time(sv.beta_min(), sv.beta_max(), alpha), alpha)
        }
    }
}

/// σ(t) = std(t)/α(t) of `sde` (inverse of [`time_and_scale`]).
pub fn sigma_at(sde: &AnySde, t: f64) -> f64 {
    match sde {
        AnySde::Ve(ve) => ve.sigma_min() * (ve.sigma_max() / ve.sigma_min()).powf(t),
        AnySde::Vp(vp) => vp_neg_two_log_alpha(vp.beta_min(), vp.beta_max(), t)
            .exp_m1()
            .sqrt(),
        AnySde::SubVp(sv) => {
            let l = vp_neg_two_log_alpha(sv.beta_min(), sv.beta_max(), t);
            // (1 − α²)/α with α² = e^{−l}
            -(-l).exp_m1() / (-l / 2.0).exp()
        }
    }
}

/// The σ range `[σ(eps), σ(T)]` of `sde`'s sampling interval (eps: `run_lib`'s sampling eps,
/// 1e-5 VE / 1e-3 VP, sub-VP) — the default schedule range.
pub fn sigma_range(sde: &AnySde) -> (f64, f64) {
    let eps = sde.default_sampling_eps() as f64;
    (sigma_at(sde, eps), sigma_at(sde, sde.t_max() as f64))
}

/// `−2 ln α(t) = ½ t² (β₁ − β₀) + t β₀` of VP / sub-VP (reference `marginal_prob`).
fn vp_neg_two_log_alpha(b0: f64, b1: f64, t: f64) -> f64 {
    0.5 * t * t * (b1 - b0) + t * b0
}

/// The root `t ≥ 0` of `½ t² (β₁ − β₀) + t β₀ = −2 ln α`.
fn vp_time(b0: f64, b1: f64, alpha: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((b0 * b0 + 2.0 * (b1 - b0) * l).sqrt() - b0) / (b1 - b0)
}

impl<B: Backend> Denoiser<B> for ScoreDenoiser<'_, B> {
    fn denoise(&self, x: Tensor<B, 4>, sigma: &[f32]) -> Result<Tensor<B, 4>> {
        let b = x.dims()[0];
        if sigma.len() != b {
            return Err(SampleError::Shape {
                what: "ScoreDenoiser: sigma",
                expected: vec![b],
                got: vec![sigma.len()],
            });
        }
        let t_max = self.sde.t_max() as f64;
        let mut t = Vec::with_capacity(b);
        let mut alpha = Vec::with_capacity(b);
        for &s in sigma {
            let (ti, ai) = time_and_scale(&self.sde, s as f64);
            if !(s.is_finite() && s > 0.0 && (-T_SLACK..=t_max + T_SLACK).contains(&ti)) {
                let (lo, hi) = sigma_range(&self.sde);
                return Err(SampleError::InvalidOption {
                    name: "sigma",
                    reason: format!(
                        "σ = {s} is outside the {} model's noise range (σ(0)…σ(T) ≈ {:.4e}…{hi:.4e}, sampling from {lo:.4e}); lower `s_tmax` or the schedule's sigma_max / raise its sigma_min",
                        self.sde.kind().reference_name(),
                        sigma_at(&self.sde, 0.0),
                    ),
                });
            }
            t.push(ti.clamp(0.0, t_max) as f32);
            alpha.push(ai as f32);
        }
        let device = x.device();
        let s2: Vec<f32> = sigma.iter().map(|s| s * s).collect();
        let s2 = per_sample::<B, 4>(&s2, &device); // [B, 1, 1, 1]
        match self.sde {
            // D = x + σ²·s(x, t)
            AnySde::Ve(_) => Ok(x.clone() + self.score.score(x, &t)?.mul(s2)),
            // D = x + σ²·α·s(α·x, t)
            AnySde::Vp(_) | AnySde::SubVp(_) => {
                let a = per_sample::<B, 4>(&alpha, &device); // [B, 1, 1, 1]
                let score = self.score.score(x.clone().mul(a.clone()), &t)?;
                Ok(x + score.mul(s2).mul(a))
            }
        }
    }
}
