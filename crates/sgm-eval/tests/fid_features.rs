//! FID against a few feature rows (fewer than dimensions) computed in their span: exact for
//! two rows (a rank-one covariance has a closed form), equal to the full-matrix FID of their
//! statistics up to that computation's round-off (square roots of its near-zero eigenvalues);
//! with more rows than dimensions it is the full computation itself.

use sgm_eval::{Stats, frechet_distance, frechet_distance_to_features};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn fid_to_few_features_equals_the_full_computation() {
    let d = 24;
    let data = values(40 * d, 1);
    let data_stats = Stats::from_features(&data, 40, d).unwrap();
    for n in [2, 5, 23, 30] {
        let f: Vec<f64> = values(n * d, 7 + n as u64)
            .iter()
            .map(|v| 0.5 * v + 0.1)
            .collect();
        let full = frechet_distance(&data_stats, &Stats::from_features(&f, n, d).unwrap()).unwrap();
        let fast = frechet_distance_to_features(&data_stats, &f, n).unwrap();
        assert!(
            (full - fast).abs() <= 1e-6 * full.abs().max(1.0),
            "n = {n}: {full} vs {fast}"
        );
        if n >= d {
            assert_eq!(full, fast);
        }
        if n == 2 {
            // Σ₂ = v vᵀ with v = (x₁ − x₂)/√2: tr sqrtm(Σ₁Σ₂) = √(vᵀΣ₁v).
            let v: Vec<f64> = (0..d).map(|j| (f[j] - f[d + j]) / 2f64.sqrt()).collect();
            let s1 = &data_stats.sigma;
            let quad: f64 = (0..d)
                .map(|i| (0..d).map(|j| v[i] * s1[i * d + j] * v[j]).sum::<f64>())
                .sum();
            let mu2: Vec<f64> = (0..d).map(|j| (f[j] + f[d + j]) / 2.0).collect();
            let diff: f64 = (0..d).map(|j| (data_stats.mu[j] - mu2[j]).powi(2)).sum();
            let tr1: f64 = (0..d).map(|i| s1[i * d + i]).sum();
            let tr2: f64 = v.iter().map(|x| x * x).sum();
            let exact = diff + tr1 + tr2 - 2.0 * quad.sqrt();
            assert!(
                (fast - exact).abs() <= 1e-12 * exact.abs(),
                "{fast} vs {exact}"
            );
        }
    }
    assert!(frechet_distance_to_features(&data_stats, &data[..d], 1).is_err());
}
