//! The fast samplers by name, with k-diffusion's keyword options and defaults.

use crate::error::{Result, SampleError};

/// Which k-diffusion sampler (`k_diffusion.sampling.sample_<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigmaKind {
    /// `euler`: Karras et al. (2022) Alg. 2 with Euler steps (optional churn).
    Euler,
    /// `heun`: Karras et al. (2022) Alg. 2 (EDM's deterministic / churned Heun).
    Heun,
    /// `dpm_2`: DPM-Solver-2 steps (midpoint in log σ) with Alg. 2's churn.
    Dpm2,
    /// `lms`: linear multistep (Adams–Bashforth in σ) of `order`.
    Lms,
    /// `dpmpp_2m`: DPM-Solver++(2M), multistep second order.
    Dpmpp2m,
    /// `euler_ancestral`: Euler steps to σ_down plus fresh noise σ_up.
    EulerAncestral,
    /// `dpm_2_ancestral`: DPM-Solver-2 steps to σ_down plus noise.
    Dpm2Ancestral,
    /// `dpmpp_2s_ancestral`: DPM-Solver++(2S) single-step second order plus noise.
    Dpmpp2sAncestral,
    /// `dpmpp_sde`: stochastic DPM-Solver++ (two noised sub-steps, midpoint `r`).
    DpmppSde,
    /// `dpmpp_2m_sde`: DPM-Solver++(2M) SDE, `solver_type` midpoint or heun.
    Dpmpp2mSde,
    /// `dpmpp_3m_sde`: DPM-Solver++(3M) SDE.
    Dpmpp3mSde,
    /// `dpm_fast`: DPM-Solver with orders 3,…,3,2,1 and a fixed NFE `n`.
    DpmFast,
    /// `dpm_adaptive`: DPM-Solver-12 / 23 with PID step-size control.
    DpmAdaptive,
}

/// Every sampler, in the order of the README table.
pub const ALL_KINDS: [SigmaKind; 13] = [
    SigmaKind::Euler,
    SigmaKind::Heun,
    SigmaKind::Dpm2,
    SigmaKind::Lms,
    SigmaKind::Dpmpp2m,
    SigmaKind::EulerAncestral,
    SigmaKind::Dpm2Ancestral,
    SigmaKind::Dpmpp2sAncestral,
    SigmaKind::DpmppSde,
    SigmaKind::Dpmpp2mSde,
    SigmaKind::Dpmpp3mSde,
    SigmaKind::DpmFast,
    SigmaKind::DpmAdaptive,
];

impl SigmaKind {
    /// k-diffusion's name (`sample_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            SigmaKind::Euler => "euler",
            SigmaKind::Heun => "heun",
            SigmaKind::Dpm2 => "dpm_2",
            SigmaKind::Lms => "lms",
            SigmaKind::Dpmpp2m => "dpmpp_2m",
            SigmaKind::EulerAncestral => "euler_ancestral",
            SigmaKind::Dpm2Ancestral => "dpm_2_ancestral",
            SigmaKind::Dpmpp2sAncestral => "dpmpp_2s_ancestral",
            SigmaKind::DpmppSde => "dpmpp_sde",
            SigmaKind::Dpmpp2mSde => "dpmpp_2m_sde",
            SigmaKind::Dpmpp3mSde => "dpmpp_3m_sde",
            SigmaKind::DpmFast => "dpm_fast",
            SigmaKind::DpmAdaptive => "dpm_adaptive",
        }
    }

    /// Parses k-diffusion's name (case-insensitive, `-` accepted for `_`).
    pub fn from_name(name: &str) -> Result<Self> {
        let n = name.to_ascii_lowercase().replace('-', "_");
        ALL_KINDS
            .into_iter()
            .find(|k| k.name() == n)
            .ok_or_else(|| SampleError::InvalidOption {
                name: "method",
                reason: format!(
                    "unknown sampler `{name}` ({})",
                    ALL_KINDS.map(|k| k.name()).join(" | ")
                ),
            })
    }

    /// The keyword options this sampler takes (k-diffusion's signature).
    pub fn option_names(self) -> &'static [&'static str] {
        const CHURN: &[&str] = &["s_churn", "s_tmin", "s_tmax", "s_noise"];
        const ANCESTRAL: &[&str] = &["eta", "s_noise"];
        match self {
            SigmaKind::Euler | SigmaKind::Heun | SigmaKind::Dpm2 => CHURN,
            SigmaKind::Lms => &["order"],
            SigmaKind::Dpmpp2m => &[],
            SigmaKind::EulerAncestral
            | SigmaKind::Dpm2Ancestral
            | SigmaKind::Dpmpp2sAncestral
            | SigmaKind::Dpmpp3mSde => ANCESTRAL,
            SigmaKind::DpmppSde => &["eta", "s_noise", "r"],
            SigmaKind::Dpmpp2mSde => &["eta", "s_noise", "solver_type"],
            SigmaKind::DpmFast => &["n", "eta", "s_noise"],
            SigmaKind::DpmAdaptive => &[
                "order",
                "rtol",
                "atol",
                "h_init",
                "pcoeff",
                "icoeff",
                "dcoeff",
                "accept_safety",
                "eta",
                "s_noise",
            ],
        }
    }
}

/// Second-order correction of `dpmpp_2m_sde`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    /// `midpoint` (k-diffusion's default).
    Midpoint,
    /// `heun`.
    Heun,
}

/// Every keyword option of the fast samplers, with k-diffusion's defaults for the sampler it
/// belongs to; a sampler reads only its own ([`SigmaKind::option_names`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SigmaOptions {
    /// Churn amount of Alg. 2 (`γ = min(s_churn/steps, √2 − 1)`); 0 = deterministic.
    pub s_churn: f64,
    /// Churn only for `s_tmin ≤ σ_i ≤ s_tmax`.
    pub s_tmin: f64,
    /// See `s_tmin`.
    pub s_tmax: f64,
    /// Scale of the added noise.
    pub s_noise: f64,
    /// Ancestral / SDE noise amount (1 = full ancestral step, 0 = ODE).
    pub eta: f64,
    /// LMS order (default 4) / adaptive DPM-Solver order (2 or 3, default 3).
    pub order: usize,
    /// Intermediate point of `dpmpp_sde` in log σ (default ½).
    pub r: f64,
    /// `dpmpp_2m_sde` correction.
    pub solver_type: SolverType,
    /// `dpm_fast`: number of denoiser evaluations (default: the schedule's step count).
    pub n: Option<usize>,
    /// `dpm_adaptive` relative tolerance.
    pub rtol: f64,
    /// `dpm_adaptive` absolute tolerance.
    pub atol: f64,
    /// `dpm_adaptive` first step in `t = −ln σ`.
    pub h_init: f64,
    /// PID proportional coefficient.
    pub pcoeff: f64,
    /// PID integral coefficient.
    pub icoeff: f64,
    /// PID derivative coefficient.
    pub dcoeff: f64,
    /// A step is accepted when the proposed factor is at least this.
    pub accept_safety: f64,
}

/// A fast sampler and its options: what every fast sampler takes besides the denoiser, the
/// start point, the schedule and the noise source (k-diffusion's one signature).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SigmaMethod {
    /// Which sampler.
    pub kind: SigmaKind,
    /// Its options.
    pub options: SigmaOptions,
}

impl SigmaMethod {
    /// `kind` with k-diffusion's default options.
    pub fn new(kind: SigmaKind) -> Self {
        let eta = match kind {
            SigmaKind::DpmFast | SigmaKind::DpmAdaptive => 0.0,
            _ => 1.0,
        };
        let order = match kind {
            SigmaKind::DpmAdaptive => 3,
            _ => 4,
        };
        Self {
            kind,
            options: SigmaOptions {
                s_churn: 0.0,
                s_tmin: 0.0,
                s_tmax: f64::INFINITY,
                s_noise: 1.0,
                eta,
                order,
                r: 0.5,
                solver_type: SolverType::Midpoint,
                n: None,
                rtol: 0.05,
                atol: 0.0078,
                h_init: 0.05,
                pcoeff: 0.0,
                icoeff: 1.0,
                dcoeff: 0.0,
                accept_safety: 0.81,
            },
        }
    }

    /// The sampler `name` with default options.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Self::new(SigmaKind::from_name(name)?))
    }

    /// Sets one keyword option from text (`s_churn`, `eta`, `order`, `solver_type`, …, as in
    /// k-diffusion). Options the sampler does not take and unparsable values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let kind = self.kind;
        if !kind.option_names().contains(&key) {
            return Err(SampleError::InvalidOption {
                name: "kwargs",
                reason: format!(
                    "sampler `{}` takes no option `{key}` (it takes: {})",
                    kind.name(),
                    if kind.option_names().is_empty() {
                        "none".to_string()
                    } else {
                        kind.option_names().join(", ")
                    }
                ),
            });
        }
        let bad = |what: &str| SampleError::InvalidOption {
            name: "kwargs",
            reason: format!("`{key}` = `{value}`: {what}"),
        };
        let float = || -> Result<f64> {
            let v = value.trim();
            match v.to_ascii_lowercase().as_str() {
                "inf" | "infinity" => Ok(f64::INFINITY),
                _ => v.parse::<f64>().map_err(|_| bad("not a number")),
            }
        };
        let int = || -> Result<usize> {
            let f = float()?;
            if f >= 0.0 && f.fract() == 0.0 && f < 1e9 {
                Ok(f as usize)
            } else {
                Err(bad("not a non-negative integer"))
            }
        };
        let o = &mut self.options;
        match key {
            "s_churn" => o.s_churn = float()?,
            "s_tmin" => o.s_tmin = float()?,
            "s_tmax" => o.s_tmax = float()?,
            "s_noise" => o.s_noise = float()?,
            "eta" => o.eta = float()?,
            "order" => o.order = int()?,
            "r" => o.r = float()?,
            "n" => o.n = Some(int()?),
            "rtol" => o.rtol = float()?,
            "atol" => o.atol = float()?,
            "h_init" => o.h_init = float()?,
            "pcoeff" => o.pcoeff = float()?,
            "icoeff" => o.icoeff = float()?,
            "dcoeff" => o.dcoeff = float()?,
            "accept_safety" => o.accept_safety = float()?,
            "solver_type" => {
                o.solver_type = match value.trim() {
                    "midpoint" => SolverType::Midpoint,
                    "heun" => SolverType::Heun,
                    _ => return Err(bad("solver_type must be `heun` or `midpoint`")),
                }
            }
            _ => unreachable!("every name of option_names is handled"),
        }
        self.validate()
    }

    /// Rejects option values k-diffusion rejects (or that make no sense).
    pub fn validate(&self) -> Result<()> {
        let o = &self.options;
        let bad =
            |name: &'static str, reason: String| Err(SampleError::InvalidOption { name, reason });
        if !(o.s_noise.is_finite() && o.s_churn >= 0.0 && o.eta >= 0.0 && o.eta.is_finite()) {
            return bad(
                "kwargs",
                format!(
                    "need s_churn ≥ 0, finite s_noise, finite eta ≥ 0 (got {}, {}, {})",
                    o.s_churn, o.s_noise, o.eta
                ),
            );
        }
        match self.kind {
            SigmaKind::Lms if o.order == 0 => bad("order", "LMS order must be ≥ 1".into()),
            SigmaKind::DpmAdaptive if !(o.order == 2 || o.order == 3) => {
                bad("order", "order should be 2 or 3".into())
            }
            SigmaKind::DpmAdaptive
                if !(o.rtol > 0.0 && o.atol > 0.0 && o.h_init != 0.0 && o.h_init.is_finite()) =>
            {
                bad(
                    "kwargs",
                    "dpm_adaptive needs rtol, atol > 0 and h_init ≠ 0".into(),
                )
            }
            SigmaKind::DpmppSde if !(o.r > 0.0 && o.r <= 1.0) => {
                bad("r", format!("r must be in (0, 1], got {}", o.r))
            }
            SigmaKind::DpmFast if o.n == Some(0) => bad("n", "n must be ≥ 1".into()),
            _ => Ok(()),
        }
    }
}
