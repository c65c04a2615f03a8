//! Ground truth from mathematics: for Gaussian data `N(μ, s² I)` every SDE of the paper has a
//! closed-form perturbed marginal and score (see `sde_core::analytic`).

use burn::prelude::*;
use sde_core::analytic::{GaussianData, GaussianScoreModel};
use sde_core::{AnySde, LossConfig, NoiseSource, Result, Sde, SubVpSde, VeSde, VpSde, dsm_loss};
use sgm_testkit::{SeededNoise, TestBackend, device, host};

type B = TestBackend;

const DATA: GaussianData = GaussianData {
    mean: 0.3,
    data_std: 0.5,
};

fn sdes() -> Vec<AnySde> {
    vec![
        VeSde::new(0.01, 10.0, 1000).unwrap().into(),
        VpSde::default().into(),
        SubVpSde::default().into(),
    ]
}

/// Empirical mean and variance of all elements.
fn moments(x: Tensor<B, 4>) -> (f64, f64) {
    let (_, v) = host(x);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

fn data_batch(shape: [usize; 4], rng: &mut SeededNoise) -> Tensor<B, 4> {
    NoiseSource::<B>::normal(rng, shape, &device())
        .unwrap()
        .mul_scalar(DATA.data_std)
        .add_scalar(DATA.mean)
}

/// Running `discretize` forward from `t = 0` reproduces the closed-form marginal
/// `N(m μ, m² s² + σ²)` of `marginal_prob` (Monte Carlo, 38 400 draws).
#[test]
fn discretize_chain_matches_the_marginal() {
    let mut rng = SeededNoise::new(7);
    let shape = [200, 3, 8, 8];
    let m = (shape.iter().product::<usize>()) as f64;
    for sde in sdes() {
        let n = sde.num_steps();
        for &k in &[n / 10, n / 2, n - 1] {
            let mut x = data_batch(shape, &mut rng);
            // step i uses the time whose float32 index is i (midpoint of the index cell)
            let t_of = |i: usize| ((i as f32 + 0.5) / (n - 1) as f32).min(1.0);
            let steps: Vec<f32> = match &sde {
                AnySde::Ve(_) => (0..=k).map(t_of).collect(),
                AnySde::Vp(_) => (0..k).map(t_of).collect(),
                AnySde::SubVp(_) => (0..k).map(|i| i as f32 / n as f32).collect(),
            };
            for &t in &steps {
                let tv = vec![t; shape[0]];
                let (f, g) = sde.discretize(x.clone(), &tv).unwrap();
                let z: Tensor<B, 4> = rng.normal(shape, &device()).unwrap();
                x = x + f + sde_core::per_sample::<B, 4>(&g, &device()).mul(z);
            }
            // time the chain has reached
            let t_end = match &sde {
                AnySde::Ve(_) => k as f32 / (n - 1) as f32,
                AnySde::Vp(_) | AnySde::SubVp(_) => k as f32 / n as f32,
            };
            let (mu, var) = DATA.marginal(&sde, t_end);
            let (emp_mu, emp_var) = moments(x);
            let se_mu = (var / m).sqrt();
            let se_var = var * (2.0 / (m - 1.0)).sqrt();
            // Monte-Carlo error (5 s.e.) plus the O(1/N) gap between chain and SDE (1 %).
            let tol_mu = 5.0 * se_mu + 0.01 * mu.abs();
            let tol_var = 5.0 * se_var + 0.01 * var;
            assert!(
                (emp_mu - mu).abs() <= tol_mu,
                "{:?} k={k}: mean {emp_mu} vs {mu} (±{tol_mu})",
                sde.kind()
            );
            assert!(
                (emp_var - var).abs() <= tol_var,
                "{:?} k={k}: var {emp_var} vs {var} (±{tol_var})",
                sde.kind()
            );
        }
    }
}

/// A noise source whose uniform draws give one fixed training time; normals are seeded.
struct FixedTime {
    u: f32,
    rng: SeededNoise,
}
impl FixedTime {
    fn new(u: f32, seed: u64) -> Self {
        Self {
            u,
            rng: SeededNoise::new(seed),
        }
    }
}
impl NoiseSource<B> for FixedTime {
    fn normal<const D: usize>(&mut self, s: [usize; D], d: &Device<B>) -> Result<Tensor<B, D>> {
        self.rng.normal(s, d)
    }
    fn uniform(&mut self, n: usize, d: &Device<B>) -> Result<Tensor<B, 1>> {
        Ok(Tensor::full([n], self.u, d))
    }
    fn randint(&mut self, l: i64, h: i64, n: usize, d: &Device<B>) -> Result<Tensor<B, 1, Int>> {
        self.rng.randint(l, h, n, d)
    }
    fn rademacher<const D: usize>(&mut self, s: [usize; D], d: &Device<B>) -> Result<Tensor<B, D>> {
        self.rng.rademacher(s, d)
    }
}

/// The exact score plus a constant offset.
struct Perturbed<M>(M, f32);
impl<M: sde_core::ScoreModel<B>> sde_core::ScoreModel<B> for Perturbed<M> {
    fn forward(&self, x: Tensor<B, 4>, labels: sde_core::Labels<B>) -> Tensor<B, 4> {
        self.0.forward(x, labels).add_scalar(self.1)
    }
}

/// At the exact score the continuous DSM loss equals its closed-form minimum:
/// per coordinate `E[(σ s + z)²] = m² s² / v` (v = m² s² + σ²), times `g² / σ²` with likelihood
/// weighting; and it rises when the score is perturbed.
#[test]
fn dsm_loss_at_the_exact_score_is_the_closed_form_minimum() {
    let shape = [256, 3, 8, 8];
    let m = (shape.iter().product::<usize>()) as f64;
    for sde in sdes() {
        for &t in &[0.05f32, 0.3, 0.8] {
            for lw in [false, true] {
                let cfg = LossConfig {
                    reduce_mean: true,
                    continuous: true,
                    likelihood_weighting: lw,
                    eps: 1e-5,
                };
                let u = (t - cfg.eps) / (1.0 - cfg.eps);
                let exact = GaussianScoreModel::new(sde.clone(), DATA);
                let x0 = data_batch(shape, &mut SeededNoise::new(11));
                let loss = dsm_loss(&sde, &exact, x0.clone(), &cfg, &mut FixedTime::new(u, 12))
                    .unwrap()
                    .into_scalar() as f64;
                let (mk, sigma) = GaussianData::kernel(&sde, t);
                let (mk, sigma, s) = (mk as f64, sigma as f64, DATA.data_std as f64);
                let v = mk * mk * s * s + sigma * sigma;
                let per_coord = mk * mk * s * s / v;
                let expected = if lw {
                    let g = sde.diffusion_coefs(&[t])[0] as f64;
                    per_coord * g * g / (sigma * sigma)
                } else {
                    per_coord
                };
                // (σ s + z)² has mean per_coord and variance 2 per_coord² (a scaled χ²₁).
                let tol = 6.0 * expected * (2.0 / m).sqrt() + 1e-6 * expected;
                assert!(
                    (loss - expected).abs() <= tol,
                    "{:?} t={t} lw={lw}: loss {loss} vs closed form {expected} (±{tol})",
                    sde.kind()
                );
                // Same draws, perturbed score → larger loss.
                let worse = dsm_loss(
                    &sde,
                    &Perturbed(exact.clone(), 0.2),
                    x0,
                    &cfg,
                    &mut FixedTime::new(u, 12),
                )
                .unwrap()
                .into_scalar() as f64;
                // Expected rise: a score offset δ_s adds δ_s² σ² per coordinate (no weighting) or
                // δ_s² g² (likelihood weighting). VE nets output the score (δ_s = δ); VP / sub-VP
                // nets output −σ·score (δ_s = −δ/σ).
                let delta = 0.2f64;
                let ds = match sde.kind() {
                    sde_core::SdeKind::Ve => delta,
                    _ => delta / sigma,
                };
                let g = sde.diffusion_coefs(&[t])[0] as f64;
                let weight = if lw { g * g / (sigma * sigma) } else { 1.0 };
                let rise = ds * ds * sigma * sigma * weight;
                // Same draws: the difference is rise + 2 δ_s σ mean(σ s + z) · weight, whose
                // second term has zero mean and s.d. 2 |δ_s| σ sqrt(per_coord / m) · weight.
                let sd = 2.0 * ds.abs() * sigma * (per_coord / m).sqrt() * weight;
                let diff = worse - loss;
                assert!(
                    (diff - rise).abs() <= 6.0 * sd + 1e-5 * loss.abs(),
                    "{:?} t={t} lw={lw}: perturbed − exact = {diff} vs closed-form rise {rise} (±{})",
                    sde.kind(),
                    6.0 * sd
                );
                if rise > 6.0 * sd {
                    assert!(worse > loss, "{:?} t={t} lw={lw}: no rise", sde.kind());
                }
            }
        }
    }
}

/// `prior_logp` equals the closed-form Gaussian log-density computed in float64.
#[test]
fn prior_logp_is_the_gaussian_log_density() {
    let mut rng = SeededNoise::new(3);
    for sde in sdes() {
        let s = sde.prior_std() as f64;
        let z: Tensor<B, 4> = sde
            .prior_sampling([4, 3, 8, 8], &mut rng, &device())
            .unwrap();
        let (_, zv) = host(z.clone());
        let (_, got) = host(sde.prior_logp(z));
        let d = 3 * 8 * 8;
        for (b, chunk) in zv.chunks(d).enumerate() {
            let sq: f64 = chunk.iter().map(|v| v * v).sum();
            let exact =
                -(d as f64) / 2.0 * (2.0 * std::f64::consts::PI * s * s).ln() - sq / (2.0 * s * s);
            assert!(
                (got[b] - exact).abs() <= 1e-5 * exact.abs(),
                "{:?}: prior_logp {} vs {exact}",
                sde.kind(),
                got[b]
            );
        }
    }
}

/// The prior is the marginal at T up to the SDE's design (VP/sub-VP ≈ N(0, I); VE ≈ N(0, σ_max²)).
#[test]
fn prior_matches_the_marginal_at_t() {
    for sde in sdes() {
        let (mu, var) = DATA.marginal(&sde, sde.t_max());
        let p = sde.prior_std() as f64;
        assert!(mu.abs() < 0.05 * p, "{:?}: mean at T {mu}", sde.kind());
        assert!(
            (var / (p * p) - 1.0).abs() < 0.01,
            "{:?}: var at T {var} vs prior {}",
            sde.kind(),
            p * p
        );
    }
}
