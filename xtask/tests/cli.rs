//! The commands end to end on a tiny network (CPU, seconds): sample (PC and ODE), likelihood,
//! inpaint, colorize, and their errors for bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use burn::backend::Flex;

mod common;
use common::{Tmp, ok, xtask};

/// An official config shrunk to a tiny 16×16 network, and its (untrained) weights.
fn tiny(dir: &Path, base: &str) -> (PathBuf, PathBuf) {
    let overrides = [
        "model.nf=8",
        "model.num_res_blocks=1",
        "model.ch_mult=[1, 2]",
        "model.attn_resolutions=[8]",
        "data.image_size=16",
    ]
    .map(|s| s.parse().unwrap());
    let cfg = sgm_config::ExperimentConfig::load_with(base, &overrides).unwrap();
    let config = dir.join("tiny.toml");
    std::fs::write(&config, cfg.to_toml().unwrap()).unwrap();
    let model = cfg.network::<Flex>(&Default::default()).unwrap();
    let weights = dir.join("tiny.safetensors");
    sgm_nets::save_safetensors(&model, &weights).unwrap();
    (config, weights)
}

fn write_png(path: &Path, f: impl Fn(u32, u32, usize) -> u8) {
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
    });
    img.save(path).unwrap();
}

#[test]
fn sample_pc_and_ode_write_a_grid_and_the_raw_samples() {
    let tmp = Tmp::new("sample");
    let (config, weights) = tiny(&tmp.0, "ve/cifar10_ncsnpp_continuous");
    let (c, w) = (config.to_str().unwrap(), weights.to_str().unwrap());
    let out = tmp.0.join("pc");
    let o = xtask(&[
        "sample",
        "--config",
        c,
        "--checkpoint",
        w,
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--corrector",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("NFE: 3 network calls"));
    let raw = std::fs::read(out.join("samples.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&raw).unwrap();
    let s = st.tensor("samples").unwrap();
    assert_eq!(s.shape(), &[2, 3, 16, 16]);
    assert!(image::open(out.join("samples.png")).is_ok());

    let out = tmp.0.join("ode");
    let o = xtask(&[
        "sample",
        "--config",
        c,
        "--checkpoint",
        w,
        "--method",
        "ode",
        "--tol",
        "1e-2",
        "--batch-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    assert!(out.join("samples.safetensors").is_file());
}

#[test]
fn sample_num_samples_writes_one_png_per_image_and_resumes() {
    let tmp = Tmp::new("sample-many");
    let (config, weights) = tiny(&tmp.0, "vp/cifar10_ddpmpp_continuous");
    let out = tmp.0.join("many");
    let args = [
        "sample",
        "--config",
        config.to_str().unwrap(),
        "--checkpoint",
        weights.to_str().unwrap(),
        "--steps",
        "3",
        "--num-samples",
        "3",
        "--batch-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = xtask(&args);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("over 3 new images"));
    for k in 0..3 {
        let img = image::open(out.join(format!("images/{k:06}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (16, 16));
    }
    let st = std::fs::read(out.join("samples.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert_eq!(st.tensor("samples").unwrap().shape(), &[3, 3, 16, 16]);
    // Interrupted after image 1: the rerun makes only the missing one, the same as before.
    let before = std::fs::read(out.join("images/000002.png")).unwrap();
    std::fs::remove_file(out.join("images/000002.png")).unwrap();
    let o = xtask(&args);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("over 1 new images (2 were already there)")
    );
    assert_eq!(
        std::fs::read(out.join("images/000002.png")).unwrap(),
        before
    );
    // `fid` and friends read the output folder as its images.
    let imgs = sgm_eval::read_images(&out, 0, None).unwrap();
    assert_eq!(imgs.n, 3);
}

#[test]
fn likelihood_inpaint_and_colorize_run_on_png_inputs() {
    let tmp = Tmp::new("control");
    let (config, weights) = tiny(&tmp.0, "vp/cifar10_ddpmpp_continuous");
    let (c, w) = (config.to_str().unwrap(), weights.to_str().unwrap());
    let imgs = tmp.0.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let a = imgs.join("a.png");
    let b = imgs.join("b.png");
    write_png(&a, |x, y, ch| (x * 13 + y * 7 + ch as u32 * 40) as u8);
    write_png(&b, |x, y, ch| (255 - x * 9 - y * 5) as u8 ^ (ch as u8 * 3));
    let o = xtask(&[
        "likelihood",
        "--config",
        c,
        "--checkpoint",
        w,
        "--data",
        imgs.to_str().unwrap(),
        "--batch-size",
        "2",
        "--tol",
        "1e-2",
    ]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("bits/dim:") && text.contains("over 2 images"),
        "{text}"
    );

    let mask = tmp.0.join("mask.png");
    image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]))
        .save(&mask)
        .unwrap();
    let out = tmp.0.join("inpaint");
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    ok(&xtask(&[
        "inpaint",
        "--config",
        c,
        "--checkpoint",
        w,
        "--steps",
        "3",
        "--mask",
        mask.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        a_s,
        b_s,
    ]));
    // Known pixels (left half) are kept exactly (up to 8-bit rounding of the PNG).
    let raw = std::fs::read(out.join("inpainted.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&raw).unwrap();
    let v: Vec<f32> = st
        .tensor("samples")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let src = image::open(&a).unwrap().to_rgb8();
    for y in 0..16u32 {
        for x in 0..8u32 {
            let got = v[(y * 16 + x) as usize]; // image 0, channel 0
            let want = src.get_pixel(x, y)[0] as f32 / 255.0;
            assert!(
                (got - want).abs() < 1e-5,
                "pixel ({x},{y}): {got} vs {want}"
            );
        }
    }
    let out = tmp.0.join("color");
    ok(&xtask(&[
        "colorize",
        "--config",
        c,
        "--checkpoint",
        w,
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
        a_s,
    ]));
    assert!(out.join("colorized.png").is_file());
}

/// `xtask sample` of `config` / `weights` into `out`, batch 2, with `extra` arguments.
fn sample_into(config: &Path, weights: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "sample",
        "--config",
        config.to_str().unwrap(),
        "--checkpoint",
        weights.to_str().unwrap(),
        "--batch-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    xtask(&a)
}

/// Fast samplers from the command line: `--method heun --steps 3 --schedule karras` (NFE
/// 2·3 − 1), a VP model through the VP adapter, and bad options as one clear error.
#[test]
fn sample_with_fast_samplers() {
    let tmp = Tmp::new("fast");
    for (base, args, nfe) in [
        (
            "ve/cifar10_ncsnpp_continuous",
            &["--method", "heun", "--steps", "3", "--schedule", "karras"][..],
            "NFE: 5 network calls",
        ),
        (
            "vp/cifar10_ddpmpp_continuous",
            &[
                "--method",
                "dpmpp_2m_sde",
                "--steps",
                "4",
                "--schedule",
                "exponential",
                "--kwarg",
                "solver_type=heun",
            ][..],
            "NFE: 4 network calls",
        ),
    ] {
        let (config, weights) = tiny(&tmp.0, base);
        let out = tmp.0.join(base.replace('/', "_"));
        let o = sample_into(&config, &weights, &out, args);
        ok(&o);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(nfe), "{base}: {stdout}");
        assert!(out.join("samples.safetensors").is_file());
    }
    let (config, weights) = tiny(&tmp.0, "ve/cifar10_ncsnpp_continuous");
    for (bad, needle) in [
        (
            &["--method", "heun", "--kwarg", "eta=1"][..],
            "takes no option `eta`",
        ),
        (
            &["--method", "hune"][..],
            "invalid value 'hune' for '--method",
        ),
        (
            &["--method", "euler", "--schedule", "cosine"][..],
            "unknown schedule",
        ),
        (
            &["--method", "euler", "--sigma-range", "0.01", "500"][..],
            "outside the VESDE model's noise range",
        ),
    ] {
        let mut a = vec!["--steps", "2"];
        a.extend_from_slice(bad);
        let o = sample_into(&config, &weights, &tmp.0.join("bad"), &a);
        assert!(!o.status.success(), "{bad:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn bad_input_is_one_clear_error() {
    let tmp = Tmp::new("errors");
    let (config, weights) = tiny(&tmp.0, "ve/cifar10_ncsnpp_continuous");
    let c = config.to_str().unwrap();
    let missing = tmp.0.join("nope.pth");
    let o = xtask(&[
        "sample",
        "--config",
        c,
        "--checkpoint",
        missing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nope.pth") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // A truncated checkpoint names the file.
    let bytes = std::fs::read(&weights).unwrap();
    let cut = tmp.0.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = xtask(&[
        "sample",
        "--config",
        c,
        "--checkpoint",
        cut.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.safetensors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An unknown config key is named.
    let bad = tmp.0.join("bad.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[sampling]", "[sampling]\nsnrr = 0.1");
    std::fs::write(&bad, text).unwrap();
    let o = xtask(&[
        "sample",
        "--config",
        bad.to_str().unwrap(),
        "--checkpoint",
        weights.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("snrr"), "{err}");

    // A crashing reference combination is a clear error, not a panic.
    let o = xtask(&[
        "sample",
        "--config",
        c,
        "--checkpoint",
        weights.to_str().unwrap(),
        "--predictor",
        "ancestral_sampling",
        "--probability-flow",
        "--steps",
        "2",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_lists_resolves_names_and_applies_set() {
    let o = xtask(&["config"]);
    ok(&o);
    let list = String::from_utf8_lossy(&o.stdout);
    assert_eq!(list.lines().count(), 39, "{list}");
    assert!(
        list.lines().any(|l| l
            .split_whitespace()
            .eq(["ve/ncsnpp-deep-cont", "ve/cifar10_ncsnpp_deep_continuous"])),
        "{list}"
    );

    let o = xtask(&[
        "config",
        "ncsnpp-deep-cont",
        "--set",
        "training.batch_size=8",
    ]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("ve/cifar10_ncsnpp_deep_continuous"), "{text}");
    assert!(text.contains("batch_size = 8"), "{text}");
    assert!(text.contains("VESDE with N = 1000"), "{text}");

    for (args, needle) in [
        (vec!["config", "ddpmpp-deep-cont"], "vp/ddpmpp-deep-cont"),
        (vec!["config", "no-such-config"], "no-such-config"),
        (
            vec!["config", "ve/ncsnpp", "--set", "training.batch_sise=8"],
            "batch_sise",
        ),
        (
            vec!["config", "ve/ncsnpp", "--set", "training.batch_size"],
            "KEY=VALUE",
        ),
    ] {
        let o = xtask(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn sample_reads_set_overrides() {
    let tmp = Tmp::new("set");
    let (config, weights) = tiny(&tmp.0, "ve/ncsnpp-cont");
    let out = tmp.0.join("out");
    let (c, w, out) = (
        config.to_str().unwrap(),
        weights.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let sample = |set: &str| {
        let args = [
            "--steps",
            "3",
            "--batch-size",
            "1",
            "--out",
            out,
            "--set",
            set,
        ];
        xtask(&[&["sample", "--config", c, "--checkpoint", w], &args[..]].concat())
    };
    let o = sample("sampling.n_steps_each=2");
    ok(&o);
    // N = 3 steps of one predictor and two corrector calls (the config has one).
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("NFE: 9 network calls"), "{text}");
    let o = sample("sampling.snr=fast");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("snr") && err.contains("fast"), "{err}");
}

#[test]
fn fid_and_fid_stats_on_cifar_batches() {
    let tmp = Tmp::new("fid");
    // Missing weights: one error naming the file.
    let o = xtask(&["fid", "a.bin", "b.bin", "--inception", "/nonexistent/w.pth"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/w.pth") && !err.contains("panicked"),
        "{err}"
    );

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data.join("inception").is_dir() {
        eprintln!(
            "\n*** SKIPPING fid CLI run: no data at {} ***\n",
            data.display()
        );
        return;
    }
    let w = data.join("inception/pt_inception-2015-12-05.pth");
    let test = data.join("cifar10/test_batch.bin");
    let train = data.join("cifar10/data_batch_1.bin");
    let npz = tmp.0.join("test8.npz");
    let (w, test, train, npz_s) = (
        w.to_str().unwrap(),
        test.to_str().unwrap(),
        train.to_str().unwrap(),
        npz.to_str().unwrap(),
    );
    ok(&xtask(&[
        "fid-stats",
        test,
        npz_s,
        "--inception",
        w,
        "--count",
        "8",
        "--batch-size",
        "8",
    ]));
    // Several inputs: the statistics of their images together.
    let both = tmp.0.join("both.npz");
    ok(&xtask(&[
        "fid-stats",
        test,
        train,
        both.to_str().unwrap(),
        "--inception",
        w,
        "--count",
        "4",
        "--batch-size",
        "4",
    ]));
    let mut px = sgm_eval::images::read_cifar10_bin(Path::new(test), 0, Some(4)).unwrap();
    px.data.extend(
        sgm_eval::images::read_cifar10_bin(Path::new(train), 0, Some(4))
            .unwrap()
            .data,
    );
    let unit: Vec<f32> = px.data.iter().map(|&p| p as f32 / 255.0).collect();
    let concat = tmp.0.join("concat.safetensors");
    sgm_eval::images::write_sample_array(&concat, [8, 3, 32, 32], &unit).unwrap();
    let concat_npz = tmp.0.join("concat.npz");
    ok(&xtask(&[
        "fid-stats",
        concat.to_str().unwrap(),
        concat_npz.to_str().unwrap(),
        "--inception",
        w,
        "--batch-size",
        "4",
    ]));
    let (a, b) = (
        sgm_eval::read_stats(&both).unwrap(),
        sgm_eval::read_stats(&concat_npz).unwrap(),
    );
    let close = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .all(|(p, q)| (p - q).abs() <= 1e-6 * (1.0 + q.abs()))
    };
    assert!(close(&a.mu, &b.mu) && close(&a.sigma, &b.sigma));
    // Same statistics on both sides: FID 0, no network needed.
    let o = xtask(&["fid", npz_s, npz_s]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    let fid: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("FID: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // ≈ 0: the square roots of the ~2040 round-off eigenvalues of a rank-7 covariance add ~1e-4.
    assert!(fid.abs() < 1e-2, "{out}");
    // Images against statistics, and images against images (with KID).
    ok(&xtask(&[
        "fid",
        train,
        npz_s,
        "--inception",
        w,
        "--count",
        "8",
        "--batch-size",
        "8",
    ]));
    let o = xtask(&[
        "fid",
        train,
        test,
        "--inception",
        w,
        "--count",
        "8",
        "--batch-size",
        "8",
    ]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("FID: ") && out.contains("KID: "), "{out}");
}

/// Typed options: a wrong `--method`, `--predictor`, `--corrector` or `--hutchinson` is one
/// clap error listing the valid names, raised before any config or checkpoint is read.
#[test]
fn typed_sampler_options_are_checked_before_anything_is_loaded() {
    let model = [
        "--config",
        "no-such-config",
        "--checkpoint",
        "/nonexistent/ck.pth",
    ];
    for (cmd, flag, bad, valid) in [
        ("sample", "--method", "hune", "dpmpp_2m"),
        ("sample", "--predictor", "euler", "euler_maruyama"),
        ("sample", "--corrector", "langevn", "langevin"),
        ("likelihood", "--hutchinson", "normal", "rademacher"),
    ] {
        let mut args = vec![cmd];
        args.extend(model);
        if cmd == "likelihood" {
            args.extend(["--data", "/nonexistent/data"]);
        }
        args.extend([flag, bad]);
        let o = xtask(&args);
        common::fails_with(&o, &[&format!("invalid value '{bad}' for '{flag}"), valid]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("no-such-config"),
            "{flag}: read the config first: {err}"
        );
    }
    // Names are case-insensitive, as the reference's registries.
    let o = xtask(&[
        "sample",
        "--config",
        "no-such-config",
        "--checkpoint",
        "/x.pth",
        "--predictor",
        "Euler_Maruyama",
    ]);
    common::fails_with(&o, &["no-such-config"]);
}
