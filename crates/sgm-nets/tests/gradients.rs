//! Gradients flow: one backward pass of the case's training loss (continuous DSM, or SMLD /
//! DDPM for discrete cases) through every `nets/` fixture network on the autodiff backend
//! gives a finite, non-zero gradient for every trainable parameter.
//!
//! Exception (fixtures README §5.7): the attention *key* bias (`NIN_1.b` of an attention block)
//! has an exactly-zero true gradient — softmax is invariant to a per-query constant — so it is
//! only required to be finite (and tiny).

mod common;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use sde_core::{AnySde, LossConfig, training_loss};
use sgm_nets::{ScoreNet, load_safetensors};
use sgm_testkit::{SeededNoise, TestAutodiff, TestBackend, cases, device, sde_from_json};

struct Check<'a> {
    grads: &'a GradientsParams,
    path: Vec<(String, String)>,
    problems: Vec<String>,
    checked: usize,
}

impl ModuleVisitor<TestAutodiff> for Check<'_> {
    fn enter_module(&mut self, name: &str, ct: &str) {
        self.path.push((name.into(), ct.into()));
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<TestAutodiff, D>>) {
        let key: Vec<&str> = self
            .path
            .iter()
            .filter(|(_, c)| !c.starts_with("Enum:"))
            .map(|(n, _)| n.as_str())
            .collect();
        let key = key.join(".");
        let frozen = self
            .path
            .last()
            .is_some_and(|(n, c)| n == "W" && c == "Struct:FourierProjection");
        let g = self.grads.get::<TestBackend, D>(p.id);
        if frozen {
            if g.is_some() {
                self.problems
                    .push(format!("{key}: frozen Fourier W got a gradient"));
            }
            return;
        }
        self.checked += 1;
        let Some(g) = g else {
            self.problems.push(format!("{key}: no gradient"));
            return;
        };
        let v: Vec<f32> = g.into_data().convert::<f32>().to_vec().unwrap();
        if v.iter().any(|x| !x.is_finite()) {
            self.problems.push(format!("{key}: non-finite gradient"));
        }
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let key_bias =
            key.ends_with("NIN_1.b") && self.path.iter().any(|(_, c)| c == "Struct:AttnBlock");
        if max == 0.0 && !key_bias {
            self.problems.push(format!("{key}: all-zero gradient"));
        }
    }
}

#[test]
fn every_trainable_parameter_gets_a_finite_nonzero_gradient() {
    let dev = device();
    let mut problems = Vec::new();
    let mut n = 0;
    for case in cases("nets") {
        let cfg = common::nets_config(&case.dir);
        let net: ScoreNet<TestAutodiff> =
            load_safetensors(&cfg, &case.dir.join("model.safetensors"), &dev)
                .unwrap_or_else(|e| panic!("{e}"));
        let mode = &case.json["score_modes"][0];
        let sde: AnySde = sde_from_json(&mode["sde"]).unwrap();
        let loss_cfg = LossConfig {
            reduce_mean: true,
            continuous: mode["continuous"].as_bool().unwrap_or(true),
            likelihood_weighting: false,
            eps: 1e-5,
        };
        let x0 = case.tensor("x").tensor::<TestAutodiff, 4>(&dev);
        let mut noise = SeededNoise::new(7);
        let loss = training_loss(&sde, &net, x0, &loss_cfg, &mut noise)
            .unwrap_or_else(|e| panic!("{}: {e}", case.id()));
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let mut c = Check {
            grads: &grads,
            path: Vec::new(),
            problems: Vec::new(),
            checked: 0,
        };
        net.visit(&mut c);
        assert!(c.checked > 0);
        problems.extend(
            c.problems
                .into_iter()
                .map(|p| format!("{}: {p}", case.id())),
        );
        n += 1;
    }
    eprintln!("gradient flow: {n} nets");
    assert!(problems.is_empty(), "{problems:#?}");
}
