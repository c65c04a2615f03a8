//! Fused softmax kernels over the last dimension of contiguous f32 data, parallel over chunks of
//! rows ([`crate::softmax`] for the math). Under [`Precision::Fast`] one row is: the maximum,
//! `e = exp(x − max)` with [`super::act::exp`] (≤ 2 ulp, vectorised), the sum in [`LANES`]
//! lane-wise f32 partial sums, `y = e / sum`; the backward's `Σ dy·y` likewise. Under
//! [`Precision::Exact`] every row runs in f64 (`exp` from `std`) and is rounded once — the
//! likelihood's setting. Each row function is `multiversion!`ed (identical bits per level).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::act::exp;
use super::simd::{lane_sum, multiversion};
use crate::Precision;

/// Values per parallel task (whole rows).
const CHUNK: usize = 1 << 14;

multiversion! {
    /// One row, f32 (module docs).
    fn forward_row(y: &mut [MaybeUninit<f32>], x: &[f32]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(exp(v - max));
        }
        // SAFETY: every element was written just above.
        let e = unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) };
        let sum = lane_sum(e, e, |v, _| v);
        for v in e.iter_mut() {
            *v /= sum;
        }
    }
}

multiversion! {
    /// One row's input gradient, f32: `y·(dy − Σ dy·y)`.
    fn backward_row(dx: &mut [MaybeUninit<f32>], y: &[f32], dy: &[f32]) {
        let s = lane_sum(y, dy, |a, b| a * b);
        for ((o, &a), &d) in dx.iter_mut().zip(y).zip(dy) {
            o.write(a * (d - s));
        }
    }
}

/// One row in f64, rounded once.
fn forward_row_exact(y: &mut [MaybeUninit<f32>], x: &[f32]) {
    let max = x
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let e: Vec<f64> = x.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    for (o, v) in y.iter_mut().zip(e) {
        o.write((v / sum) as f32);
    }
}

/// One row's input gradient in f64, rounded once.
fn backward_row_exact(dx: &mut [MaybeUninit<f32>], y: &[f32], dy: &[f32]) {
    let s: f64 = y
        .iter()
        .zip(dy)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum();
    for ((o, &a), &d) in dx.iter_mut().zip(y).zip(dy) {
        o.write((f64::from(a) * (f64::from(d) - s)) as f32);
    }
}

/// Rows per parallel task for rows of `n` values.
fn rows_per_task(n: usize) -> usize {
    (CHUNK / n.max(1)).max(1) * n.max(1)
}

/// Softmax of every row of `n` values of `x`.
pub fn forward(x: &[f32], n: usize, precision: Precision) -> Vec<f32> {
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "softmax rows of {n} in {}",
        x.len()
    );
    let task = rows_per_task(n);
    // SAFETY: the task chunks of `y` and `x` pair up one to one; every row is written whole.
    unsafe {
        super::filled(x.len(), |y| {
            y.par_chunks_mut(task)
                .zip(x.par_chunks(task))
                .for_each(|(yc, xc)| {
                    for (yr, xr) in yc.chunks_mut(n).zip(xc.chunks(n)) {
                        match precision {
                            Precision::Fast => forward_row(yr, xr),
                            Precision::Exact => forward_row_exact(yr, xr),
                        }
                    }
                })
        })
    }
}

/// The input gradient of every row of `n` values from the output `y` and its gradient `dy`.
pub fn backward(y: &[f32], dy: &[f32], n: usize, precision: Precision) -> Vec<f32> {
    assert!(n > 0 && y.len() == dy.len() && y.len().is_multiple_of(n));
    let task = rows_per_task(n);
    // SAFETY: the task chunks of `dx`, `y` and `dy` pair up one to one; every row is written.
    unsafe {
        super::filled(y.len(), |dx| {
            dx.par_chunks_mut(task)
                .zip(y.par_chunks(task).zip(dy.par_chunks(task)))
                .for_each(|(oc, (yc, dc))| {
                    for ((or, yr), dr) in oc.chunks_mut(n).zip(yc.chunks(n)).zip(dc.chunks(n)) {
                        match precision {
                            Precision::Fast => backward_row(or, yr, dr),
                            Precision::Exact => backward_row_exact(or, yr, dr),
                        }
                    }
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::simd::Isa;
    use super::*;

    fn rows(n: usize, len: usize) -> Vec<f32> {
        (0..n * len)
            .map(|i| ((i * 7919 % 251) as f32) * 0.071 - 9.0)
            .collect()
    }

    /// Both precisions against the f64 definition: each value within float32 rounding of the
    /// exact one (within half an ulp under `Exact`), and the gradient against `y·(dy − Σ dy·y)`
    /// evaluated in f64 on the returned `y`.
    #[test]
    fn rows_match_the_definition() {
        let (m, n) = (37, 67);
        let x = rows(m, n);
        let dy: Vec<f32> = x.iter().map(|v| (v * 0.37).cos()).collect();
        for p in [Precision::Fast, Precision::Exact] {
            let y = forward(&x, n, p);
            let dx = backward(&y, &dy, n, p);
            for r in 0..m {
                let xr = &x[r * n..(r + 1) * n];
                let max = xr.iter().fold(f64::MIN, |a, &v| a.max(f64::from(v)));
                let e: Vec<f64> = xr.iter().map(|&v| (f64::from(v) - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                let yr = &y[r * n..(r + 1) * n];
                let s: f64 = yr
                    .iter()
                    .zip(&dy[r * n..])
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                for k in 0..n {
                    let want = e[k] / sum;
                    // f32: `x − max` rounds (relative error of exp ≈ |x − max|·ε), exp ≤ 2 ulp,
                    // the sum and the division a few more
                    let d = max - f64::from(xr[k]);
                    let tol = if p == Precision::Exact { 0.6 } else { d + 8.0 };
                    assert!(
                        (f64::from(yr[k]) - want).abs() <= tol * f64::from(f32::EPSILON) * want,
                        "{p:?} y[{r},{k}] = {} want {want}",
                        yr[k]
                    );
                    let g = f64::from(yr[k]) * (f64::from(dy[r * n + k]) - s);
                    assert!(
                        (f64::from(dx[r * n + k]) - g).abs() <= 1e-5 * (g.abs() + 1e-3),
                        "{p:?} dx[{r},{k}]"
                    );
                }
            }
        }
    }

    #[test]
    fn every_version_computes_the_same_bits() {
        let n = 300;
        let x = rows(1, n);
        let dy: Vec<f32> = x.iter().map(|v| (v * 1.7).sin()).collect();
        let bits = |v: &[MaybeUninit<f32>]| -> Vec<u32> {
            v.iter()
                .map(|a| unsafe { a.assume_init() }.to_bits())
                .collect()
        };
        let run = |isa| {
            let mut y = vec![MaybeUninit::new(0f32); n];
            forward_row::with(isa, &mut y, &x);
            let yv: Vec<f32> = y.iter().map(|a| unsafe { a.assume_init() }).collect();
            let mut dx = vec![MaybeUninit::new(0f32); n];
            backward_row::with(isa, &mut dx, &yv, &dy);
            (bits(&y), bits(&dx))
        };
        for isa in Isa::available() {
            assert_eq!(run(isa), run(Isa::Baseline), "{isa:?}");
        }
    }
}
