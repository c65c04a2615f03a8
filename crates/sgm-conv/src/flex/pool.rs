//! Running a computation on a worker of rayon's global pool ([`in_pool`]).
//!
//! Every Flex kernel (sgm's and Burn's) splits its work with rayon. Called from a thread outside
//! the pool — the program's main thread — each parallel kernel is injected into the pool and the
//! caller blocks until a worker, usually asleep since the previous kernel, wakes up, runs it and
//! wakes the caller again: two thread wake-ups on the critical path of every kernel, hundreds of
//! times per network evaluation, and on a virtual machine each wake-up of an idle vCPU is slow.
//! Called from a worker, a kernel pushes half of its work onto that worker's own queue and starts
//! on the other half at once; a sleeping peer steals the queued half when it wakes, and if it has
//! not woken by then the worker takes it back itself. Measured (docs/benchmarks.md): DDPM++ cont.
//! nf 32 fwd+bwd at batch 8 on 2 cores 472–483 → 416–419 ms, NCSN++ nf 32 ≈ 845 → 750 ms.
//!
//! With fewer than two pool threads, or when already on a worker, `f` runs directly: a lone
//! worker busy with `f` could not run a kernel that another thread (a data-prefetch thread)
//! injects while `f` waits for that thread, and would deadlock.

use crate::precision::{current_precision, with_precision};

/// Runs `f` on a worker of rayon's global pool (module docs), under the caller's
/// [`crate::Precision`], and returns its result.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() < 2 {
        return f();
    }
    let precision = current_precision();
    rayon::scope(move |_| with_precision(precision, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Precision;

    #[test]
    fn runs_on_a_worker_with_the_callers_precision() {
        let (on_worker, precision) = with_precision(Precision::Exact, || {
            in_pool(|| (rayon::current_thread_index(), current_precision()))
        });
        assert_eq!(precision, Precision::Exact);
        assert_eq!(on_worker.is_some(), rayon::current_num_threads() >= 2);
        // nested: runs in place
        let inner = in_pool(|| in_pool(rayon::current_thread_index));
        assert_eq!(inner.is_some(), rayon::current_num_threads() >= 2);
        assert_eq!(current_precision(), Precision::Fast);
    }
}
