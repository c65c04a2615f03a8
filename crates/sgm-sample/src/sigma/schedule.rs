//! Noise schedules `σ₀ > σ₁ > … > σ_{n−1} > 0`, each followed by a final 0, as plain
//! functions (k-diffusion `get_sigmas_*`), evaluated in float64.

use crate::error::{Result, SampleError};

/// `[0, 1/(n−1), …, 1]` (n = 1: `[0]`), torch's `linspace(0, 1, n)`.
fn ramp(n: usize) -> impl Iterator<Item = f64> {
    let d = (n.max(2) - 1) as f64;
    (0..n).map(move |i| i as f64 / d)
}

fn with_zero(mut v: Vec<f64>) -> Vec<f64> {
    v.push(0.0);
    v
}

/// Karras et al. (2022) eq. 5: `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`
/// (`get_sigmas_karras`, ρ = 7 in EDM).
pub fn karras(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    with_zero(ramp(n).map(|r| (hi + r * (lo - hi)).powf(rho)).collect())
}

/// Uniform in log σ from σ_max to σ_min (`get_sigmas_exponential`).
pub fn exponential(n: usize, sigma_min: f64, sigma_max: f64) -> Vec<f64> {
    let (a, b) = (sigma_max.ln(), sigma_min.ln());
    with_zero(ramp(n).map(|r| (a + r * (b - a)).exp()).collect())
}

/// Polynomial in log σ: `σ_i = exp((1 − i/(n−1))^ρ · ln(σ_max/σ_min) + ln σ_min)`
/// (`get_sigmas_polyexponential`; ρ = 1 is [`exponential`]).
pub fn polyexponential(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (lmin, lmax) = (sigma_min.ln(), sigma_max.ln());
    with_zero(
        ramp(n)
            .map(|r| ((1.0 - r).powf(rho) * (lmax - lmin) + lmin).exp())
            .collect(),
    )
}

/// The continuous VP schedule `σ(t) = √(exp(β_d t²/2 + β_min t) − 1)` at `t` uniform from 1 to
/// `eps_s` (`get_sigmas_vp`; defaults β_d 19.9, β_min 0.1, eps_s 1e-3 = score_sde's VP SDE).
pub fn vp(n: usize, beta_d: f64, beta_min: f64, eps_s: f64) -> Vec<f64> {
    with_zero(
        ramp(n)
            .map(|r| {
                let t = 1.0 + r * (eps_s - 1.0);
                (beta_d * t * t / 2.0 + beta_min * t).exp_m1().sqrt()
            })
            .collect(),
    )
}

/// A schedule with its parameters (the step count is given when it is evaluated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// [`karras`].
    Karras {
        /// Smallest nonzero σ.
        sigma_min: f64,
        /// Largest σ.
        sigma_max: f64,
        /// ρ (7 in EDM).
        rho: f64,
    },
    /// [`exponential`].
    Exponential {
        /// Smallest nonzero σ.
        sigma_min: f64,
        /// Largest σ.
        sigma_max: f64,
    },
    /// [`polyexponential`].
    PolyExponential {
        /// Smallest nonzero σ.
        sigma_min: f64,
        /// Largest σ.
        sigma_max: f64,
        /// ρ.
        rho: f64,
    },
    /// [`vp`].
    Vp {
        /// β_max − β_min.
        beta_d: f64,
        /// β_min.
        beta_min: f64,
        /// Smallest time.
        eps_s: f64,
    },
}

impl Schedule {
    /// The schedule `name` (`karras` ρ 7, `exponential`, `polyexponential` ρ 1, `vp`) on
    /// `[sigma_min, sigma_max]`; `vp` takes β_min, β_d and eps_s from `vp_params`
    /// (k-diffusion's defaults 0.1, 19.9, 1e-3 when `None`).
    pub fn from_name(
        name: &str,
        sigma_min: f64,
        sigma_max: f64,
        vp_params: Option<(f64, f64, f64)>,
    ) -> Result<Self> {
        let s = match name.to_ascii_lowercase().as_str() {
            "karras" => Schedule::Karras {
                sigma_min,
                sigma_max,
                rho: 7.0,
            },
            "exponential" => Schedule::Exponential {
                sigma_min,
                sigma_max,
            },
            "polyexponential" => Schedule::PolyExponential {
                sigma_min,
                sigma_max,
                rho: 1.0,
            },
            "vp" => {
                let (beta_min, beta_d, eps_s) = vp_params.unwrap_or((0.1, 19.9, 1e-3));
                Schedule::Vp {
                    beta_d,
                    beta_min,
                    eps_s,
                }
            }
            other => {
                return Err(SampleError::InvalidOption {
                    name: "schedule",
                    reason: format!(
                        "unknown schedule `{other}` (karras | exponential | polyexponential | vp)"
                    ),
                });
            }
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(SampleError::InvalidOption {
                name: "schedule",
                reason,
            })
        };
        match *self {
            Schedule::Karras {
                sigma_min,
                sigma_max,
                ..
            }
            | Schedule::Exponential {
                sigma_min,
                sigma_max,
            }
            | Schedule::PolyExponential {
                sigma_min,
                sigma_max,
                ..
            } if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) => bad(
                format!("need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}"),
            ),
            Schedule::Vp { eps_s, .. } if !(eps_s > 0.0 && eps_s < 1.0) => {
                bad(format!("vp: eps_s must be in (0, 1), got {eps_s}"))
            }
            _ => Ok(()),
        }
    }

    /// `n` noise levels followed by 0 (`n + 1` values).
    pub fn sigmas(&self, n: usize) -> Vec<f64> {
        match *self {
            Schedule::Karras {
                sigma_min,
                sigma_max,
                rho,
            } => karras(n, sigma_min, sigma_max, rho),
            Schedule::Exponential {
                sigma_min,
                sigma_max,
            } => exponential(n, sigma_min, sigma_max),
            Schedule::PolyExponential {
                sigma_min,
                sigma_max,
                rho,
            } => polyexponential(n, sigma_min, sigma_max, rho),
            Schedule::Vp {
                beta_d,
                beta_min,
                eps_s,
            } => vp(n, beta_d, beta_min, eps_s),
        }
    }
}
