//! `cargo xtask train <config>`: the reference's `run_lib.train` on CIFAR-10 batches or an image
//! folder; the loop itself is `sgm_train::train`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sde_core::{BackendNoise, ScoreFn};
use sgm_train::data::{Cifar10, Cifar10Split, ImageFolder, ImageSource};
use sgm_train::{DataTransforms, OptimConfig, RunData, RunHooks, TrainConfig, TrainingSection};

use crate::backend::{Inner, Train, device};
use crate::config::ExperimentConfig;
use crate::model::model_config;
use crate::sample::{SamplerArgs, pc_config, sde_of};

/// `cargo xtask train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Official config name (e.g. `ve/cifar10_ncsnpp_deep_continuous`) or a .toml path.
    pub config: String,
    /// Run directory (checkpoints/, checkpoints-meta/, samples/, metrics.jsonl, train.log).
    #[arg(long)]
    pub workdir: PathBuf,
    /// CIFAR-10 `cifar-10-batches-bin` folder (data_batch_1..5.bin + test_batch.bin).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Image folder (PNG / JPEG) for training and eval (CelebA-HQ / FFHQ / LSUN style).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// CIFAR-10 binary batch files to train on (instead of --data).
    #[arg(long, num_args = 1..)]
    pub train_files: Vec<PathBuf>,
    /// CIFAR-10 binary batch files for the eval loss (default: the training files).
    #[arg(long, num_args = 1..)]
    pub eval_files: Vec<PathBuf>,
    /// Start from this checkpoint (default: `<workdir>/checkpoints-meta/` when present).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Override a config key, e.g. `--set training.n_iters=1000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Applies `key=value` overrides (value parsed as TOML, else a string); unknown keys are errors.
pub fn apply_sets(config: &ExperimentConfig, sets: &[String]) -> Result<ExperimentConfig> {
    if sets.is_empty() {
        return Ok(config.clone());
    }
    let mut root = toml::Value::try_from(config).context("config to TOML")?;
    for s in sets {
        let Some((key, raw)) = s.split_once('=') else {
            bail!("--set `{s}`: expected KEY=VALUE");
        };
        let value: toml::Value = format!("v = {raw}")
            .parse::<toml::Table>()
            .map(|mut t| t.remove("v").expect("parsed"))
            .unwrap_or_else(|_| toml::Value::String(raw.to_string()));
        let mut node = &mut root;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let table = node
                .as_table_mut()
                .with_context(|| format!("--set {key}: `{p}` is not inside a section"))?;
            if i + 1 == parts.len() {
                if !table.contains_key(*p) && parts[0] != "model" {
                    bail!("--set {key}: unknown key `{p}`");
                }
                table.insert(p.to_string(), value.clone());
                break;
            }
            node = table
                .get_mut(*p)
                .with_context(|| format!("--set {key}: unknown section `{p}`"))?;
        }
    }
    let text = toml::to_string(&root).context("config to TOML")?;
    ExperimentConfig::from_toml_str(&text, &format!("{} (with --set)", config.source))
}

/// The typed training config of an experiment config.
pub fn train_config(config: &ExperimentConfig) -> Result<TrainConfig> {
    let t = &config.training;
    let training: TrainingSection = serde_json::from_value(serde_json::json!({
        "sde": t.sde,
        "continuous": t.continuous,
        "reduce_mean": t.reduce_mean,
        "likelihood_weighting": t.likelihood_weighting,
        "batch_size": t.batch_size,
        "n_iters": t.n_iters,
        "log_freq": t.log_freq,
        "eval_freq": t.eval_freq,
        "snapshot_freq": t.snapshot_freq,
        "snapshot_freq_for_preemption": t.snapshot_freq_for_preemption,
        "snapshot_sampling": t.snapshot_sampling,
    }))
    .context("training section")?;
    let o = &config.optim;
    let cfg = TrainConfig {
        model: model_config(config)?,
        training,
        optim: OptimConfig {
            lr: o.lr,
            beta1: o.beta1,
            eps: o.eps,
            weight_decay: o.weight_decay,
            warmup: o.warmup,
            grad_clip: o.grad_clip,
            ..OptimConfig::default()
        },
        transforms: DataTransforms {
            random_flip: config.data.random_flip,
            uniform_dequantization: config.data.uniform_dequantization,
        },
        eval_batch_size: config.eval.batch_size,
        seed: config.seed,
    };
    cfg.validate()
        .with_context(|| format!("{}: invalid training config", config.source))?;
    Ok(cfg)
}

/// Training and eval images: an image folder (both), explicit CIFAR-10 batch files, or a
/// `cifar-10-batches-bin` folder (train = the five training batches, eval = the test batch).
fn sources(
    args: &TrainArgs,
    image_size: usize,
) -> Result<(Arc<dyn ImageSource>, Arc<dyn ImageSource>)> {
    let cifar_given = args.data.is_some() || !args.train_files.is_empty();
    if let Some(dir) = &args.images {
        if cifar_given {
            bail!("give either --images or CIFAR-10 data (--data / --train-files), not both");
        }
        let f: Arc<dyn ImageSource> = Arc::new(ImageFolder::new(dir, image_size)?);
        return Ok((f.clone(), f));
    }
    if !args.train_files.is_empty() {
        let train: Arc<dyn ImageSource> = Arc::new(Cifar10::load_files(&args.train_files)?);
        let eval: Arc<dyn ImageSource> = if args.eval_files.is_empty() {
            train.clone()
        } else {
            Arc::new(Cifar10::load_files(&args.eval_files)?)
        };
        return Ok((train, eval));
    }
    let Some(dir) = &args.data else {
        bail!(
            "no data: give --data <cifar-10-batches-bin folder>, --train-files <*.bin> or --images <folder>"
        );
    };
    let train: Arc<dyn ImageSource> = Arc::new(Cifar10::load(dir, Cifar10Split::Train)?);
    let eval: Arc<dyn ImageSource> = Arc::new(Cifar10::load(dir, Cifar10Split::Test)?);
    Ok((train, eval))
}

/// EMA samples of one training batch at a snapshot: `sample.png` grid + `sample.safetensors`.
fn snapshot_sampler<'a>(
    config: &'a ExperimentConfig,
    batch: usize,
) -> Result<impl FnMut(&sgm_nets::ScoreNet<Inner>, &Path) -> sgm_train::Result<()> + 'a> {
    let sde = sde_of(config, None)?;
    let no_overrides = SamplerArgs {
        method: None,
        predictor: None,
        corrector: None,
        snr: None,
        n_steps: None,
        probability_flow: false,
        no_denoise: false,
        tol: 1e-5,
    };
    let pc = pc_config(config, &sde, &no_overrides)?;
    let [c, h, w] = config.image_shape();
    let continuous = config.training.continuous;
    Ok(move |net: &sgm_nets::ScoreNet<Inner>, dir: &Path| {
        let dev = device();
        let score = ScoreFn::new(&sde, net, continuous);
        let out = sgm_sample::pc_sample(
            &sde,
            &score,
            &pc,
            [batch, c, h, w],
            &sgm_sample::NoProjection,
            &mut BackendNoise,
            &dev,
        )
        .map_err(|e| sgm_train::TrainError::Internal(format!("snapshot sampling: {e}")))?;
        let (dims, data) = crate::images::to_host(out.sample);
        let ncol = (dims[0] as f64).sqrt().ceil() as usize;
        let io = |e: anyhow::Error| sgm_train::TrainError::io(dir, format!("{e:#}"));
        crate::images::write_grid(&dir.join("sample.png"), &dims, &data, ncol).map_err(io)?;
        crate::images::write_samples(&dir.join("sample.safetensors"), &dims, &data).map_err(io)
    })
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let config = apply_sets(&ExperimentConfig::load(&args.config)?, &args.sets)?;
    let cfg = train_config(&config)?;
    std::fs::create_dir_all(&args.workdir)
        .with_context(|| format!("cannot create {}", args.workdir.display()))?;
    crate::logging::init(Some(&args.workdir.join("train.log")))?;
    let (train, eval) = sources(&args, cfg.model.data.image_size)?;
    log::info!(
        "training {} in {} ({} training / {} eval images, backend {})",
        config.source,
        args.workdir.display(),
        train.len(),
        eval.len(),
        crate::backend::NAME
    );
    let total = cfg.training.n_iters + 1;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "train [{bar:40}] {pos}/{len} steps, {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let bar_ref = &bar;
    let mut sampler = snapshot_sampler(&config, cfg.training.batch_size)?;
    let hooks = RunHooks::<Inner> {
        on_step: Some(Box::new(move |m: &sgm_train::Metrics| {
            bar_ref.set_position(m.step + 1);
            bar_ref.set_message(format!("loss {:.4e}", m.loss));
        })),
        sample: Some(Box::new(
            move |net: &sgm_nets::ScoreNet<Inner>, dir: &Path| sampler(net, dir),
        )),
    };
    let dev = device();
    let summary = sgm_train::train::<Train>(
        &cfg,
        &args.workdir,
        RunData { train, eval },
        args.resume.as_deref(),
        &dev,
        hooks,
    )?;
    bar.finish();
    println!(
        "trained to step {} (started at {}), last loss {:.6e}; checkpoints in {}",
        summary.step,
        summary.resumed_from.unwrap_or(0),
        summary.last_loss,
        args.workdir.join("checkpoints").display()
    );
    Ok(())
}

/// `cargo xtask data <name> --dir D`.
pub fn run_data(name: &str, dir: &Path) -> Result<()> {
    match name {
        "cifar10" => {
            let bin = sgm_train::data::prepare_cifar10(dir)?;
            println!(
                "CIFAR-10 ready: {} (train: --data {})",
                bin.display(),
                bin.display()
            );
            Ok(())
        }
        other => bail!("unknown data set `{other}` (known: cifar10)"),
    }
}
