//! `likelihood`: bits/dim of images under the probability-flow ODE of a checkpoint.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use sde_core::{BackendNoise, NoiseSource, ScoreFn};
use sgm_sample::{Hutchinson, Rk45Options};

use crate::backend::{Train, device};
use crate::sample::{ModelArgs, load_config};

/// `cargo xtask likelihood`.
#[derive(clap::Args, Debug)]
pub struct LikelihoodArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder of PNG images or a CIFAR-10 binary batch file.
    #[arg(long)]
    pub data: PathBuf,
    /// First image / record to use.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Number of images (default: all from `--first`).
    #[arg(long)]
    pub count: Option<usize>,
    /// Images per ODE solve.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Hutchinson probe: rademacher (reference default) or gaussian.
    #[arg(long, default_value = "rademacher", ignore_case = true,
          value_parser = crate::sample::one_of(Hutchinson::ALL.map(Hutchinson::name)))]
    pub hutchinson: String,
    /// Skip uniform dequantisation (the reference dequantises its bpd dataset).
    #[arg(long)]
    pub no_dequantize: bool,
    /// ODE solver relative and absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Convolution accumulation on the CPU: exact (f64 sums rounded once — order-independent,
    /// what the likelihood's ODE solve needs to match the official numbers) or fast (f32, ≈ 2×
    /// faster convolutions).
    #[arg(long, default_value_t = sgm_nets::LIKELIHOOD_PRECISION.to_string(),
          value_parser = crate::sample::one_of(["exact", "fast"]))]
    pub conv_precision: String,
}

/// Running mean and standard error of the per-image bits/dim.
#[derive(Debug, Default)]
struct Running {
    n: usize,
    sum: f64,
    sum_sq: f64,
}

impl Running {
    fn push(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.sum_sq += v * v;
    }
    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }
    fn stderr(&self) -> f64 {
        if self.n < 2 {
            return f64::NAN;
        }
        let m = self.mean();
        let var = (self.sum_sq - self.n as f64 * m * m) / (self.n as f64 - 1.0);
        (var.max(0.0) / self.n as f64).sqrt()
    }
}

pub fn run_likelihood(args: LikelihoodArgs) -> Result<()> {
    let config = load_config(&args.model, None)?;
    let sde = config.sde_with_steps(args.model.steps)?;
    let dev = device();
    Train::seed(&dev, args.model.seed);
    let net = args.model.network::<Train>(&config, &dev)?;
    let imgs = sgm_eval::read_images(&args.data, args.first, args.count)?;
    let [c, h, w] = config.image_shape();
    if [imgs.channels, imgs.height, imgs.width] != [c, h, w] {
        bail!(
            "{}: images are {}×{}×{}, the config {} expects {c}×{h}×{w}",
            args.data.display(),
            imgs.channels,
            imgs.height,
            imgs.width,
            config.origin
        );
    }
    let pixels = &imgs.data;
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let mut cfg = config.likelihood_config();
    cfg.hutchinson = Hutchinson::from_name(&args.hutchinson)?;
    cfg.solver = Rk45Options {
        rtol: args.tol,
        atol: args.tol,
        ..Rk45Options::default()
    };
    // The likelihood always uses the continuous score (reference get_likelihood_fn).
    let precision =
        sgm_nets::Precision::parse(&args.conv_precision).expect("checked by the argument parser");
    let score = sgm_nets::WithPrecision::new(ScoreFn::new(&sde, &net, true), precision);
    let n = imgs.n;
    let per = c * h * w;
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut stats = Running::default();
    let mut noise = BackendNoise;
    for start in (0..n).step_by(args.batch_size) {
        let b = args.batch_size.min(n - start);
        let px: Vec<f32> = pixels[start * per..(start + b) * per]
            .iter()
            .map(|&p| p as f32)
            .collect();
        let px = Tensor::<Train, 4>::from_data(TensorData::new(px, [b, c, h, w]), &dev);
        let x01 = if args.no_dequantize {
            px.div_scalar(255.0)
        } else {
            let u: Tensor<Train, 4> =
                NoiseSource::<Train>::uniform(&mut noise, b * per, &dev)?.reshape([b, c, h, w]);
            sgm_sample::uniform_dequantize(px, u)?
        };
        let data = cfg.scaler.scale(x01);
        let out = sgm_sample::likelihood(&sde, &score, data, &cfg, &mut noise)?;
        let bpd: Vec<f32> = out.bpd.into_data().convert::<f32>().to_vec().expect("f32");
        for v in bpd {
            if !v.is_finite() {
                bail!("non-finite bits/dim at image {}", args.first + start);
            }
            stats.push(v as f64);
        }
        bar.inc(b as u64);
        bar.set_message(format!(
            "{:.4} ± {:.4} bits/dim (NFE {})",
            stats.mean(),
            stats.stderr(),
            out.nfe
        ));
    }
    bar.finish();
    println!(
        "bits/dim: {:.5} ± {:.5} (mean ± standard error over {} images{})",
        stats.mean(),
        stats.stderr(),
        stats.n,
        if args.no_dequantize {
            ""
        } else {
            ", uniformly dequantised"
        }
    );
    Ok(())
}
