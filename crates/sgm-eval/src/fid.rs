//! Fréchet Inception Distance (Heusel et al. 2017) as pytorch-fid computes it:
//! `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr sqrtm(Σ₁ Σ₂)`, all in float64.
//!
//! `tr sqrtm(Σ₁ Σ₂)` is computed as `Σᵢ sqrt(λᵢ)` with `λ` the eigenvalues of the symmetric PSD
//! matrix `Σ₁^{1/2} Σ₂ Σ₁^{1/2}` (similar to `Σ₁ Σ₂`), negative round-off eigenvalues clamped to
//! 0. This is the exact value scipy's `sqrtm` approximates and needs no complex arithmetic;
//! singular covariances (fewer images than 2048 dimensions) are handled without the `eps·I`
//! retry pytorch-fid falls back to.

use nalgebra::DMatrix;

use crate::error::{EvalError, Result};

/// Mean and covariance of a feature set (pytorch-fid's `mu`, `sigma`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// `[d]` mean.
    pub mu: Vec<f64>,
    /// `[d, d]` covariance (row-major), `np.cov(rowvar=False)` (denominator n − 1).
    pub sigma: Vec<f64>,
}

impl Stats {
    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// Statistics of `n` feature rows of dimension `d` (row-major `[n, d]`).
    pub fn from_features(features: &[f64], n: usize, d: usize) -> Result<Self> {
        check_features(features, n, d)?;
        let mut mu = vec![0.0; d];
        for row in features.chunks_exact(d) {
            for (m, v) in mu.iter_mut().zip(row) {
                *m += v;
            }
        }
        mu.iter_mut().for_each(|m| *m /= n as f64);
        let centred: Vec<f64> = features
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&mu).map(|(v, m)| v - m))
            .collect();
        let x = DMatrix::from_row_slice(n, d, &centred);
        let cov = (x.transpose() * &x) / (n as f64 - 1.0); // [d, d]
        Ok(Self {
            mu,
            sigma: row_major(&cov),
        })
    }

    fn check(&self, what: &str) -> Result<()> {
        let d = self.dim();
        if self.sigma.len() != d * d {
            return Err(EvalError::Shape {
                what: what.into(),
                reason: format!("sigma has {} values, mu has {d}", self.sigma.len()),
            });
        }
        if self.mu.iter().chain(&self.sigma).any(|v| !v.is_finite()) {
            return Err(EvalError::Shape {
                what: what.into(),
                reason: "non-finite values".into(),
            });
        }
        Ok(())
    }
}

/// At least two rows of `[n, d]` features.
fn check_features(features: &[f64], n: usize, d: usize) -> Result<()> {
    if n < 2 {
        return Err(EvalError::Insufficient(format!(
            "FID statistics need at least 2 images, got {n}"
        )));
    }
    if features.len() != n * d {
        return Err(EvalError::Shape {
            what: "features".into(),
            reason: format!("{} values for {n} × {d}", features.len()),
        });
    }
    Ok(())
}

fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().as_slice().to_vec()
}

/// Symmetric square root of a symmetric PSD matrix (eigenvalues clamped at 0).
fn sym_sqrt(m: DMatrix<f64>) -> DMatrix<f64> {
    let eig = m.symmetric_eigen();
    let v = &eig.eigenvectors;
    let s = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    v * DMatrix::from_diagonal(&s) * v.transpose()
}

/// `tr sqrtm(Σ₁ Σ₂)` for symmetric PSD `Σ₁`, `Σ₂`.
pub fn trace_sqrt_product(s1: &[f64], s2: &[f64], d: usize) -> f64 {
    let a = DMatrix::from_row_slice(d, d, s1);
    let b = DMatrix::from_row_slice(d, d, s2);
    let h = sym_sqrt(a);
    let m = &h * b * &h;
    let m = (&m + m.transpose()) * 0.5; // exact symmetry for the eigen solver
    m.symmetric_eigenvalues()
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum()
}

/// FID between two statistics (pytorch-fid `calculate_frechet_distance`).
pub fn frechet_distance(a: &Stats, b: &Stats) -> Result<f64> {
    a.check("first statistics")?;
    b.check("second statistics")?;
    let d = a.dim();
    if b.dim() != d {
        return Err(EvalError::Shape {
            what: "statistics".into(),
            reason: format!("dimensions differ: {d} vs {}", b.dim()),
        });
    }
    let diff: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y) * (x - y)).sum();
    let tr = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
    let tr_covmean = trace_sqrt_product(&a.sigma, &b.sigma, d);
    Ok(diff + tr(&a.sigma) + tr(&b.sigma) - 2.0 * tr_covmean)
}

/// FID between `stats` and the statistics of `n` feature rows (`[n, d]` row-major) — the
/// number [`frechet_distance`] gives for `Stats::from_features(features, n, d)`. With fewer
/// rows than dimensions the rows' covariance has rank below `n`, and `tr sqrtm(Σ₁ Σ₂)` is
/// computed exactly in their span: with `Σ₂ = UᵀU` (`U` = centred rows / √(n − 1)), the
/// non-zero eigenvalues of `Σ₁ Σ₂` are those of the `[n, n]` matrix `U Σ₁ Uᵀ`. That costs
/// `O(n d²)` instead of two `d × d` eigen-decompositions (a few samples in tests and quick
/// checks); with `n ≥ d` it is [`frechet_distance`] itself.
pub fn frechet_distance_to_features(stats: &Stats, features: &[f64], n: usize) -> Result<f64> {
    let d = stats.dim();
    if n >= d {
        return frechet_distance(stats, &Stats::from_features(features, n, d)?);
    }
    stats.check("statistics")?;
    check_features(features, n, d)?;
    let x = DMatrix::from_row_slice(n, d, features); // [n, d]
    let mu2: Vec<f64> = (0..d).map(|j| x.column(j).mean()).collect();
    let mut u = x;
    for (j, m) in mu2.iter().enumerate() {
        u.column_mut(j).add_scalar_mut(-m);
    }
    u /= (n as f64 - 1.0).sqrt(); // Σ₂ = UᵀU
    let s1 = DMatrix::from_row_slice(d, d, &stats.sigma);
    let m = &u * s1 * u.transpose(); // [n, n], PSD
    let m = (&m + m.transpose()) * 0.5;
    let tr_covmean: f64 = m
        .symmetric_eigenvalues()
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    let diff: f64 = stats
        .mu
        .iter()
        .zip(&mu2)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    let tr1: f64 = (0..d).map(|i| stats.sigma[i * d + i]).sum();
    let tr2 = u.norm_squared(); // tr UᵀU
    Ok(diff + tr1 + tr2 - 2.0 * tr_covmean)
}
