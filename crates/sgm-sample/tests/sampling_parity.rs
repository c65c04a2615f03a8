//! Parity of the PC and ODE samplers with every `sampling/` case (fixtures README §5.4), and
//! the reference's crashing combinations (`sampling/known_errors.json`).

mod common;

use common::{case_model, check_exhausted, f64_key, pc_config, scaler, shape4, str_key};
use sde_core::{ScoreFn, Sde};
use sgm_sample::{
    Corrector, NoProjection, OdeConfig, PcConfig, Predictor, Rk45Options, SampleError, ode_sample,
    pc_sample,
};
use sgm_testkit::{Case, Checker, TestBackend, cases, device};

fn run_pc(case: &Case, checker: &mut Checker) {
    let dev = device();
    let model = match case_model::<TestBackend>(case, &dev) {
        Ok(m) => m,
        Err(e) => return checker.fail(case, format!("model: {e}")),
    };
    let sde = case.sde();
    let continuous = case.json["continuous"].as_bool().unwrap_or(true);
    let score = ScoreFn::new(&sde, &model, continuous);
    let cfg = pc_config(case);
    let mut noise = case.recorded_noise();
    match pc_sample::<TestBackend, _, _>(
        &sde,
        &score,
        &cfg,
        shape4(case),
        &NoProjection,
        &mut noise,
        &dev,
    ) {
        Err(e) => checker.fail(case, format!("pc_sample: {e}")),
        Ok(out) => {
            checker.check_tensor(case, "sample", out.sample);
            let exp = &case.json["expected"];
            let nfe = exp["nfe"].as_i64().unwrap_or(-1);
            checker.check_count(case, "nfe", out.reference_nfe as i64, nfe, 0);
            let calls = exp["network_calls"].as_i64().unwrap_or(-1);
            checker.check_count(case, "network_calls", out.nfe as i64, calls, 0);
            check_exhausted(checker, case, &noise);
        }
    }
}

fn run_ode(case: &Case, checker: &mut Checker) {
    let dev = device();
    let model = match case_model::<TestBackend>(case, &dev) {
        Ok(m) => m,
        Err(e) => return checker.fail(case, format!("model: {e}")),
    };
    let sde = case.sde();
    // get_ode_sampler always uses the continuous score function
    let score = ScoreFn::new(&sde, &model, true);
    let cfg = OdeConfig {
        solver: Rk45Options {
            rtol: f64_key(case, "rtol"),
            atol: f64_key(case, "atol"),
            ..Rk45Options::default()
        },
        eps: f64_key(case, "eps"),
        denoise: case.json["denoise"].as_bool().unwrap_or(true),
        scaler: scaler(case),
    };
    let mut noise = case.recorded_noise();
    match ode_sample::<TestBackend, _, _>(&sde, &score, &cfg, shape4(case), None, &mut noise, &dev)
    {
        Err(e) => checker.fail(case, format!("ode_sample: {e}")),
        Ok(out) => {
            checker.check_tensor(case, "sample", out.sample);
            let exp = &case.json["expected"];
            let nfe = exp["nfe"].as_i64().unwrap_or(-1);
            let slack = case.nfe_slack(nfe);
            eprintln!(
                "{}: nfe {} (reference {nfe}, slack {slack})",
                case.id(),
                out.reference_nfe
            );
            checker.check_count(case, "nfe", out.reference_nfe as i64, nfe, slack);
            if let Some(calls) = exp["network_calls"].as_i64() {
                checker.check_count(case, "network_calls", out.nfe as i64, calls, slack);
            }
            check_exhausted(checker, case, &noise);
        }
    }
}

fn is_pc(case: &Case) -> bool {
    str_key(case, "sampler") == "pc"
}

/// Every PC case: samples (scale-relative, case tolerance), reported NFE `N (n_steps + 1)`,
/// real network calls, and every recorded draw consumed in order.
#[test]
fn pc_sampler_matches_every_pc_case() {
    let mut checker = Checker::new();
    for case in cases("sampling").iter().filter(|c| is_pc(c)) {
        run_pc(case, &mut checker);
    }
    checker.finish("sampling (PC)");
}

/// Every ODE case: samples, solver nfev within the README §3 slack, network calls.
#[test]
fn ode_sampler_matches_every_ode_case() {
    let mut checker = Checker::new();
    for case in cases("sampling").iter().filter(|c| !is_pc(c)) {
        run_ode(case, &mut checker);
    }
    checker.finish("sampling (ODE)");
}

/// Every combination on which the reference raises: either a clear `Unsupported` error before
/// any draw, or (Euler–Maruyama + probability flow, discrete VE) the documented intended math
/// with finite samples — never a panic.
#[test]
fn known_error_combinations_fail_cleanly_or_run() {
    let Some(root) = sgm_testkit::fixtures_root() else {
        return;
    };
    let path = root.join("sampling/known_errors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("known_errors.json");
    let errors = json["errors"].as_array().expect("errors list");
    assert!(!errors.is_empty());
    let dev = device();
    let (mut rejected, mut ran) = (0, 0);
    for e in errors {
        let name = e["case"].as_str().unwrap_or("?");
        let sde = sgm_testkit::sde_from_json(&e["sde"]).unwrap_or_else(|m| panic!("{name}: {m}"));
        let data = sde_core::analytic::GaussianData {
            mean: 0.0,
            data_std: 0.5,
        };
        let model = sde_core::analytic::GaussianScoreModel::new(sde.clone(), data);
        let score = ScoreFn::new(&sde, &model, true);
        let cfg = PcConfig {
            predictor: Predictor::from_name(e["predictor"].as_str().unwrap_or("")).unwrap(),
            corrector: Corrector::from_name(e["corrector"].as_str().unwrap_or("")).unwrap(),
            snr: e["snr"].as_f64().unwrap_or(0.16) as f32,
            n_steps: e["n_steps"].as_u64().unwrap_or(1) as usize,
            probability_flow: e["probability_flow"].as_bool().unwrap_or(false),
            denoise: true,
            eps: e["eps"]
                .as_f64()
                .unwrap_or(sde.default_sampling_eps() as f64),
            scaler: sgm_sample::DataScaler::Identity,
        };
        let mut noise = sgm_testkit::SeededNoise::new(7);
        let shape = [2, 3, 4, 4];
        let r = pc_sample::<TestBackend, _, _>(
            &sde,
            &score,
            &cfg,
            shape,
            &NoProjection,
            &mut noise,
            &dev,
        );
        match r {
            Err(SampleError::Unsupported(msg)) => {
                assert!(!msg.is_empty(), "{name}: empty message");
                // rejected before any draw: the source is untouched
                assert_eq!(
                    noise.next_f64(),
                    sgm_testkit::SeededNoise::new(7).next_f64(),
                    "{name}: draws were made before the error"
                );
                rejected += 1;
            }
            Err(other) => panic!("{name}: unexpected error kind: {other}"),
            Ok(out) => {
                let (_, v) = sgm_testkit::host(out.sample);
                assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite sample");
                assert!(
                    cfg.probability_flow && cfg.predictor == Predictor::EulerMaruyama
                        || !e["continuous"].as_bool().unwrap_or(true),
                    "{name}: ran although the combination is documented as rejected"
                );
                ran += 1;
            }
        }
    }
    eprintln!("known errors: {rejected} rejected cleanly, {ran} run with the intended math");
    assert_eq!(rejected + ran, errors.len());
}
