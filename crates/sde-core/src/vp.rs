//! Variance-preserving SDE (reference `sde_lib.VPSDE`; paper eq. 11 / 32) and the float32
//! helpers it shares with the sub-VP SDE.
//!
//! `dx = −½ β(t) x dt + sqrt(β(t)) dw`, `β(t) = β_0 + t (β_1 − β_0)`.

use crate::error::{Result, SdeError};
use crate::f32math::{discrete_index, torch_cumprod_f32, torch_linspace_f32};
use crate::sde::{LinearMap, ScoreLabels, ScoreScaling, Sde, SdeKind};

/// β schedule shared by VP and sub-VP: the float32 formulas of the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BetaSchedule {
    pub beta_0: f64,
    pub beta_1: f64,
}

impl BetaSchedule {
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        if !(beta_min > 0.0 && beta_min.is_finite()) {
            return Err(SdeError::InvalidParameter {
                name: "beta_min",
                value: beta_min,
                reason: "must be positive and finite",
            });
        }
        if !(beta_max >= beta_min && beta_max.is_finite()) {
            return Err(SdeError::InvalidParameter {
                name: "beta_max",
                value: beta_max,
                reason: "must be finite and at least beta_min",
            });
        }
        Ok(Self {
            beta_0: beta_min,
            beta_1: beta_max,
        })
    }

    /// `beta_0 + t * (beta_1 - beta_0)` in float32.
    pub fn beta(&self, t: f32) -> f32 {
        (self.beta_0 as f32) + t * ((self.beta_1 - self.beta_0) as f32)
    }

    /// Drift coefficient `-0.5 * beta_t` (the reference's `-0.5 * beta_t[:, None, None, None] * x`).
    pub fn drift_coef(&self, t: f32) -> f32 {
        -0.5 * self.beta(t)
    }

    /// `log_mean_coeff = -0.25 * t ** 2 * (beta_1 - beta_0) - 0.5 * t * beta_0` in float32.
    pub fn log_mean_coeff(&self, t: f32) -> f32 {
        -0.25 * (t * t) * ((self.beta_1 - self.beta_0) as f32) - 0.5 * t * (self.beta_0 as f32)
    }
}

/// The VP SDE with the reference's defaults (`beta_min = 0.1`, `beta_max = 20`, `N = 1000`)
/// and its DDPM tables.
#[derive(Debug, Clone, PartialEq)]
pub struct VpSde {
    schedule: BetaSchedule,
    n: usize,
    tables: DdpmTables,
}

/// The float32 discrete DDPM tables of the reference `VPSDE`.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpmTables {
    /// `linspace(beta_min / N, beta_max / N, N)`.
    pub discrete_betas: Vec<f32>,
    /// `1 − discrete_betas`.
    pub alphas: Vec<f32>,
    /// `cumprod(alphas)` (float64 accumulation, float32 values).
    pub alphas_cumprod: Vec<f32>,
    /// `sqrt(alphas_cumprod)`.
    pub sqrt_alphas_cumprod: Vec<f32>,
    /// `sqrt(1 − alphas_cumprod)`.
    pub sqrt_1m_alphas_cumprod: Vec<f32>,
}

impl Default for VpSde {
    fn default() -> Self {
        Self::new(0.1, 20.0, 1000).expect("reference defaults are valid")
    }
}

impl VpSde {
    /// Builds the SDE; `0 < beta_min ≤ beta_max` and `N ≥ 2`.
    pub fn new(beta_min: f64, beta_max: f64, n: usize) -> Result<Self> {
        let schedule = BetaSchedule::new(beta_min, beta_max)?;
        crate::sde::check_steps(n, 2)?;
        let discrete_betas = torch_linspace_f32(beta_min / n as f64, beta_max / n as f64, n);
        let alphas: Vec<f32> = discrete_betas.iter().map(|&b| 1.0 - b).collect();
        let alphas_cumprod = torch_cumprod_f32(&alphas);
        let sqrt_alphas_cumprod = alphas_cumprod.iter().map(|&a| a.sqrt()).collect();
        let sqrt_1m_alphas_cumprod = alphas_cumprod.iter().map(|&a| (1.0 - a).sqrt()).collect();
        Ok(Self {
            schedule,
            n,
            tables: DdpmTables {
                discrete_betas,
                alphas,
                alphas_cumprod,
                sqrt_alphas_cumprod,
                sqrt_1m_alphas_cumprod,
            },
        })
    }

    /// β_min (= β(0)).
    pub fn beta_min(&self) -> f64 {
        self.schedule.beta_0
    }
    /// β_max (= β(1)).
    pub fn beta_max(&self) -> f64 {
        self.schedule.beta_1
    }
    /// The DDPM tables.
    pub fn tables(&self) -> &DdpmTables {
        &self.tables
    }
    /// The marginal std `sqrt(1 − exp(2 lmc(t)))` at one time (float32, reference order).
    pub fn std(&self, t: f32) -> f32 {
        (1.0 - (2.0 * self.schedule.log_mean_coeff(t)).exp()).sqrt()
    }
}

impl Sde for VpSde {
    fn kind(&self) -> SdeKind {
        SdeKind::Vp
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
        t.iter().map(|&t| self.schedule.beta(t).sqrt()).collect()
    }

    /// Mean `exp(lmc) x`, std `sqrt(1 − exp(2 lmc))`.
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

    /// DDPM discretisation: `f = sqrt(α_i) x − x`, `G = sqrt(β_i)`.
    fn discretize_coefs(&self, t: &[f32]) -> (LinearMap, Vec<f32>) {
        let idx: Vec<usize> = t
            .iter()
            .map(|&t| discrete_index(t, self.n, self.t_max()))
            .collect();
        let s = idx.iter().map(|&i| self.tables.alphas[i].sqrt()).collect();
        let g = idx
            .iter()
            .map(|&i| self.tables.discrete_betas[i].sqrt())
            .collect();
        (LinearMap::ScaleMinusIdentity(s), g)
    }

    fn prior_std(&self) -> f32 {
        1.0
    }

    /// Continuous: labels `999 t`, std the marginal std; discrete: labels `t (N − 1)` (float,
    /// not rounded), std `sqrt_1m_alphas_cumprod[floor(labels)]`. Score `−model / std`.
    fn score_parameterisation(&self, t: &[f32], continuous: bool) -> (ScoreLabels, ScoreScaling) {
        if continuous {
            let labels = t.iter().map(|&t| t * 999.0).collect();
            let std = t.iter().map(|&t| self.std(t)).collect();
            (ScoreLabels::Float(labels), ScoreScaling::NegDivStd(std))
        } else {
            let n1 = (self.n - 1) as f32;
            let labels: Vec<f32> = t.iter().map(|&t| t * n1).collect();
            let std = labels
                .iter()
                .map(|&l| self.tables.sqrt_1m_alphas_cumprod[(l as usize).min(self.n - 1)])
                .collect();
            (ScoreLabels::Float(labels), ScoreScaling::NegDivStd(std))
        }
    }
}
