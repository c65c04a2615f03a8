//! Sample quality of the "it learns" model (`tests/learns.rs`): FID and KID of a few hundred
//! samples of the trained model and of the untrained one (the same initial weights) against
//! real CIFAR-10 test images (issue 10's measured statistic; a benchmark, not a test).
//!
//! ```text
//! cargo run -p sgm-train --example learns_quality -- \
//!     --data ../shared/data/cifar10 \
//!     --inception ../shared/data/inception/pt_inception-2015-12-05.pth --out learns-quality
//! ```
//!
//! 1. Trains (or, on a rerun, reuses) the test's model and schedule into `OUT/run/`
//!    (`data_batch_1.bin`, 45 steps of batch 32, `sgm_train::train`).
//! 2. `--samples` images of each model with Euler–Maruyama on the reverse VP SDE
//!    (`--steps` steps, no corrector, denoised last step), seeded per image — the same seeds
//!    for both models (`sgm_train::generate`, PNGs in `OUT/{trained,untrained}/`).
//! 3. Inception pool3 features of both sets and of the first `--reference` images of
//!    `test_batch.bin`; FID and KID (`sgm_eval`) of each set against them; the table to
//!    `OUT/learns_quality.md`.
//!
//! FID of a few hundred images is biased upwards; compare the two rows, not with published
//! 50 000-sample figures. KID is unbiased.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use clap::Parser;
use sde_core::ScoreFn;
use sgm_eval::{InceptionV3, POOL3_DIM, Stats, U8Images};
use sgm_nets::{CheckpointWeights, ScoreNet};
use sgm_sample::{Corrector, DataScaler, PcConfig, PcSampler, Predictor};
use sgm_testkit::{TestAutodiff, TestBackend};
use sgm_train::checkpoint::Checkpoint;
use sgm_train::data::{Cifar10, ImageSource};
use sgm_train::generate::{GenerateOptions, generate};
use sgm_train::{RunData, RunDir, RunHooks, init_model, train};

#[path = "../tests/common/learns.rs"]
mod learns;

#[derive(Parser, Debug)]
#[command(about = "FID / KID of the 'it learns' model's samples, trained vs untrained")]
struct Args {
    /// CIFAR-10 binary folder (data_batch_1.bin, test_batch.bin).
    #[arg(long)]
    data: PathBuf,
    /// pytorch-fid Inception weights.
    #[arg(long)]
    inception: PathBuf,
    /// Output folder (the run in OUT/run is reused by reruns, and so are the samples).
    #[arg(long, default_value = "learns-quality")]
    out: PathBuf,
    /// Samples per model.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Real test images.
    #[arg(long, default_value_t = 500)]
    reference: usize,
    /// Euler–Maruyama steps of the sampler.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Images per sampler call.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
}

/// Inception pool3 features of `images`.
fn features(net: &InceptionV3<TestBackend>, images: &U8Images) -> Result<Vec<f64>> {
    Ok(sgm_eval::extract(net, images, 50, &sgm_testkit::device(), |_| {})?.pool3)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dev = sgm_testkit::device();
    let cfg = learns::config();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    // 1. The trained model (train resumes from OUT/run; with no step left it returns).
    let started = Instant::now();
    let train_set: Arc<dyn ImageSource> =
        Arc::new(Cifar10::load_files(&[args.data.join("data_batch_1.bin")])?);
    let test_file = args.data.join("test_batch.bin");
    let eval: Arc<dyn ImageSource> =
        Arc::new(Cifar10::load_files(std::slice::from_ref(&test_file))?);
    let run = args.out.join("run");
    let summary = train::<TestAutodiff>(
        &cfg,
        &run,
        RunData {
            train: train_set,
            eval,
        },
        None,
        &dev,
        RunHooks::default(),
    )?;
    println!(
        "trained: {} steps, last loss {:.4} ({:.0} s)",
        summary.step,
        summary.last_loss,
        started.elapsed().as_secs_f64()
    );
    let ck = Checkpoint::read(&RunDir::create(&run)?.meta_checkpoint())?;
    let trained: ScoreNet<TestBackend> = ck
        .weights::<TestAutodiff>(&cfg.model, CheckpointWeights::Ema, &dev)?
        .valid();
    let untrained: ScoreNet<TestBackend> = init_model::<TestAutodiff>(&cfg, &dev)?.valid();

    // 2. Samples: Euler–Maruyama with `--steps` steps, the same per-image seeds for both.
    let mut sample_cfg = cfg.clone();
    sample_cfg.model.model.num_scales = args.steps;
    let sde = sample_cfg.sde()?;
    let mut pc = PcConfig::new(Predictor::EulerMaruyama, Corrector::None, &sde);
    pc.scaler = DataScaler::Centered;
    let sampler = PcSampler {
        sde: sde.clone(),
        config: pc,
    };
    let shape = [3, 32, 32];

    // 3. Reference features, then each model's samples and their FID / KID.
    let inception = InceptionV3::<TestBackend>::load(&args.inception, &dev)?;
    let t = Instant::now();
    let real = sgm_eval::images::read_cifar10_bin(&test_file, 0, Some(args.reference))?;
    let reference = features(&inception, &real)?;
    let ref_stats = Stats::from_features(&reference, real.n, POOL3_DIM)?;
    println!(
        "reference: {} test images ({:.0} s)",
        real.n,
        t.elapsed().as_secs_f64()
    );
    let mut md = format!(
        "| model | FID ({} samples vs {} test images) | KID ×10³ | sampling s |\n|---|---|---|---|\n",
        args.samples, real.n
    );
    for (name, net) in [("untrained", &untrained), ("trained", &trained)] {
        let t = Instant::now();
        let opts = GenerateOptions {
            num_samples: args.samples,
            batch_size: args.batch_size,
            seed: 0x5EED,
            out: args.out.join(name),
        };
        let score = ScoreFn::new(&sde, net, true);
        let made = generate(&sampler, &score, shape, &opts, &dev, |done, total| {
            eprintln!("{name}: {done}/{total}")
        })?;
        let seconds = t.elapsed().as_secs_f64();
        let images = sgm_eval::images::read_png_folder(&made.images, 0, Some(args.samples))?;
        let feats = features(&inception, &images)?;
        let stats = Stats::from_features(&feats, images.n, POOL3_DIM)?;
        let fid = sgm_eval::frechet_distance(&stats, &ref_stats)?;
        let kid = sgm_eval::kid(&feats, &reference, POOL3_DIM, 10, images.n.min(real.n), 7)?;
        let row = format!(
            "| {name} | {fid:.1} | {:.1} ± {:.1} | {seconds:.0} |",
            kid.mean * 1e3,
            kid.std * 1e3
        );
        println!("{row}");
        md.push_str(&row);
        md.push('\n');
    }
    let p = args.out.join("learns_quality.md");
    sgm_fs::write_atomic_bytes(&p, md.as_bytes())
        .with_context(|| format!("cannot write {}", p.display()))?;
    println!(
        "\n{md}\nwrote {} ({:.0} s in all)",
        p.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
