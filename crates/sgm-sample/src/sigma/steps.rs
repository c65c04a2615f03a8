//! The samplers that walk a given schedule `σ₀ > … > σ_{n−1} ≥ 0` (k-diffusion
//! `sample_euler` … `sample_dpmpp_3m_sde`), with k-diffusion's draw order: Alg. 2's churn draws
//! one tensor every step even when γ = 0; ancestral / SDE samplers draw where k-diffusion calls
//! its noise sampler (also when the draw is then multiplied by 0, e.g. `dpmpp_sde` with η = 0).
//!
//! Scalar coefficients are computed in float64 from the schedule; tensors stay on the device.

use std::collections::VecDeque;
use std::f64::consts::SQRT_2;

use burn::prelude::*;
use sde_core::NoiseSource;

use super::denoiser::CountedDenoiser;
use super::method::{SigmaKind, SigmaOptions, SolverType};
use crate::error::{Result, SampleError};

type X<B> = Tensor<B, 4>;

/// One standard-normal tensor shaped like `x` (k-diffusion's `randn_like` / `noise_sampler`).
pub(crate) fn normal_like<B: Backend, N: NoiseSource<B>>(noise: &mut N, x: &X<B>) -> Result<X<B>> {
    Ok(noise.normal(x.dims(), &x.device())?)
}

/// Karras ODE derivative `d = (x − D)/σ` (k-diffusion `to_d`; EDM eq. 3 with σ(t) = t).
fn to_d<B: Backend>(x: X<B>, sigma: f64, denoised: X<B>) -> X<B> {
    (x - denoised).div_scalar(sigma)
}

/// `(σ_down, σ_up)` of an ancestral step from `from` to `to` (k-diffusion
/// `get_ancestral_step`): `σ_up = min(to, η·√(to²(from² − to²)/from²))`, `σ_down = √(to² − σ_up²)`.
pub(crate) fn ancestral_step(from: f64, to: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (to, 0.0);
    }
    let up = to.min(eta * (to * to * (from * from - to * to) / (from * from)).sqrt());
    ((to * to - up * up).sqrt(), up)
}

/// `t = −ln σ` and back (DPM-Solver's time variable, λ in Lu et al.).
fn t_of(sigma: f64) -> f64 {
    -sigma.ln()
}
fn sigma_of(t: f64) -> f64 {
    (-t).exp()
}

/// Alg. 2 lines 4–6 (Karras et al. 2022): `γ = min(s_churn/steps, √2 − 1)` inside
/// `[s_tmin, s_tmax]`, `σ̂ = σ_i(1 + γ)`, `x += ε·s_noise·√(σ̂² − σ_i²)`. The draw is made every
/// step, as in k-diffusion.
fn churn<B: Backend, N: NoiseSource<B>>(
    x: X<B>,
    sigmas: &[f64],
    i: usize,
    o: &SigmaOptions,
    noise: &mut N,
) -> Result<(X<B>, f64)> {
    let s = sigmas[i];
    let steps = (sigmas.len() - 1) as f64;
    let gamma = if o.s_tmin <= s && s <= o.s_tmax {
        (o.s_churn / steps).min(SQRT_2 - 1.0)
    } else {
        0.0
    };
    let eps = normal_like(noise, &x)?.mul_scalar(o.s_noise);
    let sigma_hat = s * (gamma + 1.0);
    if gamma > 0.0 {
        Ok((
            x + eps.mul_scalar((sigma_hat * sigma_hat - s * s).sqrt()),
            sigma_hat,
        ))
    } else {
        Ok((x, sigma_hat))
    }
}

/// Runs sampler `kind` (every kind but `dpm_fast` / `dpm_adaptive`) along `sigmas`.
pub(crate) fn run_schedule<B: Backend, N: NoiseSource<B>>(
    kind: SigmaKind,
    o: &SigmaOptions,
    den: &CountedDenoiser<B>,
    mut x: X<B>,
    sigmas: &[f64],
    noise: &mut N,
) -> Result<X<B>> {
    let n = sigmas.len() - 1;
    // multistep memory: previous denoised values and log-σ steps
    let mut old: VecDeque<X<B>> = VecDeque::new();
    let mut h_old: VecDeque<f64> = VecDeque::new();
    let mut lms_ds: VecDeque<X<B>> = VecDeque::new();
    for i in 0..n {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        match kind {
            SigmaKind::Euler | SigmaKind::Heun | SigmaKind::Dpm2 => {
                let (xc, sh) = churn(x, sigmas, i, o, noise)?;
                let d = to_d(xc.clone(), sh, den.at(xc.clone(), sh)?);
                x = if s_next == 0.0 || kind == SigmaKind::Euler {
                    // Euler step
                    xc + d.mul_scalar(s_next - sh)
                } else if kind == SigmaKind::Heun {
                    // Heun: average the slopes at both ends (EDM Alg. 2, lines 9–11)
                    let dt = s_next - sh;
                    let x2 = xc.clone() + d.clone().mul_scalar(dt);
                    let d2 = to_d(x2.clone(), s_next, den.at(x2, s_next)?);
                    xc + (d + d2).div_scalar(2.0).mul_scalar(dt)
                } else {
                    // DPM-Solver-2: slope at the log-σ midpoint
                    let mid = (0.5 * (sh.ln() + s_next.ln())).exp();
                    let x2 = xc.clone() + d.mul_scalar(mid - sh);
                    let d2 = to_d(x2.clone(), mid, den.at(x2, mid)?);
                    xc + d2.mul_scalar(s_next - sh)
                };
            }
            SigmaKind::EulerAncestral | SigmaKind::Dpm2Ancestral => {
                let denoised = den.at(x.clone(), s)?;
                let (down, up) = ancestral_step(s, s_next, o.eta);
                let d = to_d(x.clone(), s, denoised);
                if kind == SigmaKind::EulerAncestral || down == 0.0 {
                    x = x + d.mul_scalar(down - s);
                    if kind == SigmaKind::EulerAncestral && s_next > 0.0 {
                        x = x.clone() + normal_like(noise, &x)?.mul_scalar(o.s_noise * up);
                    }
                } else {
                    let mid = (0.5 * (s.ln() + down.ln())).exp();
                    let x2 = x.clone() + d.mul_scalar(mid - s);
                    let d2 = to_d(x2.clone(), mid, den.at(x2, mid)?);
                    x = x + d2.mul_scalar(down - s);
                    // k-diffusion adds the noise only on this branch
                    x = x.clone() + normal_like(noise, &x)?.mul_scalar(o.s_noise * up);
                }
            }
            SigmaKind::Lms => {
                let denoised = den.at(x.clone(), s)?;
                lms_ds.push_back(to_d(x.clone(), s, denoised));
                if lms_ds.len() > o.order {
                    lms_ds.pop_front();
                }
                let cur = (i + 1).min(o.order);
                let mut step = x.zeros_like();
                for (j, d) in lms_ds.iter().rev().enumerate() {
                    let c = lms_coefficient(cur, sigmas, i, j)?;
                    step = step + d.clone().mul_scalar(c);
                }
                x = x + step;
            }
            SigmaKind::Dpmpp2m => {
                let denoised = den.at(x.clone(), s)?;
                let (t, t_next) = (t_of(s), t_of(s_next));
                let h = t_next - t;
                let ratio = sigma_of(t_next) / sigma_of(t);
                let target = match old.front() {
                    Some(prev) if s_next != 0.0 => {
                        // DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2)
                        let r = (t - t_of(sigmas[i - 1])) / h;
                        denoised.clone().mul_scalar(1.0 + 1.0 / (2.0 * r))
                            - prev.clone().mul_scalar(1.0 / (2.0 * r))
                    }
                    _ => denoised.clone(),
                };
                x = x.mul_scalar(ratio) - target.mul_scalar((-h).exp_m1());
                old.clear();
                old.push_front(denoised);
            }
            SigmaKind::Dpmpp2sAncestral => {
                let denoised = den.at(x.clone(), s)?;
                let (down, up) = ancestral_step(s, s_next, o.eta);
                if down == 0.0 {
                    let d = to_d(x.clone(), s, denoised);
                    x = x + d.mul_scalar(down - s);
                } else {
                    // DPM-Solver++(2S), r = 1/2
                    let (t, t_next) = (t_of(s), t_of(down));
                    let h = t_next - t;
                    let sm = t + 0.5 * h;
                    let x2 = x.clone().mul_scalar(sigma_of(sm) / sigma_of(t))
                        - denoised.mul_scalar((-h * 0.5).exp_m1());
                    let d2 = den.at(x2, sigma_of(sm))?;
                    x = x.mul_scalar(sigma_of(t_next) / sigma_of(t)) - d2.mul_scalar((-h).exp_m1());
                }
                if s_next > 0.0 {
                    x = x.clone() + normal_like(noise, &x)?.mul_scalar(o.s_noise * up);
                }
            }
            SigmaKind::DpmppSde => {
                let denoised = den.at(x.clone(), s)?;
                if s_next == 0.0 {
                    let d = to_d(x.clone(), s, denoised);
                    x = x + d.mul_scalar(s_next - s);
                } else {
                    let (t, t_next) = (t_of(s), t_of(s_next));
                    let h = t_next - t;
                    let sm = t + h * o.r;
                    let fac = 1.0 / (2.0 * o.r);
                    // step 1: to the intermediate point, with its own noise
                    let (sd, su) = ancestral_step(sigma_of(t), sigma_of(sm), o.eta);
                    let s_ = t_of(sd);
                    let x2 = x.clone().mul_scalar(sigma_of(s_) / sigma_of(t))
                        - denoised.clone().mul_scalar((t - s_).exp_m1());
                    let x2 = x2.clone() + normal_like(noise, &x2)?.mul_scalar(o.s_noise * su);
                    let d2 = den.at(x2, sigma_of(sm))?;
                    // step 2: the full step with the mixed denoised value
                    let (sd, su) = ancestral_step(sigma_of(t), sigma_of(t_next), o.eta);
                    let tn = t_of(sd);
                    let dd = denoised.mul_scalar(1.0 - fac) + d2.mul_scalar(fac);
                    x = x.mul_scalar(sigma_of(tn) / sigma_of(t)) - dd.mul_scalar((t - tn).exp_m1());
                    x = x.clone() + normal_like(noise, &x)?.mul_scalar(o.s_noise * su);
                }
            }
            SigmaKind::Dpmpp2mSde | SigmaKind::Dpmpp3mSde => {
                let denoised = den.at(x.clone(), s)?;
                if s_next == 0.0 {
                    // denoising step (the schedule's last)
                    x = denoised;
                    continue;
                }
                let h = t_of(s_next) - t_of(s);
                x = if kind == SigmaKind::Dpmpp2mSde {
                    dpmpp_2m_sde_step(x, &denoised, &old, &h_old, s, s_next, h, o)
                } else {
                    dpmpp_3m_sde_step(x, &denoised, &old, &h_old, h, o.eta)
                };
                if o.eta != 0.0 {
                    // σ_{i+1}·√(1 − e^{−2ηh})·s_noise
                    let g = s_next * (-(-2.0 * o.eta * h).exp_m1()).sqrt() * o.s_noise;
                    x = x.clone() + normal_like(noise, &x)?.mul_scalar(g);
                }
                old.push_front(denoised);
                old.truncate(2);
                h_old.push_front(h);
                h_old.truncate(2);
            }
            SigmaKind::DpmFast | SigmaKind::DpmAdaptive => {
                return Err(SampleError::Unsupported(format!(
                    "{} does not walk a schedule",
                    kind.name()
                )));
            }
        }
    }
    Ok(x)
}

/// One DPM-Solver++(2M) SDE step (k-diffusion `sample_dpmpp_2m_sde`; Lu et al. 2022b with
/// noise η): `x = σ_{i+1}/σ_i·e^{−ηh}·x + (1 − e^{−h−ηh})·D` plus the multistep correction.
#[allow(clippy::too_many_arguments)]
fn dpmpp_2m_sde_step<B: Backend>(
    x: X<B>,
    denoised: &X<B>,
    old: &VecDeque<X<B>>,
    h_old: &VecDeque<f64>,
    s: f64,
    s_next: f64,
    h: f64,
    o: &SigmaOptions,
) -> X<B> {
    let eta_h = o.eta * h;
    let one_minus = -(-h - eta_h).exp_m1(); // 1 − e^{−h−ηh}
    let x = x.mul_scalar(s_next / s * (-eta_h).exp()) + denoised.clone().mul_scalar(one_minus);
    match (old.front(), h_old.front()) {
        (Some(prev), Some(&h_last)) => {
            let r = h_last / h;
            let c = match o.solver_type {
                SolverType::Heun => (one_minus / (-h - eta_h) + 1.0) * (1.0 / r),
                SolverType::Midpoint => 0.5 * one_minus * (1.0 / r),
            };
            x + (denoised.clone() - prev.clone()).mul_scalar(c)
        }
        _ => x,
    }
}

/// One DPM-Solver++(3M) SDE step (k-diffusion `sample_dpmpp_3m_sde`): exponential integrator
/// with φ₂, φ₃ corrections from the last two denoised values.
fn dpmpp_3m_sde_step<B: Backend>(
    x: X<B>,
    denoised: &X<B>,
    old: &VecDeque<X<B>>,
    h_old: &VecDeque<f64>,
    h: f64,
    eta: f64,
) -> X<B> {
    let h_eta = h * (eta + 1.0);
    let x = x.mul_scalar((-h_eta).exp()) + denoised.clone().mul_scalar(-(-h_eta).exp_m1());
    let phi_2 = (-h_eta).exp_m1() / h_eta + 1.0;
    match (old.front(), old.get(1), h_old.front(), h_old.get(1)) {
        (Some(d_1), Some(d_2), Some(&h_1), Some(&h_2)) => {
            let (r0, r1) = (h_1 / h, h_2 / h);
            let d1_0 = (denoised.clone() - d_1.clone()).div_scalar(r0);
            let d1_1 = (d_1.clone() - d_2.clone()).div_scalar(r1);
            let diff = d1_0.clone() - d1_1;
            let d1 = d1_0 + diff.clone().mul_scalar(r0 / (r0 + r1));
            let d2 = diff.div_scalar(r0 + r1);
            let phi_3 = phi_2 / h_eta - 0.5;
            x + d1.mul_scalar(phi_2) - d2.mul_scalar(phi_3)
        }
        (Some(d_1), _, Some(&h_1), _) => {
            let r = h_1 / h;
            let d = (denoised.clone() - d_1.clone()).div_scalar(r);
            x + d.mul_scalar(phi_2)
        }
        _ => x,
    }
}

/// Linear multistep coefficient (k-diffusion `linear_multistep_coeff`):
/// `∫_{σ_i}^{σ_{i+1}} Π_{k≠j, k<order} (τ − σ_{i−k})/(σ_{i−j} − σ_{i−k}) dτ`. The integrand is
/// a polynomial, integrated exactly (k-diffusion uses `scipy.integrate.quad`, exact to rounding
/// for these degrees): with `τ = σ_i + h·u` it is `h ∫₀¹ Π (a_k + h u)/c_k du`.
pub(crate) fn lms_coefficient(order: usize, t: &[f64], i: usize, j: usize) -> Result<f64> {
    if order == 0 || order - 1 > i {
        return Err(SampleError::InvalidOption {
            name: "order",
            reason: format!("order {order} too high for step {i}"),
        });
    }
    let h = t[i + 1] - t[i];
    // polynomial in u, lowest degree first
    let mut poly = vec![1.0f64];
    for k in (0..order).filter(|&k| k != j) {
        let a = t[i] - t[i - k];
        let c = t[i - j] - t[i - k];
        let mut next = vec![0.0; poly.len() + 1];
        for (m, p) in poly.iter().enumerate() {
            next[m] += p * a / c;
            next[m + 1] += p * h / c;
        }
        poly = next;
    }
    Ok(h * poly
        .iter()
        .enumerate()
        .map(|(m, p)| p / (m + 1) as f64)
        .sum::<f64>())
}
