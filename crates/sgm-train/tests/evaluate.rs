//! `run_lib.evaluate` on a tiny run (seconds): train a few steps with the library, evaluate its
//! checkpoint (eval loss, bits/dim, samples → FID / KID against a score_sde-layout statistics
//! file made with the shared Inception weights); cut its partial results back to a
//! mid-checkpoint state (as a kill leaves them: some loss and bits/dim batches, some sample
//! PNGs and Inception batches, no report) and resume: the same report. Bad input — a checkpoint range with holes, missing Inception weights, a
//! statistics file of unknown layout — is one error naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sgm_config::{ExperimentConfig, Override};
use sgm_testkit::{TestAutodiff, TestBackend, device};
use sgm_train::data::{ImageSource, InMemoryImages};
use sgm_train::demo::{BASE_CONFIG, DemoOptions, generated_discs};
use sgm_train::evaluate::{EvalOptions, EvalPhase, EvalProgress, evaluate};
use sgm_train::{RunData, RunHooks, TrainConfig};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sgm-eval-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The demo's tiny 8×8 network, 2 training steps, a checkpoint at every step, eval batches of 4.
fn tiny_config() -> ExperimentConfig {
    let mut o = DemoOptions::tiny(Path::new(".")).overrides();
    for (k, v) in [
        ("training.n_iters", 2i64),
        ("training.snapshot_freq", 1),
        ("eval.batch_size", 4),
        ("eval.num_samples", 4),
        ("eval.begin_ckpt", 2),
        ("eval.end_ckpt", 2),
    ] {
        o.push(Override::new(k, v));
    }
    for k in [
        "eval.enable_loss",
        "eval.enable_bpd",
        "eval.enable_sampling",
    ] {
        o.push(Override::new(k, true));
    }
    ExperimentConfig::load_with(BASE_CONFIG, &o).unwrap()
}

fn data() -> RunData {
    RunData {
        train: Arc::new(generated_discs(64, 8, 1)),
        eval: Arc::new(generated_discs(8, 8, 2)),
    }
}

fn shared_data() -> Option<PathBuf> {
    let root = std::env::var_os("SGM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    root.join("inception/pt_inception-2015-12-05.pth")
        .is_file()
        .then_some(root)
}

/// Options of the test: reference knobs from the config, loose ODE tolerance, one bpd pass,
/// Inception batches of 2 (two feature files), KID blocks of 2 (two blocks, a standard error).
fn options(
    exp: &ExperimentConfig,
    inception: Option<PathBuf>,
    stats: Option<PathBuf>,
) -> EvalOptions {
    let mut o = EvalOptions::from_config(exp);
    o.likelihood.solver.rtol = 1e-2;
    o.likelihood.solver.atol = 1e-2;
    o.bpd_repeats = 1;
    o.enable_sampling = inception.is_some();
    o.inception = inception;
    o.stats = stats;
    o.inception_batch_size = 2;
    o.kid_block_size = 2;
    o
}

type Events = Vec<EvalProgress>;

fn run(
    exp: &ExperimentConfig,
    workdir: &Path,
    opts: &EvalOptions,
) -> (sgm_train::evaluate::EvalSummary, Events) {
    let mut events = Vec::new();
    let s = evaluate::<TestAutodiff>(exp, workdir, &data(), opts, &device(), &mut |p| {
        events.push(p.clone())
    })
    .unwrap();
    (s, events)
}

/// The first progress event of `phase`: where that part (re)started.
fn started_at(events: &Events, phase: EvalPhase) -> Option<usize> {
    events.iter().find(|e| e.phase == phase).map(|e| e.done)
}

#[test]
fn tiny_run_evaluates_and_an_interrupted_eval_resumes_to_the_same_report() {
    let dir = scratch("e2e");
    let workdir = dir.join("run");
    let exp = tiny_config();
    let cfg = TrainConfig::from_experiment(&exp).unwrap();
    sgm_train::train::<TestAutodiff>(&cfg, &workdir, data(), None, &device(), RunHooks::default())
        .unwrap();

    // The dataset's statistics: Inception pool_3 features of 4 eval images, score_sde layout.
    let weights = shared_data().map(|r| r.join("inception/pt_inception-2015-12-05.pth"));
    let stats = weights.as_ref().map(|w| {
        let net = sgm_eval::InceptionV3::<TestBackend>::load(w, &device()).unwrap();
        let eval = generated_discs(4, 8, 2);
        let imgs = sgm_eval::U8Images {
            n: eval.len(),
            channels: 3,
            height: 8,
            width: 8,
            data: eval.pixels,
        };
        let f = sgm_eval::extract(&net, &imgs, 4, &device(), |_| {}).unwrap();
        let path = dir.join("data_stats.npz");
        sgm_eval::write_npz(&path, &[("pool_3", &[4, sgm_eval::POOL3_DIM], &f.pool3)]).unwrap();
        path
    });
    if weights.is_none() {
        eprintln!("no shared Inception weights: FID / KID not exercised");
    }
    let opts = options(&exp, weights, stats);

    let (first, events) = run(&exp, &workdir, &opts);
    assert_eq!(first.reports.len(), 1);
    let r = &first.reports[0];
    let step = sgm_train::checkpoint::Checkpoint::read(
        &workdir.join("checkpoints/checkpoint_2.safetensors"),
    )
    .unwrap()
    .meta
    .step;
    assert_eq!((r.ckpt, r.step), (2, step));
    let loss = r.loss.as_ref().unwrap();
    assert_eq!((loss.batches.len(), loss.batch_size), (2, 4));
    assert!(loss.mean.is_finite() && loss.mean > 0.0, "{loss:?}");
    let bpd = r.bpd.as_ref().unwrap();
    assert_eq!(
        (bpd.images, bpd.repeats, bpd.dataset.as_str()),
        (8, 1, "test")
    );
    assert!(
        bpd.mean > 0.0 && bpd.mean < 50.0 && bpd.stderr > 0.0,
        "{bpd:?}"
    );
    if let Some(s) = &r.sampling {
        assert_eq!(s.num_samples, 4);
        assert!(s.fid.is_finite() && s.fid > 0.0, "{s:?}");
        assert!(
            s.kid
                .is_some_and(|k| k.mean.is_finite() && k.stderr.is_some()),
            "{s:?}"
        );
        // The shared weights have no fc: no IS, and the report says why.
        assert!(s.inception_score.is_none());
        assert!(s.notes.iter().any(|n| n.contains("fc")), "{:?}", s.notes);
        assert!(s.samples.join("images/000003.png").is_file());
    }
    for e in &events {
        assert!(e.done <= e.total && e.ckpt == 2, "{e:?}");
    }
    let eval = &first.eval_dir;
    for f in ["report_2.json", "report_2.md", "report.json", "report.md"] {
        assert!(eval.join(f).is_file(), "{f} missing");
    }
    let table = std::fs::read_to_string(&first.table).unwrap();
    assert!(table.contains(&format!("| 2 | {step} |")), "{table}");
    let md = std::fs::read_to_string(eval.join("report_2.md")).unwrap();
    assert!(md.contains(&format!("{:.6}", loss.mean)), "{md}");

    // A rerun with everything on disk computes nothing and reports the same.
    let (again, events) = run(&exp, &workdir, &opts);
    assert_eq!(again.reports, first.reports);
    assert_eq!(started_at(&events, EvalPhase::Loss), Some(2));
    assert_eq!(started_at(&events, EvalPhase::Bpd), Some(2));

    // Interrupted mid-checkpoint: one loss batch, one bpd batch, one sample and one feature
    // batch done; the reports not yet written.
    let ck = eval.join("ckpt_2");
    let keep_first = |file: &str| {
        let p = ck.join(file);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["batches"].as_array_mut().unwrap().truncate(1);
        std::fs::write(&p, v.to_string()).unwrap();
    };
    keep_first("loss.json");
    keep_first("bpd.json");
    for f in ["report_2.json", "report_2.md", "report.json", "report.md"] {
        std::fs::remove_file(eval.join(f)).unwrap();
    }
    if r.sampling.is_some() {
        for k in 1..4 {
            std::fs::remove_file(ck.join(format!("samples/images/{k:06}.png"))).unwrap();
        }
        std::fs::remove_file(ck.join("inception/batch_00001.npz")).unwrap();
    }
    let (resumed, events) = run(&exp, &workdir, &opts);
    assert_eq!(started_at(&events, EvalPhase::Loss), Some(1));
    assert_eq!(started_at(&events, EvalPhase::Bpd), Some(1));
    if r.sampling.is_some() {
        assert_eq!(started_at(&events, EvalPhase::Sampling), Some(1 + 3));
    }
    assert_eq!(resumed.reports, first.reports, "resumed report differs");
    assert_eq!(std::fs::read_to_string(&resumed.table).unwrap(), table);

    // Partial results of other settings are not mixed in: one error naming the file.
    let mut other = opts.clone();
    other.batch_size = 2;
    let e = evaluate::<TestAutodiff>(&exp, &workdir, &data(), &other, &device(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss.json") && e.contains("batch_size"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_clear_error_naming_the_file() {
    let dir = scratch("bad");
    let exp = tiny_config();
    // The checks come before any checkpoint is read: placeholder files are enough.
    let ckpts = dir.join("checkpoints");
    std::fs::create_dir_all(&ckpts).unwrap();
    for k in [1, 2, 4] {
        std::fs::write(ckpts.join(format!("checkpoint_{k}.safetensors")), b"").unwrap();
    }
    let eval = |opts: &EvalOptions| {
        evaluate::<TestAutodiff>(&exp, &dir, &data(), opts, &device(), &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let stats = dir.join("stats.npz");
    sgm_eval::write_stats(
        &stats,
        &sgm_eval::Stats {
            mu: vec![0.0; sgm_eval::POOL3_DIM],
            sigma: vec![0.0; sgm_eval::POOL3_DIM * sgm_eval::POOL3_DIM],
        },
    )
    .unwrap();
    let missing = dir.join("nowhere/pt_inception.pth");
    let mut opts = options(&exp, Some(missing.clone()), Some(stats.clone()));

    // A range with a hole.
    opts.begin_ckpt = 1;
    opts.end_ckpt = 4;
    let e = eval(&opts);
    let hole = ckpts.join("checkpoint_3.safetensors");
    assert!(
        e.contains(&hole.display().to_string()) && e.contains("holes"),
        "{e}"
    );
    assert!(e.contains("present: 1, 2, 4"), "{e}");

    // Missing Inception weights.
    opts.end_ckpt = 2;
    let e = eval(&opts);
    assert!(e.contains(&missing.display().to_string()), "{e}");

    // A statistics file of unknown layout.
    let odd = dir.join("odd.npz");
    sgm_eval::write_npz(&odd, &[("features", &[2], &[1.0, 2.0])]).unwrap();
    opts.stats = Some(odd.clone());
    let e = eval(&opts);
    assert!(
        e.contains(&odd.display().to_string()) && e.contains("unknown statistics layout"),
        "{e}"
    );

    // No weights given at all.
    opts.inception = None;
    opts.stats = Some(stats);
    let e = eval(&opts);
    assert!(e.contains("--inception"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_smaller_than_a_batch_is_an_error() {
    let dir = scratch("small");
    let exp = tiny_config();
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    std::fs::write(dir.join("checkpoints/checkpoint_2.safetensors"), b"").unwrap();
    let mut opts = options(&exp, None, None);
    opts.batch_size = 16;
    let small = RunData {
        train: Arc::new(generated_discs(64, 8, 1)),
        eval: Arc::new(InMemoryImages {
            shape: [3, 8, 8],
            pixels: vec![0; 8 * 192],
            labels: Vec::new(),
        }),
    };
    let e = evaluate::<TestAutodiff>(&exp, &dir, &small, &opts, &device(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("eval.batch_size") && e.contains("8 eval images"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An official score_sde_pytorch `checkpoint_k.pth` placed in `checkpoints/` (the reference's
/// layout) is evaluated like sgm's own checkpoint holding the same EMA weights: for every
/// `nets/` fixture case (official checkpoints of the case's config), `checkpoint_1.pth` and a
/// `checkpoint_2.safetensors` written from its EMA weights give the same eval loss (to the
/// case's tolerance: rounding-level differences between tensor layouts), and the
/// official one reports step 1 · snapshot_freq.
#[test]
fn official_pth_checkpoints_evaluate_like_their_weights() {
    let mut checker = sgm_testkit::Checker::new();
    for case in sgm_testkit::cases("nets") {
        checker.visit(&case);
        let model = &case.json["model"];
        let name = model["base_config"]
            .as_str()
            .unwrap()
            .trim_start_matches("configs/")
            .trim_end_matches(".py");
        let mut o: Vec<Override> = model["overrides"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}").parse().unwrap())
            .collect();
        for kv in [
            "model.dropout=0.0",
            "eval.batch_size=2",
            "eval.begin_ckpt=1",
            "eval.end_ckpt=2",
            "eval.enable_loss=true",
            "eval.enable_bpd=false",
            "eval.enable_sampling=false",
        ] {
            o.push(kv.parse().unwrap());
        }
        let exp = ExperimentConfig::load_with(name, &o).unwrap();
        let cfg = TrainConfig::from_experiment(&exp).unwrap();
        let dir = scratch(&format!("pth-{}", case.id().replace('/', "-")));
        let ckdir = dir.join("checkpoints");
        std::fs::create_dir_all(&ckdir).unwrap();
        let pth = case.dir.join("checkpoint.pth");
        std::fs::copy(&pth, ckdir.join("checkpoint_1.pth")).unwrap();
        let net = exp
            .load_network::<TestAutodiff>(&pth, sgm_nets::CheckpointWeights::Ema, &device())
            .unwrap();
        let state = sgm_train::TrainState::new(&cfg, net);
        let position = sgm_train::data::DataPosition::default();
        sgm_train::checkpoint::save(
            &state,
            position,
            position,
            &ckdir.join("checkpoint_2.safetensors"),
        )
        .unwrap();

        let size = exp.image_shape()[1];
        let data = RunData {
            train: Arc::new(generated_discs(4, size, 1)),
            eval: Arc::new(generated_discs(4, size, 2)),
        };
        let opts = EvalOptions::from_config(&exp);
        let s = evaluate::<TestAutodiff>(&exp, &dir, &data, &opts, &device(), &mut |_| {});
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                checker.fail(&case, format!("evaluate: {e}"));
                continue;
            }
        };
        let [official, ours] = [&s.reports[0], &s.reports[1]];
        let (a, b) = (
            official.loss.as_ref().unwrap().mean,
            ours.loss.as_ref().unwrap().mean,
        );
        // Same weights, possibly other tensor layouts (rounding-level differences, measured
        // ≤ 1e-7 relative): the case's own tolerance.
        let tol = case.tolerance();
        if !(a.is_finite() && (a - b).abs() <= tol.atol + tol.rtol * b.abs()) {
            checker.fail(&case, format!("eval loss {a} (.pth) vs {b} (same weights)"));
        }
        if official.step != cfg.training.snapshot_freq || ours.step != 0 {
            checker.fail(&case, format!("steps {} / {}", official.step, ours.step));
        }
        if !official.checkpoint.ends_with("checkpoint_1.pth") {
            checker.fail(&case, format!("read {}", official.checkpoint.display()));
        }
    }
    checker.finish("official .pth checkpoints under evaluate");
}
