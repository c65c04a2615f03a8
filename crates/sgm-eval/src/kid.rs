//! Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² estimate with the
//! cubic polynomial kernel `k(x, y) = (xᵀy / d + 1)³`, averaged over random subsets (as
//! torch-fidelity / TF-GAN: 100 subsets of 1000, or of all images when fewer).

use crate::error::{EvalError, Result};

/// KID estimate: mean and standard deviation over subsets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kid {
    /// Mean of the per-subset MMD².
    pub mean: f64,
    /// Standard deviation (population, as torch-fidelity) of the per-subset MMD².
    pub std: f64,
}

/// SplitMix64: the deterministic subset sampler.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `m` distinct indices of `0..n` (partial Fisher–Yates).
    fn choose(&mut self, n: usize, m: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..m {
            let j = i + (self.next() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(m);
        idx
    }
}

fn kernel(x: &[f64], y: &[f64]) -> f64 {
    let d = x.len() as f64;
    let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    (dot / d + 1.0).powi(3)
}

/// Unbiased MMD² of two equal-size samples (rows of dimension `d`):
/// `(Σ_{i≠j} k(xᵢ,xⱼ) + Σ_{i≠j} k(yᵢ,yⱼ)) / (m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / m²`.
pub fn mmd2_unbiased(x: &[&[f64]], y: &[&[f64]]) -> f64 {
    let m = x.len() as f64;
    let mut kxx = 0.0;
    let mut kyy = 0.0;
    let mut kxy = 0.0;
    for i in 0..x.len() {
        for j in 0..x.len() {
            if i != j {
                kxx += kernel(x[i], x[j]);
                kyy += kernel(y[i], y[j]);
            }
            kxy += kernel(x[i], y[j]);
        }
    }
    (kxx + kyy) / (m * (m - 1.0)) - 2.0 * kxy / (m * m)
}

/// KID of feature sets `a` (`[na, d]`) and `b` (`[nb, d]`) over `subsets` random subsets of
/// `subset_size` (capped at the smaller set), seeded by `seed`.
pub fn kid(
    a: &[f64],
    b: &[f64],
    d: usize,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> Result<Kid> {
    let (na, nb) = (a.len() / d, b.len() / d);
    let m = subset_size.min(na).min(nb);
    if m < 2 || subsets == 0 {
        return Err(EvalError::Insufficient(format!(
            "KID needs at least 2 images per set and one subset (got {na} and {nb})"
        )));
    }
    let rows = |f: &[f64]| -> Vec<Vec<f64>> { f.chunks_exact(d).map(<[f64]>::to_vec).collect() };
    let (ra, rb) = (rows(a), rows(b));
    let mut rng = Rng(seed);
    let vals: Vec<f64> = (0..subsets)
        .map(|_| {
            let ia = rng.choose(na, m);
            let ib = rng.choose(nb, m);
            let x: Vec<&[f64]> = ia.iter().map(|&i| ra[i].as_slice()).collect();
            let y: Vec<&[f64]> = ib.iter().map(|&i| rb[i].as_slice()).collect();
            mmd2_unbiased(&x, &y)
        })
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
    Ok(Kid {
        mean,
        std: var.sqrt(),
    })
}
