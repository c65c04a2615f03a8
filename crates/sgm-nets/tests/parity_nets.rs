//! Parity over every `nets/` fixture case: for each score mode, the labels the score function
//! passes, the raw network output (eval mode) and the score-function output, against the
//! reference (fixtures README §5.2), with the case's own scale-relative tolerance.

mod common;

use sde_core::score::labels_to_tensor;
use sde_core::{ScoreFn, ScoreFunction, ScoreLabels, ScoreModel, Sde};
use sgm_testkit::{Checker, TestBackend, cases, device, sde_from_json};

#[test]
fn every_nets_case_matches_the_reference() {
    let dev = device();
    let mut checker = Checker::new();
    for case in cases("nets") {
        checker.visit(&case);
        let net = common::load_net(&case.dir);
        let x = case.tensor("x").tensor::<TestBackend, 4>(&dev);
        let t = case.tensor("t").f32();
        let modes = case.json["score_modes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if modes.is_empty() {
            checker.fail(&case, "no score_modes");
        }
        for mode in modes {
            let name = mode["name"].as_str().unwrap_or_default().to_string();
            let sde = sde_from_json(&mode["sde"]).unwrap_or_else(|e| panic!("{e}"));
            let continuous = mode["continuous"].as_bool().unwrap_or(true);
            let (labels, _) = sde.score_parameterisation(&t, continuous);
            let (lshape, lvals): (Vec<usize>, Vec<f64>) = match &labels {
                ScoreLabels::Float(v) => (vec![v.len()], v.iter().map(|&a| a as f64).collect()),
                ScoreLabels::Int(v) => (vec![v.len()], v.iter().map(|&a| a as f64).collect()),
            };
            checker.check_values(&case, &format!("labels_{name}"), &lshape, &lvals, None);
            let out = net.forward(x.clone(), labels_to_tensor::<TestBackend>(labels, &dev));
            checker.check_tensor(&case, &format!("model_out_{name}"), out);
            let score = ScoreFn::new(&sde, &net, continuous)
                .score(x.clone(), &t)
                .unwrap_or_else(|e| panic!("{}: {e}", case.id()));
            checker.check_tensor(&case, &format!("score_{name}"), score);
        }
    }
    checker.finish("nets parity");
}
