//! Float32 helpers that reproduce PyTorch's float32 arithmetic bit for bit where the
//! reference's numbers depend on it (fixtures README "Pitfalls").
//!
//! Per-sample SDE coefficients (σ(t), β(t), e^{lmc(t)}, …) are `[B]` vectors of time. They are
//! evaluated here, on the host, with Rust's correctly rounded `f32` math in the reference's
//! operation order, then uploaded and broadcast. GPU `exp` kernels are not correctly rounded and
//! the VP/sub-VP standard deviations near `t = 0` amplify a one-ulp error of `exp` to percent
//! level, so this is the only way every backend gives the reference's coefficients.

/// `torch.linspace(start, end, n)` in float32: `step = (end - start) / (n - 1)` in f32, element
/// `i < n/2` is `fma(step, i, start)`, the rest `fma(-step, n-1-i, end)` (single rounding).
pub fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let start = start as f32;
    let end = end as f32;
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((n - 1 - i) as f32, end)
            }
        })
        .collect()
}

/// `torch.cumprod` of a float32 vector: the product is accumulated in float64 and each
/// prefix rounded to float32.
pub fn torch_cumprod_f32(v: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    v.iter()
        .map(|&a| {
            acc *= a as f64;
            acc as f32
        })
        .collect()
}

/// Discretisation index of the reference, `(t * (N - 1) / T).long()`, evaluated in float32
/// (float64 gives `k - 1` at many boundary times; fixtures README §5.1).
pub fn discrete_index(t: f32, n: usize, t_max: f32) -> usize {
    let v = t * (n - 1) as f32 / t_max;
    // `.long()` truncates toward zero; t ≥ 0 is validated by the callers.
    (v as i64).clamp(0, n as i64 - 1) as usize
}
