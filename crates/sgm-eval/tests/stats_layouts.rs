//! Statistics files: score_sde's layout (`pool_3` features, μ and Σ computed on reading) and
//! pytorch-fid's (`mu`, `sigma`) give the same FID for the same features; an unknown layout is
//! one error naming what the file holds and what was expected.

use sgm_eval::{EvalError, Stats, frechet_distance, read_stats, write_npz, write_stats};

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
