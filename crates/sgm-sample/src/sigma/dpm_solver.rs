//! DPM-Solver (Lu et al. 2022) in `t = −ln σ`, as k-diffusion's `DPMSolver`: fixed-NFE
//! `dpm_fast` (orders 3,…,3 then 2,1 or the remainder) and `dpm_adaptive` (DPM-Solver-12 / 23
//! with a PID step-size controller). Both call the noise source after every (accepted) step,
//! even with η = 0 (the draw is then multiplied by 0), as k-diffusion does.

use burn::prelude::*;
use sde_core::NoiseSource;

use super::denoiser::CountedDenoiser;
use super::method::SigmaOptions;
use super::steps::{ancestral_step, normal_like};
use crate::error::{Result, SampleError};

type X<B> = Tensor<B, 4>;

/// What `dpm_adaptive` reports (k-diffusion's `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdaptiveInfo {
    /// Attempted steps.
    pub steps: usize,
    /// Denoiser evaluations (`order` per attempted step).
    pub nfe: usize,
    /// Accepted steps.
    pub n_accept: usize,
    /// Rejected steps.
    pub n_reject: usize,
}

fn sigma_of(t: f64) -> f64 {
    (-t).exp()
}
fn t_of(sigma: f64) -> f64 {
    -sigma.ln()
}

/// The noise-prediction values of one step, computed once each (k-diffusion's `eps_cache`).
#[derive(Default)]
struct EpsCache<B: Backend> {
    eps: Option<X<B>>,
    eps_r1: Option<X<B>>,
    eps_r2: Option<X<B>>,
}

/// `ε(x, t) = (x − D(x, σ(t)))/σ(t)`, cached in `slot`.
fn eps<B: Backend>(
    den: &CountedDenoiser<B>,
    slot: &mut Option<X<B>>,
    x: &X<B>,
    t: f64,
) -> Result<X<B>> {
    if let Some(e) = slot {
        return Ok(e.clone());
    }
    let s = sigma_of(t);
    let e = (x.clone() - den.at(x.clone(), s)?).div_scalar(s);
    *slot = Some(e.clone());
    Ok(e)
}

/// DPM-Solver-1 (Lu et al. 2022, eq. 3.7): `x − σ(t')·(e^h − 1)·ε`.
fn step_1<B: Backend>(
    den: &CountedDenoiser<B>,
    x: &X<B>,
    t: f64,
    t_next: f64,
    c: &mut EpsCache<B>,
) -> Result<X<B>> {
    let h = t_next - t;
    let e = eps(den, &mut c.eps, x, t)?;
    Ok(x.clone() - e.mul_scalar(sigma_of(t_next) * h.exp_m1()))
}

/// DPM-Solver-2 (Lu et al. 2022, Alg. 4) with intermediate point `t + r₁h`.
fn step_2<B: Backend>(
    den: &CountedDenoiser<B>,
    x: &X<B>,
    t: f64,
    t_next: f64,
    r1: f64,
    c: &mut EpsCache<B>,
) -> Result<X<B>> {
    let h = t_next - t;
    let (e, e_r1) = first_stage(den, x, t, h, r1, c)?;
    let sn = sigma_of(t_next);
    Ok(x.clone()
        - e.clone().mul_scalar(sn * h.exp_m1())
        - (e_r1 - e).mul_scalar(sn / (2.0 * r1) * h.exp_m1()))
}

/// ε at `t` and at the DPM-Solver-1 point `u₁ = x − σ(t + r₁h)(e^{r₁h} − 1)ε` (both cached).
fn first_stage<B: Backend>(
    den: &CountedDenoiser<B>,
    x: &X<B>,
    t: f64,
    h: f64,
    r1: f64,
    c: &mut EpsCache<B>,
) -> Result<(X<B>, X<B>)> {
    let e = eps(den, &mut c.eps, x, t)?;
    let s1 = t + r1 * h;
    let u1 = x.clone() - e.clone().mul_scalar(sigma_of(s1) * (r1 * h).exp_m1());
    let e_r1 = eps(den, &mut c.eps_r1, &u1, s1)?;
    Ok((e, e_r1))
}

/// DPM-Solver-3 (Lu et al. 2022, Alg. 5), `r₁ = 1/3`, `r₂ = 2/3`.
fn step_3<B: Backend>(
    den: &CountedDenoiser<B>,
    x: &X<B>,
    t: f64,
    t_next: f64,
    c: &mut EpsCache<B>,
) -> Result<X<B>> {
    let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
    let h = t_next - t;
    let (e, e_r1) = first_stage(den, x, t, h, r1, c)?;
    let s2 = t + r2 * h;
    let u2 = x.clone()
        - e.clone().mul_scalar(sigma_of(s2) * (r2 * h).exp_m1())
        - (e_r1 - e.clone())
            .mul_scalar(sigma_of(s2) * (r2 / r1) * ((r2 * h).exp_m1() / (r2 * h) - 1.0));
    let e_r2 = eps(den, &mut c.eps_r2, &u2, s2)?;
    let sn = sigma_of(t_next);
    Ok(x.clone()
        - e.clone().mul_scalar(sn * h.exp_m1())
        - (e_r2 - e).mul_scalar(sn / r2 * (h.exp_m1() / h - 1.0)))
}

/// η > 0: the deterministic step goes to `t' = min(t_end, t(σ_down))` and the noise amount is
/// `√(σ(t_next)² − σ(t')²)`.
fn noised_target(t: f64, t_next: f64, t_end: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (t_next, 0.0);
    }
    let (sd, _) = ancestral_step(sigma_of(t), sigma_of(t_next), eta);
    let tn = t_end.min(t_of(sd));
    let su = (sigma_of(t_next).powi(2) - sigma_of(tn).powi(2)).sqrt();
    (tn, su)
}

/// `sample_dpm_fast`: `nfe` denoiser calls from σ_max down to σ_min.
pub(crate) fn dpm_fast<B: Backend, N: NoiseSource<B>>(
    den: &CountedDenoiser<B>,
    mut x: X<B>,
    sigma_min: f64,
    sigma_max: f64,
    nfe: usize,
    o: &SigmaOptions,
    noise: &mut N,
) -> Result<X<B>> {
    let (t_start, t_end) = (t_of(sigma_max), t_of(sigma_min));
    if t_end <= t_start && o.eta != 0.0 {
        return Err(SampleError::InvalidOption {
            name: "eta",
            reason: "eta must be 0 for reverse sampling".into(),
        });
    }
    let m = nfe / 3 + 1;
    let ts: Vec<f64> = (0..=m)
        .map(|i| t_start + (t_end - t_start) * i as f64 / m as f64)
        .collect();
    let orders = if nfe.is_multiple_of(3) {
        let mut v = vec![3; m - 2];
        v.extend([2, 1]);
        v
    } else {
        let mut v = vec![3; m - 1];
        v.push(nfe % 3);
        v
    };
    for (i, &order) in orders.iter().enumerate() {
        let mut c = EpsCache::default();
        let (t, t_next) = (ts[i], ts[i + 1]);
        let (tn, su) = noised_target(t, t_next, t_end, o.eta);
        eps(den, &mut c.eps, &x, t)?;
        x = match order {
            1 => step_1(den, &x, t, tn, &mut c)?,
            2 => step_2(den, &x, t, tn, 0.5, &mut c)?,
            _ => step_3(den, &x, t, tn, &mut c)?,
        };
        x = x.clone() + normal_like(noise, &x)?.mul_scalar(su * o.s_noise);
    }
    Ok(x)
}

/// k-diffusion's `PIDStepSizeController` (Söderlind's digital filter with an arctan limiter).
struct Pid {
    h: f64,
    b: [f64; 3],
    accept_safety: f64,
    errs: Option<[f64; 3]>,
}

impl Pid {
    fn new(h: f64, o: &SigmaOptions, order: f64) -> Self {
        let (p, i, d) = (o.pcoeff, o.icoeff, o.dcoeff);
        Self {
            h,
            b: [(p + i + d) / order, -(p + 2.0 * d) / order, d / order],
            accept_safety: o.accept_safety,
            errs: None,
        }
    }

    /// Scales `h` by the limited PID factor; true when the step is accepted.
    fn propose_step(&mut self, error: f64) -> bool {
        let inv = 1.0 / (error + 1e-8);
        let errs = self.errs.get_or_insert([inv; 3]);
        errs[0] = inv;
        let factor = errs[0].powf(self.b[0]) * errs[1].powf(self.b[1]) * errs[2].powf(self.b[2]);
        let factor = 1.0 + (factor - 1.0).atan();
        let accept = factor >= self.accept_safety;
        if accept {
            errs[2] = errs[1];
            errs[1] = errs[0];
        }
        self.h *= factor;
        accept
    }
}

/// Attempted steps after which `dpm_adaptive` gives up.
const MAX_ADAPTIVE_STEPS: usize = 100_000;

/// `sample_dpm_adaptive`: embedded pairs DPM-Solver-1/2 (order 2) or 2/3 (order 3), error
/// `‖(x_low − x_high)/δ‖/√n` with `δ = max(atol, rtol·max(|x_low|, |x_prev|))`.
pub(crate) fn dpm_adaptive<B: Backend, N: NoiseSource<B>>(
    den: &CountedDenoiser<B>,
    mut x: X<B>,
    sigma_min: f64,
    sigma_max: f64,
    o: &SigmaOptions,
    noise: &mut N,
) -> Result<(X<B>, AdaptiveInfo)> {
    // k-diffusion keeps s, t and t_end as float32 tensors
    let t_start = t_of(sigma_max as f32 as f64) as f32;
    let t_end = t_of(sigma_min as f32 as f64) as f32;
    let forward = t_end > t_start;
    if !forward && o.eta != 0.0 {
        return Err(SampleError::InvalidOption {
            name: "eta",
            reason: "eta must be 0 for reverse sampling".into(),
        });
    }
    let h_init = o.h_init.abs() * if forward { 1.0 } else { -1.0 };
    let order = o.order;
    let pid_order = if o.eta != 0.0 { 1.5 } else { order as f64 };
    let mut pid = Pid::new(h_init, o, pid_order);
    let numel = x.dims().iter().product::<usize>() as f64;
    let mut s = t_start;
    let mut x_prev = x.clone();
    let mut info = AdaptiveInfo::default();
    let more = |s: f32| {
        if forward {
            s < t_end - 1e-5
        } else {
            s > t_end + 1e-5
        }
    };
    while more(s) {
        if info.steps >= MAX_ADAPTIVE_STEPS {
            return Err(SampleError::Solver {
                t: s as f64,
                reason: format!("dpm_adaptive: no convergence in {MAX_ADAPTIVE_STEPS} steps"),
            });
        }
        let mut c = EpsCache::default();
        let step = s + pid.h as f32;
        let t = if forward {
            t_end.min(step)
        } else {
            t_end.max(step)
        };
        let (sf, tf) = (s as f64, t as f64);
        let (tn, su) = noised_target(sf, tf, t_end as f64, o.eta);
        eps(den, &mut c.eps, &x, sf)?;
        let (x_low, x_high) = if order == 2 {
            let lo = step_1(den, &x, sf, tn, &mut c)?;
            (lo, step_2(den, &x, sf, tn, 0.5, &mut c)?)
        } else {
            let lo = step_2(den, &x, sf, tn, 1.0 / 3.0, &mut c)?;
            (lo, step_3(den, &x, sf, tn, &mut c)?)
        };
        let delta = x_low
            .clone()
            .abs()
            .max_pair(x_prev.clone().abs())
            .mul_scalar(o.rtol)
            .clamp_min(o.atol);
        let ratio = (x_low.clone() - x_high.clone()).div(delta);
        let sq: f64 = ratio.clone().mul(ratio).sum().into_scalar().elem();
        let error = sq.sqrt() / numel.sqrt();
        if !error.is_finite() {
            return Err(SampleError::Solver {
                t: sf,
                reason: format!("dpm_adaptive: non-finite error estimate {error}"),
            });
        }
        if pid.propose_step(error) {
            x_prev = x_low;
            x = x_high.clone() + normal_like(noise, &x_high)?.mul_scalar(su * o.s_noise);
            s = t;
            info.n_accept += 1;
        } else {
            info.n_reject += 1;
        }
        info.nfe += order;
        info.steps += 1;
    }
    Ok((x, info))
}
