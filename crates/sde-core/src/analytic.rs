//! Exact scores and densities for Gaussian data `x(0) ~ N(μ, s² I)` — the ground truth the
//! tests (and users checking a sampler) compare against.
//!
//! For every SDE of the paper `x(t) | x(0) ~ N(m(t) x(0), σ(t)² I)`, so
//! `x(t) ~ N(m μ, (m² s² + σ²) I)` and `∇ log p_t(x) = −(x − m μ) / (m² s² + σ²)`.

use burn::prelude::*;

use crate::score::{Labels, ScoreModel};
use crate::sde::{LinearMap, Sde, SdeKind, per_sample};

/// Isotropic Gaussian data `N(mean, data_std² I)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianData {
    /// Mean μ of every coordinate.
    pub mean: f32,
    /// Standard deviation s of every coordinate.
    pub data_std: f32,
}

impl GaussianData {
    /// `(m(t), σ(t))` of the perturbation kernel of `sde` at time `t`.
    pub fn kernel<S: Sde + ?Sized>(sde: &S, t: f32) -> (f32, f32) {
        let (mean, std) = sde.marginal_coefs(&[t]);
        let m = match mean {
            LinearMap::Identity => 1.0,
            LinearMap::Scale(c) => c[0],
            other => unreachable!("marginal mean maps are scalings, got {other:?}"),
        };
        (m, std[0])
    }

    /// Mean and variance of every coordinate of `x(t)`.
    pub fn marginal<S: Sde + ?Sized>(&self, sde: &S, t: f32) -> (f64, f64) {
        let (m, sigma) = Self::kernel(sde, t);
        let (m, sigma, s) = (m as f64, sigma as f64, self.data_std as f64);
        (m * self.mean as f64, m * m * s * s + sigma * sigma)
    }

    /// Exact log-density of `x(t)` per sample (float64 on the host), `x` flattened per sample.
    pub fn log_prob<S: Sde + ?Sized>(&self, sde: &S, t: f32, x: &[f64], dim: usize) -> Vec<f64> {
        let (mu, var) = self.marginal(sde, t);
        x.chunks(dim)
            .map(|xs| {
                let sq: f64 = xs.iter().map(|v| (v - mu) * (v - mu)).sum();
                -0.5 * dim as f64 * (2.0 * std::f64::consts::PI * var).ln() - 0.5 * sq / var
            })
            .collect()
    }
}

/// The exact score of Gaussian data written as a "network" in the reference's
/// parameterisation, so that it goes through [`crate::ScoreFn`] like a real model
/// (fixtures README §5.4, "analytic model"):
/// * VE (labels = σ): `net = −(x − μ) / (s² + σ²)`;
/// * VP / sub-VP (labels = `999 t`): `t' = labels / 999`, `(m, σ') = kernel(t')`,
///   `net = σ' (x − m μ) / (m² s² + σ'²)` (the ε-prediction; the score function divides by −std).
///
/// Expects continuous labels.
#[derive(Debug, Clone)]
pub struct GaussianScoreModel<S> {
    /// The SDE whose marginals the data is perturbed with.
    pub sde: S,
    /// The data distribution.
    pub data: GaussianData,
}

impl<S: Sde> GaussianScoreModel<S> {
    /// Exact score model of `data` under `sde`.
    pub fn new(sde: S, data: GaussianData) -> Self {
        Self { sde, data }
    }
}

impl<B: Backend, S: Sde> ScoreModel<B> for GaussianScoreModel<S> {
    fn forward(&self, x: Tensor<B, 4>, labels: Labels<B>) -> Tensor<B, 4> {
        let device = x.device();
        let labels: Vec<f32> = labels
            .to_float()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("converted to f32");
        let s2 = self.data.data_std * self.data.data_std;
        let mu = self.data.mean;
        let (scale, shift): (Vec<f32>, Vec<f32>) = labels
            .iter()
            .map(|&l| match self.sde.kind() {
                SdeKind::Ve => (-1.0 / (s2 + l * l), mu),
                SdeKind::Vp | SdeKind::SubVp => {
                    let (m, sigma) = GaussianData::kernel(&self.sde, l / 999.0);
                    (sigma / (m * m * s2 + sigma * sigma), m * mu)
                }
            })
            .unzip();
        let centred = if mu == 0.0 {
            x
        } else {
            x - per_sample::<B, 4>(&shift, &device)
        };
        centred.mul(per_sample::<B, 4>(&scale, &device))
    }
}
