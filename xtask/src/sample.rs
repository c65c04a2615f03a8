//! `sample`, `inpaint`, `colorize`: PC or probability-flow ODE generation from a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::builder::PossibleValuesParser;
use indicatif::{ProgressBar, ProgressStyle};
use sde_core::{AnySde, BackendNoise, ScoreFn, ScoreFunction};
use sgm_config::{ConfigSampler, ExperimentConfig, Override};
use sgm_nets::ScoreNet;
use sgm_sample::sigma::ALL_KINDS;
use sgm_sample::{Corrector, Predictor, Rk45Options, Sampler, SigmaMethod, SigmaSampler};
use sgm_train::generate::{GenerateOptions, generate};

use crate::backend::{Inner, device};
use crate::config::SetArgs;
use crate::images;
use crate::model::Weights;

/// A clap parser accepting exactly `names` (case-insensitive with `ignore_case`): listed in
/// `--help`, and a wrong value is a clap error before any config or checkpoint is read.
pub fn one_of(names: impl IntoIterator<Item = &'static str>) -> PossibleValuesParser {
    PossibleValuesParser::new(names)
}

/// `--method`: `pc`, `ode` or a fast sampler of `sgm_sample::sigma`.
pub fn method_names() -> Vec<&'static str> {
    ["pc", "ode"]
        .into_iter()
        .chain(ALL_KINDS.map(|k| k.name()))
        .collect()
}

/// What every generating command needs: config, checkpoint, seed, output folder.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Official or short config name (e.g. `ve/cifar10_ncsnpp_deep_continuous`,
    /// `ncsnpp-deep-cont`) or a .toml path.
    #[arg(long)]
    pub config: String,
    #[command(flatten)]
    pub set: SetArgs,
    /// Official `.pth` training checkpoint or a `.safetensors` state dict (reference key names).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Which weights of a `.pth` checkpoint to use.
    #[arg(long, value_enum, default_value_t = Weights::Ema)]
    pub weights: Weights,
    /// Seed of the backend RNG.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Override the number of discretisation steps N of the SDE (default: the config's); fast
    /// samplers: the number of noise levels (default 18).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Output folder (created if needed).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

impl ModelArgs {
    /// The network of `config` with the weights of `--checkpoint` (`--weights`): an sgm
    /// training checkpoint (`cargo xtask train`), or what `ExperimentConfig::load_network` reads
    /// (official `.pth`, flat `.safetensors`).
    pub fn network<B: Backend>(
        &self,
        config: &ExperimentConfig,
        device: &B::Device,
    ) -> Result<ScoreNet<B>> {
        if sgm_train::checkpoint::is_train_checkpoint(&self.checkpoint) {
            let mut cfg = config.model_config()?;
            cfg.model.dropout = 0.0; // evaluation: the reference's model.eval()
            let ck = sgm_train::checkpoint::Checkpoint::read(&self.checkpoint)?;
            return Ok(ck.weights::<B>(&cfg, self.weights.into(), device)?);
        }
        Ok(config.load_network(&self.checkpoint, self.weights.into(), device)?)
    }
}

/// Sampler knobs; unset ones come from the config's `[sampling]` section (each one is a
/// `--set sampling.…` override, validated like the config).
#[derive(clap::Args, Debug, Clone)]
pub struct SamplerArgs {
    /// `pc` or `ode` (`sampling.method`), or a fast sampler: euler | heun | dpm_2 | lms |
    /// dpmpp_2m | euler_ancestral | dpm_2_ancestral | dpmpp_2s_ancestral | dpmpp_sde |
    /// dpmpp_2m_sde | dpmpp_3m_sde | dpm_fast | dpm_adaptive (fast samplers: `--steps` = noise
    /// levels, default 18).
    #[arg(long, ignore_case = true, value_parser = one_of(method_names()))]
    pub method: Option<String>,
    /// Fast samplers: noise schedule karras | exponential | polyexponential | vp.
    #[arg(long, default_value = "karras")]
    pub schedule: String,
    /// Fast samplers: smallest / largest σ of the schedule (default: the SDE's sampling range).
    #[arg(long, num_args = 2, value_names = ["SIGMA_MIN", "SIGMA_MAX"])]
    pub sigma_range: Option<Vec<f64>>,
    /// Fast samplers: a k-diffusion keyword option, e.g. `--kwarg s_churn=40 --kwarg eta=0.5`.
    #[arg(long = "kwarg", value_name = "KEY=VALUE")]
    pub kwargs: Vec<String>,
    /// euler_maruyama | reverse_diffusion | ancestral_sampling | none (`sampling.predictor`).
    #[arg(long, ignore_case = true, value_parser = one_of(Predictor::ALL.map(Predictor::name)))]
    pub predictor: Option<String>,
    /// langevin | ald | none (`sampling.corrector`).
    #[arg(long, ignore_case = true, value_parser = one_of(Corrector::ALL.map(Corrector::name)))]
    pub corrector: Option<String>,
    /// Corrector signal-to-noise ratio (`sampling.snr`).
    #[arg(long)]
    pub snr: Option<f64>,
    /// Corrector steps per time step (`sampling.n_steps_each`).
    #[arg(long)]
    pub n_steps: Option<usize>,
    /// Predictor on the probability-flow ODE (`sampling.probability_flow = true`).
    #[arg(long)]
    pub probability_flow: bool,
    /// Return the last noisy iterate instead of its noise-free mean
    /// (`sampling.noise_removal = false`).
    #[arg(long)]
    pub no_denoise: bool,
    /// ODE solver relative and absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
}

impl SamplerArgs {
    /// The fast sampler named by `--method`, if it names one (anything but `pc` / `ode`).
    fn fast_method(&self) -> Option<&str> {
        self.method
            .as_deref()
            .filter(|m| !matches!(*m, "pc" | "ode"))
    }

    /// The flags given, as overrides of `[sampling]`.
    fn overrides(&self) -> Vec<Override> {
        let mut o = Vec::new();
        let mut set = |key: &str, value: Option<toml::Value>| {
            if let Some(v) = value {
                o.push(Override::new(format!("sampling.{key}"), v));
            }
        };
        // a fast sampler is not a `sampling.method` of the config
        set(
            "method",
            self.method
                .clone()
                .filter(|_| self.fast_method().is_none())
                .map(Into::into),
        );
        set("predictor", self.predictor.clone().map(Into::into));
        set("corrector", self.corrector.clone().map(Into::into));
        set("snr", self.snr.map(Into::into));
        set("n_steps_each", self.n_steps.map(|n| (n as i64).into()));
        set(
            "probability_flow",
            self.probability_flow.then_some(true.into()),
        );
        set("noise_removal", self.no_denoise.then_some(false.into()));
        o
    }
}

/// The config of `--config`, with `--set` and the sampler flags applied.
pub fn load_config(model: &ModelArgs, sampler: Option<&SamplerArgs>) -> Result<ExperimentConfig> {
    let mut overrides = model.set.overrides()?;
    overrides.extend(sampler.map(SamplerArgs::overrides).unwrap_or_default());
    Ok(ExperimentConfig::load_with(&model.config, &overrides)?)
}

/// `cargo xtask sample`.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Images per sampler call.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Total number of images (default: one batch). Image k is seeded by (--seed, k), written
    /// as `OUT/images/{k:06}.png`; a rerun generates only the missing ones.
    #[arg(long)]
    pub num_samples: Option<usize>,
}

/// A fast σ-space sampler (`--method heun` …) from the command line: schedule over the SDE's
/// range (or `--sigma-range`), `--steps` noise levels (default 18), `--kwarg` options. The SDE
/// (and discrete labels) keep the config's N.
fn fast_sampler(config: &ExperimentConfig, name: &str, args: &SampleArgs) -> Result<SigmaSampler> {
    let mut method =
        SigmaMethod::from_name(name).map_err(|e| anyhow::anyhow!("--method: {e} (or pc | ode)"))?;
    for kv in &args.sampler.kwargs {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--kwarg `{kv}`: expected KEY=VALUE");
        };
        method
            .set(k.trim(), v)
            .map_err(|e| anyhow::anyhow!("--kwarg: {e}"))?;
    }
    let range = args.sampler.sigma_range.as_ref().map(|r| (r[0], r[1]));
    Ok(SigmaSampler::new(
        &config.sde()?,
        method,
        &args.sampler.schedule,
        args.model.steps.unwrap_or(18),
        range,
        config.scaler(),
    )?)
}

/// A score function that ticks a progress bar on every network call.
pub struct Progress<'a, B: Backend> {
    inner: &'a dyn ScoreFunction<B>,
    bar: ProgressBar,
}

impl<'a, B: Backend> Progress<'a, B> {
    /// A bar of `len` network calls (`None`: unknown length, a counter).
    pub fn new(inner: &'a dyn ScoreFunction<B>, len: Option<u64>, what: &str) -> Self {
        let bar = match len {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} NFE, {elapsed} (eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {spinner} {pos} NFE, {elapsed}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(what.to_string());
        Self { inner, bar }
    }
    /// Ends the bar.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

impl<B: Backend> ScoreFunction<B> for Progress<'_, B> {
    fn score(&self, x: Tensor<B, 4>, t: &[f32]) -> sde_core::Result<Tensor<B, 4>> {
        self.bar.inc(1);
        self.inner.score(x, t)
    }
}

/// Writes `name.png` (grid) and `name.safetensors` (raw samples) under `out`.
fn save_outputs(out: &Path, name: &str, x: Tensor<Inner, 4>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (dims, data) = images::to_host(x);
    if data.iter().any(|v| !v.is_finite()) {
        bail!("the sampler produced non-finite values (NaN/inf): nothing written");
    }
    let ncol = (dims[0] as f64).sqrt().ceil() as usize;
    let png = out.join(format!("{name}.png"));
    images::write_grid(&png, &dims, &data, ncol)?;
    let raw = out.join(format!("{name}.safetensors"));
    images::write_samples(&raw, &dims, &data)?;
    println!("wrote {} and {}", png.display(), raw.display());
    Ok(())
}

pub fn run_sample(args: SampleArgs) -> Result<()> {
    let config = load_config(&args.model, Some(&args.sampler))?;
    if let Some(name) = args.sampler.fast_method() {
        let sampler = fast_sampler(&config, name, &args)?;
        let continuous = config.training.continuous;
        return sample_to_folder(&config, &args, &sampler, &sampler.sde, continuous, name);
    }
    let mut sampler = config.sampler_for(config.sde_with_steps(args.model.steps)?)?;
    if let ConfigSampler::Ode(ode) = &mut sampler {
        ode.config.solver = Rk45Options {
            rtol: args.sampler.tol,
            atol: args.sampler.tol,
            ..Rk45Options::default()
        };
    }
    let what = match sampler {
        ConfigSampler::Pc { .. } => "PC sampling",
        ConfigSampler::Ode(_) => "ODE sampling",
    };
    let sde = sampler.sde().clone();
    let continuous = sampler.continuous_score();
    sample_to_folder(&config, &args, &sampler, &sde, continuous, what)
}

/// The one flow of `sample`: network → score function → `sampler`, in batches through
/// `sgm_train::generate` (one PNG per image, seeded per image, resumable) → array and grid.
fn sample_to_folder<S: Sampler<Inner>>(
    config: &ExperimentConfig,
    args: &SampleArgs,
    sampler: &S,
    sde: &AnySde,
    continuous: bool,
    what: &str,
) -> Result<()> {
    let dev = device();
    let net = args.model.network::<Inner>(config, &dev)?;
    let score = ScoreFn::new(sde, &net, continuous);
    let opts = GenerateOptions {
        num_samples: args.num_samples.unwrap_or(args.batch_size),
        batch_size: args.batch_size,
        seed: args.model.seed,
        out: args.model.out.clone(),
    };
    let bar = ProgressBar::new(opts.num_samples as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    let g = generate(
        sampler,
        &score,
        config.image_shape(),
        &opts,
        &dev,
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish();
    println!(
        "NFE: {} network calls over {} new images ({} were already there)",
        g.nfe,
        g.generated,
        opts.num_samples - g.generated
    );
    println!(
        "wrote {} (one PNG per image), {} and {}",
        g.images.display(),
        g.grid.display(),
        g.array.display()
    );
    Ok(())
}

/// `cargo xtask inpaint` / `colorize`.
#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Input PNG images (same size as the config's images).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Inpainting mask PNG (white = known pixel), same size as the images.
    #[arg(long)]
    pub mask: Option<PathBuf>,
}

/// Reads the inputs as a model-space batch and checks their size against the config.
fn read_inputs(config: &ExperimentConfig, paths: &[PathBuf]) -> Result<Tensor<Inner, 4>> {
    let (dims, data) = images::read_pngs(paths)?;
    let [c, h, w] = config.image_shape();
    if dims[1..] != [c, h, w] {
        bail!(
            "input images are {}×{}×{}, the config {} expects {c}×{h}×{w}",
            dims[1],
            dims[2],
            dims[3],
            config.origin
        );
    }
    let x = Tensor::<Inner, 4>::from_data(TensorData::new(data, dims), &device());
    Ok(config.scaler().scale(x))
}

/// `inpaint` (mask given) or `colorize` (no mask: the inputs are turned grey first).
pub fn run_controllable(args: ControlArgs, colorize: bool) -> Result<()> {
    let config = load_config(&args.model, Some(&args.sampler))?;
    let sde = config.sde_with_steps(args.model.steps)?;
    let cfg = config.controllable_config(&sde)?;
    let dev = device();
    Inner::seed(&dev, args.model.seed);
    let net = args.model.network::<Inner>(&config, &dev)?;
    let x = read_inputs(&config, &args.images)?;
    let score = ScoreFn::new(&sde, &net, config.training.continuous);
    let progress = Progress::new(
        &score,
        Some(cfg.network_calls(&sde) as u64),
        if colorize { "colorizing" } else { "inpainting" },
    );
    let out = if colorize {
        // R = G = B = channel mean
        let gray = x.mean_dim(1).repeat_dim(1, 3);
        sgm_sample::pc_colorize(&sde, &progress, &cfg, gray, &mut BackendNoise)?
    } else {
        let Some(mask_path) = &args.mask else {
            bail!("inpaint needs --mask FILE.png (white = known pixels)");
        };
        let [b, _, h, w] = x.dims();
        let mask = images::read_mask(mask_path, b, h, w)?;
        let mask = Tensor::<Inner, 4>::from_data(TensorData::new(mask, [b, 3, h, w]), &dev);
        sgm_sample::pc_inpaint(&sde, &progress, &cfg, x, mask, &mut BackendNoise)?
    };
    progress.finish();
    save_outputs(
        &args.model.out,
        if colorize { "colorized" } else { "inpainted" },
        out.sample,
    )
}
