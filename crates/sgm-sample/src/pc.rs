//! Predictor–corrector sampling (reference `sampling.get_pc_sampler`, paper Alg. 1–3).
//!
//! One loop ([`pc_sample`]) drives every combination of predictor and corrector; controllable
//! generation plugs into the same loop through a [`Projection`] (see [`crate::controllable`]).
//! Draw order follows the reference exactly: Euler–Maruyama draws its noise *before* its score
//! call, every other update *after*; every draw is consumed even when its value is unused.

use burn::prelude::*;
use sde_core::f32math::{discrete_index, torch_linspace_f32};
use sde_core::{AnySde, NoiseSource, ScoreFunction, Sde, SdeKind, per_sample};

use crate::error::{Result, SampleError};
use crate::util::{Counted, DataScaler, to_host_f32};

/// Predictor of a PC sampler (`config.sampling.predictor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predictor {
    /// `euler_maruyama`: one Euler–Maruyama step of the reverse SDE (paper eq. 6).
    EulerMaruyama,
    /// `reverse_diffusion`: the reverse of the SDE's own discretisation (paper eq. 46).
    ReverseDiffusion,
    /// `ancestral_sampling`: DDPM / SMLD ancestral step (paper eq. 47, 48); VE and VP only.
    AncestralSampling,
    /// `none`: corrector-only sampling.
    None,
}

/// Corrector of a PC sampler (`config.sampling.corrector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrector {
    /// `langevin`: Langevin MCMC with the SNR-adaptive step (paper Alg. 4 / 5).
    Langevin,
    /// `ald`: annealed Langevin dynamics of NCSN (fixed step `2 α (snr σ_t)²`).
    Ald,
    /// `none`: predictor-only sampling.
    None,
}

impl Predictor {
    /// Every predictor.
    pub const ALL: [Predictor; 4] = [
        Predictor::EulerMaruyama,
        Predictor::ReverseDiffusion,
        Predictor::AncestralSampling,
        Predictor::None,
    ];

    /// The reference registry name (`config.sampling.predictor`).
    pub fn name(self) -> &'static str {
        match self {
            Predictor::EulerMaruyama => "euler_maruyama",
            Predictor::ReverseDiffusion => "reverse_diffusion",
            Predictor::AncestralSampling => "ancestral_sampling",
            Predictor::None => "none",
        }
    }

    /// Parses the reference registry name (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self> {
        parse_name(name, &Self::ALL, Self::name, "predictor")
    }
}

impl Corrector {
    /// Every corrector.
    pub const ALL: [Corrector; 3] = [Corrector::Langevin, Corrector::Ald, Corrector::None];

    /// The reference registry name (`config.sampling.corrector`).
    pub fn name(self) -> &'static str {
        match self {
            Corrector::Langevin => "langevin",
            Corrector::Ald => "ald",
            Corrector::None => "none",
        }
    }

    /// Parses the reference registry name (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self> {
        parse_name(name, &Self::ALL, Self::name, "corrector")
    }
}

/// The member of `all` whose `name` equals `input` (case-insensitive), or an error listing them.
fn parse_name<T: Copy>(
    input: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &'static str,
) -> Result<T> {
    all.iter()
        .copied()
        .find(|&v| name(v).eq_ignore_ascii_case(input))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
            SampleError::InvalidOption {
                name: what,
                reason: format!("unknown {what} `{input}` ({})", names.join(" | ")),
            }
        })
}

/// Options of the PC sampler (`get_pc_sampler` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct PcConfig {
    /// Predictor.
    pub predictor: Predictor,
    /// Corrector.
    pub corrector: Corrector,
    /// Target signal-to-noise ratio of the correctors.
    pub snr: f32,
    /// Corrector steps per time step.
    pub n_steps: usize,
    /// Predictor integrates the probability-flow ODE (no predictor noise).
    pub probability_flow: bool,
    /// Return the noise-free mean of the last update.
    pub denoise: bool,
    /// Last time of the grid `linspace(T, eps, N)`.
    pub eps: f64,
    /// Inverse data scaler applied to the result.
    pub scaler: DataScaler,
}

impl PcConfig {
    /// The reference's defaults for `sde` (`snr` 0.16, one corrector step, denoise, the
    /// per-SDE `eps` of `run_lib`).
    pub fn new(predictor: Predictor, corrector: Corrector, sde: &impl Sde) -> Self {
        Self {
            predictor,
            corrector,
            snr: 0.16,
            n_steps: 1,
            probability_flow: false,
            denoise: true,
            eps: sde.default_sampling_eps() as f64,
            scaler: DataScaler::Identity,
        }
    }

    /// The NFE the reference reports: `N · (n_steps + 1)`, whatever the predictor/corrector.
    pub fn reference_nfe(&self, sde: &impl Sde) -> usize {
        sde.num_steps() * (self.n_steps + 1)
    }

    /// The network calls a run makes: `N · (p + c)` with `p` = 1 unless the predictor is
    /// `none` and `c = n_steps` unless the corrector is `none`.
    pub fn network_calls(&self, sde: &impl Sde) -> usize {
        let p = usize::from(self.predictor != Predictor::None);
        let c = if self.corrector == Corrector::None {
            0
        } else {
            self.n_steps
        };
        sde.num_steps() * (p + c)
    }

    /// Rejects the combinations on which the reference raises (fixtures
    /// `sampling/known_errors.json`), before any draw is made:
    /// * ancestral sampling on sub-VP (`NotImplementedError`) or with `probability_flow`
    ///   (`AssertionError`): the ancestral step is defined only by the VE / DDPM chains and is
    ///   stochastic by construction;
    /// * Langevin / ALD on sub-VP (`AttributeError`: the step uses the VP table `alphas`,
    ///   which sub-VP lacks).
    ///
    /// Euler–Maruyama with `probability_flow` (a `TypeError` in the reference) is *accepted*
    /// with its evident intent: the reverse diffusion is zero, so the step is the explicit Euler
    /// step of the probability-flow ODE (eq. 13); its noise draw is still consumed.
    pub fn validate(&self, sde: &impl Sde) -> Result<()> {
        let kind = sde.kind();
        let name = kind.reference_name();
        if self.predictor == Predictor::AncestralSampling {
            if kind == SdeKind::SubVp {
                return Err(SampleError::Unsupported(format!(
                    "ancestral_sampling is defined for VESDE and VPSDE only, not {name}"
                )));
            }
            if self.probability_flow {
                return Err(SampleError::Unsupported(
                    "ancestral_sampling does not support probability_flow".into(),
                ));
            }
        }
        if self.corrector != Corrector::None && kind == SdeKind::SubVp {
            return Err(SampleError::Unsupported(format!(
                "corrector {:?} needs the discrete `alphas` table, which {name} does not have",
                self.corrector
            )));
        }
        if sde.num_steps() < 2 {
            return Err(SampleError::InvalidOption {
                name: "N",
                reason: format!("need at least 2 time steps, got {}", sde.num_steps()),
            });
        }
        if !(self.eps > 0.0 && self.eps < sde.t_max() as f64) {
            return Err(SampleError::InvalidOption {
                name: "eps",
                reason: format!("must lie in (0, T = {}), got {}", sde.t_max(), self.eps),
            });
        }
        if !(self.snr.is_finite() && self.snr >= 0.0) {
            return Err(SampleError::InvalidOption {
                name: "snr",
                reason: format!("must be finite and ≥ 0, got {}", self.snr),
            });
        }
        Ok(())
    }
}

/// The state after one update: `(x, x_mean)` (x_mean = x without the last noise).
pub type Update<B> = (Tensor<B, 4>, Tensor<B, 4>);

/// A hook of the PC loop: the initial state and a projection applied after every corrector
/// and predictor update (inpainting, colorization). [`NoProjection`] is plain sampling.
pub trait Projection<B: Backend> {
    /// Initial state from the prior sample `prior` `[B, C, H, W]`.
    fn init(&self, prior: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        Ok(prior)
    }
    /// Projects `(x, x_mean)` after an update at times `t`; may draw noise.
    fn project<N: NoiseSource<B>>(
        &self,
        sde: &AnySde,
        update: Update<B>,
        t: &[f32],
        noise: &mut N,
    ) -> Result<Update<B>>;
}

/// Plain sampling: no projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProjection;

impl<B: Backend> Projection<B> for NoProjection {
    fn project<N: NoiseSource<B>>(
        &self,
        _sde: &AnySde,
        update: Update<B>,
        _t: &[f32],
        _noise: &mut N,
    ) -> Result<Update<B>> {
        Ok(update)
    }
}

/// Result of a sampler.
#[derive(Debug, Clone)]
pub struct SampleOutput<B: Backend> {
    /// `inverse_scaler(x_mean if denoise else x)`, `[B, C, H, W]`.
    pub sample: Tensor<B, 4>,
    /// Score evaluations really spent (network forward calls).
    pub nfe: usize,
    /// What the reference reports: `N (n_steps + 1)` for PC, `solution.nfev` for ODE.
    pub reference_nfe: usize,
}

/// PC sampling with a projection hook (the one loop of this crate).
///
/// `score` is the score function (build it with `sde_core::ScoreFn::new(&sde, &model,
/// continuous)`); `shape` the batch shape `[B, C, H, W]`.
pub fn pc_sample<B: Backend, N: NoiseSource<B>, P: Projection<B>>(
    sde: &AnySde,
    score: &dyn ScoreFunction<B>,
    cfg: &PcConfig,
    shape: [usize; 4],
    projection: &P,
    noise: &mut N,
    device: &B::Device,
) -> Result<SampleOutput<B>> {
    cfg.validate(sde)?;
    let counted = Counted::new(score);
    let prior = sde.prior_sampling(shape, noise, device)?; // [B, C, H, W]
    let x0 = projection.init(prior)?;
    let mut state: Update<B> = (x0.clone(), x0);
    // timesteps = torch.linspace(T, eps, N) (float32)
    let timesteps = torch_linspace_f32(sde.t_max() as f64, cfg.eps, sde.num_steps());
    for &t in &timesteps {
        let vec_t = vec![t; shape[0]];
        let upd = corrector_update(sde, &counted, cfg, state.0, &vec_t, noise)?;
        state = projection.project(sde, upd, &vec_t, noise)?;
        let upd = predictor_update(sde, &counted, cfg, state.0, &vec_t, noise)?;
        state = projection.project(sde, upd, &vec_t, noise)?;
    }
    let (x, x_mean) = state;
    let out = if cfg.denoise { x_mean } else { x };
    Ok(SampleOutput {
        sample: cfg.scaler.inverse(out),
        nfe: counted.calls(),
        reference_nfe: cfg.reference_nfe(sde),
    })
}

/// One predictor update at per-sample times `t` (reference `Predictor.update_fn`).
pub fn predictor_update<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    score: &Counted<'_, B>,
    cfg: &PcConfig,
    x: Tensor<B, 4>,
    t: &[f32],
    noise: &mut N,
) -> Result<Update<B>> {
    let device = x.device();
    let shape: [usize; 4] = x.dims();
    match cfg.predictor {
        Predictor::None => Ok((x.clone(), x)),
        Predictor::EulerMaruyama => {
            // dt = −1/N; z drawn before the score call (sampling.py:183)
            let dt = -1.0f64 / sde.num_steps() as f64;
            let z = noise.normal(shape, &device)?;
            let rsde = sde.reverse(score, cfg.probability_flow);
            let (drift, g) = rsde.sde(x.clone(), t)?;
            // x_mean = x + drift * dt
            let x_mean = x + drift.mul_scalar(dt as f32);
            // x = x_mean + g * sqrt(−dt) * z  (g · sqrt(−dt) in float32, per sample)
            let sq = (-dt).sqrt() as f32;
            let c: Vec<f32> = g.iter().map(|&g| g * sq).collect();
            let x = x_mean.clone() + z.mul(per_sample::<B, 4>(&c, &device));
            Ok((x, x_mean))
        }
        Predictor::ReverseDiffusion => {
            let rsde = sde.reverse(score, cfg.probability_flow);
            let (rev_f, rev_g) = rsde.discretize(x.clone(), t)?;
            let z = noise.normal(shape, &device)?;
            // x_mean = x − f;  x = x_mean + G z   (paper eq. 46)
            let x_mean = x - rev_f;
            let x = x_mean.clone() + z.mul(per_sample::<B, 4>(&rev_g, &device));
            Ok((x, x_mean))
        }
        Predictor::AncestralSampling => ancestral_update(sde, score, x, t, noise),
    }
}

/// Ancestral sampling (reference `AncestralSamplingPredictor`; paper eq. 47 VE, eq. 48 VP).
fn ancestral_update<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    score: &Counted<'_, B>,
    x: Tensor<B, 4>,
    t: &[f32],
    noise: &mut N,
) -> Result<Update<B>> {
    let device = x.device();
    let shape: [usize; 4] = x.dims();
    let n = sde.num_steps();
    let idx: Vec<usize> = t
        .iter()
        .map(|&t| discrete_index(t, n, sde.t_max()))
        .collect();
    match sde {
        AnySde::Ve(ve) => {
            let sig = ve.discrete_sigmas();
            let s: Vec<f32> = idx.iter().map(|&i| sig[i]).collect();
            let adj: Vec<f32> = idx
                .iter()
                .map(|&i| if i == 0 { 0.0 } else { sig[i - 1] })
                .collect();
            // σ_i² − σ_{i−1}²
            let d: Vec<f32> = s.iter().zip(&adj).map(|(s, a)| s * s - a * a).collect();
            let sc = score.score(x.clone(), t)?;
            let x_mean = x + sc.mul(per_sample::<B, 4>(&d, &device));
            // std = sqrt(σ_{i−1}² (σ_i² − σ_{i−1}²) / σ_i²)
            let std: Vec<f32> = s
                .iter()
                .zip(&adj)
                .zip(&d)
                .map(|((s, a), d)| ((a * a * d) / (s * s)).sqrt())
                .collect();
            let z = noise.normal(shape, &device)?;
            let x = x_mean.clone() + z.mul(per_sample::<B, 4>(&std, &device));
            Ok((x, x_mean))
        }
        AnySde::Vp(vp) => {
            let beta: Vec<f32> = idx.iter().map(|&i| vp.tables().discrete_betas[i]).collect();
            let sc = score.score(x.clone(), t)?;
            // x_mean = (x + β score) / sqrt(1 − β)
            let den: Vec<f32> = beta.iter().map(|b| (1.0 - b).sqrt()).collect();
            let x_mean = (x + sc.mul(per_sample::<B, 4>(&beta, &device)))
                .div(per_sample::<B, 4>(&den, &device));
            let z = noise.normal(shape, &device)?;
            let sb: Vec<f32> = beta.iter().map(|b| b.sqrt()).collect();
            let x = x_mean.clone() + z.mul(per_sample::<B, 4>(&sb, &device));
            Ok((x, x_mean))
        }
        AnySde::SubVp(_) => Err(SampleError::Unsupported(
            "ancestral_sampling is defined for VESDE and VPSDE only, not subVPSDE".into(),
        )),
    }
}

/// `α_i` of the correctors: `alphas[floor(t (N−1)/T)]` for VP, 1 for VE.
fn corrector_alpha(sde: &AnySde, t: &[f32]) -> Result<Vec<f32>> {
    match sde {
        AnySde::Vp(vp) => Ok(t
            .iter()
            .map(|&t| vp.tables().alphas[discrete_index(t, vp.num_steps(), vp.t_max())])
            .collect()),
        AnySde::Ve(_) => Ok(vec![1.0; t.len()]),
        AnySde::SubVp(_) => Err(SampleError::Unsupported(
            "Langevin / ALD correctors need the VP `alphas` table; subVPSDE has none".into(),
        )),
    }
}

/// Batch mean of the per-sample L2 norms (`torch.norm(v.reshape(B, -1), dim=-1).mean()`).
fn mean_norm<B: Backend>(v: &Tensor<B, 4>) -> f32 {
    let [b, c, h, w] = v.dims();
    let norms = v.clone().reshape([b, c * h * w]).square().sum_dim(1).sqrt(); // [B, 1]
    to_host_f32(norms.mean())
        .first()
        .copied()
        .unwrap_or(f32::NAN)
}

/// One corrector update (`n_steps` Langevin / ALD steps) at per-sample times `t`.
pub fn corrector_update<B: Backend, N: NoiseSource<B>>(
    sde: &AnySde,
    score: &Counted<'_, B>,
    cfg: &PcConfig,
    x: Tensor<B, 4>,
    t: &[f32],
    noise: &mut N,
) -> Result<Update<B>> {
    if cfg.corrector == Corrector::None || cfg.n_steps == 0 {
        return Ok((x.clone(), x));
    }
    let device = x.device();
    let shape: [usize; 4] = x.dims();
    let alpha = corrector_alpha(sde, t)?;
    let std = sde.marginal_coefs(t).1;
    let mut x = x;
    let mut x_mean = x.clone();
    for _ in 0..cfg.n_steps {
        let grad = score.score(x.clone(), t)?;
        let z = noise.normal(shape, &device)?;
        let step: Vec<f32> = match cfg.corrector {
            Corrector::Langevin => {
                // step = (snr ‖z‖ / ‖grad‖)² · 2 α   (paper Alg. 4/5, batch-mean norms)
                let gn = mean_norm(&grad);
                let nn = mean_norm(&z);
                let r = cfg.snr * nn / gn;
                alpha.iter().map(|a| r * r * 2.0 * a).collect()
            }
            // step = (snr σ_t)² · 2 α
            _ => std
                .iter()
                .zip(&alpha)
                .map(|(s, a)| {
                    let r = cfg.snr * s;
                    r * r * 2.0 * a
                })
                .collect(),
        };
        // x_mean = x + step grad;  x = x_mean + sqrt(2 step) z
        x_mean = x + grad.mul(per_sample::<B, 4>(&step, &device));
        let sq: Vec<f32> = step.iter().map(|s| (s * 2.0).sqrt()).collect();
        x = x_mean.clone() + z.mul(per_sample::<B, 4>(&sq, &device));
    }
    Ok((x, x_mean))
}
