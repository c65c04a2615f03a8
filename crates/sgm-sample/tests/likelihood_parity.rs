//! Parity of the likelihood (bits/dim) with every `likelihood/` case (fixtures README §5.5),
//! under the README §3 allowances for the ODE end point `z` and `bpd`.

mod common;

use common::{case_model, check_exhausted, f64_key, str_key};
use sde_core::ScoreFn;
use sgm_nets::{LIKELIHOOD_PRECISION, WithPrecision};
use sgm_sample::{DataScaler, Hutchinson, LikelihoodConfig, Rk45Options, likelihood};
use sgm_testkit::{Case, Checker, TestAutodiff, Tolerance, cases, device, host};

fn run(case: &Case, checker: &mut Checker) {
    let dev = device();
    let model = match case_model::<TestAutodiff>(case, &dev) {
        Ok(m) => m,
        Err(e) => return checker.fail(case, format!("model: {e}")),
    };
    let sde = case.sde();
    // the likelihood flows' convolution precision (exact sums: docs/parity.md)
    let score = WithPrecision::new(ScoreFn::new(&sde, &model, true), LIKELIHOOD_PRECISION);
    let offset = f64_key(case, "bpd_offset");
    let scaler = if offset == 7.0 {
        DataScaler::Centered
    } else {
        DataScaler::Identity
    };
    assert_eq!(scaler.bpd_offset(), offset, "{}: bpd_offset", case.id());
    let cfg = LikelihoodConfig {
        hutchinson: Hutchinson::from_name(str_key(case, "hutchinson_type"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.id())),
        solver: Rk45Options {
            rtol: f64_key(case, "rtol"),
            atol: f64_key(case, "atol"),
            ..Rk45Options::default()
        },
        eps: f64_key(case, "eps"),
        scaler,
        // the reference's batch-global step control
        per_sample_control: false,
    };
    let data = case.tensor("data").tensor::<TestAutodiff, 4>(&dev);
    let mut noise = case.recorded_noise();
    let out = match likelihood(&sde, &score, data, &cfg, &mut noise) {
        Ok(o) => o,
        Err(e) => return checker.fail(case, format!("likelihood: {e}")),
    };
    // README §3: z (and prior_logp_z, a function of it) scale-relative with rtol = atol = 1e-2;
    // bpd within 1e-2 bits.
    let z_tol = Tolerance {
        rtol: 1e-2,
        atol: 1e-2,
    };
    let (shape, z) = host(out.z);
    checker.check_values(case, "z", &shape, &z, Some(z_tol));
    if case.outputs().iter().any(|n| n == "prior_logp_z") {
        let (shape, p) = host(out.prior_logp);
        checker.check_values(case, "prior_logp_z", &shape, &p, Some(z_tol));
    }
    let (_, bpd) = host(out.bpd);
    let expected = &case.tensor("bpd").data;
    for (i, (&a, &e)) in bpd.iter().zip(expected).enumerate() {
        checker.check_scalar(
            case,
            &format!("bpd[{i}]"),
            a,
            e,
            Tolerance {
                rtol: 0.0,
                atol: 1e-2,
            },
        );
    }
    checker.check_count(
        case,
        "bpd length",
        bpd.len() as i64,
        expected.len() as i64,
        0,
    );
    let nfe = case.json["expected"]["nfe"].as_i64().unwrap_or(-1);
    eprintln!(
        "{}: nfe {} (reference {nfe}), bpd {:?} (reference {:?})",
        case.id(),
        out.nfe,
        bpd,
        expected
    );
    checker.check_count(case, "nfe", out.nfe as i64, nfe, case.nfe_slack(nfe));
    // one forward (+ one backward) per right-hand-side evaluation
    checker.check_count(
        case,
        "forward calls",
        out.forward_calls as i64,
        out.nfe as i64,
        0,
    );
    check_exhausted(checker, case, &noise);
}

fn is_analytic(case: &Case) -> bool {
    case.json["model_kind"].as_str() == Some("analytic_gaussian")
}

/// Analytic-model cases (exact score, diagonal Jacobian).
#[test]
fn likelihood_matches_every_analytic_case() {
    let mut checker = Checker::new();
    for case in cases("likelihood").iter().filter(|c| is_analytic(c)) {
        run(case, &mut checker);
    }
    checker.finish("likelihood (analytic)");
}

/// Network cases (16×16 nets, VJP through the network).
#[test]
fn likelihood_matches_every_network_case() {
    let mut checker = Checker::new();
    for case in cases("likelihood").iter().filter(|c| !is_analytic(c)) {
        run(case, &mut checker);
    }
    checker.finish("likelihood (network)");
}
