//! Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² estimate with the
//! cubic polynomial kernel `k(x, y) = (xᵀy / d + 1)³`, averaged over random subsets ([`kid`],
//! as torch-fidelity: 100 subsets of 1000, or of all images when fewer) or over consecutive
//! blocks ([`kid_blocks`], as TF-GAN and so score_sde).

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

/// Unbiased MMD² of two samples (rows of dimension `d`, sizes `m`, `n` ≥ 2):
/// `Σ_{i≠j} k(xᵢ,xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ) / (n(n−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / (mn)`.
pub fn mmd2_unbiased(x: &[&[f64]], y: &[&[f64]]) -> f64 {
    let (m, n) = (x.len() as f64, y.len() as f64);
    let off_diagonal = |a: &[&[f64]]| {
        let mut s = 0.0;
        for i in 0..a.len() {
            for j in 0..a.len() {
                if i != j {
                    s += kernel(a[i], a[j]);
                }
            }
        }
        s
    };
    let mut kxy = 0.0;
    for xi in x {
        for yj in y {
            kxy += kernel(xi, yj);
        }
    }
    off_diagonal(x) / (m * (m - 1.0)) + off_diagonal(y) / (n * (n - 1.0)) - 2.0 * kxy / (m * n)
}

/// KID as tfgan's `kernel_classifier_distance_and_std_from_activations` (what score_sde's
/// `run_lib.evaluate` reports): both sets, in their order, split into the same number of
/// consecutive blocks of near-equal size, none larger than `max_block_size` (tfgan: 1024);
/// the mean of the blocks' unbiased MMD², and its standard error (`None` for one block).
pub fn kid_blocks(
    real: &[f64],
    generated: &[f64],
    d: usize,
    max_block_size: usize,
) -> Result<(f64, Option<f64>)> {
    let (nr, ng) = (real.len() / d, generated.len() / d);
    if max_block_size == 0 {
        return Err(EvalError::Insufficient("KID: block size 0".into()));
    }
    let blocks = nr.max(ng).div_ceil(max_block_size);
    // The first `blocks − extra` blocks hold ⌊n / blocks⌋ rows, the others one more.
    let bounds = |n: usize| -> Vec<usize> {
        let (v, extra) = (n / blocks, n % blocks);
        let mut b = vec![0];
        for i in 0..blocks {
            b.push(b[i] + v + usize::from(i >= blocks - extra));
        }
        b
    };
    let (br, bg) = (bounds(nr), bounds(ng));
    if br[1] < 2 || bg[1] < 2 {
        return Err(EvalError::Insufficient(format!(
            "KID needs at least 2 images per block and set (got {nr} and {ng} in {blocks} blocks)"
        )));
    }
    fn rows(f: &[f64], d: usize, lo: usize, hi: usize) -> Vec<&[f64]> {
        f[lo * d..hi * d].chunks_exact(d).collect()
    }
    let ests: Vec<f64> = (0..blocks)
        .map(|i| {
            mmd2_unbiased(
                &rows(real, d, br[i], br[i + 1]),
                &rows(generated, d, bg[i], bg[i + 1]),
            )
        })
        .collect();
    let k = blocks as f64;
    let mean = ests.iter().sum::<f64>() / k;
    let stderr = (blocks > 1).then(|| {
        let var = ests.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (k - 1.0);
        (var / k).sqrt()
    });
    Ok((mean, stderr))
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
