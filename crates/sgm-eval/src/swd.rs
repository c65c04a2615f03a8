//! Sliced Wasserstein distance between two image sets in pixel space: a sample-quality
//! statistic that needs no Inception weights (the demo's built-in measure).
//!
//! `SW₂(P, Q)² = E_θ W₂(θ·P, θ·Q)²` over uniformly random unit directions θ of the pixel space
//! (Rabin et al. 2011; Bonneel et al. 2015). Each 1-D W₂ compares the sorted projections at
//! `m = min(n_a, n_b)` mid-point quantiles `(k + ½)/m`. Pixels are taken as given (the demo
//! uses [0, 1]); the result is in the same units, and 0 for identical sets.

use crate::error::{EvalError, Result};

/// SplitMix64: a tiny deterministic generator for the projection directions.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Sorted projections of the `n × dim` row-major set `x` on direction `theta`.
fn sorted_projection(x: &[f32], dim: usize, theta: &[f64]) -> Vec<f64> {
    let mut p: Vec<f64> = x
        .chunks_exact(dim)
        .map(|row| row.iter().zip(theta).map(|(&a, &t)| a as f64 * t).sum())
        .collect();
    p.sort_by(f64::total_cmp);
    p
}

/// The value of a sorted sample at the mid-point quantile `(k + ½)/m`.
fn quantile(sorted: &[f64], k: usize, m: usize) -> f64 {
    let i = ((k as f64 + 0.5) / m as f64 * sorted.len() as f64) as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sliced W₂ distance between the sets `a` and `b` (rows of `dim` values), averaged over
/// `projections` random directions drawn from `seed` (the same seed gives the same directions,
/// so two comparisons with one seed are on the same slices).
pub fn sliced_wasserstein(
    a: &[f32],
    b: &[f32],
    dim: usize,
    projections: usize,
    seed: u64,
) -> Result<f64> {
    if dim == 0 || !a.len().is_multiple_of(dim) || !b.len().is_multiple_of(dim) {
        return Err(EvalError::Shape {
            what: "sliced Wasserstein".into(),
            reason: format!(
                "sets of {} and {} values are not rows of {dim} values",
                a.len(),
                b.len()
            ),
        });
    }
    let (na, nb) = (a.len() / dim, b.len() / dim);
    if na == 0 || nb == 0 || projections == 0 {
        return Err(EvalError::Insufficient(format!(
            "sliced Wasserstein needs images on both sides and ≥ 1 projection (got {na}, {nb}, {projections})"
        )));
    }
    let m = na.min(nb);
    let mut rng = SplitMix(seed);
    let mut total = 0.0;
    for _ in 0..projections {
        let mut theta: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        let norm = theta.iter().map(|t| t * t).sum::<f64>().sqrt();
        theta.iter_mut().for_each(|t| *t /= norm);
        let (pa, pb) = (
            sorted_projection(a, dim, &theta),
            sorted_projection(b, dim, &theta),
        );
        let w2: f64 = (0..m)
            .map(|k| (quantile(&pa, k, m) - quantile(&pb, k, m)).powi(2))
            .sum::<f64>()
            / m as f64;
        total += w2;
    }
    Ok((total / projections as f64).sqrt())
}
