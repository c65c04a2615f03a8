//! `cargo xtask train <config>`: the reference's `run_lib.train` on CIFAR-10 batches or an image
//! folder; the loop itself is `sgm_train::train`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sde_core::{BackendNoise, ScoreFn};
use sgm_config::ExperimentConfig;
use sgm_sample::Sampler;
use sgm_train::data::{Cifar10, Cifar10Split, ImageFolder, ImageSource};
use sgm_train::{RunData, RunHooks, TrainConfig};

use crate::backend::{Inner, Train, device};
use crate::config::SetArgs;

/// `cargo xtask train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Official or short config name (e.g. `ncsnpp-deep-cont`) or a .toml path.
    pub config: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// Split each batch across the first N devices of the backend (data parallel, one
    /// process; CUDA / wgpu GPUs — the CPU backends have one device).
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
}

/// What every training command takes: run directory, data, resume point, config overrides.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run directory (checkpoints/, checkpoints-meta/, samples/, metrics.jsonl, train.log).
    #[arg(long)]
    pub workdir: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Start from this checkpoint (default: `<workdir>/checkpoints-meta/` when present).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub set: SetArgs,
}

/// Where the training and eval images come from.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// CIFAR-10 batches folder: `cifar-10-batches-bin` (data_batch_1..5.bin + test_batch.bin)
    /// or `cifar-10-batches-py` (the python pickles data_batch_1..5 + test_batch).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Image folder (PNG / JPEG) for training and eval (CelebA-HQ / FFHQ / LSUN style).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// CIFAR-10 batch files (binary or python) to train on (instead of --data).
    #[arg(long, num_args = 1..)]
    pub train_files: Vec<PathBuf>,
    /// CIFAR-10 batch files (binary or python) for the eval loss (default: the training files).
    #[arg(long, num_args = 1..)]
    pub eval_files: Vec<PathBuf>,
}

/// Training and eval images: an image folder (both), explicit CIFAR-10 batch files, or a
/// `cifar-10-batches-bin` folder (train = the five training batches, eval = the test batch).
pub fn sources(
    args: &DataArgs,
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

/// EMA samples of one training batch at a snapshot with the config's sampler:
/// `sample.png` grid + `sample.safetensors`.
fn snapshot_sampler(
    config: &ExperimentConfig,
    batch: usize,
) -> Result<impl FnMut(&sgm_nets::ScoreNet<Inner>, &Path) -> sgm_train::Result<()> + use<>> {
    let sampler = config.sampler()?;
    let [c, h, w] = config.image_shape();
    Ok(move |net: &sgm_nets::ScoreNet<Inner>, dir: &Path| {
        let dev = device();
        let score = ScoreFn::new(sampler.sde(), net, sampler.continuous_score());
        let out = sampler
            .sample(&score, [batch, c, h, w], &mut BackendNoise, &dev)
            .map_err(|e| sgm_train::TrainError::Internal(format!("snapshot sampling: {e}")))?;
        let (dims, data) = crate::images::to_host(out.sample);
        let ncol = (dims[0] as f64).sqrt().ceil() as usize;
        let io = |e: anyhow::Error| sgm_train::TrainError::io(dir, format!("{e:#}"));
        crate::images::write_grid(&dir.join("sample.png"), &dims, &data, ncol).map_err(io)?;
        crate::images::write_samples(&dir.join("sample.safetensors"), &dims, &data).map_err(io)
    })
}

/// A progress bar over `total` steps.
pub fn step_bar(total: u64) -> ProgressBar {
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "train [{bar:40}] {pos}/{len} steps, {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

/// The run directory created and logging to its `train.log`.
pub fn open_workdir(workdir: &Path) -> Result<()> {
    std::fs::create_dir_all(workdir)
        .with_context(|| format!("cannot create {}", workdir.display()))?;
    crate::logging::init(Some(&workdir.join("train.log")))
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let config = ExperimentConfig::load_with(&args.config, &args.run.set.overrides()?)?;
    let cfg = TrainConfig::from_experiment(&config)?;
    open_workdir(&args.run.workdir)?;
    let (train, eval) = sources(&args.run.data, cfg.model.data.image_size)?;
    log::info!(
        "training {} in {} ({} training / {} eval images, backend {})",
        config.origin,
        args.run.workdir.display(),
        train.len(),
        eval.len(),
        crate::backend::NAME
    );
    let total = cfg.training.n_iters + 1;
    let bar = step_bar(total);
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
    let devices = if args.devices == 1 {
        vec![device()]
    } else {
        sgm_train::parallel::devices::<Train>(args.devices)?
    };
    if devices.len() > 1 {
        log::info!("data parallel over {} devices: {devices:?}", devices.len());
    }
    let summary = sgm_train::train_parallel::<Train>(
        &cfg,
        &args.run.workdir,
        RunData { train, eval },
        args.run.resume.as_deref(),
        &devices,
        hooks,
    )?;
    bar.finish();
    println!(
        "trained to step {} (started at {}), last loss {:.6e}; checkpoints in {}",
        summary.step,
        summary.resumed_from.unwrap_or(0),
        summary.last_loss,
        args.run.workdir.join("checkpoints").display()
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
        other => bail!("unknown data set `{other}` (known: cifar10, inception)"),
    }
}
