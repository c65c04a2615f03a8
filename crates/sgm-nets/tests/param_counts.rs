//! Parameter counts of the full-size paper configs equal the reference's (reference §7.7: the
//! counts were computed with the PyTorch reference, `sum(p.numel())`; "total" includes the
//! frozen Fourier `W`). Parameters are lazy, so nothing is allocated.

use sgm_nets::{ModelConfig, ScoreNet};
use sgm_testkit::{TestBackend, device};

fn cfg(model: &str, data: &str) -> ModelConfig {
    ModelConfig::from_json_str(&format!("{{\"model\": {{{model}}}, \"data\": {{{data}}}}}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

const NCSNPP_DEEP_VE: &str = r#""name": "ncsnpp", "nf": 128, "ch_mult": [1, 2, 2, 2],
    "num_res_blocks": 8, "attn_resolutions": [16], "resblock_type": "biggan", "fir": true,
    "skip_rescale": true, "progressive": "none", "progressive_input": "residual",
    "embedding_type": "fourier", "fourier_scale": 16, "scale_by_sigma": true"#;

#[test]
fn full_size_configs_have_the_reference_parameter_counts() {
    let c32 = r#""image_size": 32, "num_channels": 3, "centered": false"#;
    let c32c = r#""image_size": 32, "num_channels": 3, "centered": true"#;
    let ddpmpp = |blocks: usize| {
        format!(
            r#""name": "ncsnpp", "nf": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": {blocks},
            "attn_resolutions": [16], "resblock_type": "biggan", "fir": false, "skip_rescale": true,
            "progressive": "none", "progressive_input": "none", "embedding_type": "positional""#
        )
    };
    let ncsnpp_pos = |blocks: usize| {
        format!(
            r#""name": "ncsnpp", "nf": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": {blocks},
            "attn_resolutions": [16], "resblock_type": "biggan", "fir": true, "skip_rescale": true,
            "progressive": "none", "progressive_input": "residual", "embedding_type": "positional""#
        )
    };
    let cases: Vec<(&str, ModelConfig, usize, usize)> = vec![
        (
            "NCSN++ cont. deep (VE)",
            cfg(NCSNPP_DEEP_VE, c32),
            107_587_075,
            107_586_947,
        ),
        (
            "NCSN++ cont. deep (VE), nf 32",
            cfg(&NCSNPP_DEEP_VE.replace("\"nf\": 128", "\"nf\": 32"), c32),
            6_756_739,
            6_756_707,
        ),
        (
            "DDPM++ cont. deep (VP)",
            cfg(&ddpmpp(8), c32c),
            106_632_579,
            106_632_579,
        ),
        (
            "NCSN++ cont. deep, positional (VP)",
            cfg(&ncsnpp_pos(8), c32c),
            107_521_411,
            107_521_411,
        ),
        (
            "NCSN++ cont., 4 blocks (VE)",
            cfg(
                &NCSNPP_DEEP_VE.replace("\"num_res_blocks\": 8", "\"num_res_blocks\": 4"),
                c32,
            ),
            62_758_915,
            62_758_787,
        ),
        (
            "DDPM++ cont., 4 blocks (VP)",
            cfg(&ddpmpp(4), c32c),
            61_804_419,
            61_804_419,
        ),
        (
            "DDPM (CIFAR-10)",
            cfg(
                r#""name": "ddpm", "nf": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2,
                "attn_resolutions": [16], "resamp_with_conv": true, "conditional": true"#,
                c32c,
            ),
            35_218_947,
            35_218_947,
        ),
        (
            "NCSN++ 256 px (CelebA-HQ)",
            cfg(
                r#""name": "ncsnpp", "nf": 128, "ch_mult": [1, 1, 2, 2, 2, 2, 2],
                "num_res_blocks": 2, "attn_resolutions": [16], "resblock_type": "biggan",
                "fir": true, "skip_rescale": true, "progressive": "output_skip",
                "progressive_input": "input_skip", "progressive_combine": "sum",
                "embedding_type": "fourier", "scale_by_sigma": true, "dropout": 0.0"#,
                r#""image_size": 256, "num_channels": 3, "centered": false"#,
            ),
            65_574_549,
            65_574_421,
        ),
        (
            "NCSN++ 1024 px (FFHQ)",
            cfg(
                r#""name": "ncsnpp", "nf": 16, "ch_mult": [1, 2, 4, 8, 16, 32, 32, 32],
                "num_res_blocks": 1, "attn_resolutions": [16], "resblock_type": "biggan",
                "fir": true, "skip_rescale": true, "progressive": "output_skip",
                "progressive_input": "input_skip", "progressive_combine": "sum",
                "embedding_type": "fourier", "scale_by_sigma": true, "dropout": 0.0"#,
                r#""image_size": 1024, "num_channels": 3, "centered": false"#,
            ),
            105_785_896,
            105_785_880,
        ),
    ];
    let mut failures = Vec::new();
    for (what, c, total, trainable) in cases {
        let net = ScoreNet::<TestBackend>::new(&c, &device()).unwrap_or_else(|e| panic!("{e}"));
        let got = net.param_counts();
        if got != (total, trainable) {
            failures.push(format!(
                "{what}: (total, trainable) = {got:?}, reference ({total}, {trainable})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
