//! `cargo xtask demo`: train a small score model, sample it with PC and the ODE, measure it
//! against held-out data, write PNG grids — the flow is `sgm_train::demo::run_demo`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use sgm_train::demo::{DemoOptions, DemoReport, run_demo};

use crate::backend::{Train, device};

/// `cargo xtask demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// CIFAR-10 `cifar-10-batches-bin` folder (test_batch.bin + data_batch_*.bin); without it
    /// the demo trains on a dataset generated in code.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (grids, report.json, the training run in `run/`; a rerun resumes it).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Training steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Samples per sampler.
    #[arg(long)]
    pub num_samples: Option<usize>,
    /// Image side (CIFAR-10 is box-downsampled to it; must divide 32).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Base channel count of the network (`model.nf`).
    #[arg(long)]
    pub nf: Option<usize>,
    /// Seed of training, sampling and the generated data.
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn run_demo_command(args: DemoArgs) -> Result<()> {
    crate::logging::init(None)?;
    let mut opts = DemoOptions::standard(&args.out);
    opts.data = args.data;
    opts.train_steps = args.steps.unwrap_or(opts.train_steps);
    opts.num_samples = args.num_samples.unwrap_or(opts.num_samples);
    opts.seed = args.seed.unwrap_or(opts.seed);
    opts.image_size = args.image_size.unwrap_or(opts.image_size);
    opts.nf = args.nf.unwrap_or(opts.nf);
    println!(
        "sgm demo on {} — {} training steps at batch {}, then PC + ODE sampling and bits/dim",
        crate::backend::NAME,
        opts.train_steps,
        opts.batch_size
    );
    let total = opts.train_steps + 1;
    let started = Instant::now();
    let hook = Box::new(move |m: &sgm_train::Metrics| {
        let done = m.step + 1;
        if done.is_multiple_of(50) || done == total {
            let secs = started.elapsed().as_secs_f64();
            let eta = secs / done as f64 * total.saturating_sub(done) as f64;
            eprintln!(
                "training: step {done}/{total}, loss {:.4}, {secs:.0} s elapsed, eta {eta:.0} s",
                m.loss
            );
        }
    });
    let report = run_demo::<Train>(&opts, &device(), Some(hook))?;
    print_report(&report);
    Ok(())
}

fn print_report(r: &DemoReport) {
    let [c, h, w] = r.image_shape;
    println!();
    println!("data:     {}", r.dataset);
    println!(
        "          {} training / {} test images of {c}×{h}×{w}",
        r.train_images, r.test_images
    );
    match r.resumed_from {
        Some(s) if s >= r.steps => println!("training: already done ({} steps) — reused", r.steps),
        _ => println!(
            "training: {} steps in {:.0} s, loss {:.4} → {:.4}",
            r.steps, r.train_seconds, r.first_loss, r.last_loss
        ),
    }
    println!();
    println!(
        "sample quality: sliced Wasserstein distance to the test images (pixels in [0,1], lower is better)"
    );
    println!("  real training images (floor)   {:.4}", r.data_swd);
    for (name, q) in [
        ("untrained network, PC", r.untrained_pc),
        ("trained (EMA), PC     ", r.trained_pc),
        ("trained (EMA), ODE    ", r.trained_ode),
    ] {
        println!(
            "  {name}          {:.4}   ({} network calls, {:.0} s)",
            q.swd, q.nfe, q.seconds
        );
    }
    println!(
        "bits/dim of {} dequantised test images (probability-flow ODE): untrained {:.3} ± {:.3}, trained {:.3} ± {:.3}",
        r.trained_bpd.n,
        r.untrained_bpd.mean,
        r.untrained_bpd.stderr,
        r.trained_bpd.mean,
        r.trained_bpd.stderr
    );
    println!();
    println!("wrote:");
    println!(
        "  {}  (rows: test data, untrained PC, trained PC, trained ODE)",
        r.files.grid.display()
    );
    println!("  {}  (trained PC samples)", r.files.pc_grid.display());
    println!("  {}  (trained ODE samples)", r.files.ode_grid.display());
    println!("  {}  (all numbers)", r.files.report.display());
    println!(
        "  {}  (training run: checkpoints, metrics.jsonl)",
        r.files.run_dir.display()
    );
    println!("total {:.0} s", r.total_seconds);
}
