//! The sliced Wasserstein distance against cases with exact answers: identical sets, 1-D sets
//! (one direction, W₂ by hand), translations (`SW₂² = E_θ ⟨v, θ⟩² = |v|²/d`), resampled sets,
//! and bad input.

use sgm_eval::{EvalError, sliced_wasserstein};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) as f32
        })
        .collect()
}

#[test]
fn identical_and_resampled_sets_are_at_distance_zero() {
    let a = values(32 * 6, 1);
    assert_eq!(sliced_wasserstein(&a, &a, 6, 50, 3).unwrap(), 0.0);
    // b holds every image of a twice: the same distribution at a different size.
    let b: Vec<f32> = a.chunks(6).flat_map(|r| [r, r].concat()).collect();
    assert!(sliced_wasserstein(&a, &b, 6, 50, 3).unwrap() < 1e-6);
}

#[test]
fn one_dimensional_sets_give_the_w2_of_sorted_values() {
    // Quantiles of {0, 1} vs {3, 0}: pairs (0, 0), (1, 3) → W₂² = (0 + 4) / 2.
    let w = sliced_wasserstein(&[0.0, 1.0], &[3.0, 0.0], 1, 7, 9).unwrap();
    assert!((w - 2f64.sqrt()).abs() < 1e-9, "{w}");
}

#[test]
fn a_translation_by_v_gives_its_norm_over_root_d() {
    let d = 4;
    let a = values(64 * d, 2);
    let v = [0.5f32, -0.25, 1.0, 0.0];
    let b: Vec<f32> = a.iter().enumerate().map(|(i, x)| x + v[i % d]).collect();
    let w = sliced_wasserstein(&a, &b, d, 4000, 5).unwrap();
    let norm2: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum();
    let expect = (norm2 / d as f64).sqrt();
    assert!((w - expect).abs() < 0.05 * expect, "{w} vs {expect}");
    // Further away is larger; the same seed gives the same value.
    let c: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, x)| x + 2.0 * v[i % d])
        .collect();
    assert!(sliced_wasserstein(&a, &c, d, 4000, 5).unwrap() > 1.9 * w);
    assert_eq!(sliced_wasserstein(&a, &b, d, 4000, 5).unwrap(), w);
}

#[test]
fn bad_input_is_one_clear_error() {
    let a = values(12, 1);
    let e = sliced_wasserstein(&a, &a[..10], 4, 8, 1).unwrap_err();
    assert!(matches!(e, EvalError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("rows of 4"), "{e}");
    let e = sliced_wasserstein(&a, &[], 4, 8, 1).unwrap_err();
    assert!(matches!(e, EvalError::Insufficient(_)), "{e}");
}
