//! Probability-flow ODE sampling (reference `sampling.get_ode_sampler`, paper eq. 13) and
//! latent codes: encoding data to `z = x(T)`, decoding, interpolation and temperature.
//!
//! The ODE `dx/dt = f(x, t) − ½ g(t)² ∇ log p_t(x)` is integrated with [`crate::rk45`]
//! (scipy `solve_ivp` RK45). As in the reference, the solver state is float64 on the host;
//! every right-hand-side evaluation casts `x` and `t` to float32 and evaluates the drift on
//! the device. Pass a *continuous* score function (`ScoreFn::new(&sde, &model, true)`) — the
//! reference always uses `continuous=True` here.

use burn::prelude::*;
use sde_core::{NoiseSource, ScoreFunction, Sde};

use crate::error::{Result, SampleError};
use crate::pc::SampleOutput;
use crate::rk45::{Rk45Options, Rk45Solution, solve_rk45};
use crate::util::{Counted, DataScaler, check_shape, from_host, to_host_f32};

/// Options of the ODE sampler (`get_ode_sampler` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OdeConfig {
    /// Solver tolerances (`rtol`, `atol`, default 1e-5 each).
    pub solver: Rk45Options,
    /// End time of the reverse integration.
    pub eps: f64,
    /// One noise-free reverse-diffusion step at `eps` after the solve.
    pub denoise: bool,
    /// Inverse data scaler applied to the result.
    pub scaler: DataScaler,
}

impl OdeConfig {
    /// The reference's settings for `sde` (rtol = atol = 1e-5, denoise, per-SDE `eps`).
    pub fn new(sde: &impl Sde) -> Self {
        Self {
            solver: Rk45Options::default(),
            eps: sde.default_sampling_eps() as f64,
            denoise: true,
            scaler: DataScaler::Identity,
        }
    }
}

/// Probability-flow drift at host state `y` (float64, row-major `shape`) and time `t`:
/// `x = f32(y)`, `vec_t = f32(t)`, returns the drift as float64.
pub fn pf_drift_host<B: Backend, S: Sde>(
    sde: &S,
    score: &Counted<'_, B>,
    y: &[f64],
    t: f64,
    shape: [usize; 4],
    device: &B::Device,
) -> Result<Vec<f64>> {
    let x: Tensor<B, 4> = from_host(y.iter().map(|&v| v as f32).collect(), shape, device);
    let vec_t = vec![t as f32; shape[0]];
    // drift = f(x, t) − ½ g(t)² score(x, t)   (paper eq. 13)
    let (drift, _) = sde.reverse(score, true).sde(x, &vec_t)?;
    Ok(to_host_f32(drift).into_iter().map(f64::from).collect())
}

/// Integrates the probability-flow ODE from `t0` to `t1` starting at `x` `[B, C, H, W]`.
/// Returns `x(t1)` (float32) and the solver record (its state is returned empty when
/// `opts.device_state`: the end point is the returned tensor).
pub fn pf_ode_integrate<B: Backend, S: Sde>(
    sde: &S,
    score: &Counted<'_, B>,
    x: Tensor<B, 4>,
    t0: f64,
    t1: f64,
    opts: Rk45Options,
) -> Result<(Tensor<B, 4>, Rk45Solution)> {
    let device = x.device();
    let shape: [usize; 4] = x.dims();
    let n: usize = shape.iter().product();
    if opts.device_state {
        // state [B·C·H·W] on the device; only the error norm goes to the host per step
        let rhs = |t: f64, y: &Tensor<B, 1>| -> Result<Tensor<B, 1>> {
            let vec_t = vec![t as f32; shape[0]];
            let x = y.clone().reshape(shape);
            let (drift, _) = sde.reverse(score, true).sde(x, &vec_t)?;
            Ok(drift.reshape([n]))
        };
        let sol = solve_rk45(rhs, t0, t1, x.reshape([n]), opts)?;
        let x = sol.y.reshape(shape);
        let record = Rk45Solution {
            y: Vec::new(),
            nfev: sol.nfev,
            step_times: sol.step_times,
            n_rejected: sol.n_rejected,
        };
        return Ok((x, record));
    }
    let y0: Vec<f64> = to_host_f32(x).into_iter().map(f64::from).collect();
    let sol = solve_rk45(
        |t, y: &Vec<f64>| pf_drift_host(sde, score, y, t, shape, &device),
        t0,
        t1,
        y0,
        opts,
    )?;
    let x = from_host(sol.y.iter().map(|&v| v as f32).collect(), shape, &device);
    Ok((x, sol))
}

fn check_eps(eps: f64, t_max: f32) -> Result<()> {
    if !(eps > 0.0 && eps < t_max as f64) {
        return Err(SampleError::InvalidOption {
            name: "eps",
            reason: format!("must lie in (0, T = {t_max}), got {eps}"),
        });
    }
    Ok(())
}

/// Probability-flow ODE sampling from `z` (a latent code) or, when `z` is `None`, from a prior
/// draw. `nfe` counts score calls (solver `nfev` + 1 with denoise); `reference_nfe` is the
/// reference's `solution.nfev`.
pub fn ode_sample<B: Backend, S: Sde, N: NoiseSource<B>>(
    sde: &S,
    score: &dyn ScoreFunction<B>,
    cfg: &OdeConfig,
    shape: [usize; 4],
    z: Option<Tensor<B, 4>>,
    noise: &mut N,
    device: &B::Device,
) -> Result<SampleOutput<B>> {
    check_eps(cfg.eps, sde.t_max())?;
    let counted = Counted::new(score);
    let x = match z {
        Some(z) => {
            check_shape("ode_sample: latent z", &z.dims(), &shape)?;
            z
        }
        None => sde.prior_sampling(shape, noise, device)?,
    };
    let (mut x, sol) = pf_ode_integrate(sde, &counted, x, sde.t_max() as f64, cfg.eps, cfg.solver)?;
    if cfg.denoise {
        x = denoise_step(sde, &counted, x, cfg.eps, noise)?;
    }
    Ok(SampleOutput {
        sample: cfg.scaler.inverse(x),
        nfe: counted.calls(),
        reference_nfe: sol.nfev,
    })
}

/// The ODE sampler's denoise step: one reverse-diffusion predictor step (no probability
/// flow) at `t = eps`, keeping `x_mean`; its noise draw is consumed and unused.
pub fn denoise_step<B: Backend, S: Sde, N: NoiseSource<B>>(
    sde: &S,
    score: &Counted<'_, B>,
    x: Tensor<B, 4>,
    eps: f64,
    noise: &mut N,
) -> Result<Tensor<B, 4>> {
    let shape: [usize; 4] = x.dims();
    let vec_eps = vec![eps as f32; shape[0]];
    let (rev_f, _) = sde.reverse(score, false).discretize(x.clone(), &vec_eps)?;
    let _unused = noise.normal(shape, &x.device())?;
    // x_mean = x − rev_f
    Ok(x - rev_f)
}

/// Encodes data `x` `[B, C, H, W]` (model space) to its latent code `z = x(T)` by integrating
/// the probability-flow ODE from `eps` to `T`. Returns `(z, nfev)`.
pub fn encode<B: Backend, S: Sde>(
    sde: &S,
    score: &dyn ScoreFunction<B>,
    x: Tensor<B, 4>,
    eps: f64,
    opts: Rk45Options,
) -> Result<(Tensor<B, 4>, usize)> {
    check_eps(eps, sde.t_max())?;
    let counted = Counted::new(score);
    let (z, sol) = pf_ode_integrate(sde, &counted, x, eps, sde.t_max() as f64, opts)?;
    Ok((z, sol.nfev))
}

/// Decodes a latent code `z` back to data (model space) by integrating from `T` to `eps`,
/// without the denoise step (exact inverse of [`encode`] up to the solver error).
pub fn decode<B: Backend, S: Sde>(
    sde: &S,
    score: &dyn ScoreFunction<B>,
    z: Tensor<B, 4>,
    eps: f64,
    opts: Rk45Options,
) -> Result<(Tensor<B, 4>, usize)> {
    check_eps(eps, sde.t_max())?;
    let counted = Counted::new(score);
    let (x, sol) = pf_ode_integrate(sde, &counted, z, sde.t_max() as f64, eps, opts)?;
    Ok((x, sol.nfev))
}

/// Spherical interpolation between latent codes, per sample (paper §4.3 / Fig. 4 "interpolation"):
/// `slerp(z0, z1, λ) = sin((1−λ)θ)/sin θ · z0 + sin(λθ)/sin θ · z1`, θ the angle between the
/// flattened codes (linear interpolation when they are parallel).
pub fn slerp<B: Backend>(z0: Tensor<B, 4>, z1: Tensor<B, 4>, lambda: f32) -> Result<Tensor<B, 4>> {
    check_shape("slerp: z1", &z1.dims(), &z0.dims())?;
    let device = z0.device();
    let [b, c, h, w] = z0.dims();
    let flat0 = z0.clone().reshape([b, c * h * w]);
    let flat1 = z1.clone().reshape([b, c * h * w]);
    let dot = to_host_f32((flat0.clone() * flat1.clone()).sum_dim(1)); // [B]
    let n0 = to_host_f32(flat0.square().sum_dim(1).sqrt());
    let n1 = to_host_f32(flat1.square().sum_dim(1).sqrt());
    let (mut c0, mut c1) = (Vec::with_capacity(b), Vec::with_capacity(b));
    for i in 0..b {
        let cos = (dot[i] as f64 / (n0[i] as f64 * n1[i] as f64)).clamp(-1.0, 1.0);
        let theta = cos.acos();
        let l = lambda as f64;
        if theta.sin().abs() < 1e-6 {
            c0.push((1.0 - l) as f32);
            c1.push(l as f32);
        } else {
            c0.push((((1.0 - l) * theta).sin() / theta.sin()) as f32);
            c1.push(((l * theta).sin() / theta.sin()) as f32);
        }
    }
    Ok(z0.mul(sde_core::per_sample::<B, 4>(&c0, &device))
        + z1.mul(sde_core::per_sample::<B, 4>(&c1, &device)))
}

/// Temperature-scaled prior draw (`τ · prior sample`): τ < 1 trades diversity for fidelity.
pub fn tempered_prior<B: Backend, S: Sde, N: NoiseSource<B>>(
    sde: &S,
    shape: [usize; 4],
    temperature: f32,
    noise: &mut N,
    device: &B::Device,
) -> Result<Tensor<B, 4>> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(SampleError::InvalidOption {
            name: "temperature",
            reason: format!("must be finite and > 0, got {temperature}"),
        });
    }
    Ok(sde
        .prior_sampling(shape, noise, device)?
        .mul_scalar(temperature))
}
