//! Dropout masks on Flex ([`crate::dropout`]): element `i` of a mask is kept when the top 24
//! bits of `splitmix64(key + (i + 1)·φ)` fall below `keep·2²⁴` (Steele, Lea & Flood's SplitMix64
//! finaliser as a counter-based generator: every element independent, so the mask is filled
//! in parallel, vectorised, and the same for any thread count). `key` comes from Burn's RNG.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// SplitMix64's increment (2⁶⁴/φ).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function of state `z`.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

multiversion! {
    /// Mask elements `first..first + out.len()`: `scale` where kept, else 0.
    fn fill(out: &mut [MaybeUninit<f32>], first: u64, key: u64, threshold: u64, scale: f32) {
        for (i, o) in out.iter_mut().enumerate() {
            let z = key.wrapping_add((first + i as u64 + 1).wrapping_mul(GAMMA));
            let kept = (mix(z) >> 40) < threshold;
            o.write(if kept { scale } else { 0.0 });
        }
    }
}

/// A mask of `n` values: `1/keep` with probability `keep`, else 0, from `key`.
pub fn mask(n: usize, keep: f64, key: u64) -> Vec<f32> {
    assert!(keep > 0.0 && keep <= 1.0, "dropout keep probability {keep}");
    let threshold = (keep * (1u64 << 24) as f64).round() as u64;
    let scale = (1.0 / keep) as f32;
    // SAFETY: every chunk is filled whole.
    unsafe {
        super::filled(n, |m| {
            m.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
                fill(out, (c * CHUNK) as u64, key, threshold, scale);
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::simd::Isa;
    use super::*;

    /// Values are 0 or `1/keep`; the kept share is within 5σ of `keep`; neighbouring elements
    /// are uncorrelated; another key gives another mask; every instruction-set level the same.
    #[test]
    fn masks_are_bernoulli_and_key_dependent() {
        let (n, keep) = (1 << 20, 0.9);
        let m = mask(n, keep, 42);
        let scale = (1.0 / keep) as f32;
        assert!(m.iter().all(|&v| v == 0.0 || v == scale));
        let kept = m.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        let sd = (keep * (1.0 - keep) / n as f64).sqrt();
        assert!((kept - keep).abs() < 5.0 * sd, "kept share {kept}");
        let pairs = m.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64;
        let want = (1.0 - keep).powi(2) * (n - 1) as f64;
        assert!(
            (pairs - want).abs() < 5.0 * want.sqrt() + 1.0,
            "dropped pairs {pairs} vs {want}"
        );
        assert_ne!(m, mask(n, keep, 43));
        assert_eq!(m, mask(n, keep, 42));
        let bits = |v: &[MaybeUninit<f32>]| -> Vec<u32> {
            v.iter()
                .map(|a| unsafe { a.assume_init() }.to_bits())
                .collect()
        };
        let run = |isa| {
            let mut out = vec![MaybeUninit::new(0f32); 999];
            fill::with(isa, &mut out, 5, 7, 1 << 23, 2.0);
            bits(&out)
        };
        for isa in Isa::available() {
            assert_eq!(run(isa), run(Isa::Baseline), "{isa:?}");
        }
    }
}
