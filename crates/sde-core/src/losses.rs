//! Training objectives (reference `losses.py`): continuous denoising score matching for any
//! SDE (paper eq. 7), and the legacy discrete SMLD (NCSN) and DDPM losses.
//!
//! Every random draw comes from a [`NoiseSource`], in the reference's order, so a recorded
//! reference run replays exactly.

use burn::prelude::*;

use crate::error::{Result, SdeError};
use crate::noise::NoiseSource;
use crate::score::{Labels, ScoreFn, ScoreFunction, ScoreModel};
use crate::sde::{Sde, SdeKind, per_sample};
use crate::{AnySde, VeSde, VpSde};

/// Knobs of `get_sde_loss_fn` / `get_step_fn`. `Default` is the value the official configs
/// use (`reduce_mean = false`, `continuous = true`, `likelihood_weighting = false`,
/// `eps = 1e-5`); the VP / sub-VP configs set `reduce_mean = true`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    /// Mean over C·H·W (true) or `0.5 ·` sum (false).
    pub reduce_mean: bool,
    /// Continuous-time DSM (true) or the legacy discrete SMLD / DDPM losses (false).
    pub continuous: bool,
    /// λ(t) = g(t)² (true, Song et al. 2021b) or λ(t) = σ_t² (false, the paper's choice).
    pub likelihood_weighting: bool,
    /// Smallest time sampled: `t ~ U[eps, T)`.
    pub eps: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            reduce_mean: false,
            continuous: true,
            likelihood_weighting: false,
            eps: 1e-5,
        }
    }
}

/// Per-sample reduction `[B, C, H, W] → [B]`: mean over C·H·W, or `0.5 · sum`.
fn reduce<B: Backend>(losses: Tensor<B, 4>, reduce_mean: bool) -> Tensor<B, 1> {
    let [b, c, h, w] = losses.dims();
    let flat = losses.reshape([b, c * h * w]);
    let r = if reduce_mean {
        flat.mean_dim(1)
    } else {
        flat.sum_dim(1).mul_scalar(0.5)
    };
    r.reshape([b])
}

fn host_f32<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32")
}

fn host_i64<B: Backend>(t: Tensor<B, 1, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("converted to i64")
}

/// Continuous denoising score matching (`get_sde_loss_fn`): draws `t = u (T − eps) + eps`
/// (`rand(B)`), then `z` (`randn_like(x0)`); `x_t = mean + std z`; per sample
/// `reduce((s·std + z)²)` or, with likelihood weighting, `reduce((s + z/std)²) · g(t)²`;
/// returns the batch mean `[1]`.
pub fn dsm_loss<B, S, M, N>(
    sde: &S,
    model: &M,
    x0: Tensor<B, 4>,
    cfg: &LossConfig,
    noise: &mut N,
) -> Result<Tensor<B, 1>>
where
    B: Backend,
    S: Sde + ?Sized,
    M: ScoreModel<B> + ?Sized,
    N: NoiseSource<B>,
{
    let device = x0.device();
    let dims = x0.dims();
    let b = dims[0];
    if !(cfg.eps >= 0.0 && cfg.eps < sde.t_max()) {
        return Err(SdeError::TimeOutOfRange {
            what: "loss eps",
            t: cfg.eps,
            t_max: sde.t_max(),
        });
    }
    let u = host_f32(noise.uniform(b, &device)?);
    let span = (sde.t_max() as f64 - cfg.eps as f64) as f32;
    let t: Vec<f32> = u.iter().map(|&u| u * span + cfg.eps).collect();
    let z = noise.normal(dims, &device)?;
    let (mean, std) = sde.marginal_prob(x0, &t)?;
    let std_t = per_sample::<B, 4>(&std, &device);
    let perturbed = mean + std_t.clone().mul(z.clone());
    let score = ScoreFn::new(sde, model, cfg.continuous).score(perturbed, &t)?;
    let losses = if cfg.likelihood_weighting {
        let g2: Vec<f32> = sde.diffusion_coefs(&t).iter().map(|g| g * g).collect();
        let l = (score + z.div(std_t)).square();
        reduce(l, cfg.reduce_mean).mul(per_sample::<B, 1>(&g2, &device))
    } else {
        reduce((score.mul(std_t) + z).square(), cfg.reduce_mean)
    };
    Ok(losses.mean())
}

/// Legacy SMLD / NCSN loss (`get_smld_loss_fn`, discrete VE): `labels ~ randint(0, N)`,
/// σ = descending σ table `[labels]`, `noise = z σ`, target `−noise / σ²`; per sample
/// `reduce((s − target)²) σ²`; batch mean.
pub fn smld_loss<B, M, N>(
    sde: &VeSde,
    model: &M,
    x0: Tensor<B, 4>,
    reduce_mean: bool,
    noise: &mut N,
) -> Result<Tensor<B, 1>>
where
    B: Backend,
    M: ScoreModel<B> + ?Sized,
    N: NoiseSource<B>,
{
    let device = x0.device();
    let dims = x0.dims();
    let n = sde.num_steps();
    let labels = noise.randint(0, n as i64, dims[0], &device)?;
    let idx = host_i64(labels.clone());
    let table = sde.discrete_sigmas();
    // flip(discrete_sigmas)[labels]
    let sigmas: Vec<f32> = idx.iter().map(|&l| table[n - 1 - l as usize]).collect();
    let sig2: Vec<f32> = sigmas.iter().map(|s| s * s).collect();
    let noise_t = noise
        .normal(dims, &device)?
        .mul(per_sample::<B, 4>(&sigmas, &device));
    let perturbed = noise_t.clone() + x0;
    let score = model.try_forward(perturbed, Labels::Int(labels))?;
    let target = noise_t.neg().div(per_sample::<B, 4>(&sig2, &device));
    let losses =
        reduce((score - target).square(), reduce_mean).mul(per_sample::<B, 1>(&sig2, &device));
    Ok(losses.mean())
}

/// Legacy DDPM loss (`get_ddpm_loss_fn`, discrete VP, ε-prediction): `labels ~ randint(0, N)`,
/// `x_t = sqrt(ᾱ_l) x0 + sqrt(1 − ᾱ_l) z`; per sample `reduce((model(x_t, l) − z)²)`; batch mean.
pub fn ddpm_loss<B, M, N>(
    sde: &VpSde,
    model: &M,
    x0: Tensor<B, 4>,
    reduce_mean: bool,
    noise: &mut N,
) -> Result<Tensor<B, 1>>
where
    B: Backend,
    M: ScoreModel<B> + ?Sized,
    N: NoiseSource<B>,
{
    let device = x0.device();
    let dims = x0.dims();
    let labels = noise.randint(0, sde.num_steps() as i64, dims[0], &device)?;
    let idx = host_i64(labels.clone());
    let tables = sde.tables();
    let a: Vec<f32> = idx
        .iter()
        .map(|&l| tables.sqrt_alphas_cumprod[l as usize])
        .collect();
    let s: Vec<f32> = idx
        .iter()
        .map(|&l| tables.sqrt_1m_alphas_cumprod[l as usize])
        .collect();
    let z = noise.normal(dims, &device)?;
    let perturbed =
        per_sample::<B, 4>(&a, &device).mul(x0) + per_sample::<B, 4>(&s, &device).mul(z.clone());
    let out = model.try_forward(perturbed, Labels::Int(labels))?;
    Ok(reduce((out - z).square(), reduce_mean).mean())
}

/// The loss `get_step_fn` picks: continuous DSM, or for `continuous = false` the SMLD loss
/// (VE) / DDPM loss (VP). Discrete training of the sub-VP SDE and likelihood weighting with
/// the discrete losses are errors, as in the reference.
pub fn training_loss<B, M, N>(
    sde: &AnySde,
    model: &M,
    x0: Tensor<B, 4>,
    cfg: &LossConfig,
    noise: &mut N,
) -> Result<Tensor<B, 1>>
where
    B: Backend,
    M: ScoreModel<B> + ?Sized,
    N: NoiseSource<B>,
{
    cfg.check(sde.kind())?;
    if cfg.continuous {
        return dsm_loss(sde, model, x0, cfg, noise);
    }
    match sde {
        AnySde::Ve(ve) => smld_loss(ve, model, x0, cfg.reduce_mean, noise),
        AnySde::Vp(vp) => ddpm_loss(vp, model, x0, cfg.reduce_mean, noise),
        AnySde::SubVp(_) => Err(discrete_subvp()),
    }
}

impl LossConfig {
    /// Whether [`training_loss`] is defined for an SDE of `kind` with these knobs (reference
    /// `get_step_fn`): the discrete losses exist for VE (SMLD) and VP (DDPM) only, and without
    /// likelihood weighting. Lets a config be rejected before any training.
    pub fn check(&self, kind: SdeKind) -> Result<()> {
        if self.continuous {
            return Ok(());
        }
        if self.likelihood_weighting {
            return Err(SdeError::Unsupported(
                "likelihood weighting is not supported for the discrete SMLD / DDPM losses".into(),
            ));
        }
        if kind == SdeKind::SubVp {
            return Err(discrete_subvp());
        }
        Ok(())
    }
}

fn discrete_subvp() -> SdeError {
    SdeError::Unsupported(format!(
        "discrete training of the {} is not defined (use continuous = true)",
        SdeKind::SubVp.reference_name()
    ))
}
