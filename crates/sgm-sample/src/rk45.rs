//! Adaptive Dormand–Prince 5(4) integration reproducing scipy 1.17 `solve_ivp(method='RK45')`
//! (`scipy/integrate/_ivp/rk.py` and `common.py`): the same Butcher tableau, RMS error norm
//! `‖err / (atol + rtol max(|y|, |y_new|))‖_rms`, step-size control (safety 0.9, factors in
//! [0.2, 10], exponent −1/5, no growth right after a rejection), `select_initial_step`, the
//! `min_step` guard, and `nfev` counting (1 + 1 + 6 per attempted step).
//!
//! The state is generic ([`OdeState`]): a float64 host vector reproduces the reference (scipy's
//! state is float64); a 1-D device tensor keeps everything on the device and sends only the
//! error norm (one scalar) to the host per step.

use burn::prelude::*;

use crate::error::{Result, SampleError};

const SAFETY: f64 = 0.9;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
/// Order of the embedded error estimator of RK45.
const ERROR_ESTIMATOR_ORDER: f64 = 4.0;

// Dormand–Prince coefficients (scipy `RK45.C`, `A`, `B`, `E`).
const C: [f64; 6] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0];
const A: [[f64; 5]; 6] = [
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
];
const BW: [f64; 6] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
];
const E: [f64; 7] = [
    -71.0 / 57600.0,
    0.0,
    71.0 / 16695.0,
    -71.0 / 1920.0,
    17253.0 / 339200.0,
    -22.0 / 525.0,
    1.0 / 40.0,
];

/// Solver tolerances and limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rk45Options {
    /// Relative tolerance (scipy default 1e-3; the reference passes 1e-5).
    pub rtol: f64,
    /// Absolute tolerance (scipy default 1e-6; the reference passes 1e-5).
    pub atol: f64,
    /// Largest step (scipy default ∞).
    pub max_step: f64,
    /// Stop with an error after this many RHS evaluations (scipy has no limit).
    pub max_nfev: usize,
    /// Keep the ODE state on the device in the backend's float type, sending only the error
    /// norm to the host per step (faster on GPUs). Default `false`: float64 host state, the
    /// reference's arithmetic (parity).
    pub device_state: bool,
}

impl Default for Rk45Options {
    fn default() -> Self {
        Self {
            rtol: 1e-5,
            atol: 1e-5,
            max_step: f64::INFINITY,
            max_nfev: 1_000_000,
            device_state: false,
        }
    }
}

/// Result of an integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rk45Solution<S = Vec<f64>> {
    /// State at `t_bound`.
    pub y: S,
    /// Number of RHS evaluations (`solution.nfev`).
    pub nfev: usize,
    /// Accepted step end times, starting with `t0` (`solution.t`).
    pub step_times: Vec<f64>,
    /// Rejected step attempts.
    pub n_rejected: usize,
}

/// What the solver needs of a state vector: linear combinations and two RMS norms. Implemented
/// for float64 host vectors (`Vec<f64>`, the reference's arithmetic) and for 1-D device tensors
/// (only the norms come back to the host).
pub trait OdeState: Clone {
    /// Number of components.
    fn size(&self) -> usize;
    /// `self + h · Σ_j c_j k_j` (scipy `y + np.dot(K.T, c) * h`).
    fn add_combination(&self, h: f64, ks: &[&Self], c: &[f64]) -> Self;
    /// `‖v / (atol + rtol · max(|a|, |b|))‖_rms` (scipy `norm(v / scale)`).
    fn scaled_rms(v: &Self, a: &Self, b: &Self, atol: f64, rtol: f64) -> f64;
    /// `a − b`.
    fn sub(a: &Self, b: &Self) -> Self;
    /// True when every component is finite.
    fn all_finite(&self) -> bool;
}

impl OdeState for Vec<f64> {
    fn size(&self) -> usize {
        self.len()
    }
    fn add_combination(&self, h: f64, ks: &[&Self], c: &[f64]) -> Self {
        let mut y = self.clone();
        for (i, yi) in y.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (k, cj) in ks.iter().zip(c) {
                acc += k[i] * cj;
            }
            *yi += acc * h;
        }
        y
    }
    fn scaled_rms(v: &Self, a: &Self, b: &Self, atol: f64, rtol: f64) -> f64 {
        let n = v.len();
        let ss: f64 = (0..n)
            .map(|i| {
                let r = v[i] / (atol + a[i].abs().max(b[i].abs()) * rtol);
                r * r
            })
            .sum();
        ss.sqrt() / (n as f64).sqrt()
    }
    fn sub(a: &Self, b: &Self) -> Self {
        a.iter().zip(b).map(|(x, y)| x - y).collect()
    }
    fn all_finite(&self) -> bool {
        self.iter().all(|v| v.is_finite())
    }
}

impl<B: Backend> OdeState for Tensor<B, 1> {
    fn size(&self) -> usize {
        self.dims()[0]
    }
    fn add_combination(&self, h: f64, ks: &[&Self], c: &[f64]) -> Self {
        let mut acc: Option<Tensor<B, 1>> = None;
        for (k, &cj) in ks.iter().zip(c) {
            if cj == 0.0 {
                continue;
            }
            let term = (*k).clone().mul_scalar(cj);
            acc = Some(match acc {
                None => term,
                Some(a) => a + term,
            });
        }
        match acc {
            None => self.clone(),
            Some(a) => self.clone() + a.mul_scalar(h),
        }
    }
    fn scaled_rms(v: &Self, a: &Self, b: &Self, atol: f64, rtol: f64) -> f64 {
        let n = v.dims()[0] as f64;
        let scale = a
            .clone()
            .abs()
            .max_pair(b.clone().abs())
            .mul_scalar(rtol)
            .add_scalar(atol);
        let ms = (v.clone() / scale).square().sum().into_scalar().to_f64();
        ms.sqrt() / n.sqrt()
    }
    fn sub(a: &Self, b: &Self) -> Self {
        a.clone() - b.clone()
    }
    fn all_finite(&self) -> bool {
        // one scalar to the host: NaN or ±∞ make the sum of |v| non-finite
        self.clone().abs().sum().into_scalar().to_f64().is_finite()
    }
}

/// Integrates `dy/dt = fun(t, y)` from `t0` to `t_bound` (either direction) like scipy
/// `solve_ivp(fun, (t0, t_bound), y0, method='RK45', rtol, atol)`.
pub fn solve_rk45<S, F>(
    mut fun: F,
    t0: f64,
    t_bound: f64,
    y0: S,
    opts: Rk45Options,
) -> Result<Rk45Solution<S>>
where
    S: OdeState,
    F: FnMut(f64, &S) -> Result<S>,
{
    if !(opts.rtol > 0.0 && opts.atol >= 0.0 && opts.max_step > 0.0) {
        return Err(SampleError::InvalidOption {
            name: "rtol/atol/max_step",
            reason: format!(
                "need rtol > 0, atol ≥ 0, max_step > 0; got {}, {}, {}",
                opts.rtol, opts.atol, opts.max_step
            ),
        });
    }
    // scipy `validate_tol`: rtol is raised to 100·EPS.
    let rtol = opts.rtol.max(100.0 * f64::EPSILON);
    let atol = opts.atol;
    let n = y0.size();
    let mut nfev = 0usize;
    let mut eval = |t: f64, y: &S, nfev: &mut usize| -> Result<S> {
        if *nfev >= opts.max_nfev {
            return Err(SampleError::Solver {
                t,
                reason: format!("more than {} RHS evaluations", opts.max_nfev),
            });
        }
        *nfev += 1;
        let f = fun(t, y)?;
        if f.size() != n {
            return Err(SampleError::Solver {
                t,
                reason: format!("RHS returned {} values for a state of {n}", f.size()),
            });
        }
        Ok(f)
    };
    let direction = if t_bound >= t0 { 1.0 } else { -1.0 };
    let mut t = t0;
    let mut y = y0;
    let mut f = eval(t, &y, &mut nfev)?;
    if !f.all_finite() {
        return Err(SampleError::Solver {
            t,
            reason: "RHS is not finite at the initial state".into(),
        });
    }
    let mut h_abs = select_initial_step(
        &mut |t, y| eval(t, y, &mut nfev),
        t0,
        &y,
        t_bound,
        opts.max_step,
        &f,
        direction,
        rtol,
        atol,
    )?;
    let mut step_times = vec![t0];
    let mut n_rejected = 0usize;
    let error_exponent = -1.0 / (ERROR_ESTIMATOR_ORDER + 1.0);

    while direction * (t - t_bound) < 0.0 {
        // `_step_impl`
        let next = if direction > 0.0 {
            next_up(t)
        } else {
            next_down(t)
        };
        let min_step = 10.0 * (next - t).abs();
        if h_abs > opts.max_step {
            h_abs = opts.max_step;
        } else if h_abs < min_step {
            h_abs = min_step;
        }
        let mut step_rejected = false;
        loop {
            if h_abs < min_step {
                return Err(SampleError::Solver {
                    t,
                    reason: "required step size is less than spacing between numbers".into(),
                });
            }
            let mut h = h_abs * direction;
            let mut t_new = t + h;
            if direction * (t_new - t_bound) > 0.0 {
                t_new = t_bound;
            }
            h = t_new - t;
            h_abs = h.abs();
            // `rk_step`: K[s] = fun(t + c_s h, y + h Σ_{j<s} a_sj K[j])
            let mut k: Vec<S> = Vec::with_capacity(7);
            k.push(f.clone());
            for s in 1..6 {
                let ys = {
                    let refs: Vec<&S> = k.iter().collect();
                    y.add_combination(h, &refs, &A[s][..s])
                };
                k.push(eval(t + C[s] * h, &ys, &mut nfev)?);
            }
            let y_new = {
                let refs: Vec<&S> = k.iter().collect();
                y.add_combination(h, &refs, &BW)
            };
            let f_new = eval(t + h, &y_new, &mut nfev)?;
            k.push(f_new.clone());
            // error_norm = ‖h Σ_j E_j K[j] / (atol + max(|y|, |y_new|) rtol)‖_rms
            let err = {
                let refs: Vec<&S> = k.iter().collect();
                let zero = S::sub(&y, &y);
                zero.add_combination(h, &refs, &E)
            };
            let error_norm = S::scaled_rms(&err, &y, &y_new, atol, rtol);
            if error_norm.is_nan() {
                return Err(SampleError::Solver {
                    t,
                    reason: "error estimate is NaN (non-finite right-hand side)".into(),
                });
            }
            if error_norm < 1.0 {
                let mut factor = if error_norm == 0.0 {
                    MAX_FACTOR
                } else {
                    MAX_FACTOR.min(SAFETY * error_norm.powf(error_exponent))
                };
                if step_rejected {
                    factor = factor.min(1.0);
                }
                h_abs *= factor;
                t = t_new;
                y = y_new;
                f = f_new;
                step_times.push(t);
                break;
            } else {
                h_abs *= MIN_FACTOR.max(SAFETY * error_norm.powf(error_exponent));
                step_rejected = true;
                n_rejected += 1;
            }
        }
    }
    if !y.all_finite() {
        return Err(SampleError::Solver {
            t,
            reason: "state is not finite".into(),
        });
    }
    Ok(Rk45Solution {
        y,
        nfev,
        step_times,
        n_rejected,
    })
}

/// scipy `select_initial_step` (Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4).
#[allow(clippy::too_many_arguments)]
fn select_initial_step<S, F>(
    fun: &mut F,
    t0: f64,
    y0: &S,
    t_bound: f64,
    max_step: f64,
    f0: &S,
    direction: f64,
    rtol: f64,
    atol: f64,
) -> Result<f64>
where
    S: OdeState,
    F: FnMut(f64, &S) -> Result<S>,
{
    if y0.size() == 0 {
        return Ok(f64::INFINITY);
    }
    let interval_length = (t_bound - t0).abs();
    if interval_length == 0.0 {
        return Ok(0.0);
    }
    // scale = atol + |y0| rtol
    let d0 = S::scaled_rms(y0, y0, y0, atol, rtol);
    let d1 = S::scaled_rms(f0, y0, y0, atol, rtol);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    let h0 = h0.min(interval_length);
    // y1 = y0 + h0 · direction · f0
    let y1 = y0.add_combination(h0 * direction, &[f0], &[1.0]);
    let f1 = fun(t0 + h0 * direction, &y1)?;
    let d2 = S::scaled_rms(&S::sub(&f1, f0), y0, y0, atol, rtol) / h0;
    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
        (1e-6f64).max(h0 * 1e-3)
    } else {
        (0.01 / d1.max(d2)).powf(1.0 / (ERROR_ESTIMATOR_ORDER + 1.0))
    };
    Ok((100.0 * h0).min(h1).min(interval_length).min(max_step))
}

/// `np.nextafter(t, +inf)`.
fn next_up(t: f64) -> f64 {
    if t.is_nan() || t == f64::INFINITY {
        return t;
    }
    if t == 0.0 {
        return f64::from_bits(1);
    }
    let b = t.to_bits();
    f64::from_bits(if t > 0.0 { b + 1 } else { b - 1 })
}

/// `np.nextafter(t, −inf)`.
fn next_down(t: f64) -> f64 {
    -next_up(-t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_decay_is_accurate() {
        // y' = −y, y(0) = 1 → y(2) = e^{−2}
        let sol = solve_rk45(
            |_t, y: &Vec<f64>| Ok(y.iter().map(|v| -v).collect()),
            0.0,
            2.0,
            vec![1.0, 2.0],
            Rk45Options {
                rtol: 1e-8,
                atol: 1e-10,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((sol.y[0] - (-2.0f64).exp()).abs() < 1e-7);
        assert!((sol.y[1] - 2.0 * (-2.0f64).exp()).abs() < 1e-7);
        assert_eq!(
            sol.nfev,
            2 + 6 * (sol.step_times.len() - 1 + sol.n_rejected)
        );
    }

    #[test]
    fn backward_direction_works() {
        // y' = t, from 1 to 0: y(0) = y(1) − 1/2
        let sol = solve_rk45(
            |t, _y: &Vec<f64>| Ok(vec![t]),
            1.0,
            0.0,
            vec![0.5],
            Rk45Options::default(),
        )
        .unwrap();
        assert!(sol.y[0].abs() < 1e-9);
        assert_eq!(*sol.step_times.last().unwrap(), 0.0);
    }

    #[test]
    fn non_finite_rhs_is_an_error() {
        let r = solve_rk45(
            |_t, _y: &Vec<f64>| Ok(vec![f64::NAN]),
            0.0,
            1.0,
            vec![1.0],
            Rk45Options::default(),
        );
        assert!(matches!(r, Err(SampleError::Solver { .. })));
    }
}
