//! The pass rule and the fixtures-root policy of the harness itself.

use sgm_testkit::{Rule, Tolerance, compare, nfe_allowance};

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-4,
};

#[test]
fn elementwise_rule_scales_with_each_element() {
    // |a − e| ≤ atol + rtol |e|: 1e-4 + 1e-4·1000 = 0.1001 at the large element
    let c = compare(&[1000.1, 0.0], &[1000.0, 0.0], Rule::Elementwise, TOL).unwrap();
    assert!(c.ratio < 1.0, "{c:?}");
    // a 2e-4 error on a small element fails elementwise…
    let c = compare(&[1000.0, 2e-4], &[1000.0, 0.0], Rule::Elementwise, TOL).unwrap();
    assert!(c.ratio > 1.0 && c.index == 1, "{c:?}");
    // …but passes scale-relative (allowance 1e-4 + 1e-4·max|e|)
    let c = compare(&[1000.0, 2e-4], &[1000.0, 0.0], Rule::ScaleRelative, TOL).unwrap();
    assert!(c.ratio < 1.0, "{c:?}");
}

#[test]
fn exact_rule_and_bad_values() {
    assert_eq!(
        compare(&[3.0], &[3.0], Rule::Exact, TOL).unwrap().ratio,
        0.0
    );
    assert!(
        compare(&[4.0], &[3.0], Rule::Exact, TOL)
            .unwrap()
            .ratio
            .is_infinite()
    );
    assert!(compare(&[f64::NAN], &[3.0], Rule::ScaleRelative, TOL).is_err());
    assert!(compare(&[1.0, 2.0], &[1.0], Rule::ScaleRelative, TOL).is_err());
}

/// `SGM_FIXTURES` set to a missing or empty directory is a failure, not a skip.
#[test]
fn explicit_fixtures_root_must_exist_and_hold_cases() {
    let empty = std::env::temp_dir().join(format!("sgm-empty-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    // SAFETY: this is the only test of this binary that reads or writes the environment.
    unsafe { std::env::set_var(sgm_testkit::FIXTURES_ENV, &empty) };
    let r = std::panic::catch_unwind(|| sgm_testkit::cases("sde"));
    assert!(r.is_err(), "an empty SGM_FIXTURES root must fail");
    unsafe { std::env::set_var(sgm_testkit::FIXTURES_ENV, empty.join("missing")) };
    let r = std::panic::catch_unwind(sgm_testkit::fixtures_root);
    assert!(r.is_err(), "a missing SGM_FIXTURES root must fail");
    unsafe { std::env::remove_var(sgm_testkit::FIXTURES_ENV) };
    std::fs::remove_dir_all(&empty).ok();
}

/// README §3 NFE rule: exact for `nfe_atol` 0, else `max(nfe_atol, ⌈0.25·nfe⌉)`.
#[test]
fn nfe_allowance_follows_the_quarter_rule() {
    assert_eq!(nfe_allowance(0, 596), 0);
    assert_eq!(nfe_allowance(12, 20), 12); // ⌈5⌉ < 12
    assert_eq!(nfe_allowance(12, 254), 64); // ⌈63.5⌉: 254 → 308 (+54) is allowed
    assert_eq!(nfe_allowance(12, 296), 74);
    assert_eq!(nfe_allowance(12, 48), 12);
    assert_eq!(nfe_allowance(12, 49), 13);
    assert!(254 + nfe_allowance(12, 254) >= 308);
}

/// k-diffusion's noise-sampler draws (`fn: noise_sampler`) replay as standard normals.
#[test]
fn noise_sampler_draws_replay_as_normals() {
    let dir = std::env::temp_dir().join(format!("sgm-ns-case-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let case = serde_json::json!({
        "format_version": 1, "group": "g", "name": "n",
        "random_draws": [{"index": 0, "fn": "noise_sampler", "shape": [2], "dtype": "float32",
                          "caller": "x", "tensor": "draw_000"}],
        "tolerance": {"rtol": 1e-4, "atol": 1e-4, "nfe_atol": 12}
    });
    std::fs::write(dir.join("case.json"), case.to_string()).unwrap();
    let mut bytes = Vec::new();
    let header = r#"{"draw_000":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    bytes.extend((header.len() as u64).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(0.5f32.to_le_bytes());
    bytes.extend((-1.5f32).to_le_bytes());
    std::fs::write(dir.join("tensors.safetensors"), bytes).unwrap();
    let c = sgm_testkit::Case::load(&dir).unwrap();
    assert_eq!(c.nfe_slack(100), 25);
    let mut noise = c.recorded_noise();
    let dev = sgm_testkit::device();
    let x =
        sde_core::NoiseSource::<sgm_testkit::TestBackend>::normal(&mut noise, [2], &dev).unwrap();
    assert_eq!(sgm_testkit::host(x).1, vec![0.5, -1.5]);
    assert!(noise.is_exhausted());
    std::fs::remove_dir_all(&dir).ok();
}
