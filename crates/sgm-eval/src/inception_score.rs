//! Inception Score (Salimans et al. 2016): `exp(E_x KL(p(y|x) ‖ p(y)))` on softmax of the
//! Inception logits, over `splits` consecutive splits (10 by convention), mean ± std.

use crate::error::{EvalError, Result};

/// Inception Score: mean and (population) standard deviation over the splits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InceptionScore {
    /// Mean over splits.
    pub mean: f64,
    /// Standard deviation over splits.
    pub std: f64,
}

/// IS of `[n, k]` logits in `splits` splits.
pub fn inception_score(logits: &[f64], k: usize, splits: usize) -> Result<InceptionScore> {
    let n = logits.len() / k;
    if splits == 0 || n < splits {
        return Err(EvalError::Insufficient(format!(
            "Inception Score with {splits} splits needs at least {splits} images, got {n}"
        )));
    }
    // softmax per row (max-shifted)
    let probs: Vec<f64> = logits
        .chunks_exact(k)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect();
    let scores: Vec<f64> = (0..splits)
        .map(|s| {
            let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
            let rows = &probs[lo * k..hi * k];
            let cnt = (hi - lo) as f64;
            let mut py = vec![0.0; k];
            for row in rows.chunks_exact(k) {
                for (a, p) in py.iter_mut().zip(row) {
                    *a += p / cnt;
                }
            }
            let kl: f64 = rows
                .chunks_exact(k)
                .map(|row| {
                    row.iter()
                        .zip(&py)
                        .filter(|(p, _)| **p > 0.0)
                        .map(|(p, q)| p * (p.ln() - q.ln()))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / cnt;
            kl.exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / splits as f64;
    Ok(InceptionScore {
        mean,
        std: var.sqrt(),
    })
}
