//! Parity of inpainting and colorization with every `controllable/` case (fixtures README §5.6):
//! the projections run inside the one PC loop and replay the reference's draws in order.

mod common;

use common::{case_model, check_exhausted, pc_config, str_key};
use sde_core::ScoreFn;
use sgm_sample::{pc_colorize, pc_inpaint};
use sgm_testkit::{Case, Checker, TestBackend, cases, device, host};

fn run(case: &Case, checker: &mut Checker) {
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
    let out = match str_key(case, "task") {
        "inpainting" => {
            let data = case.tensor("data").tensor::<TestBackend, 4>(&dev);
            let mask = case.tensor("mask").tensor::<TestBackend, 4>(&dev);
            pc_inpaint(&sde, &score, &cfg, data, mask, &mut noise)
        }
        "colorization" => {
            // the case's matrix must be the one the library uses
            let m: Vec<f64> = case.json["colorization_matrix_M"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                        .filter_map(|v| v.as_f64())
                        .collect()
                })
                .unwrap_or_default();
            let lib: Vec<f64> = sgm_sample::controllable::COLORIZATION_M
                .iter()
                .flatten()
                .map(|&v| v as f64)
                .collect();
            if m.len() != 9 || m.iter().zip(&lib).any(|(a, b)| (a - b).abs() > 1e-7) {
                checker.fail(case, format!("colorization matrix {m:?} ≠ library {lib:?}"));
            }
            let gray = case.tensor("gray").tensor::<TestBackend, 4>(&dev);
            pc_colorize(&sde, &score, &cfg, gray, &mut noise)
        }
        other => return checker.fail(case, format!("unknown task `{other}`")),
    };
    match out {
        Err(e) => checker.fail(case, format!("controllable: {e}")),
        Ok(out) => {
            let (shape, v) = host(out.sample);
            checker.check_values(case, "output", &shape, &v, None);
            let calls = case.json["expected"]["network_calls"]
                .as_i64()
                .unwrap_or(-1);
            checker.check_count(case, "network_calls", out.nfe as i64, calls, 0);
            check_exhausted(checker, case, &noise);
        }
    }
}

/// Every controllable case: output, network calls, draws consumed in order.
#[test]
fn controllable_generation_matches_every_case() {
    let mut checker = Checker::new();
    for case in cases("controllable") {
        run(&case, &mut checker);
    }
    checker.finish("controllable");
}
