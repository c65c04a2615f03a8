//! How the CPU kernel accumulates its sums: [`Precision`], chosen per thread for a scope with
//! [`with_precision`] — the pattern of JAX's `jax.default_matmul_precision` context manager.
//!
//! A scope, not a parameter: every convolution of a network (dozens of layers) runs under the
//! precision of the call that evaluates the network, without threading a setting through every
//! layer. The setting is per thread and restored when the scope ends (also on unwinding), so two
//! threads never see each other's choice. `Autodiff<B>` records the precision of each forward
//! convolution and runs its backward under that same precision, so a `backward()` call outside
//! the scope still differentiates what was computed inside it. Backends without a choice (Burn's
//! kernels, cuDNN — which has its own [`CudnnMode`](crate::cudnn) — CubeCL) ignore it.

use std::cell::Cell;

/// Accumulation precision of the CPU convolution kernel (`burn::backend::Flex`, f32 tensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// f32 products and sums, as PyTorch's CPU convolution: results differ from PyTorch's in
    /// summation order only (≤ a few float32 ulps of the largest value). The default.
    #[default]
    Fast,
    /// f64 products and sums, each output rounded once to f32: the correctly rounded exact sum,
    /// independent of summation order and thread count; ≈ 2× the GEMM time. For computations
    /// that amplify rounding — the likelihood's adaptive ODE solve (docs/parity.md).
    Exact,
}

impl Precision {
    /// `fast` / `exact` (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "fast" => Some(Self::Fast),
            "exact" => Some(Self::Exact),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fast => "fast",
            Self::Exact => "exact",
        })
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::Fast) };
}

/// The precision convolutions on this thread run with now ([`Precision::Fast`] outside any
/// [`with_precision`] scope).
pub fn current_precision() -> Precision {
    CURRENT.with(Cell::get)
}

/// Runs `f` with convolutions on this thread accumulating in `precision`, then restores the
/// previous setting (also when `f` panics).
pub fn with_precision<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(precision)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore_even_on_panic() {
        assert_eq!(current_precision(), Precision::Fast);
        with_precision(Precision::Exact, || {
            assert_eq!(current_precision(), Precision::Exact);
            with_precision(Precision::Fast, || {
                assert_eq!(current_precision(), Precision::Fast)
            });
            assert_eq!(current_precision(), Precision::Exact);
            // another thread keeps its own setting
            std::thread::spawn(|| assert_eq!(current_precision(), Precision::Fast))
                .join()
                .unwrap();
        });
        let caught = std::panic::catch_unwind(|| with_precision(Precision::Exact, || panic!()));
        assert!(caught.is_err());
        assert_eq!(current_precision(), Precision::Fast);
        assert_eq!(Precision::parse(" Exact "), Some(Precision::Exact));
        assert_eq!(Precision::parse("f64"), None);
    }
}
