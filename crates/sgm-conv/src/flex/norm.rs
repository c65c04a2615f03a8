//! Fused group-normalisation kernels on contiguous f32 NCHW slices: one rayon task per
//! (sample, group), sums in f64, two passes over the input forward (statistics, then
//! `y = (x − μ)·a_c + β_c`) and two backward (per-channel sums, then
//! `dx = A_c·dy + B·(x − μ) + C`). Formulas: [`crate::norm`].

use rayon::prelude::*;

/// Sizes of one group normalisation.
#[derive(Debug, Clone, Copy)]
pub struct NormGeometry {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Pixels per channel, `H·W`.
    pub hw: usize,
    /// Groups.
    pub groups: usize,
}

impl NormGeometry {
    fn per_group(&self) -> usize {
        self.c / self.groups
    }

    /// Values per group, `K = C/G·H·W`.
    fn k(&self) -> usize {
        self.per_group() * self.hw
    }
}

/// `v` as `hi + lo` in f32 (`hi` = `v` rounded, `lo` the rest rounded).
fn split(v: f64) -> (f32, f32) {
    let hi = v as f32;
    (hi, (v - f64::from(hi)) as f32)
}

/// `(y [N, C, H, W], mean [N, G], rstd [N, G])`.
pub fn forward(
    g: &NormGeometry,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let k = g.k();
    let mut stats: Vec<(f32, f32)> = Vec::new();
    // SAFETY: one task per group of `k` values of `y`, each writing all of its channels' planes.
    let y = unsafe {
        super::filled(x.len(), |y| {
            stats = y
                .par_chunks_mut(k)
                .zip(x.par_chunks(k))
                .enumerate()
                .map(|(ng, (yg, xg))| {
                    let mean = xg.iter().map(|&v| f64::from(v)).sum::<f64>() / k as f64;
                    let var = xg
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                        / k as f64;
                    let rstd = 1.0 / (var + eps).sqrt();
                    let c0 = (ng % g.groups) * g.per_group();
                    // y = (x − μ)·(r·γ) + β, x − μ first: μ split into f32 hi + lo parts, x − hi exact
                    // for x near μ, so no cancellation when |μ| ≫ σ
                    let (hi, lo) = split(mean);
                    for (j, (yc, xc)) in yg.chunks_mut(g.hw).zip(xg.chunks(g.hw)).enumerate() {
                        let a = (rstd * f64::from(gamma[c0 + j])) as f32;
                        let b = beta[c0 + j];
                        yc.iter_mut().zip(xc).for_each(|(o, &v)| {
                            o.write(((v - hi) - lo) * a + b);
                        });
                    }
                    (mean as f32, rstd as f32)
                })
                .collect();
        })
    };
    let (mean, rstd) = stats.into_iter().unzip();
    (y, mean, rstd)
}

/// `(dx [N, C, H, W], dγ [C], dβ [C])` from `dy` and the forward's `rstd` (the mean is
/// recomputed in f64).
pub fn backward(
    g: &NormGeometry,
    x: &[f32],
    gamma: &[f32],
    rstd: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (k, cg, hw) = (g.k(), g.per_group(), g.hw);
    let mut partial: Vec<Vec<(f64, f64)>> = Vec::new();
    // SAFETY: one task per group of `k` values of `dx`, each writing all of its channels' planes.
    let dx = unsafe {
        super::filled(x.len(), |dx| {
            // per (sample, group): the group's channels' (Σ dy, Σ dy·x̂)
            partial = dx
                .par_chunks_mut(k)
                .zip(x.par_chunks(k).zip(dy.par_chunks(k)))
                .enumerate()
                .map(|(ng, (dxg, (xg, dyg)))| {
                    let r = f64::from(rstd[ng]);
                    let c0 = (ng % g.groups) * cg;
                    // per channel (Σ dy, Σ dy·x, Σ x) in f64; μ from Σ x as in the forward (the saved
                    // f32 mean would round away what x − μ needs when |μ| ≫ σ)
                    let raw: Vec<(f64, f64, f64)> = xg
                        .chunks(hw)
                        .zip(dyg.chunks(hw))
                        .map(|(xc, dyc)| {
                            let (mut s, mut sx, mut sum_x) = (0f64, 0f64, 0f64);
                            for (&v, &d) in xc.iter().zip(dyc) {
                                s += f64::from(d);
                                sx += f64::from(d) * f64::from(v);
                                sum_x += f64::from(v);
                            }
                            (s, sx, sum_x)
                        })
                        .collect();
                    let mu = raw.iter().map(|c| c.2).sum::<f64>() / k as f64;
                    // (Σ dy, Σ dy·x̂) per channel
                    let sums: Vec<(f64, f64)> = raw
                        .iter()
                        .map(|&(s, sx, _)| (s, r * (sx - mu * s)))
                        .collect();
                    // S1 = Σ dy·γ, S2 = Σ dy·γ·x̂ over the group
                    let (s1, s2) =
                        sums.iter()
                            .enumerate()
                            .fold((0f64, 0f64), |(a, b), (j, &(s, sxh))| {
                                let gm = f64::from(gamma[c0 + j]);
                                (a + gm * s, b + gm * sxh)
                            });
                    // dx = r·(dy·γ − S1/K − x̂·S2/K) = A·dy + B·(x − μ) + C
                    let kf = k as f64;
                    let (bb, cc) = (-r * r * s2 / kf, -r * s1 / kf);
                    let (hi, lo) = split(mu);
                    for (j, (dxc, (xc, dyc))) in dxg
                        .chunks_mut(hw)
                        .zip(xg.chunks(hw).zip(dyg.chunks(hw)))
                        .enumerate()
                    {
                        let a = (r * f64::from(gamma[c0 + j])) as f32;
                        let (b, c) = (bb as f32, cc as f32);
                        for ((o, &v), &d) in dxc.iter_mut().zip(xc).zip(dyc) {
                            o.write(d * a + (((v - hi) - lo) * b + c));
                        }
                    }
                    sums
                })
                .collect();
        })
    };
    // dγ_c, dβ_c: sums over the batch, in sample order
    let (mut dgamma, mut dbeta) = (vec![0f64; g.c], vec![0f64; g.c]);
    for (ng, sums) in partial.iter().enumerate() {
        let c0 = (ng % g.groups) * cg;
        for (j, &(s, sxh)) in sums.iter().enumerate() {
            dbeta[c0 + j] += s;
            dgamma[c0 + j] += sxh;
        }
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (dx, narrow(dgamma), narrow(dbeta))
}
