//! The `training/` fixture checkpoints (real Adam state, a numpy-scalar learning rate in the
//! optimizer state) load too: the model weights equal the case's `final_params.*` and the EMA
//! weights its `final_ema.*` (fixtures README §5.7), exactly.

use std::collections::HashMap;

use sgm_nets::weights::{HostData, read_checkpoint};
use sgm_nets::{CheckpointWeights, ModelConfig};
use sgm_testkit::{Checker, TestBackend, cases, device};

#[test]
fn training_checkpoints_hold_the_final_params_and_ema() {
    let dev = device();
    let mut checker = Checker::new();
    for case in cases("training") {
        checker.visit(&case);
        let cfg = ModelConfig::from_fixture_model(&case.json["model"])
            .unwrap_or_else(|e| panic!("{}: {e}", case.id()));
        let pth = case.dir.join("checkpoint.pth");
        for (which, prefix) in [
            (CheckpointWeights::Model, "final_params."),
            (CheckpointWeights::Ema, "final_ema."),
        ] {
            let sd = match read_checkpoint::<TestBackend>(&cfg, &pth, which, &dev) {
                Ok(sd) => sd,
                Err(e) => {
                    checker.fail(&case, format!("{which:?}: {e}"));
                    continue;
                }
            };
            let by_key: HashMap<&str, &sgm_nets::weights::HostTensor> =
                sd.tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let names: Vec<String> = case
                .outputs()
                .into_iter()
                .filter(|n| n.starts_with(prefix))
                .collect();
            let mut compared = 0;
            for name in &names {
                let key = &name[prefix.len()..];
                let exp = case.tensor(name);
                match by_key.get(key) {
                    Some(t) => {
                        let HostData::F32(v) = &t.data else {
                            checker.fail(&case, format!("{key}: not float32"));
                            continue;
                        };
                        if t.shape != exp.shape
                            || v.iter().zip(&exp.data).any(|(a, e)| *a as f64 != *e)
                        {
                            checker.fail(&case, format!("{which:?} `{key}` differs from `{name}`"));
                        }
                        compared += 1;
                    }
                    None => checker.fail(&case, format!("{which:?}: no `{key}` in the checkpoint")),
                }
            }
            if names.is_empty() {
                checker.fail(&case, format!("{which:?}: no `{prefix}*` outputs"));
            }
            checker.check_count(
                &case,
                &format!("{which:?} tensors found"),
                compared,
                names.len() as i64,
                0,
            );
        }
    }
    checker.finish("training checkpoints");
}
