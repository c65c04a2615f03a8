//! KID, IS and FID formulas against independent straightforward computations on small
//! synthetic matrices; statistics files round trip, and score_sde's layout (`pool_3` features,
//! μ and Σ computed on reading) gives the same FID as pytorch-fid's (`mu`, `sigma`); bad input
//! (incl. an unknown statistics layout) is one clear error. FID against fewer feature rows
//! than dimensions, computed in their span: exact for two rows (a rank-one covariance has a
//! closed form), and the full-matrix FID up to that computation's round-off.

use sgm_eval::fid::trace_sqrt_product;
use sgm_eval::kid::mmd2_unbiased;
use sgm_eval::{
    EvalError, Stats, frechet_distance, frechet_distance_to_features, inception_score, kid,
    kid_blocks, read_stats, write_npz, write_stats,
};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// The KID kernel `(aᵀb / d + 1)³`, written out.
fn cubic_kernel(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>() / a.len() as f64 + 1.0).powi(3)
}

#[test]
fn kid_is_the_unbiased_cubic_kernel_mmd() {
    let d = 5;
    let x = values(8 * d, 1);
    let y: Vec<f64> = values(8 * d, 2).iter().map(|v| v + 0.3).collect();
    // Independent: the textbook formula with explicit kernel matrices.
    let k = |a: &[f64], b: &[f64]| cubic_kernel(a, b);
    let rx: Vec<&[f64]> = x.chunks(d).collect();
    let ry: Vec<&[f64]> = y.chunks(d).collect();
    let m = 8.0;
    let mut xx = 0.0;
    let mut yy = 0.0;
    let mut xy = 0.0;
    for i in 0..8 {
        for j in 0..8 {
            if i != j {
                xx += k(rx[i], rx[j]);
                yy += k(ry[i], ry[j]);
            }
            xy += k(rx[i], ry[j]);
        }
    }
    let expected = xx / (m * (m - 1.0)) + yy / (m * (m - 1.0)) - 2.0 * xy / (m * m);
    assert!((mmd2_unbiased(&rx, &ry) - expected).abs() < 1e-12);
    // One subset of all images is that same value, with zero spread.
    let r = kid(&x, &y, d, 1, 8, 7).unwrap();
    assert!((r.mean - expected).abs() < 1e-12 && r.std == 0.0, "{r:?}");
    // Subsets: the mean is close to the full estimate and the spread is positive.
    let r = kid(&x, &y, d, 50, 5, 7).unwrap();
    assert!(
        r.std > 0.0 && (r.mean - expected).abs() < 0.5 * expected.abs() + 0.05,
        "{r:?}"
    );
    // Two independent samples of one distribution: KID ≈ 0, far below the shifted pair.
    let z = values(8 * d, 3);
    let same = kid(&x, &z, d, 1, 8, 7).unwrap();
    assert!(
        same.mean.abs() < expected.abs(),
        "{same:?} vs shifted {expected}"
    );
}

#[test]
fn inception_score_matches_a_direct_computation() {
    let k = 4;
    let logits = values(20 * k, 3)
        .iter()
        .map(|v| 3.0 * v)
        .collect::<Vec<_>>();
    let is = inception_score(&logits, k, 2).unwrap();
    // Direct: per split, p(y|x) by softmax, p(y) the mean, exp(mean KL).
    let mut scores = vec![];
    for s in 0..2 {
        let rows: Vec<Vec<f64>> = logits[s * 10 * k..(s + 1) * 10 * k]
            .chunks(k)
            .map(|r| {
                let z: f64 = r.iter().map(|v| v.exp()).sum();
                r.iter().map(|v| v.exp() / z).collect()
            })
            .collect();
        let py: Vec<f64> = (0..k)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / 10.0)
            .collect();
        let kl: f64 = rows
            .iter()
            .map(|r| (0..k).map(|j| r[j] * (r[j] / py[j]).ln()).sum::<f64>())
            .sum::<f64>()
            / 10.0;
        scores.push(kl.exp());
    }
    let mean = (scores[0] + scores[1]) / 2.0;
    let std = ((scores[0] - mean).powi(2) + (scores[1] - mean).powi(2)).sqrt() / 2f64.sqrt();
    assert!(
        (is.mean - mean).abs() < 1e-12 && (is.std - std).abs() < 1e-12,
        "{is:?}"
    );
    // Certain, uniformly spread predictions: IS = number of classes.
    let mut sharp = vec![-50.0; 8 * k];
    for i in 0..8 {
        sharp[i * k + i % k] = 50.0;
    }
    let is = inception_score(&sharp, k, 1).unwrap();
    assert!((is.mean - k as f64).abs() < 1e-9, "{is:?}");
}

#[test]
fn frechet_distance_of_gaussians_is_the_closed_form() {
    // Diagonal covariances: FID = ‖μ₁−μ₂‖² + Σ (a_i + b_i − 2 sqrt(a_i b_i)).
    let d = 6;
    let a_diag = [1.0, 2.0, 0.5, 0.0, 3.0, 1.5];
    let b_diag = [2.0, 2.0, 0.1, 1.0, 0.0, 1.0];
    let diag = |v: &[f64]| {
        let mut m = vec![0.0; d * d];
        for i in 0..d {
            m[i * d + i] = v[i];
        }
        m
    };
    let a = Stats {
        mu: vec![0.0, 1.0, 2.0, 0.0, 0.0, 1.0],
        sigma: diag(&a_diag),
    };
    let b = Stats {
        mu: vec![1.0, 1.0, 0.0, 0.0, 0.5, 1.0],
        sigma: diag(&b_diag),
    };
    let mut expected = 1.0 + 4.0 + 0.25;
    for i in 0..d {
        expected += a_diag[i] + b_diag[i] - 2.0 * (a_diag[i] * b_diag[i]).sqrt();
    }
    let fid = frechet_distance(&a, &b).unwrap();
    assert!((fid - expected).abs() < 1e-9, "{fid} vs {expected}");
    // A rank-deficient product (fewer samples than dimensions) against the low-rank identity
    // tr sqrtm(Σ₁Σ₂) = ‖X₁ X₂ᵀ‖_* / sqrt((n₁−1)(n₂−1)) for centred data.
    let (n, d) = (4, 7);
    let x1 = values(n * d, 11);
    let x2 = values(n * d, 12);
    let s1 = Stats::from_features(&x1, n, d).unwrap();
    let s2 = Stats::from_features(&x2, n, d).unwrap();
    let c = |x: &[f64], mu: &[f64]| -> nalgebra::DMatrix<f64> {
        nalgebra::DMatrix::from_row_iterator(
            n,
            d,
            x.chunks(d)
                .flat_map(|r| r.iter().zip(mu).map(|(a, m)| a - m).collect::<Vec<_>>()),
        )
    };
    let m = c(&x1, &s1.mu) * c(&x2, &s2.mu).transpose();
    let nuclear: f64 = m.singular_values().iter().sum();
    let exact = nuclear / ((n as f64 - 1.0) * (n as f64 - 1.0)).sqrt();
    let got = trace_sqrt_product(&s1.sigma, &s2.sigma, d);
    // Square roots of round-off-level eigenvalues (rank n − 1 < d) limit the agreement to ~1e-8.
    assert!((got - exact).abs() < 1e-6, "{got} vs {exact}");
}

#[test]
fn stats_files_round_trip_and_bad_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("sgm-eval-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = Stats::from_features(&values(5 * 3, 4), 5, 3).unwrap();
    let p = dir.join("s.npz");
    write_stats(&p, &s).unwrap();
    assert_eq!(read_stats(&p).unwrap(), s);
    // Truncated file.
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.join("cut.npz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_stats(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.npz"), "{e}");
    // Missing file.
    let e = read_stats(&dir.join("none.npz")).unwrap_err();
    assert!(e.to_string().contains("none.npz"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_clear_errors() {
    use sgm_testkit::{TestBackend, device};
    let e = sgm_eval::InceptionV3::<TestBackend>::load(
        std::path::Path::new("/nonexistent/w.pth"),
        &device(),
    )
    .unwrap_err();
    assert!(
        matches!(e, EvalError::MissingWeights { .. })
            && e.to_string().contains("/nonexistent/w.pth")
    );
    // A CIFAR-10 batch that is not a whole number of records.
    let dir = std::env::temp_dir().join(format!("sgm-eval-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("short.bin");
    std::fs::write(&bin, vec![0u8; 3073 + 10]).unwrap();
    let e = sgm_eval::images::read_cifar10_bin(&bin, 0, None).unwrap_err();
    assert!(
        e.to_string().contains("short.bin") && e.to_string().contains("truncated"),
        "{e}"
    );
    // More records than the file holds.
    std::fs::write(&bin, vec![0u8; 3073 * 2]).unwrap();
    let e = sgm_eval::images::read_cifar10_bin(&bin, 0, Some(3)).unwrap_err();
    assert!(e.to_string().contains("holds 2"), "{e}");
    // Statistics of different dimensions; too few images.
    let a = Stats::from_features(&values(6, 1), 3, 2).unwrap();
    let b = Stats::from_features(&values(9, 1), 3, 3).unwrap();
    assert!(frechet_distance(&a, &b).is_err());
    assert!(Stats::from_features(&values(3, 1), 1, 3).is_err());
    // Grey images are rejected by the feature extractor before any work.
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pool3_and_mu_sigma_files_give_the_same_fid() {
    let dir = std::env::temp_dir().join(format!("sgm-stats-layouts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (n, d) = (12, 5);
    let features = values(n * d, 3);
    let other = Stats::from_features(&values(n * d, 8), n, d).unwrap();

    let score_sde = dir.join("cifar10_stats.npz");
    // score_sde also stores the logits; they are ignored.
    write_npz(
        &score_sde,
        &[
            ("pool_3", &[n, d], &features),
            ("logits", &[n, 3], &values(n * 3, 1)),
        ],
    )
    .unwrap();
    let pytorch_fid = dir.join("mu_sigma.npz");
    write_stats(
        &pytorch_fid,
        &Stats::from_features(&features, n, d).unwrap(),
    )
    .unwrap();

    let a = read_stats(&score_sde).unwrap();
    let b = read_stats(&pytorch_fid).unwrap();
    assert_eq!(a, b);
    let (fa, fb) = (
        frechet_distance(&a, &other).unwrap(),
        frechet_distance(&b, &other).unwrap(),
    );
    assert!(fa > 0.0 && fa == fb, "{fa} vs {fb}");

    // Unknown layout: one error naming the arrays found and the two layouts.
    let odd = dir.join("odd.npz");
    write_npz(&odd, &[("features", &[n, d], &features)]).unwrap();
    let e = read_stats(&odd).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, EvalError::File { .. }), "{msg}");
    assert!(
        msg.contains("odd.npz")
            && msg.contains("features")
            && msg.contains("pool_3")
            && msg.contains("`mu`"),
        "{msg}"
    );
    // pool_3 of the wrong rank.
    let flat = dir.join("flat.npz");
    write_npz(&flat, &[("pool_3", &[n * d], &features)]).unwrap();
    assert!(
        read_stats(&flat)
            .unwrap_err()
            .to_string()
            .contains("expected [n, d]")
    );
    let _ = std::fs::remove_dir_all(&dir);
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

#[test]
fn kid_blocks_are_tfgans_block_estimate() {
    let d = 3;
    let x = values(9 * d, 3);
    let y: Vec<f64> = values(7 * d, 4).iter().map(|v| v + 0.2).collect();
    // Textbook unbiased MMD² of one pair of blocks.
    let k = |a: &[f64], b: &[f64]| cubic_kernel(a, b);
    let mmd = |a: &[f64], b: &[f64]| {
        let (ra, rb): (Vec<&[f64]>, Vec<&[f64]>) = (a.chunks(d).collect(), b.chunks(d).collect());
        let (m, n) = (ra.len() as f64, rb.len() as f64);
        let mut s = 0.0;
        for (i, p) in ra.iter().enumerate() {
            for (j, q) in ra.iter().enumerate() {
                if i != j {
                    s += k(p, q) / (m * (m - 1.0));
                }
            }
            for q in &rb {
                s -= 2.0 * k(p, q) / (m * n);
            }
        }
        for (i, p) in rb.iter().enumerate() {
            for (j, q) in rb.iter().enumerate() {
                if i != j {
                    s += k(p, q) / (n * (n - 1.0));
                }
            }
        }
        s
    };
    // Blocks of at most 4: ⌈9 / 4⌉ = 3 blocks; x rows 3 + 3 + 3, y rows 2 + 2 + 3 (tfgan puts
    // the larger blocks last).
    let ests = [
        mmd(&x[..3 * d], &y[..2 * d]),
        mmd(&x[3 * d..6 * d], &y[2 * d..4 * d]),
        mmd(&x[6 * d..], &y[4 * d..]),
    ];
    let mean = ests.iter().sum::<f64>() / 3.0;
    let se = (ests.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 2.0 / 3.0).sqrt();
    let (m, s) = kid_blocks(&x, &y, d, 4).unwrap();
    assert!(
        (m - mean).abs() < 1e-12 && (s.unwrap() - se).abs() < 1e-12,
        "{m} {s:?}"
    );
    // One block: the whole sets, no standard error.
    let (m, s) = kid_blocks(&x, &y, d, 1024).unwrap();
    assert!((m - mmd(&x, &y)).abs() < 1e-12 && s.is_none());
    // A block of one row has no unbiased estimate.
    assert!(kid_blocks(&x, &y[..3 * d], d, 4).is_err());
}
