//! Variance-exploding SDE (reference `sde_lib.VESDE`; paper eq. 9 / 30).
//!
//! `dx = σ(t) sqrt(2 ln(σ_max/σ_min)) dw`, `σ(t) = σ_min (σ_max/σ_min)^t`.

use crate::error::{Result, SdeError};
use crate::f32math::{discrete_index, torch_linspace_f32};
use crate::sde::{LinearMap, ScoreLabels, ScoreScaling, Sde, SdeKind};

/// The VE SDE with the reference's defaults (`sigma_min = 0.01`, `sigma_max = 50`, `N = 1000`).
#[derive(Debug, Clone, PartialEq)]
pub struct VeSde {
    sigma_min: f64,
    sigma_max: f64,
    n: usize,
    /// `exp(linspace(ln σ_min, ln σ_max, N))` in float32, **ascending** (index 0 = σ_min).
    discrete_sigmas: Vec<f32>,
}

impl Default for VeSde {
    fn default() -> Self {
        Self::new(0.01, 50.0, 1000).expect("reference defaults are valid")
    }
}

impl VeSde {
    /// Builds the SDE; `0 < sigma_min < sigma_max` and `N ≥ 2`.
    pub fn new(sigma_min: f64, sigma_max: f64, n: usize) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_min.is_finite()) {
            return Err(SdeError::InvalidParameter {
                name: "sigma_min",
                value: sigma_min,
                reason: "must be positive and finite",
            });
        }
        if !(sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(SdeError::InvalidParameter {
                name: "sigma_max",
                value: sigma_max,
                reason: "must be finite and larger than sigma_min",
            });
        }
        crate::sde::check_steps(n, 2)?;
        let discrete_sigmas = torch_linspace_f32(sigma_min.ln(), sigma_max.ln(), n)
            .into_iter()
            .map(f32::exp)
            .collect();
        Ok(Self {
            sigma_min,
            sigma_max,
            n,
            discrete_sigmas,
        })
    }

    /// σ_min.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
    /// σ_max.
    pub fn sigma_max(&self) -> f64 {
        self.sigma_max
    }
    /// The float32 ascending table `discrete_sigmas` of the reference.
    pub fn discrete_sigmas(&self) -> &[f32] {
        &self.discrete_sigmas
    }

    /// σ(t) = σ_min (σ_max/σ_min)^t, float32 as `sigma_min * (sigma_max / sigma_min) ** t`.
    pub fn sigma(&self, t: f32) -> f32 {
        (self.sigma_min as f32) * ((self.sigma_max / self.sigma_min) as f32).powf(t)
    }

    /// `sqrt(2 (ln σ_max − ln σ_min))` as the reference's float32 tensor.
    fn diffusion_factor(&self) -> f32 {
        ((2.0 * (self.sigma_max.ln() - self.sigma_min.ln())) as f32).sqrt()
    }
}

impl Sde for VeSde {
    fn kind(&self) -> SdeKind {
        SdeKind::Ve
    }
    fn num_steps(&self) -> usize {
        self.n
    }
    fn default_sampling_eps(&self) -> f32 {
        1e-5
    }

    fn drift_map(&self, _t: &[f32]) -> LinearMap {
        LinearMap::Zero
    }

    fn diffusion_coefs(&self, t: &[f32]) -> Vec<f32> {
        let k = self.diffusion_factor();
        t.iter().map(|&t| self.sigma(t) * k).collect()
    }

    /// Mean `x`, std `σ(t)` (the reference uses σ(t), not the exact `sqrt(σ(t)² − σ_min²)`).
    fn marginal_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        (
            LinearMap::Identity,
            t.iter().map(|&t| self.sigma(t)).collect(),
        )
    }

    /// SMLD discretisation: `f = 0`, `G = sqrt(σ_i² − σ_{i−1}²)` (σ_{−1} = 0).
    fn discretize_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        let g = t
            .iter()
            .map(|&t| {
                let i = discrete_index(t, self.n, self.t_max());
                let sigma = self.discrete_sigmas[i];
                let adjacent = if i == 0 {
                    0.0
                } else {
                    self.discrete_sigmas[i - 1]
                };
                (sigma * sigma - adjacent * adjacent).sqrt()
            })
            .collect();
        (LinearMap::Zero, g)
    }

    fn prior_std(&self) -> f32 {
        self.sigma_max as f32
    }

    /// Continuous: labels σ(t); discrete: `round((T − t)(N − 1))` (index into the model's
    /// descending σ table). The score is the network output itself.
    fn score_parameterisation(&self, t: &[f32], continuous: bool) -> (ScoreLabels, ScoreScaling) {
        let labels = if continuous {
            ScoreLabels::Float(t.iter().map(|&t| self.sigma(t)).collect())
        } else {
            let n1 = (self.n - 1) as f32;
            ScoreLabels::Int(
                t.iter()
                    .map(|&t| ((self.t_max() - t) * n1).round_ties_even() as i64)
                    .collect(),
            )
        };
        (labels, ScoreScaling::Identity)
    }
}
