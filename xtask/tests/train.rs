//! `cargo xtask train` end to end on a tiny network and a tiny CIFAR-format file (CPU,
//! seconds): exact resume after SIGKILL, the checkpoint in `sample`, and one clear error for
//! each bad input (corrupt data, checkpoint of another config, unknown key, NaN).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sgm_train::checkpoint::Checkpoint;

mod common;
use common::{Tmp, fails_with, ok, xtask};

/// The VE NCSN++ continuous config shrunk to a tiny 32×32 network, fast training knobs.
fn tiny_config(dir: &Path, name: &str, nf: i64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(root.join("ve/cifar10_ncsnpp_continuous.toml")).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let model = cfg["model"].as_table_mut().unwrap();
    model.insert("nf".into(), nf.into());
    model.insert("num_res_blocks".into(), 1.into());
    model.insert(
        "ch_mult".into(),
        toml::Value::Array(vec![1.into(), 2.into()]),
    );
    model.insert(
        "attn_resolutions".into(),
        toml::Value::Array(vec![16.into()]),
    );
    let t = cfg["training"].as_table_mut().unwrap();
    for (k, v) in [
        ("batch_size", 4),
        ("n_iters", 24),
        ("log_freq", 1),
        ("eval_freq", 5),
        ("snapshot_freq", 10),
        ("snapshot_freq_for_preemption", 3),
    ] {
        t.insert(k.into(), v.into());
    }
    t.insert("snapshot_sampling".into(), false.into());
    cfg["optim"]
        .as_table_mut()
        .unwrap()
        .insert("warmup".into(), 5.into());
    cfg["eval"]
        .as_table_mut()
        .unwrap()
        .insert("batch_size".into(), 4.into());
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path
}

/// A CIFAR-10 binary batch of `n` deterministic pseudo-random records.
fn cifar_file(path: &Path, n: usize) {
    let mut bytes = Vec::with_capacity(n * 3073);
    let mut s = 12345u64;
    for r in 0..n {
        bytes.push((r % 10) as u8);
        for _ in 0..3072 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((s >> 56) as u8);
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn train_args<'a>(config: &'a str, workdir: &'a str, data: &'a str) -> Vec<&'a str> {
    vec!["train", config, "--workdir", workdir, "--train-files", data]
}

/// Every tensor and the metadata of two checkpoints are identical.
fn assert_same_checkpoint(a: &Path, b: &Path) {
    let (ba, bb) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (sa, sb) = (
        safetensors::SafeTensors::deserialize(&ba).unwrap(),
        safetensors::SafeTensors::deserialize(&bb).unwrap(),
    );
    let mut na = sa.names();
    let mut nb = sb.names();
    na.sort();
    nb.sort();
    assert_eq!(na, nb);
    for n in na {
        let (x, y) = (sa.tensor(n).unwrap(), sb.tensor(n).unwrap());
        assert_eq!(x.shape(), y.shape(), "{n}");
        assert!(
            x.data() == y.data(),
            "tensor {n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    let (ma, mb) = (
        Checkpoint::read(a).unwrap().meta,
        Checkpoint::read(b).unwrap().meta,
    );
    assert_eq!(ma, mb);
}

#[test]
fn resume_after_sigkill_is_bitwise_identical() {
    let tmp = Tmp::new("train-resume");
    let config = tiny_config(&tmp.0, "tiny", 8);
    let data = tmp.0.join("data.bin");
    cifar_file(&data, 24);
    let (c, d) = (config.to_str().unwrap(), data.to_str().unwrap());
    let a = tmp.0.join("a");
    ok(&xtask(&train_args(c, a.to_str().unwrap(), d)));

    let b = tmp.0.join("b");
    let bs = b.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(train_args(c, bs, d))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let meta = b.join("checkpoints-meta/checkpoint.safetensors");
    let start = Instant::now();
    while !meta.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no pre-emption checkpoint"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Checkpoint::read(&meta).unwrap().meta.step;
    assert!(
        killed_at < 25,
        "the run was not interrupted (step {killed_at})"
    );
    // Automatic resume from checkpoints-meta/.
    let out = xtask(&train_args(c, bs, d));
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert_same_checkpoint(&a.join("checkpoints-meta/checkpoint.safetensors"), &meta);
    assert_same_checkpoint(
        &a.join("checkpoints/checkpoint_2.safetensors"),
        &b.join("checkpoints/checkpoint_2.safetensors"),
    );
    let metrics = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], 24);
    for k in ["loss", "lr", "grad_norm", "it_per_s"] {
        assert!(last[k].is_number(), "metrics line lacks {k}: {last}");
    }
    assert!(a.join("train.log").is_file());

    // The checkpoint is accepted by `sample` (EMA and model weights).
    for w in ["ema", "model"] {
        let out_dir = tmp.0.join(format!("samples-{w}"));
        ok(&xtask(&[
            "sample",
            "--config",
            c,
            "--checkpoint",
            a.join("checkpoints/checkpoint_2.safetensors")
                .to_str()
                .unwrap(),
            "--weights",
            w,
            "--steps",
            "2",
            "--batch-size",
            "1",
            "--corrector",
            "none",
            "--out",
            out_dir.to_str().unwrap(),
        ]));
        assert!(out_dir.join("samples.png").is_file());
    }
}

#[test]
fn bad_inputs_are_one_clear_error_each() {
    let tmp = Tmp::new("train-errors");
    let config = tiny_config(&tmp.0, "tiny", 8);
    let c = config.to_str().unwrap();
    let data = tmp.0.join("data.bin");
    cifar_file(&data, 24);
    let d = data.to_str().unwrap();

    // Corrupt (short) data file.
    let short = tmp.0.join("short.bin");
    std::fs::write(&short, &std::fs::read(&data).unwrap()[..5000]).unwrap();
    let w = tmp.0.join("w-short");
    fails_with(
        &xtask(&train_args(c, w.to_str().unwrap(), short.to_str().unwrap())),
        &["short.bin", "truncated"],
    );

    // Unknown config key.
    let w = tmp.0.join("w-key");
    let mut args = train_args(c, w.to_str().unwrap(), d);
    args.extend(["--set", "training.no_such_key=3"]);
    fails_with(&xtask(&args), &["no_such_key"]);

    // A run, then a checkpoint of another network for this config.
    let w = tmp.0.join("w-ok");
    let ws = w.to_str().unwrap();
    let mut args = train_args(c, ws, d);
    args.extend(["--set", "training.n_iters=3"]);
    ok(&xtask(&args));
    let other = tiny_config(&tmp.0, "other", 16);
    let w2 = tmp.0.join("w-other");
    let mut args = train_args(other.to_str().unwrap(), w2.to_str().unwrap(), d);
    let ck = w.join("checkpoints-meta/checkpoint.safetensors");
    args.extend(["--resume", ck.to_str().unwrap()]);
    fails_with(
        &xtask(&args),
        &["checkpoint.safetensors", "different model config", "nf"],
    );

    // Injected divergence: a huge learning rate makes the loss non-finite; the error names the
    // step and the last pre-emption checkpoint stays intact and loadable.
    let w = tmp.0.join("w-nan");
    let mut args = train_args(c, w.to_str().unwrap(), d);
    args.extend([
        "--set",
        "optim.lr=1e30",
        "--set",
        "training.snapshot_freq_for_preemption=1",
    ]);
    let out = xtask(&args);
    fails_with(&out, &["step", "not finite"]);
    let meta = w.join("checkpoints-meta/checkpoint.safetensors");
    let ck = Checkpoint::read(&meta).expect("the last good checkpoint is readable");
    assert!(ck.meta.step >= 1);
}

#[test]
fn snapshots_write_ema_samples_and_data_prepare_explains_what_is_missing() {
    let tmp = Tmp::new("train-snap");
    let config = tiny_config(&tmp.0, "tiny", 8);
    let data = tmp.0.join("data.bin");
    cifar_file(&data, 8);
    let w = tmp.0.join("w");
    let mut args = train_args(
        config.to_str().unwrap(),
        w.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    args.extend([
        "--set",
        "training.n_iters=1",
        "--set",
        "training.snapshot_freq=1",
        "--set",
        "training.snapshot_sampling=true",
        "--set",
        "model.num_scales=5",
    ]);
    ok(&xtask(&args));
    assert!(w.join("samples/iter_1/sample.png").is_file());
    assert!(w.join("checkpoints/checkpoint_1.safetensors").is_file());

    let out = xtask(&["data", "cifar10", "--dir", tmp.0.to_str().unwrap()]);
    fails_with(
        &out,
        &["cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"],
    );
}

/// `train-classifier` trains the noise-conditional WideResNet (tiny knobs) through the run loop
/// on labelled CIFAR-format data; `sample-conditional` takes its checkpoint beside a score
/// checkpoint and writes guided samples; bad inputs are one error each; `--devices 2` on the
/// one-device CPU backend says so.
#[test]
fn classifier_trains_and_guides_sampling() {
    let tmp = Tmp::new("train-classifier");
    let config = tiny_config(&tmp.0, "tiny", 8);
    // few noise levels: the guided sampler runs N predictor + corrector steps
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    cfg["model"]
        .as_table_mut()
        .unwrap()
        .insert("num_scales".into(), 12.into());
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    let data = tmp.0.join("data.bin");
    cifar_file(&data, 16);
    let (c, d) = (config.to_str().unwrap(), data.to_str().unwrap());
    let clf = tmp.0.join("clf");
    let knobs = [
        "--depth",
        "10",
        "--widen-factor",
        "1",
        "--base-channels",
        "4",
        "--embedding-size",
        "4",
        "--set",
        "training.n_iters=3",
    ];
    let mut args = vec![
        "train-classifier",
        c,
        "--workdir",
        clf.to_str().unwrap(),
        "--train-files",
        d,
    ];
    args.extend(knobs);
    ok(&xtask(&args));
    let clf_ck = clf.join("checkpoints-meta/checkpoint.safetensors");
    let meta = Checkpoint::read(&clf_ck).unwrap().meta;
    assert_eq!((meta.net.as_str(), meta.step), ("classifier", 4));

    let score = tmp.0.join("score");
    let mut args = train_args(c, score.to_str().unwrap(), d);
    args.extend(["--set", "training.n_iters=1"]);
    ok(&xtask(&args));
    let score_ck = score.join("checkpoints-meta/checkpoint.safetensors");
    let out = tmp.0.join("out");
    let (sc, cc, o) = (
        score_ck.to_str().unwrap(),
        clf_ck.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let cond = |classifier: &str, labels: &[&str]| {
        let mut a = vec![
            "sample-conditional",
            "--config",
            c,
            "--checkpoint",
            sc,
            "--classifier",
            classifier,
            "--out",
            o,
            "--labels",
        ];
        a.extend(labels);
        xtask(&a)
    };
    ok(&cond(cc, &["3", "7"]));
    assert!(out.join("conditional.png").is_file());
    let bytes = std::fs::read(out.join("conditional.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = st.names();
    assert_eq!(st.tensor(names[0]).unwrap().shape(), [2, 3, 32, 32]);

    fails_with(&cond(cc, &["10"]), &["label 10", "10 classes"]);
    fails_with(&cond(sc, &["1"]), &["not a classifier checkpoint"]);
    // a depth that is not 6n + 4: one error naming the knob
    let args = [
        "train-classifier",
        c,
        "--workdir",
        clf.to_str().unwrap(),
        "--train-files",
        d,
        "--depth",
        "11",
    ];
    fails_with(&xtask(&args), &["classifier.depth"]);

    let mut args = train_args(c, score.to_str().unwrap(), d);
    args.extend(["--devices", "2"]);
    fails_with(&xtask(&args), &["2 devices", "1 device"]);
}
