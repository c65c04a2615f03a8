//! Fused SiLU kernels on contiguous f32 slices, parallel over chunks: forward `x·σ(x)`,
//! backward `dy·σ(x)·(1 + x·(1 − σ(x)))` (σ recomputed from `x`), `σ(x) = 1/(1 + e^{−x})`.
//!
//! `e^x` is [`exp`], branch-free f32 arithmetic the compiler vectorises (a `libm` `expf` call per
//! element was most of the kernels' time): Cody–Waite range reduction `x = n·ln 2 + r`,
//! `|r| ≤ ln 2 / 2`, Cephes' degree-6 minimax polynomial for `e^r`, and `2^n` built in the
//! exponent bits. Within 2 ulp of the correctly rounded value over the whole clamped range
//! (unit-tested against f64), as PyTorch's vectorised (Sleef) `expf`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `e^x` for f32, vectorisable (module docs); inputs clamped to `[−87.3, 88]` (`e^x` stays a
/// normal float: σ saturates far earlier).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 split: hi has few mantissa bits, n·hi is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    // not `clamp`: a NaN input must become a bound (the integer conversion below needs a number)
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.336_54).min(88.0);
    let n = (x * LOG2E + ROUND) - ROUND; // round(x / ln 2)
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5; // Cephes 5.0000001201e-1, which rounds to 0.5 in f32
    let er = p * (r * r) + r + 1.0;
    // SAFETY: |n| ≤ 127 after the clamp (and NaN inputs become the clamp bound)
    let n = unsafe { n.to_int_unchecked::<i32>() };
    // (wrapping: no overflow check, which would keep the loop from vectorising in dev builds)
    er * f32::from_bits((n.wrapping_add(127) as u32) << 23) // · 2ⁿ
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + exp(-v))
}

multiversion! {
    /// `y = x·σ(x)` on one chunk.
    fn forward_chunk(y: &mut [MaybeUninit<f32>], x: &[f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(v * sigmoid(v));
        }
    }
}

multiversion! {
    /// `dx = dy·σ(x)·(1 + x·(1 − σ(x)))` on one chunk.
    fn backward_chunk(dx: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32]) {
        for ((o, &v), &d) in dx.iter_mut().zip(x).zip(dy) {
            let s = sigmoid(v);
            o.write(d * (s * (1.0 + v * (1.0 - s))));
        }
    }
}

/// `x·σ(x)`.
pub fn forward(x: &[f32]) -> Vec<f32> {
    // SAFETY: the chunks of `y` and `x` pair up one to one and every element is written.
    unsafe {
        super::filled(x.len(), |y| {
            y.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(yc, xc)| forward_chunk(yc, xc))
        })
    }
}

/// `dy·σ(x)·(1 + x·(1 − σ(x)))`.
pub fn backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), dy.len());
    // SAFETY: the chunks of `dx`, `x` and `dy` pair up one to one and every element is written.
    unsafe {
        super::filled(x.len(), |dx| {
            dx.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
                .for_each(|(oc, (xc, dc))| backward_chunk(oc, xc, dc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (f64::from(exp(x)), f64::from(x).exp());
            let ulp = f64::from(f32::EPSILON) * want; // ≥ the f32 spacing at `want`
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "max error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) > 0.0 && exp(200.0).is_finite());
    }

    /// Every instruction-set version of the kernels gives the baseline's bits
    /// ([`super::super::simd`]), on values spanning the whole range of `exp`, NaN and ±∞.
    #[test]
    fn every_version_computes_the_same_bits() {
        let mut x: Vec<f32> = (0..5003).map(|i| (i as f32 - 2500.0) * 0.037).collect();
        x.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-40,
            100.0,
            -100.0,
        ]);
        let dy: Vec<f32> = x.iter().map(|v| (v * 1.3).sin()).collect();
        let run = |isa, f: &dyn Fn(super::super::simd::Isa, &mut [MaybeUninit<f32>])| {
            let mut out = vec![MaybeUninit::new(0f32); x.len()];
            f(isa, &mut out);
            out.iter()
                .map(|v| unsafe { v.assume_init() }.to_bits())
                .collect::<Vec<u32>>()
        };
        let fwd = |isa, o: &mut [MaybeUninit<f32>]| forward_chunk::with(isa, o, &x);
        let bwd = |isa, o: &mut [MaybeUninit<f32>]| backward_chunk::with(isa, o, &x, &dy);
        let base = super::super::simd::Isa::Baseline;
        for isa in super::super::simd::Isa::available() {
            assert_eq!(run(isa, &fwd), run(base, &fwd), "forward, {isa:?}");
            assert_eq!(run(isa, &bwd), run(base, &bwd), "backward, {isa:?}");
        }
    }
}
