//! Parity over every `losses/` fixture case: the continuous DSM, SMLD and DDPM losses of
//! `sde_core` through the case's fixture network, with the recorded draws replayed
//! (fixtures README §5.3); `expected.loss` within the case's tolerance, every draw consumed.

mod common;

use sde_core::{AnySde, LossConfig, ddpm_loss, dsm_loss, smld_loss};
use sgm_testkit::{Checker, TestBackend, Tolerance, cases, device};

#[test]
fn every_losses_case_matches_the_reference() {
    let dev = device();
    let mut checker = Checker::new();
    for case in cases("losses") {
        checker.visit(&case);
        let net = common::load_net(&common::model_dir(&case));
        let sde = case.sde();
        let x0 = case.tensor("x0").tensor::<TestBackend, 4>(&dev);
        let knobs = &case.json["loss_knobs"];
        let reduce_mean = knobs["reduce_mean"].as_bool().unwrap_or(false);
        let mut noise = case.recorded_noise();
        let kind = case.json["loss_kind"].as_str().unwrap_or_default();
        let loss = match (kind, &sde) {
            ("sde", _) => {
                let cfg = LossConfig {
                    reduce_mean,
                    continuous: knobs["continuous"].as_bool().unwrap_or(true),
                    likelihood_weighting: knobs["likelihood_weighting"].as_bool().unwrap_or(false),
                    eps: knobs["eps"].as_f64().unwrap_or(1e-5) as f32,
                };
                dsm_loss(&sde, &net, x0, &cfg, &mut noise)
            }
            ("smld", AnySde::Ve(ve)) => smld_loss(ve, &net, x0, reduce_mean, &mut noise),
            ("ddpm", AnySde::Vp(vp)) => ddpm_loss(vp, &net, x0, reduce_mean, &mut noise),
            (k, _) => {
                checker.fail(&case, format!("unsupported loss_kind `{k}` for this SDE"));
                continue;
            }
        };
        let loss = match loss {
            Ok(l) => l.into_scalar() as f64,
            Err(e) => {
                checker.fail(&case, format!("loss error: {e}"));
                continue;
            }
        };
        if !noise.is_exhausted() {
            checker.fail(
                &case,
                format!("{} recorded draws left unused", noise.remaining()),
            );
        }
        let expected = case.json["expected"]["loss"]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: no expected.loss", case.id()));
        let tol: Tolerance = case.tolerance();
        // scalar: |a − e| ≤ atol + rtol·|e| (= the scale-relative rule for one value)
        checker.check_scalar(&case, "loss", loss, expected, tol);
    }
    checker.finish("losses parity");
}
