//! Sub-variance-preserving SDE (reference `sde_lib.subVPSDE`; paper eq. 17).
//!
//! `dx = −½ β(t) x dt + sqrt(β(t) (1 − e^{−2 ∫β})) dw`. Its perturbation kernel has std
//! `1 − e^{2 lmc(t)}` — no square root: the sub-VP variance is `(1 − e^{−∫β})²`.

use crate::error::Result;
use crate::sde::{LinearMap, ScoreLabels, ScoreScaling, Sde, SdeKind};
use crate::vp::BetaSchedule;

/// The sub-VP SDE with the reference's defaults (`beta_min = 0.1`, `beta_max = 20`, `N = 1000`).
/// It has no discrete tables and uses the Euler–Maruyama `discretize`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubVpSde {
    schedule: BetaSchedule,
    n: usize,
}

impl Default for SubVpSde {
    fn default() -> Self {
        Self::new(0.1, 20.0, 1000).expect("reference defaults are valid")
    }
}

impl SubVpSde {
    /// Builds the SDE; `0 < beta_min ≤ beta_max` and `N ≥ 1`.
    pub fn new(beta_min: f64, beta_max: f64, n: usize) -> Result<Self> {
        let schedule = BetaSchedule::new(beta_min, beta_max)?;
        crate::sde::check_steps(n, 1)?;
        Ok(Self { schedule, n })
    }

    /// β_min.
    pub fn beta_min(&self) -> f64 {
        self.schedule.beta_0
    }
    /// β_max.
    pub fn beta_max(&self) -> f64 {
        self.schedule.beta_1
    }
    /// Marginal std `1 − exp(2 lmc(t))` at one time (float32, reference order).
    pub fn std(&self, t: f32) -> f32 {
        1.0 - (2.0 * self.schedule.log_mean_coeff(t)).exp()
    }
    /// `g(t) = sqrt(β(t) · (1 − exp(−2 β_0 t − (β_1 − β_0) t²)))` in float32.
    fn diffusion(&self, t: f32) -> f32 {
        let s = &self.schedule;
        let discount =
            1.0 - ((-2.0 * s.beta_0) as f32 * t - ((s.beta_1 - s.beta_0) as f32) * (t * t)).exp();
        (s.beta(t) * discount).sqrt()
    }
}

impl Sde for SubVpSde {
    fn kind(&self) -> SdeKind {
        SdeKind::SubVp
    }
    fn num_steps(&self) -> usize {
        self.n
    }
    fn default_sampling_eps(&self) -> f32 {
        1e-3
    }

    fn drift_map(&self, t: &[f32]) -> LinearMap {
        LinearMap::Scale(t.iter().map(|&t| self.schedule.drift_coef(t)).collect())
    }

    fn diffusion_coefs(&self, t: &[f32]) -> Vec<f32> {
        t.iter().map(|&t| self.diffusion(t)).collect()
    }

    fn marginal_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        let mean = t
            .iter()
            .map(|&t| self.schedule.log_mean_coeff(t).exp())
            .collect();
        (
            LinearMap::Scale(mean),
            t.iter().map(|&t| self.std(t)).collect(),
        )
    }

    /// The default Euler–Maruyama discretisation: `f = drift · (1/N)`, `G = g · sqrt(1/N)`.
    fn discretize_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        let dt = 1.0 / self.n as f64;
        let coef = t.iter().map(|&t| self.schedule.drift_coef(t)).collect();
        let sqrt_dt = (dt as f32).sqrt();
        let g = t.iter().map(|&t| self.diffusion(t) * sqrt_dt).collect();
        (LinearMap::ScaleThenScalar(coef, dt as f32), g)
    }

    fn prior_std(&self) -> f32 {
        1.0
    }

    /// Always continuous labels `999 t` (the reference ignores `continuous=False` for sub-VP);
    /// score `−model / std`.
    fn score_parameterisation(&self, t: &[f32], _continuous: bool) -> (ScoreLabels, ScoreScaling) {
        let labels = t.iter().map(|&t| t * 999.0).collect();
        let std = t.iter().map(|&t| self.std(t)).collect();
        (ScoreLabels::Float(labels), ScoreScaling::NegDivStd(std))
    }
}
