//! Fused group-normalisation kernels on contiguous f32 NCHW slices: one rayon task per
//! (sample, group), sums in f64, two passes over the input forward (statistics, then
//! `y = (x − μ)·a_c + β_c`) and two backward (per-channel sums, then
//! `dx = A_c·dy + B·(x − μ) + C`). Formulas: `crate::norm`. Each pass is a
//! `multiversion!` function (AVX-512 / AVX2 / baseline, identical bits) and every sum runs in
//! [`LANES`] lane-wise f64 partial sums ([`super::simd::sum_f64`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{LANES, multiversion, reduce_lanes, sum_f64, sum_map_f64};

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

multiversion! {
    /// `(μ, σ²)` of one group, two passes (the second sums `(x − μ)²`).
    fn group_stats(xg: &[f32]) -> (f64, f64) {
        let k = xg.len() as f64;
        let mean = sum_f64(xg) / k;
        (mean, sum_map_f64(xg, |v| (v - mean) * (v - mean)) / k)
    }
}

multiversion! {
    /// `y = ((x − hi) − lo)·a + b` on one channel plane.
    fn affine(y: &mut [MaybeUninit<f32>], x: &[f32], hi: f32, lo: f32, a: f32, b: f32) {
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(((v - hi) - lo) * a + b);
        }
    }
}

multiversion! {
    /// `(Σ dy, Σ dy·x, Σ x)` of one channel plane, lane-wise in f64.
    fn channel_sums(x: &[f32], dy: &[f32]) -> (f64, f64, f64) {
        let (mut s, mut sx, mut sum_x) = ([0f64; LANES], [0f64; LANES], [0f64; LANES]);
        let mut add = |i: usize, v: f32, d: f32| {
            let (v, d) = (f64::from(v), f64::from(d));
            s[i] += d;
            sx[i] += d * v;
            sum_x[i] += v;
        };
        let (xb, db) = (x.chunks_exact(LANES), dy.chunks_exact(LANES));
        let (xr, dr) = (xb.remainder(), db.remainder());
        for (xl, dl) in xb.zip(db) {
            for i in 0..LANES {
                add(i, xl[i], dl[i]);
            }
        }
        for (i, (&v, &d)) in xr.iter().zip(dr).enumerate() {
            add(i, v, d);
        }
        (reduce_lanes(s), reduce_lanes(sx), reduce_lanes(sum_x))
    }
}

multiversion! {
    /// `dx = dy·a + (((x − hi) − lo)·b + c)` on one channel plane.
    #[allow(clippy::too_many_arguments)]
    fn backward_affine(
        dx: &mut [MaybeUninit<f32>],
        x: &[f32],
        dy: &[f32],
        hi: f32,
        lo: f32,
        a: f32,
        b: f32,
        c: f32,
    ) {
        for ((o, &v), &d) in dx.iter_mut().zip(x).zip(dy) {
            o.write(d * a + (((v - hi) - lo) * b + c));
        }
    }
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
                    let (mean, var) = group_stats(xg);
                    let rstd = 1.0 / (var + eps).sqrt();
                    let c0 = (ng % g.groups) * g.per_group();
                    // y = (x − μ)·(r·γ) + β, x − μ first: μ split into f32 hi + lo parts, x − hi exact
                    // for x near μ, so no cancellation when |μ| ≫ σ
                    let (hi, lo) = split(mean);
                    for (j, (yc, xc)) in yg.chunks_mut(g.hw).zip(xg.chunks(g.hw)).enumerate() {
                        let a = (rstd * f64::from(gamma[c0 + j])) as f32;
                        let b = beta[c0 + j];
                        affine(yc, xc, hi, lo, a, b);
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
                        .map(|(xc, dyc)| channel_sums(xc, dyc))
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
                        backward_affine(dxc, xc, dyc, hi, lo, a, b, c);
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

#[cfg(test)]
mod tests {
    use super::super::simd::Isa;
    use super::*;

    /// Every instruction-set version of the passes gives the baseline's bits
    /// ([`super::super::simd`]), on planes whose length is not a multiple of the lanes.
    #[test]
    fn every_version_computes_the_same_bits() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919 % 251) as f32) * 0.37 + 1e3)
            .collect();
        let dy: Vec<f32> = (0..1037).map(|i| ((i * 31 % 17) as f32) - 8.3).collect();
        let bits = |v: &[MaybeUninit<f32>]| -> Vec<u32> {
            v.iter()
                .map(|a| unsafe { a.assume_init() }.to_bits())
                .collect()
        };
        let base = Isa::Baseline;
        for isa in Isa::available() {
            let stats = group_stats::with(isa, &x);
            assert_eq!(stats, group_stats::with(base, &x), "{isa:?}");
            assert_eq!(
                channel_sums::with(isa, &x, &dy),
                channel_sums::with(base, &x, &dy)
            );
            let mut out = vec![MaybeUninit::new(0f32); x.len()];
            let mut want = out.clone();
            affine::with(isa, &mut out, &x, 1000.5, 1e-5, 0.3, -2.0);
            affine::with(base, &mut want, &x, 1000.5, 1e-5, 0.3, -2.0);
            assert_eq!(bits(&out), bits(&want), "affine, {isa:?}");
            backward_affine::with(isa, &mut out, &x, &dy, 1000.5, 1e-5, 0.3, -2.0, 0.7);
            backward_affine::with(base, &mut want, &x, &dy, 1000.5, 1e-5, 0.3, -2.0, 0.7);
            assert_eq!(bits(&out), bits(&want), "backward, {isa:?}");
        }
    }
}
