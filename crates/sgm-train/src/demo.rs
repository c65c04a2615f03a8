//! The demo of `cargo xtask demo`: the whole method end to end in minutes on a CPU.
//!
//! 1. Data: the CIFAR-10 binary batches of a folder (every `data_batch_{1..5}.bin` present +
//!    `test_batch.bin`), box-downsampled to `image_size`; without a folder, a dataset
//!    generated in code ([`generated_discs`]: anti-aliased discs of palette colours).
//! 2. Config: the official `vp/cifar10_ddpmpp_continuous` with `--set`-style overrides that
//!    shrink it (a small DDPM++ network, `num_scales` sampling steps, short warm-up) — the
//!    same code path as `cargo xtask train`.
//! 3. Training through [`crate::train`] into `out/run/` (rerunning the demo resumes / skips it).
//! 4. Samples of the untrained and the trained (EMA) network: PC (Euler–Maruyama, the config's
//!    sampler) and the probability-flow ODE (RK45 at `ode_tol`).
//! 5. Quality: sliced Wasserstein distance ([`sgm_eval::sliced_wasserstein`], pixels clipped
//!    to [0, 1] as the PNGs hold them)
//!    of each sample set to held-out test images, beside the same distance of as many training
//!    images (the floor a perfect model would reach). Bits/dim of dequantised test images under
//!    the probability-flow ODE (loose tolerance), untrained and trained.
//! 6. `out/demo.png` (rows: test data, untrained PC, trained PC, trained ODE), `out/pc.png`,
//!    `out/ode.png`, `out/report.json`.

use sgm_conv::{ConvAutodiffBackend, ConvBackend};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use sde_core::{AnySde, BackendNoise, NoiseSource, ScoreFn};
use serde::Serialize;
use sgm_config::{ConfigSampler, ExperimentConfig, Override};
use sgm_nets::{CheckpointWeights, ScoreNet};
use sgm_sample::{OdeSampler, Rk45Options, Sampler};

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::data::{Cifar10, ImageSource, InMemoryImages};
use crate::error::{Result, TrainError};
use crate::rng::TrainRng;
use crate::run::{RunData, RunDir, RunHooks, StepHook, init_model, train};

/// The official config the demo shrinks.
pub const BASE_CONFIG: &str = "vp/cifar10_ddpmpp_continuous";

/// Sizes of a demo run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoOptions {
    /// Folder with CIFAR-10 binary batches; `None`: the generated dataset.
    pub data: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Side of the (square) images; CIFAR-10 is box-downsampled to it (must divide 32).
    pub image_size: usize,
    /// Base channel count of the network (`model.nf`).
    pub nf: usize,
    /// Training steps.
    pub train_steps: u64,
    /// Training batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Samples per sampler.
    pub num_samples: usize,
    /// Discretisation steps of the SDE (`model.num_scales`: PC steps).
    pub sampling_steps: usize,
    /// Test images whose bits/dim are computed.
    pub bpd_images: usize,
    /// RK45 rtol = atol of the ODE sampler and the likelihood.
    pub ode_tol: f64,
    /// Random directions of the sliced Wasserstein distance.
    pub projections: usize,
    /// Seed of everything (training, samples, dataset generation).
    pub seed: u64,
}

impl DemoOptions {
    /// The `cargo xtask demo` sizes: 8×8 images, a DDPM++ of `nf` 16, 2000 steps of batch 32
    /// (about 4 CPU minutes on 2 cores; see `docs/demo.md`).
    pub fn standard(out: &Path) -> Self {
        Self {
            data: None,
            out: out.to_path_buf(),
            image_size: 8,
            nf: 16,
            train_steps: 2000,
            batch_size: 32,
            lr: 2e-3,
            num_samples: 64,
            sampling_steps: 100,
            bpd_images: 16,
            ode_tol: 1e-3,
            projections: 256,
            seed: 42,
        }
    }

    /// A run of seconds (the test): 8×8 images, a tiny network, a few steps.
    pub fn tiny(out: &Path) -> Self {
        Self {
            nf: 8,
            train_steps: 6,
            batch_size: 8,
            num_samples: 8,
            sampling_steps: 8,
            bpd_images: 2,
            ode_tol: 1e-2,
            projections: 32,
            ..Self::standard(out)
        }
    }

    /// The `--set` overrides of [`BASE_CONFIG`] these sizes mean.
    pub fn overrides(&self) -> Vec<Override> {
        let steps = self.train_steps as i64;
        vec![
            Override::new("data.image_size", self.image_size as i64),
            Override::new("model.nf", self.nf as i64),
            Override::new("model.ch_mult", vec![1i64, 2]),
            Override::new("model.num_res_blocks", 1i64),
            Override::new("model.attn_resolutions", Vec::<i64>::new()),
            Override::new("model.dropout", 0.0),
            Override::new("model.ema_rate", 0.999),
            Override::new("model.num_scales", self.sampling_steps as i64),
            Override::new("training.batch_size", self.batch_size as i64),
            Override::new("training.n_iters", steps),
            Override::new("training.snapshot_freq", steps.max(1)),
            Override::new("training.snapshot_freq_for_preemption", 100i64),
            Override::new("training.log_freq", 25i64),
            Override::new("training.eval_freq", 100i64),
            Override::new("training.snapshot_sampling", false),
            Override::new("eval.batch_size", self.batch_size as i64),
            Override::new("optim.lr", self.lr),
            Override::new("optim.warmup", (steps / 8).max(1)),
            Override::new("seed", self.seed as i64),
        ]
    }
}

/// Quality of one sample set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Sliced W₂ distance to the test images (pixels in [0, 1]; lower is better).
    pub swd: f64,
    /// Network calls spent.
    pub nfe: usize,
    /// Wall time of the sampling.
    pub seconds: f64,
}

/// Bits/dim of the test images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bpd {
    /// Mean over images.
    pub mean: f64,
    /// Standard error of the mean.
    pub stderr: f64,
    /// Images.
    pub n: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Where the demo wrote what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoFiles {
    /// Training run directory (checkpoints, `metrics.jsonl`).
    pub run_dir: PathBuf,
    /// Rows: test data, untrained PC, trained PC, trained ODE.
    pub grid: PathBuf,
    /// All trained PC samples.
    pub pc_grid: PathBuf,
    /// All trained ODE samples.
    pub ode_grid: PathBuf,
    /// This report as JSON.
    pub report: PathBuf,
}

/// What the demo measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoReport {
    /// Which data (and how it was prepared).
    pub dataset: String,
    /// Base config and the overrides applied.
    pub config: String,
    /// `[C, H, W]`.
    pub image_shape: [usize; 3],
    /// Training / test images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Completed training steps.
    pub steps: u64,
    /// Step the run resumed from (a rerun of the demo).
    pub resumed_from: Option<u64>,
    /// Training loss of the first step of this session and of the last step.
    pub first_loss: f64,
    /// Last training loss.
    pub last_loss: f64,
    /// Wall time of training.
    pub train_seconds: f64,
    /// Sliced W₂ of as many training images as samples to the test images: the floor.
    pub data_swd: f64,
    /// Untrained network, PC sampler.
    pub untrained_pc: Quality,
    /// Trained (EMA) network, PC sampler.
    pub trained_pc: Quality,
    /// Trained (EMA) network, probability-flow ODE.
    pub trained_ode: Quality,
    /// Bits/dim of the untrained network.
    pub untrained_bpd: Bpd,
    /// Bits/dim of the trained (EMA) network.
    pub trained_bpd: Bpd,
    /// Output files.
    pub files: DemoFiles,
    /// Wall time of the whole demo.
    pub total_seconds: f64,
}

/// `n` images of discs: background and disc colour from a palette (never equal), centre and
/// radius uniform, edges anti-aliased by pixel-centre distance. Deterministic in `seed`.
pub fn generated_discs(n: usize, size: usize, seed: u64) -> InMemoryImages {
    const PALETTE: [[u8; 3]; 6] = [
        [230, 57, 70],
        [241, 250, 238],
        [69, 123, 157],
        [29, 53, 87],
        [244, 162, 97],
        [42, 157, 143],
    ];
    let mut rng = TrainRng::new(seed, 0xD15C);
    let per = 3 * size * size;
    let mut pixels = vec![0u8; n * per];
    let s = size as f32;
    for img in pixels.chunks_exact_mut(per) {
        let bg = (rng.next_u64() % 6) as usize;
        let fg = (bg + 1 + (rng.next_u64() % 5) as usize) % 6;
        let r = s * (0.18 + 0.17 * rng.uniform_f32());
        let cx = r + (s - 2.0 * r) * rng.uniform_f32();
        let cy = r + (s - 2.0 * r) * rng.uniform_f32();
        for y in 0..size {
            for x in 0..size {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                for c in 0..3 {
                    let v = PALETTE[fg][c] as f32 * cover + PALETTE[bg][c] as f32 * (1.0 - cover);
                    img[(c * size + y) * size + x] = v.round() as u8;
                }
            }
        }
    }
    InMemoryImages {
        shape: [3, size, size],
        pixels,
        labels: Vec::new(),
    }
}

/// Box-averages `[C, S, S]` images down to `size` (`S` a multiple of `size`).
fn downsample(images: InMemoryImages, size: usize) -> Result<InMemoryImages> {
    let [c, h, w] = images.shape;
    if h == size && w == size {
        return Ok(images);
    }
    if h != w || size == 0 || !h.is_multiple_of(size) {
        return Err(TrainError::Config {
            key: "demo image_size".into(),
            msg: format!("{size} does not divide the data's {h}×{w} images"),
        });
    }
    let f = h / size;
    let n = images.len();
    let mut out = Vec::with_capacity(n * c * size * size);
    for img in images.pixels.chunks_exact(c * h * w) {
        for ch in 0..c {
            for y in 0..size {
                for x in 0..size {
                    let mut sum = 0u32;
                    for dy in 0..f {
                        for dx in 0..f {
                            sum += img[(ch * h + y * f + dy) * w + x * f + dx] as u32;
                        }
                    }
                    out.push(((sum as f32) / (f * f) as f32).round() as u8);
                }
            }
        }
    }
    Ok(InMemoryImages {
        shape: [c, size, size],
        pixels: out,
        labels: images.labels,
    })
}

/// Training and test images of the demo, and a description of them.
pub fn demo_data(opts: &DemoOptions) -> Result<(String, InMemoryImages, InMemoryImages)> {
    let s = opts.image_size;
    match &opts.data {
        None => Ok((
            format!(
                "generated discs ({s}×{s}, built into the binary: no --data given; \
                 pass --data DIR with CIFAR-10 binary batches for real images)"
            ),
            generated_discs(4096, s, opts.seed),
            generated_discs(512, s, opts.seed ^ 0x7E57),
        )),
        Some(dir) => {
            let train_files: Vec<PathBuf> = (1..=5)
                .map(|k| dir.join(format!("data_batch_{k}.bin")))
                .filter(|p| p.is_file())
                .collect();
            let test_file = dir.join("test_batch.bin");
            if train_files.is_empty() || !test_file.is_file() {
                return Err(TrainError::Data {
                    path: dir.clone(),
                    msg: "the demo needs CIFAR-10 binary batches here: test_batch.bin and at \
                          least data_batch_1.bin (see `cargo xtask data cifar10 --dir DIR`)"
                        .into(),
                });
            }
            let names: Vec<String> = train_files
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            let train = downsample(Cifar10::load_files(&train_files)?, s)?;
            let test = downsample(Cifar10::load_files(&[test_file])?, s)?;
            Ok((
                format!(
                    "CIFAR-10 from {} ({} for training, test_batch.bin held out), box-downsampled to {s}×{s}",
                    dir.display(),
                    names.join(" + ")
                ),
                train,
                test,
            ))
        }
    }
}

/// Pixels of the first `n` images in [0, 1].
fn unit_pixels(images: &InMemoryImages, n: usize) -> Vec<f32> {
    let per = images.shape.iter().product::<usize>();
    images.pixels[..n.min(images.len()) * per]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect()
}

/// `n` samples of `net` with `sampler` (seeded), as host pixels clipped to [0, 1].
fn draw<B: ConvBackend>(
    sampler: &ConfigSampler,
    net: &ScoreNet<B>,
    shape: [usize; 4],
    seed: u64,
    device: &B::Device,
) -> Result<(Vec<f32>, usize, f64)> {
    let started = Instant::now();
    B::seed(device, seed);
    let score = ScoreFn::new(sampler.sde(), net, sampler.continuous_score());
    let out = Sampler::<B>::sample(sampler, &score, shape, &mut BackendNoise, device)?;
    let data = out
        .sample
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| TrainError::Internal(format!("samples to host: {e:?}")))?;
    if data.iter().any(|v| !v.is_finite()) {
        return Err(TrainError::Internal(
            "the sampler produced NaN / inf".into(),
        ));
    }
    // Measured as saved: clipped to [0, 1] (the reference's `np.clip(x * 255, 0, 255)`).
    let data = data.into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
    Ok((data, out.nfe, started.elapsed().as_secs_f64()))
}

/// Bits/dim of the first `n` test images (uniformly dequantised) under the probability-flow
/// ODE of `net`.
fn bits_per_dim<B: ConvAutodiffBackend>(
    exp: &ExperimentConfig,
    sde: &AnySde,
    net: &ScoreNet<B>,
    test: &InMemoryImages,
    opts: &DemoOptions,
    device: &B::Device,
) -> Result<Bpd> {
    let started = Instant::now();
    let n = opts.bpd_images.min(test.len());
    let [c, h, w] = test.shape;
    B::seed(device, opts.seed ^ 0xB9D);
    let px: Vec<f32> = test.pixels[..n * c * h * w]
        .iter()
        .map(|&p| p as f32)
        .collect();
    let px = Tensor::<B, 4>::from_data(TensorData::new(px, [n, c, h, w]), device);
    let mut noise = BackendNoise;
    let u: Tensor<B, 4> =
        NoiseSource::<B>::uniform(&mut noise, n * c * h * w, device)?.reshape([n, c, h, w]);
    let x01 = sgm_sample::uniform_dequantize(px, u)?;
    let mut cfg = exp.likelihood_config();
    cfg.solver = Rk45Options {
        rtol: opts.ode_tol,
        atol: opts.ode_tol,
        ..Rk45Options::default()
    };
    let data = cfg.scaler.scale(x01);
    let (v, _) = crate::evaluate::bits_per_dim(sde, net, data, &cfg, &mut noise)?;
    let (mean, stderr) = crate::evaluate::mean_stderr(&v);
    Ok(Bpd {
        mean,
        stderr,
        n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs the demo (see the module docs); `on_step` sees every training step (progress bars).
pub fn run_demo<B: ConvAutodiffBackend>(
    opts: &DemoOptions,
    device: &B::Device,
    on_step: Option<StepHook<'_>>,
) -> Result<DemoReport> {
    let started = Instant::now();
    let (dataset, train_set, test_set) = demo_data(opts)?;
    log::info!("demo data: {dataset}");
    let overrides = opts.overrides();
    let config_err = |e: sgm_config::ConfigError| TrainError::Config {
        key: "demo".into(),
        msg: e.to_string(),
    };
    let exp = ExperimentConfig::load_with(BASE_CONFIG, &overrides).map_err(config_err)?;
    let cfg = TrainConfig::from_experiment(&exp)?;
    let config = format!(
        "{BASE_CONFIG} with {}",
        overrides
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    let run_dir = opts.out.join("run");
    let (train_images, test_images) = (train_set.len(), test_set.len());
    let shape = train_set.shape;

    // Training.
    let first_loss = Cell::new(f64::NAN);
    let mut user_hook = on_step;
    let hook: StepHook<'_> = Box::new(|m| {
        if first_loss.get().is_nan() {
            first_loss.set(m.loss);
        }
        if let Some(f) = user_hook.as_mut() {
            f(m);
        }
    });
    let train_started = Instant::now();
    let test_set = Arc::new(test_set);
    let summary = train::<B>(
        &cfg,
        &run_dir,
        RunData {
            train: Arc::new(train_set.clone()),
            eval: test_set.clone() as Arc<dyn ImageSource>,
        },
        None,
        device,
        RunHooks {
            on_step: Some(hook),
            sample: None,
        },
    )?;
    let train_seconds = train_started.elapsed().as_secs_f64();

    // Networks: untrained (the run's initialisation) and trained (EMA of the last checkpoint).
    let untrained: ScoreNet<B> = init_model::<B>(&cfg, device)?;
    let mut eval_model = cfg.model.clone();
    eval_model.model.dropout = 0.0;
    let ck = Checkpoint::read(&RunDir::create(&run_dir)?.meta_checkpoint())?;
    let trained: ScoreNet<B> = ck.weights::<B>(&eval_model, CheckpointWeights::Ema, device)?;

    // Samples.
    let sde = exp.sde().map_err(config_err)?;
    let pc = exp.sampler().map_err(config_err)?;
    let mut ode_cfg = exp.ode_config(&sde);
    ode_cfg.solver = Rk45Options {
        rtol: opts.ode_tol,
        atol: opts.ode_tol,
        ..Rk45Options::default()
    };
    let ode = ConfigSampler::Ode(OdeSampler {
        config: ode_cfg,
        sde: sde.clone(),
    });
    let [c, h, w] = shape;
    let dims = [opts.num_samples, c, h, w];
    let sample_seed = opts.seed ^ 0x5A3;
    log::info!("sampling: untrained PC, trained PC, trained ODE");
    let (u_pc, u_nfe, u_s) = draw(&pc, &untrained.valid(), dims, sample_seed, device)?;
    let trained_inner = trained.valid();
    let (t_pc, t_nfe, t_s) = draw(&pc, &trained_inner, dims, sample_seed, device)?;
    let (t_ode, o_nfe, o_s) = draw(&ode, &trained_inner, dims, sample_seed, device)?;

    // Quality against held-out images.
    let dim = c * h * w;
    let reference = unit_pixels(&test_set, 1024);
    let swd = |x: &[f32]| sgm_eval::sliced_wasserstein(x, &reference, dim, opts.projections, 7);
    let data_swd = swd(&unit_pixels(&train_set, opts.num_samples))?;
    let quality = |x: &[f32], nfe, seconds| -> Result<Quality> {
        Ok(Quality {
            swd: swd(x)?,
            nfe,
            seconds,
        })
    };
    let untrained_pc = quality(&u_pc, u_nfe, u_s)?;
    let trained_pc = quality(&t_pc, t_nfe, t_s)?;
    let trained_ode = quality(&t_ode, o_nfe, o_s)?;
    log::info!("bits/dim of {} test images", opts.bpd_images);
    let untrained_bpd = bits_per_dim(&exp, &sde, &untrained, &test_set, opts, device)?;
    let trained_bpd = bits_per_dim(&exp, &sde, &trained, &test_set, opts, device)?;

    // Pictures.
    let row = opts.num_samples.min(8);
    let mut grid = unit_pixels(&test_set, row);
    for set in [&u_pc, &t_pc, &t_ode] {
        grid.extend_from_slice(&set[..row * dim]);
    }
    let files = DemoFiles {
        run_dir,
        grid: opts.out.join("demo.png"),
        pc_grid: opts.out.join("pc.png"),
        ode_grid: opts.out.join("ode.png"),
        report: opts.out.join("report.json"),
    };
    sgm_eval::write_grid(&files.grid, [4 * row, c, h, w], &grid, row)?;
    let ncol = (opts.num_samples as f64).sqrt().ceil() as usize;
    sgm_eval::write_grid(&files.pc_grid, dims, &t_pc, ncol)?;
    sgm_eval::write_grid(&files.ode_grid, dims, &t_ode, ncol)?;

    let report = DemoReport {
        dataset,
        config,
        image_shape: shape,
        train_images,
        test_images,
        steps: summary.step,
        resumed_from: summary.resumed_from,
        first_loss: first_loss.get(),
        last_loss: summary.last_loss,
        train_seconds,
        data_swd,
        untrained_pc,
        trained_pc,
        trained_ode,
        untrained_bpd,
        trained_bpd,
        files,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| TrainError::io(&report.files.report, e))?;
    sgm_fs::write_atomic_bytes(&report.files.report, json.as_bytes())
        .map_err(|e| TrainError::io(&report.files.report, e))?;
    Ok(report)
}
