//! Runtime instruction-set dispatch for the fused element-wise kernels ([`super::act`],
//! [`super::norm`]).
//!
//! The workspace builds for the x86-64 baseline (SSE2: 4 f32 lanes, no FMA), so that one binary
//! runs on every x86-64 machine; PyTorch's CPU kernels pick AVX2 or AVX-512 at run time. A
//! function declared with `multiversion!` is compiled three times — for AVX-512, for AVX2 + FMA
//! and for the baseline — from one body, and each call runs the widest version the CPU has
//! (`is_x86_feature_detected!`, cached by `std` after the first call). The body is written as
//! plain loops the compiler vectorises; lane-wise accumulators ([`sum_f64`]) fix the summation
//! order in the source.
//!
//! The versions compute **identical bits**: Rust neither contracts `a·b + c` into an FMA nor
//! reassociates float sums, so the wider versions change only how many lanes run at once, never
//! a result (`every_version_computes_the_same_bits` in the tests of [`super::act`] and
//! [`super::norm`] runs each version on this CPU and compares).

/// Declares `fn NAME(args) -> R { body }` compiled per instruction set (module docs): `NAME`
/// runs the widest version this CPU has ([`best`], detected once), `NAME::with(isa, args)` a
/// given one (checked; for tests). The
/// body is `#[inline(always)]` into one `#[target_feature]` wrapper per level, which is where the
/// compiler vectorises it.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: `best()` is a level this CPU supports.
            unsafe { $name::unchecked($crate::flex::simd::best(), $($arg),*) }
        }

        #[doc = concat!("The versions of [`", stringify!($name), "`] per instruction set.")]
        #[allow(dead_code, clippy::too_many_arguments)]
        $vis mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::flex::simd::Isa;

            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            /// Runs the `isa` version.
            ///
            /// # Panics
            /// When this CPU does not support `isa`.
            pub fn with(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
                assert!(isa.supported(), "this CPU does not support {isa:?}");
                // SAFETY: checked just above.
                unsafe { unchecked(isa, $($arg),*) }
            }

            /// Runs the `isa` version without checking it.
            ///
            /// # Safety
            /// This CPU must support `isa`.
            #[inline]
            pub(crate) unsafe fn unchecked(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
                match isa {
                    // SAFETY: the CPU supports the wrapper's target features (the contract).
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => unsafe { avx2($($arg),*) },
                    _ => body($($arg),*),
                }
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
        }
    };
}

pub(crate) use multiversion;

/// An instruction-set level of `multiversion!` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The build's baseline (SSE2 on x86-64; whatever the target has elsewhere).
    Baseline,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/DQ/VL (x86-64-v4).
    Avx512,
}

impl Isa {
    /// Every level this CPU can run, baseline first.
    pub fn available() -> Vec<Isa> {
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    /// Whether this CPU runs `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512dq")
                    && std::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The widest level this CPU runs (detected on the first call).
#[inline]
pub fn best() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Baseline)
    })
}

/// `Σ_i term(x_i, y_i)` over two equally long slices with [`LANES`] lane-wise partial sums (term
/// `i` goes to lane `i % LANES`; the lanes are added pairwise at the end, [`reduce_lanes`]): a
/// fixed order that vectorises, where one running sum is a chain of dependent adds (one term per
/// add latency). f32 or f64; a single-slice sum passes its slice twice.
#[inline(always)]
pub fn lane_sum<T: Copy + Default + std::ops::AddAssign>(
    x: &[f32],
    y: &[f32],
    term: impl Fn(f32, f32) -> T,
) -> T {
    let mut acc = [T::default(); LANES];
    let (xb, yb) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (xr, yr) = (xb.remainder(), yb.remainder());
    for (xl, yl) in xb.zip(yb) {
        for ((a, &u), &v) in acc.iter_mut().zip(xl).zip(yl) {
            *a += term(u, v);
        }
    }
    for ((a, &u), &v) in acc.iter_mut().zip(xr).zip(yr) {
        *a += term(u, v);
    }
    reduce_lanes(acc)
}

/// `Σ x` in f64, lane-wise ([`lane_sum`]).
#[inline(always)]
pub fn sum_f64(x: &[f32]) -> f64 {
    sum_map_f64(x, |v| v)
}

/// `Σ f(x)` in f64, lane-wise ([`lane_sum`]).
#[inline(always)]
pub fn sum_map_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    lane_sum(x, x, |v, _| f(f64::from(v)))
}

/// Lane-wise partial sums of [`lane_sum`].
pub const LANES: usize = 16;

/// The lanes added pairwise (a fixed tree), f64 or f32.
#[inline(always)]
pub fn reduce_lanes<T: Copy + std::ops::AddAssign>(mut acc: [T; LANES]) -> T {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            let v = acc[i + w];
            acc[i] += v;
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_equal_the_exact_sum_of_small_integers() {
        for n in [0, 1, 15, 16, 17, 1000, 4099] {
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
            assert_eq!(sum_f64(&x), exact, "n = {n}");
            let sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert_eq!(sum_map_f64(&x, |v| v * v), sq, "n = {n}");
        }
    }

    #[test]
    fn the_best_level_is_supported_and_listed() {
        assert!(best().supported());
        assert!(Isa::available().contains(&best()));
        assert_eq!(Isa::available()[0], Isa::Baseline);
    }
}
