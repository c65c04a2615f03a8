//! `train-classifier`: the noise-conditional WideResNet of class-conditional sampling, trained
//! with a config's SDE, schedule and optimizer (`sgm_train::classifier`); `sample-conditional`:
//! PC / ODE sampling of given classes with a score checkpoint guided by a classifier checkpoint
//! (`sgm_sample::GuidedScore`, paper eq. 14).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sde_core::{BackendNoise, ScoreFn};
use sgm_config::ExperimentConfig;
use sgm_nets::{WideResNet, WideResNetConfig};
use sgm_sample::{GuidedScore, Sampler};
use sgm_train::checkpoint::Checkpoint;
use sgm_train::classifier::{SdeClassifier, train_classifier};
use sgm_train::{NetHooks, RunData, TrainConfig};

use crate::backend::{Inner, Train, device};
use crate::train::{RunArgs, open_workdir, sources, step_bar};

/// `cargo xtask train-classifier`.
#[derive(clap::Args, Debug)]
pub struct TrainClassifierArgs {
    /// Config whose SDE, data, `[training]` schedule and `[optim]` the classifier is trained
    /// with (official or short name, or a .toml path), e.g. `ve/cifar10_ncsnpp_deep_continuous`.
    pub config: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// WideResNet depth `6n + 4`.
    #[arg(long, default_value_t = 28)]
    pub depth: usize,
    /// WideResNet widen factor.
    #[arg(long, default_value_t = 10)]
    pub widen_factor: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
    /// Channels of the first convolution (16 in the reference).
    #[arg(long, default_value_t = 16)]
    pub base_channels: usize,
    /// Fourier features of log σ.
    #[arg(long, default_value_t = 128)]
    pub embedding_size: usize,
    /// Scale of the Fourier frequencies.
    #[arg(long, default_value_t = 16.0)]
    pub fourier_scale: f64,
}

pub fn run_train_classifier(args: TrainClassifierArgs) -> Result<()> {
    let config = ExperimentConfig::load_with(&args.config, &args.run.set.overrides()?)?;
    let cfg = TrainConfig::from_experiment(&config)?;
    let net = WideResNetConfig {
        depth: args.depth,
        widen_factor: args.widen_factor,
        num_classes: args.num_classes,
        base_channels: args.base_channels,
        in_channels: cfg.model.data.num_channels,
        embedding_size: args.embedding_size,
        fourier_scale: args.fourier_scale,
        ..WideResNetConfig::default()
    };
    net.validate()?;
    open_workdir(&args.run.workdir)?;
    let (train, eval) = sources(&args.run.data, cfg.model.data.image_size)?;
    log::info!(
        "training a WideResNet-{}-{} classifier with the SDE of {} in {} ({} training / {} eval images, backend {})",
        net.depth,
        net.widen_factor,
        config.origin,
        args.run.workdir.display(),
        train.len(),
        eval.len(),
        crate::backend::NAME
    );
    let bar = step_bar(cfg.training.n_iters + 1);
    let bar_ref = &bar;
    let hooks = NetHooks::<WideResNet<Inner>> {
        on_step: Some(Box::new(move |m: &sgm_train::Metrics| {
            bar_ref.set_position(m.step + 1);
            bar_ref.set_message(format!("loss {:.4}", m.loss));
        })),
        sample: None,
    };
    let summary = train_classifier::<Train>(
        &cfg,
        &net,
        &args.run.workdir,
        RunData { train, eval },
        args.run.resume.as_deref(),
        &device(),
        hooks,
    )?;
    bar.finish();
    println!(
        "trained the classifier to step {} (started at {}), last loss {:.4}; checkpoints in {}",
        summary.step,
        summary.resumed_from.unwrap_or(0),
        summary.last_loss,
        args.run.workdir.join("checkpoints").display()
    );
    Ok(())
}

/// `cargo xtask sample-conditional`.
#[derive(clap::Args, Debug)]
pub struct ConditionalArgs {
    /// The score model (`--config`, `--checkpoint`, `--weights`, `--seed`, `--steps`,
    /// `--out`: `conditional.png`, `conditional.safetensors`).
    #[command(flatten)]
    pub model: crate::sample::ModelArgs,
    /// Classifier checkpoint (`cargo xtask train-classifier`); its EMA weights are used.
    #[arg(long)]
    pub classifier: PathBuf,
    /// Class of each sample, e.g. `--labels 0 1 2 3` (one sample per label).
    #[arg(long, num_args = 1.., required = true)]
    pub labels: Vec<usize>,
    /// Guidance scale (1 = exact Bayes rule).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f32,
}

pub fn run_sample_conditional(args: ConditionalArgs) -> Result<()> {
    use burn::prelude::Backend;
    let m = &args.model;
    let config = ExperimentConfig::load_with(&m.config, &m.set.overrides()?)?;
    let dev = device();
    let net = m.network::<Inner>(&config, &dev)?;
    let ck = Checkpoint::read(&args.classifier)?;
    let clf_cfg: WideResNetConfig = serde_json::from_value(ck.meta.model_config.clone())
        .with_context(|| format!("{}: not a classifier checkpoint", args.classifier.display()))?;
    let classifier: WideResNet<Train> =
        ck.module::<Train, WideResNet<Train>>(&clf_cfg, sgm_nets::CheckpointWeights::Ema, &dev)?;
    if let Some(bad) = args.labels.iter().find(|&&l| l >= clf_cfg.num_classes) {
        bail!(
            "label {bad}: the classifier has {} classes",
            clf_cfg.num_classes
        );
    }
    let sampler = config.sampler_for(config.sde_with_steps(m.steps)?)?;
    let score = ScoreFn::new(sampler.sde(), &net, sampler.continuous_score());
    let clf = SdeClassifier {
        net: &classifier,
        sde: sampler.sde(),
    };
    let guided = GuidedScore::<Train> {
        score: &score,
        classifier: &clf,
        labels: args.labels.clone(),
        scale: args.scale,
    };
    Inner::seed(&dev, m.seed);
    let [c, h, w] = config.image_shape();
    let out = sampler.sample(
        &guided,
        [args.labels.len(), c, h, w],
        &mut BackendNoise,
        &dev,
    )?;
    std::fs::create_dir_all(&m.out)
        .with_context(|| format!("cannot create {}", m.out.display()))?;
    let (dims, data) = crate::images::to_host(out.sample);
    let ncol = (dims[0] as f64).sqrt().ceil() as usize;
    crate::images::write_grid(&m.out.join("conditional.png"), &dims, &data, ncol)?;
    crate::images::write_samples(&m.out.join("conditional.safetensors"), &dims, &data)?;
    println!(
        "{} class-conditional samples (labels {:?}, scale {}) in {}",
        dims[0],
        args.labels,
        args.scale,
        m.out.display()
    );
    Ok(())
}
