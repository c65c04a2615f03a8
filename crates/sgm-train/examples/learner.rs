//! An sgm score network trained inside a burn-train `Learner` (feature `learner`; the code of
//! `docs/training.md`, "Inside your own burn-train Learner"):
//!
//! ```text
//! cargo run -p sgm-train --features learner --example learner -- ../shared/data/cifar10 runs/learner [N]
//! ```
//!
//! The official DDPM++ continuous (VP) experiment, shrunk for a CPU (nf 16, one res block per
//! level, no attention), on CIFAR-10 `data_batch_1.bin` (training; its first `N` images when
//! given) and the first 256 images of
//! `test_batch.bin` (validation), one epoch of Adam at lr 2e-4, burn-train's `LossMetric` and CLI
//! renderer. The Learner path carries no global gradient clipping, warm-up, EMA or sgm
//! checkpoints (`sgm_train::learner`); `cargo xtask train` runs the reference's loop.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoaderBuilder;
use burn::optim::AdamConfig;
use burn_train::metric::LossMetric;
use burn_train::{Learner, SupervisedTraining};
use sgm_config::{ExperimentConfig, Override};
use sgm_testkit::{TestAutodiff, TestBackend, device};
use sgm_train::TrainConfig;
use sgm_train::data::{Cifar10, ImageSource};
use sgm_train::learner::ScoreLearner;
use sgm_train::learner::data::{ImageBatcher, ImageDataset};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: learner CIFAR10_DIR [WORKDIR] [N_TRAIN_IMAGES]";
    let data = PathBuf::from(args.next().context(usage)?);
    let workdir = PathBuf::from(args.next().unwrap_or_else(|| "runs/learner".into()));
    let n_train = match args.next() {
        Some(n) => n.parse().context(usage)?,
        None => usize::MAX,
    };

    // any official experiment (name or .toml), with `--set`-style overrides
    let small = [
        Override::new("model.nf", 16),
        Override::new("model.num_res_blocks", 1),
        Override::new("model.ch_mult", vec![1, 2, 2]),
        Override::new("model.attn_resolutions", Vec::<i64>::new()),
    ];
    let exp = ExperimentConfig::load_with("vp/cifar10_ddpmpp_continuous", &small)?;
    let cfg = TrainConfig::from_experiment(&exp)?;

    let train = Cifar10::load_files(&[data.join("data_batch_1.bin")])?.truncate(n_train);
    let valid = Cifar10::load_files(&[data.join("test_batch.bin")])?.truncate(256);
    let train: Arc<dyn ImageSource> = Arc::new(train);
    let valid: Arc<dyn ImageSource> = Arc::new(valid);

    // the reference's transforms (flip, scaler) on burn's DataLoader
    let train_loader = DataLoaderBuilder::new(ImageBatcher::new(&cfg, 0))
        .batch_size(cfg.training.batch_size)
        .shuffle(cfg.seed)
        .num_workers(2)
        .build(ImageDataset::new(train));
    let valid_loader = DataLoaderBuilder::new(ImageBatcher::new(&cfg, 1))
        .batch_size(cfg.eval_batch_size)
        .build(ImageDataset::new(valid));

    // the network of the config, initialised from its seed, with the config's loss
    let model = ScoreLearner::<TestAutodiff>::new(&cfg, &device())?;
    let optim = AdamConfig::new()
        .with_beta_1(cfg.optim.beta1 as f32)
        .with_epsilon(cfg.optim.eps as f32)
        .init();
    let learner = Learner::new(model, optim, cfg.optim.lr);

    let result = SupervisedTraining::new(&workdir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::<TestBackend>::new())
        .metric_valid_numeric(LossMetric::<TestBackend>::new())
        .num_epochs(1)
        .summary()
        .launch(learner);

    // the trained network (inner backend), saved in the reference layout
    let steps = result.model.steps();
    let path = workdir.join("net.safetensors");
    sgm_nets::save_safetensors(&result.model.net, &path)?;
    println!("{steps} steps; network written to {}", path.display());
    Ok(())
}
