//! `sample`, `inpaint`, `colorize`: PC or probability-flow ODE generation from a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use sde_core::{AnySde, BackendNoise, ScoreFn, ScoreFunction, Sde};
use sgm_sample::{
    DataScaler, OdeConfig, PcConfig, Rk45Options, Sampler, SigmaMethod, SigmaSampler,
};

use crate::backend::{Inner, device};
use crate::config::{self, ExperimentConfig, SamplingMethod};
use crate::images;
use crate::model::{Weights, load_model};

/// What every generating command needs: config, checkpoint, seed, output folder.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Official config name (e.g. `ve/cifar10_ncsnpp_deep_continuous`) or a .toml path.
    #[arg(long)]
    pub config: String,
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

/// Sampler knobs; unset ones come from the config's `[sampling]` section.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplerArgs {
    /// `pc`, `ode`, or a fast sampler: euler | heun | dpm_2 | lms | dpmpp_2m | euler_ancestral |
    /// dpm_2_ancestral | dpmpp_2s_ancestral | dpmpp_sde | dpmpp_2m_sde | dpmpp_3m_sde |
    /// dpm_fast | dpm_adaptive (fast samplers: `--steps` = noise levels, default 18).
    #[arg(long)]
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
    /// euler_maruyama | reverse_diffusion | ancestral_sampling | none.
    #[arg(long)]
    pub predictor: Option<String>,
    /// langevin | ald | none.
    #[arg(long)]
    pub corrector: Option<String>,
    /// Corrector signal-to-noise ratio.
    #[arg(long)]
    pub snr: Option<f32>,
    /// Corrector steps per time step.
    #[arg(long)]
    pub n_steps: Option<usize>,
    /// Predictor on the probability-flow ODE.
    #[arg(long)]
    pub probability_flow: bool,
    /// Return the last noisy iterate instead of its noise-free mean.
    #[arg(long)]
    pub no_denoise: bool,
    /// ODE solver relative and absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
}

/// `cargo xtask sample`.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
}

/// The SDE of the config, with `steps` overriding N.
pub fn sde_of(config: &ExperimentConfig, steps: Option<usize>) -> Result<AnySde> {
    let sde = config.sde()?;
    let Some(n) = steps else { return Ok(sde) };
    let f = |k: &str| config.model_f64(k).unwrap_or(f64::NAN);
    Ok(AnySde::from_reference(
        sde.kind(),
        f("sigma_min"),
        f("sigma_max"),
        f("beta_min"),
        f("beta_max"),
        n,
    )?)
}

/// The data scaler of the config (`data.centered`).
pub fn scaler_of(config: &ExperimentConfig) -> DataScaler {
    if config.data.centered {
        DataScaler::Centered
    } else {
        DataScaler::Identity
    }
}

/// PC options from the config's `[sampling]` section and the command-line overrides.
pub fn pc_config(config: &ExperimentConfig, sde: &AnySde, a: &SamplerArgs) -> Result<PcConfig> {
    let s = &config.sampling;
    let predictor = match &a.predictor {
        Some(p) => sgm_sample::Predictor::from_name(p)?,
        None => sgm_sample::Predictor::from_name(config::predictor_name(s.predictor))?,
    };
    let corrector = match &a.corrector {
        Some(c) => sgm_sample::Corrector::from_name(c)?,
        None => sgm_sample::Corrector::from_name(config::corrector_name(s.corrector))?,
    };
    let mut cfg = PcConfig::new(predictor, corrector, sde);
    cfg.snr = a.snr.unwrap_or(s.snr as f32);
    cfg.n_steps = a.n_steps.unwrap_or(s.n_steps_each);
    cfg.probability_flow = a.probability_flow || s.probability_flow;
    cfg.denoise = !a.no_denoise && s.noise_removal;
    cfg.eps = config.sampling_eps() as f64;
    cfg.scaler = scaler_of(config);
    cfg.validate(sde)?;
    Ok(cfg)
}

/// A fast σ-space sampler (`--method heun` …) from the command line: schedule over the SDE's
/// range (or `--sigma-range`), `--steps` noise levels (default 18), `--kwarg` options.
fn fast_sampler(
    config: &ExperimentConfig,
    sde: &AnySde,
    name: &str,
    args: &SampleArgs,
) -> Result<SigmaSampler> {
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
        sde,
        method,
        &args.sampler.schedule,
        args.model.steps.unwrap_or(18),
        range,
        scaler_of(config),
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

/// Network calls of a PC run.
fn pc_calls(cfg: &PcConfig, sde: &AnySde) -> u64 {
    let n = sde.num_steps() as u64;
    let p = u64::from(cfg.predictor != sgm_sample::Predictor::None);
    let c = if cfg.corrector == sgm_sample::Corrector::None {
        0
    } else {
        cfg.n_steps as u64
    };
    n * (p + c)
}

fn continuous(config: &ExperimentConfig) -> bool {
    config.training.continuous
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
    let config = ExperimentConfig::load(&args.model.config)?;
    // fast samplers: --steps counts noise levels, the SDE (and discrete labels) keep the config's N
    let fast = !matches!(args.sampler.method.as_deref(), None | Some("pc" | "ode"));
    let sde = sde_of(&config, if fast { None } else { args.model.steps })?;
    let dev = device();
    Inner::seed(&dev, args.model.seed);
    let net = load_model::<Inner>(&config, &args.model.checkpoint, args.model.weights, &dev)?;
    let [c, h, w] = config.image_shape();
    let shape = [args.batch_size, c, h, w];
    let method = match args.sampler.method.as_deref() {
        Some("pc") => SamplingMethod::Pc,
        Some("ode") => SamplingMethod::Ode,
        Some(fast) => {
            let sampler = fast_sampler(&config, &sde, fast, &args)?;
            let score = ScoreFn::new(&sde, &net, continuous(&config));
            let progress = Progress::new(&score, None, fast);
            let out = sampler.sample(&progress, shape, &mut BackendNoise, &dev)?;
            progress.finish();
            println!("NFE: {} network calls", out.nfe);
            return save_outputs(&args.model.out, "samples", out.sample);
        }
        None => config.sampling.method,
    };
    let out = match method {
        SamplingMethod::Pc => {
            let cfg = pc_config(&config, &sde, &args.sampler)?;
            let score = ScoreFn::new(&sde, &net, continuous(&config));
            let progress = Progress::new(&score, Some(pc_calls(&cfg, &sde)), "PC sampling");
            let out = sgm_sample::pc_sample(
                &sde,
                &progress,
                &cfg,
                shape,
                &sgm_sample::NoProjection,
                &mut BackendNoise,
                &dev,
            )?;
            progress.finish();
            out
        }
        SamplingMethod::Ode => {
            let mut cfg = OdeConfig::new(&sde);
            cfg.solver = Rk45Options {
                rtol: args.sampler.tol,
                atol: args.sampler.tol,
                ..Rk45Options::default()
            };
            cfg.eps = config.sampling_eps() as f64;
            cfg.denoise = !args.sampler.no_denoise && config.sampling.noise_removal;
            cfg.scaler = scaler_of(&config);
            // The ODE sampler always uses the continuous score (reference get_ode_sampler).
            let score = ScoreFn::new(&sde, &net, true);
            let progress = Progress::new(&score, None, "ODE sampling");
            let out = sgm_sample::ode_sample(
                &sde,
                &progress,
                &cfg,
                shape,
                None,
                &mut BackendNoise,
                &dev,
            )?;
            progress.finish();
            out
        }
    };
    println!(
        "NFE: {} network calls (the reference reports {})",
        out.nfe, out.reference_nfe
    );
    save_outputs(&args.model.out, "samples", out.sample)
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
            config.source
        );
    }
    let x = Tensor::<Inner, 4>::from_data(TensorData::new(data, dims), &device());
    Ok(scaler_of(config).scale(x))
}

/// `inpaint` (mask given) or `colorize` (no mask: the inputs are turned grey first).
pub fn run_controllable(args: ControlArgs, colorize: bool) -> Result<()> {
    let config = ExperimentConfig::load(&args.model.config)?;
    let sde = sde_of(&config, args.model.steps)?;
    let dev = device();
    Inner::seed(&dev, args.model.seed);
    let net = load_model::<Inner>(&config, &args.model.checkpoint, args.model.weights, &dev)?;
    let x = read_inputs(&config, &args.images)?;
    let mut cfg = pc_config(&config, &sde, &args.sampler)?;
    // The reference's controllable samplers use eps = 1e-5 for every SDE.
    cfg.eps = 1e-5;
    let score = ScoreFn::new(&sde, &net, continuous(&config));
    let progress = Progress::new(
        &score,
        Some(pc_calls(&cfg, &sde)),
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
