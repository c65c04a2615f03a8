//! `cargo xtask eval` and `cargo xtask data inception` end to end (CPU, seconds): a tiny run
//! trained by `train` is evaluated (eval loss, bits/dim) with one report per checkpoint and the
//! combined table; bad input — a checkpoint range with holes, missing Inception weights, a
//! statistics file of unknown layout — is one clear error naming the file; offline, `data
//! inception` says where to put the weights.

use std::path::{Path, PathBuf};

use sgm_config::{ExperimentConfig, Override};
use sgm_train::demo::{BASE_CONFIG, DemoOptions};

mod common;
use common::{Tmp, fails_with, ok, xtask};

/// The demo's tiny 8×8 config, one training step, a checkpoint per step, eval batches of 4.
fn tiny_config(dir: &Path) -> PathBuf {
    let mut o = DemoOptions::tiny(dir).overrides();
    for (k, v) in [
        ("training.n_iters", 1i64),
        ("training.snapshot_freq", 1),
        ("eval.batch_size", 4),
    ] {
        o.push(Override::new(k, v));
    }
    let cfg = ExperimentConfig::load_with(BASE_CONFIG, &o).unwrap();
    let path = dir.join("tiny.toml");
    std::fs::write(&path, cfg.to_toml().unwrap()).unwrap();
    path
}

fn image_folder(dir: &Path) -> PathBuf {
    let d = dir.join("images");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..8u32 {
        let img = image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([(x * 30 + i * 7) as u8, (y * 30) as u8, (i * 31) as u8])
        });
        img.save(d.join(format!("{i}.png"))).unwrap();
    }
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eval_of_a_tiny_run_writes_its_reports() {
    let tmp = Tmp::new("eval");
    let config = tiny_config(&tmp.0);
    let images = image_folder(&tmp.0);
    let run = tmp.0.join("run");
    ok(&xtask(&[
        "train",
        s(&config),
        "--workdir",
        s(&run),
        "--images",
        s(&images),
    ]));
    let o = xtask(&[
        "eval",
        s(&config),
        "--workdir",
        s(&run),
        "--images",
        s(&images),
        "--begin-ckpt",
        "1",
        "--end-ckpt",
        "1",
        "--set",
        "eval.enable_bpd=true",
        "--bpd-repeats",
        "1",
        "--bpd-tol",
        "0.01",
    ]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("eval loss") && out.contains("bits/dim"),
        "{out}"
    );
    assert!(out.contains("| 1 | 2 |"), "{out}");
    for f in ["report_1.json", "report_1.md", "report.json", "report.md"] {
        assert!(run.join("eval").join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval/report_1.json")).unwrap())
            .unwrap();
    assert!(report["loss"]["mean"].as_f64().unwrap().is_finite());
    assert_eq!(report["bpd"]["images"], 8);
}

#[test]
fn eval_bad_input_is_one_clear_error_naming_the_file() {
    let tmp = Tmp::new("eval-errors");
    let config = tiny_config(&tmp.0);
    let run = tmp.0.join("run");
    let ckpts = run.join("checkpoints");
    std::fs::create_dir_all(&ckpts).unwrap();
    // The checks come before any checkpoint is read: placeholders are enough.
    for k in [1, 3] {
        std::fs::write(ckpts.join(format!("checkpoint_{k}.safetensors")), b"").unwrap();
    }
    // score_sde layout: pool_3 features of two "images".
    let stats = tmp.0.join("stats.npz");
    let feats: Vec<f64> = (0..2 * 2048).map(|i| (i % 7) as f64).collect();
    sgm_eval::write_npz(&stats, &[("pool_3", &[2, 2048], &feats)]).unwrap();
    let missing = tmp.0.join("nowhere/pt_inception.pth");
    let eval = |begin: &str, end: &str, stats: &Path| {
        xtask(&[
            "eval",
            s(&config),
            "--workdir",
            s(&run),
            "--begin-ckpt",
            begin,
            "--end-ckpt",
            end,
            "--set",
            "eval.enable_loss=false",
            "--set",
            "eval.enable_sampling=true",
            "--inception",
            s(&missing),
            "--stats",
            s(stats),
        ])
    };
    let hole = ckpts.join("checkpoint_2.safetensors");
    fails_with(&eval("1", "3", &stats), &[s(&hole), "holes"]);
    fails_with(&eval("1", "1", &stats), &[s(&missing), "not found"]);
    let odd = tmp.0.join("odd.npz");
    sgm_eval::write_npz(&odd, &[("features", &[2], &[1.0, 2.0])]).unwrap();
    fails_with(
        &eval("1", "1", &odd),
        &[s(&odd), "unknown statistics layout"],
    );
}

#[test]
fn data_inception_offline_says_where_to_put_the_weights() {
    let tmp = Tmp::new("inception");
    let dir = tmp.0.join("weights");
    let o = xtask(&["data", "inception", "--dir", s(&dir), "--offline"]);
    let target = dir.join(sgm_eval::weights::FID_WEIGHTS_FILE);
    fails_with(&o, &[s(&target), sgm_eval::weights::FID_WEIGHTS_URL]);

    // The shared fc-less copy is recognised, and the missing classifier is said.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/inception");
    if shared.join("pt_inception-2015-12-05.pth").is_file() {
        let o = xtask(&["data", "inception", "--dir", s(&shared), "--offline"]);
        ok(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("no `fc`") && out.contains("--inception"),
            "{out}"
        );
    }
}
