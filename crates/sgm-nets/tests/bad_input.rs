//! Bad shapes passed to a network are errors, not panics deep inside Burn (issue 15):
//! `ScoreNet::try_forward`, `ScoreModel::try_forward` and score functions built on it.

use burn::prelude::*;
use sde_core::{Labels, ScoreFn, ScoreFunction, ScoreModel, SdeError, VeSde};
use sgm_nets::{ModelConfig, NetsError, ScoreNet};
use sgm_testkit::{TestBackend, device};

type B = TestBackend;

fn net() -> ScoreNet<B> {
    let cfg = ModelConfig::from_json_str(
        r#"{"model": {"name": "ncsnpp", "nf": 8, "num_res_blocks": 1}, "data": {"image_size": 16}}"#,
    )
    .unwrap();
    ScoreNet::new(&cfg, &device()).unwrap()
}

fn labels(n: usize) -> Labels<B> {
    Labels::Float(Tensor::from_data(
        TensorData::new(vec![0.5f32; n], [n]),
        &device(),
    ))
}

#[test]
fn wrong_shapes_are_errors_naming_both_shapes() {
    let net = net();
    let dev = device();
    let bad: [([usize; 4], usize); 4] = [
        ([2, 1, 16, 16], 2), // channels
        ([2, 3, 8, 16], 2),  // height
        ([2, 3, 16, 16], 3), // label count
        ([0, 3, 16, 16], 0), // empty batch
    ];
    for (shape, n) in bad {
        let x = Tensor::<B, 4>::zeros(shape, &dev);
        match net.try_forward(x.clone(), labels(n)) {
            Err(e @ NetsError::Input(_)) => {
                let m = e.to_string();
                assert!(m.contains(&format!("{shape:?}")) && m.contains("16"), "{m}");
            }
            other => panic!("{shape:?}: expected an input error, got {other:?}"),
        }
        // through the sde-core trait: the same error as an SdeError
        assert!(matches!(
            ScoreModel::try_forward(&net, x, labels(n)),
            Err(SdeError::Model(_))
        ));
    }
    // a good input still works
    let x = Tensor::<B, 4>::zeros([2, 3, 16, 16], &dev);
    assert_eq!(
        net.try_forward(x, labels(2)).unwrap().dims(),
        [2, 3, 16, 16]
    );
}

#[test]
fn score_functions_return_the_model_error() {
    let net = net();
    let sde = VeSde::new(0.01, 50.0, 1000).unwrap();
    let score = ScoreFn::new(&sde, &net, true);
    let x = Tensor::<B, 4>::zeros([1, 3, 32, 32], &device());
    match score.score(x, &[0.5]) {
        Err(SdeError::Model(m)) => assert!(m.contains("[1, 3, 32, 32]"), "{m}"),
        other => panic!("expected a model error, got {:?}", other.map(|t| t.dims())),
    }
}
