//! Layer checks: FIR resampling against the reference's check values (reference §7.2), the
//! fused FIR up-conv (broken in PyTorch, §7.3) against its unfused definition, and a forward
//! pass for every knob combination the fixtures do not cover.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use sde_core::{Labels, ScoreModel};
use sgm_nets::layers::fir;
use sgm_nets::{ModelConfig, ScoreNet};
use sgm_testkit::{TestBackend, device, host};

const K: [f64; 4] = [1.0, 3.0, 3.0, 1.0];

fn ramp(n: usize, c: usize, h: usize) -> Tensor<TestBackend, 4> {
    let v: Vec<f32> = (0..n * c * h * h)
        .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
        .collect();
    Tensor::from_data(TensorData::new(v, [n, c, h, h]), &device())
}

#[test]
fn fir_resampling_matches_the_reference_check_values() {
    let x = Tensor::<TestBackend, 4>::from_data(
        TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4, 4]),
        &device(),
    );
    let (shape, d) = host(fir::downsample_2d(x.clone(), &K));
    assert_eq!(shape, [1, 1, 2, 2]);
    for (a, e) in d.iter().zip([2.734375, 3.9375, 7.546875, 8.75]) {
        assert!((a - e).abs() < 1e-5, "downsample_2d: {d:?}");
    }
    let (shape, u) = host(fir::upsample_2d(x, &K));
    assert_eq!(shape, [1, 1, 8, 8]);
    let row0 = [0.0, 0.1875, 0.5625, 0.9375, 1.3125, 1.6875, 2.0625, 1.6875];
    for (a, e) in u.iter().zip(row0) {
        assert!((a - e).abs() < 1e-5, "upsample_2d first row: {:?}", &u[..8]);
    }
}

#[test]
fn fused_fir_up_conv_equals_fir_upsample_then_conv_in_the_interior() {
    let x = ramp(2, 3, 6);
    let w = ramp(4, 3, 3).mul_scalar(0.7); // [out 4, in 3, 3, 3]
    let fused = fir::upsample_conv_2d(x.clone(), w.clone(), &K);
    let unfused = conv2d(
        fir::upsample_2d(x, &K),
        w,
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    );
    assert_eq!(fused.dims(), [2, 4, 12, 12]);
    assert_eq!(unfused.dims(), [2, 4, 12, 12]);
    // the two differ only by how the borders are padded
    let a = host(fused.slice(s![.., .., 2..10, 2..10])).1;
    let b = host(unfused.slice(s![.., .., 2..10, 2..10])).1;
    let err = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (p, q)| m.max((p - q).abs()));
    assert!(err < 1e-5, "max |fused − unfused| in the interior = {err}");
}

#[test]
fn every_knob_combination_runs() {
    let dev = device();
    let variants = [
        r#""resblock_type": "ddpm", "fir": true, "progressive": "residual", "progressive_input": "residual""#,
        r#""resblock_type": "ddpm", "fir": false, "resamp_with_conv": false, "progressive": "output_skip", "progressive_input": "input_skip", "progressive_combine": "cat""#,
        r#""resblock_type": "biggan", "fir": true, "progressive": "residual", "progressive_input": "input_skip", "progressive_combine": "cat", "skip_rescale": false"#,
        r#""resblock_type": "biggan", "fir": false, "progressive": "output_skip", "progressive_input": "residual", "nonlinearity": "elu""#,
        r#""conditional": false, "nonlinearity": "relu""#,
        r#""embedding_type": "positional", "scale_by_sigma": true, "nonlinearity": "lrelu""#,
        r#""embedding_type": "positional", "scale_by_sigma": false, "num_scales": 10"#,
    ];
    let mut cfgs: Vec<String> = variants
        .iter()
        .map(|v| {
            format!(
                r#"{{"model": {{"name": "ncsnpp", "nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1,
                "attn_resolutions": [8], {v}}}, "data": {{"image_size": 16}}}}"#
            )
        })
        .collect();
    cfgs.push(
        r#"{"model": {"name": "ddpm", "nf": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8],
        "conditional": false, "resamp_with_conv": false}, "data": {"image_size": 16, "centered": true}}"#
            .into(),
    );
    cfgs.push(
        r#"{"model": {"name": "ddpm", "nf": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8],
        "scale_by_sigma": true}, "data": {"image_size": 16}}"#
            .into(),
    );
    for c in cfgs {
        let cfg = ModelConfig::from_json_str(&c).unwrap_or_else(|e| panic!("{e}: {c}"));
        let net = ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap();
        let x = ramp(2, 3, 16);
        let labels =
            Tensor::<TestBackend, 1>::from_data(TensorData::new(vec![0.5f32, 3.0], [2]), &dev);
        let (shape, v) = host(net.forward(x, Labels::Float(labels)));
        assert_eq!(shape, [2, 3, 16, 16], "{c}");
        assert!(v.iter().all(|a| a.is_finite()), "{c}");
    }
}

#[test]
fn out_of_range_labels_are_an_error() {
    let dev = device();
    let cfg = ModelConfig::from_json_str(
        r#"{"model": {"name": "ncsnpp", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
        "embedding_type": "positional", "scale_by_sigma": true, "num_scales": 10}, "data": {"image_size": 8}}"#,
    )
    .unwrap();
    let net = ScoreNet::<TestBackend>::new(&cfg, &dev).unwrap();
    let labels =
        Tensor::<TestBackend, 1, Int>::from_data(TensorData::new(vec![3i64, 10], [2]), &dev);
    let e = net
        .try_forward(ramp(2, 3, 8), Labels::Int(labels))
        .unwrap_err();
    assert!(e.to_string().contains("10"), "{e}");
}
