//! Weight I/O: official checkpoints (`checkpoint.pth`, model and EMA weights) load the same
//! tensors as `model.safetensors` for every `nets/` case; sgm's own safetensors round trip is
//! exact; bad inputs are one clear error naming the file / key / shapes.

mod common;

use burn::prelude::*;
use sde_core::{Labels, ScoreModel};
use sgm_nets::weights::{StateDict, apply_state_dict, read_safetensors};
use sgm_nets::{
    CheckpointWeights, ModelConfig, NetsError, ScoreNet, load_checkpoint, load_safetensors,
    save_safetensors, state_dict,
};
use sgm_testkit::{TestBackend, cases, device, host};

fn assert_same(a: &StateDict, b: &StateDict, what: &str) {
    let mut ka: Vec<&String> = a.tensors.keys().collect();
    let mut kb: Vec<&String> = b.tensors.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb, "{what}: key sets differ");
    for k in ka {
        assert!(a.tensors[k] == b.tensors[k], "{what}: tensor `{k}` differs");
    }
}

fn sample_out(net: &ScoreNet<TestBackend>, case: &sgm_testkit::Case) -> Vec<f64> {
    let dev = device();
    let x = case.tensor("x").tensor::<TestBackend, 4>(&dev);
    let b = x.dims()[0];
    // any in-range float label works for both embeddings: a σ / timestep of 0.5
    let labels = Tensor::<TestBackend, 1>::from_data(TensorData::new(vec![0.5f32; b], [b]), &dev);
    host(net.forward(x, Labels::Float(labels))).1
}

#[test]
fn checkpoint_model_and_ema_weights_equal_the_safetensors_weights() {
    let dev = device();
    let mut n = 0;
    for case in cases("nets") {
        let cfg = common::nets_config(&case.dir);
        let st = common::load_net(&case.dir);
        let pth = case.dir.join("checkpoint.pth");
        let model = load_checkpoint::<TestBackend>(&cfg, &pth, CheckpointWeights::Model, &dev)
            .unwrap_or_else(|e| panic!("{}: {e}", case.id()));
        let ema = load_checkpoint::<TestBackend>(&cfg, &pth, CheckpointWeights::Ema, &dev)
            .unwrap_or_else(|e| panic!("{}: {e}", case.id()));
        let sd = state_dict(&st);
        assert_same(&state_dict(&model), &sd, &format!("{} model", case.id()));
        assert_same(&state_dict(&ema), &sd, &format!("{} ema", case.id()));
        let want = sample_out(&st, &case);
        assert_eq!(
            sample_out(&model, &case),
            want,
            "{}: model output",
            case.id()
        );
        assert_eq!(sample_out(&ema, &case), want, "{}: ema output", case.id());
        n += 1;
    }
    eprintln!("checkpoint loading: {n} nets cases");
}

#[test]
fn own_safetensors_round_trip_is_exact() {
    let dev = device();
    let dir = std::env::temp_dir().join(format!("sgm-nets-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for case in cases("nets") {
        let cfg = common::nets_config(&case.dir);
        let net = common::load_net(&case.dir);
        let path = dir.join(format!("{}.safetensors", case.name));
        save_safetensors(&net, &path).unwrap_or_else(|e| panic!("{e}"));
        let back =
            load_safetensors::<TestBackend>(&cfg, &path, &dev).unwrap_or_else(|e| panic!("{e}"));
        assert_same(&state_dict(&back), &state_dict(&net), &case.id());
        // the saved file is also exactly the reference's state dict
        assert_same(
            &read_safetensors(&path).unwrap(),
            &read_safetensors(&case.dir.join("model.safetensors")).unwrap(),
            &format!("{} vs reference file", case.id()),
        );
        assert_eq!(sample_out(&back, &case), sample_out(&net, &case));
    }
    // a freshly initialised network round-trips too (lazy params materialised on save)
    let cfg = ModelConfig::from_json_str(
        r#"{"model": {"name": "ncsnpp", "nf": 8, "num_res_blocks": 1}, "data": {"image_size": 16}}"#,
    )
    .unwrap();
    let net = ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap();
    let path = dir.join("fresh.safetensors");
    save_safetensors(&net, &path).unwrap();
    let back = load_safetensors::<TestBackend>(&cfg, &path, &dev).unwrap();
    assert_same(&state_dict(&back), &state_dict(&net), "fresh");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dev = device();
    // unknown knob → error naming the key
    let e = ModelConfig::from_json_str(r#"{"model": {"name": "ncsnpp", "nff": 8}}"#).unwrap_err();
    assert!(e.to_string().contains("nff"), "{e}");
    // bad enum value
    let e = ModelConfig::from_json_str(r#"{"model": {"name": "ncsnpp", "progressive": "up"}}"#)
        .unwrap_err();
    assert!(e.to_string().contains("up"), "{e}");
    let Some(case) = cases("nets").into_iter().next() else {
        return;
    };
    let cfg = common::nets_config(&case.dir);
    // missing file names the file
    let missing = case.dir.join("no_such.safetensors");
    match load_safetensors::<TestBackend>(&cfg, &missing, &dev) {
        Err(NetsError::File { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a file error, got {other:?}"),
    }
    match load_checkpoint::<TestBackend>(&cfg, &missing, CheckpointWeights::Ema, &dev) {
        Err(NetsError::File { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a file error, got {other:?}"),
    }
    // truncated file names the file
    let dir = std::env::temp_dir().join(format!("sgm-nets-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(case.dir.join("model.safetensors")).unwrap();
    let trunc = dir.join("truncated.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load_safetensors::<TestBackend>(&cfg, &trunc, &dev),
        Err(NetsError::File { .. })
    ));
    let pbytes = std::fs::read(case.dir.join("checkpoint.pth")).unwrap();
    let ptrunc = dir.join("truncated.pth");
    std::fs::write(&ptrunc, &pbytes[..pbytes.len() / 2]).unwrap();
    assert!(load_checkpoint::<TestBackend>(&cfg, &ptrunc, CheckpointWeights::Model, &dev).is_err());
    let _ = std::fs::remove_dir_all(&dir);
    // wrong shape names the key and both shapes
    let mut sd = read_safetensors(&case.dir.join("model.safetensors")).unwrap();
    // the input conv: the first 4-D weight of the network
    let key = sgm_nets::param_entries(&ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap())
        .into_iter()
        .find(|e| e.shape.len() == 4)
        .map(|e| e.key)
        .unwrap();
    let t = sd.tensors.get_mut(&key).expect("input conv weight");
    let expected = t.shape.clone();
    t.shape[0] += 1;
    let found = t.shape.clone();
    match apply_state_dict(ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap(), &sd) {
        Err(e @ NetsError::ShapeMismatch { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(&key)
                    && m.contains(&format!("{found:?}"))
                    && m.contains(&format!("{expected:?}")),
                "{m}"
            );
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    // missing and unexpected keys
    let mut sd = read_safetensors(&case.dir.join("model.safetensors")).unwrap();
    let t = sd.tensors.remove(&key).unwrap();
    assert!(matches!(
        apply_state_dict(ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap(), &sd),
        Err(NetsError::MissingKey { key: ref k, .. }) if *k == key
    ));
    sd.tensors.insert(key, t.clone());
    sd.tensors.insert("all_modules.999.weight".into(), t);
    assert!(matches!(
        apply_state_dict(ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap(), &sd),
        Err(NetsError::UnexpectedKeys { .. })
    ));
}
