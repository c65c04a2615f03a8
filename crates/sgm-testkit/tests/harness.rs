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
