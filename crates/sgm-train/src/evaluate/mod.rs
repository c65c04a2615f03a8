//! The reference's `run_lib.evaluate` (`--mode eval`) over a run directory written by
//! [`crate::train`]: for every checkpoint `begin_ckpt ..= end_ckpt`, with its EMA weights,
//!
//! * **eval loss** (`eval.enable_loss`): the training loss over every full batch of the eval
//!   (test) split, no flips, the config's dequantisation; report = mean of the batch losses;
//! * **bits/dim** (`eval.enable_bpd`): the probability-flow likelihood
//!   ([`sgm_sample::likelihood`], the config's likelihood settings) of the uniformly
//!   dequantised `bpd_dataset` — test split 5 times (fresh dequantisation and probes each
//!   pass), train split once, full batches; report = mean ± standard error over images;
//! * **samples** (`eval.enable_sampling`): `num_samples` samples with the config's sampler in
//!   batches of `eval.batch_size` ([`crate::generate`], seeded per image) → Inception pool3
//!   features (and logits when the weights hold `fc`) in batches → FID against the dataset's
//!   statistics file, KID when that file holds features (score_sde's `pool_3` layout; tfgan's
//!   block estimate, [`sgm_eval::kid_blocks`]), IS (one split over all samples, as tfgan's
//!   `classifier_score_from_logits`).
//!
//! ```text
//! workdir/eval/
//!   ckpt_{k}/loss.json, bpd.json      per-batch results (+ the settings they were made with)
//!   ckpt_{k}/sampling.json            the settings of the samples and features below
//!   ckpt_{k}/samples/images/*.png     samples (+ samples.safetensors, samples.png)
//!   ckpt_{k}/inception/batch_{r}.npz  pool_3 (+ logits) of sample batch r
//!   report_{k}.json, report_{k}.md    the checkpoint's report
//!   report.json, report.md            every checkpoint evaluated in this folder
//! ```
//!
//! Every partial result is written atomically after its batch; a rerun skips what is on disk,
//! so an interrupted evaluation continues mid-checkpoint and writes the same report. Each
//! batch's randomness is a function of the run seed and the batch index (not of what ran
//! before), which makes that exact — and gives every checkpoint the same data order, noise
//! and dequantisation (paired comparisons between checkpoints).
//!
//! Deliberate differences from the reference: a checkpoint missing from the range is an error
//! (the reference polls until it appears); exactly `num_samples` samples are drawn (the
//! reference draws whole batches and truncates).

mod partial;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use sde_core::{AnySde, NoiseSource, ScoreFn, training_loss};
use serde_json::{Value, json};
use sgm_config::{BpdDataset, ExperimentConfig};
use sgm_conv::{ConvAutodiffBackend, ConvBackend};
use sgm_eval::{InceptionV3, POOL3_DIM, StatsFile};
use sgm_nets::{CheckpointWeights, LIKELIHOOD_PRECISION, ScoreNet, WithPrecision};
use sgm_sample::LikelihoodConfig;

pub use report::{
    BpdReport, CheckpointReport, KidReport, LossReport, MeanStd, SamplingReport, read_report,
    write_combined, write_report,
};

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::data::{DataPosition, DataStream, ImageSource, Transforms};
use crate::error::{Result, TrainError};
use crate::generate::{GenerateOptions, generate};
use crate::rng::TrainRng;
use crate::run::{EVAL_STREAM, RunData, RunDir, TRAIN_STREAM, check_shape, to_tensor};
use crate::trainer::scalar;

/// RNG streams of the eval draws (batch `b` uses stream `base + b` of the run seed).
const LOSS_NOISE_STREAM: u64 = 3 << 40;
const BPD_NOISE_STREAM: u64 = 4 << 40;

/// What to evaluate and how (the `[eval]` section plus the files FID needs).
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// First checkpoint id.
    pub begin_ckpt: u32,
    /// Last checkpoint id (inclusive).
    pub end_ckpt: u32,
    /// Images per loss / likelihood / sampling batch (`eval.batch_size`).
    pub batch_size: usize,
    /// Eval loss over the eval split.
    pub enable_loss: bool,
    /// Bits/dim over `bpd_dataset`.
    pub enable_bpd: bool,
    /// Samples → FID / KID / IS.
    pub enable_sampling: bool,
    /// Samples for FID / KID / IS.
    pub num_samples: usize,
    /// Split of the bits/dim.
    pub bpd_dataset: BpdDataset,
    /// Passes over `bpd_dataset` (the reference: 5 for test, 1 for train).
    pub bpd_repeats: usize,
    /// Likelihood settings (the reference's: Rademacher probes, RK45 at 1e-5, eps 1e-5).
    pub likelihood: LikelihoodConfig,
    /// pytorch-fid's Inception weights (needed for sampling).
    pub inception: Option<PathBuf>,
    /// The dataset's statistics file (pytorch-fid `mu`/`sigma` or score_sde `pool_3`).
    pub stats: Option<PathBuf>,
    /// Images per Inception forward pass.
    pub inception_batch_size: usize,
    /// Largest KID block (tfgan's `max_block_size`, 1024).
    pub kid_block_size: usize,
    /// Inception Score splits (1 = the reference's tfgan score over all samples).
    pub is_splits: usize,
}

impl EvalOptions {
    /// The config's `[eval]` section and likelihood settings; no Inception weights or
    /// statistics file yet.
    pub fn from_config(exp: &ExperimentConfig) -> Self {
        let e = &exp.eval;
        Self {
            begin_ckpt: e.begin_ckpt,
            end_ckpt: e.end_ckpt,
            batch_size: e.batch_size,
            enable_loss: e.enable_loss,
            enable_bpd: e.enable_bpd,
            enable_sampling: e.enable_sampling,
            num_samples: e.num_samples,
            bpd_dataset: e.bpd_dataset,
            bpd_repeats: match e.bpd_dataset {
                BpdDataset::Test => 5,
                BpdDataset::Train => 1,
            },
            likelihood: exp.likelihood_config(),
            inception: None,
            stats: None,
            inception_batch_size: 50,
            kid_block_size: 1024,
            is_splits: 1,
        }
    }
}

/// Which part of a checkpoint's evaluation is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalPhase {
    /// Eval loss (batches).
    Loss,
    /// Bits/dim (batches).
    Bpd,
    /// Sampling (images).
    Sampling,
    /// Inception features of the samples (images).
    Inception,
}

impl std::fmt::Display for EvalPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvalPhase::Loss => "eval loss",
            EvalPhase::Bpd => "bits/dim",
            EvalPhase::Sampling => "sampling",
            EvalPhase::Inception => "Inception features",
        })
    }
}

/// One progress report: `done` of `total` units of `phase` on checkpoint `ckpt` (units done
/// before an interruption count as done).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalProgress {
    /// Checkpoint id.
    pub ckpt: u32,
    /// Part running.
    pub phase: EvalPhase,
    /// Units finished (batches for loss / bits/dim, images for sampling / features).
    pub done: usize,
    /// Units in all.
    pub total: usize,
    /// The running value (e.g. mean bits/dim so far).
    pub note: String,
}

/// What [`evaluate`] wrote.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// One report per checkpoint, in order.
    pub reports: Vec<CheckpointReport>,
    /// `workdir/eval`.
    pub eval_dir: PathBuf,
    /// The combined table `eval/report.md` (and `eval/report.json`).
    pub table: PathBuf,
}

/// `workdir/eval`.
pub fn eval_dir(workdir: &Path) -> PathBuf {
    workdir.join("eval")
}

/// Mean and standard error of the mean (`s / √n`, `s` with `n − 1`; 0 for one value).
pub fn mean_stderr(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Bits/dim of `data` (dequantised, scaled to the model's space) under the probability-flow
/// ODE of `net` (reference `likelihood.get_likelihood_fn`, continuous score), probes from
/// `noise`: per image, and the network calls spent. Convolutions accumulate exactly
/// ([`sgm_nets::LIKELIHOOD_PRECISION`]).
pub fn bits_per_dim<B: ConvAutodiffBackend, N: NoiseSource<B>>(
    sde: &AnySde,
    net: &ScoreNet<B>,
    data: Tensor<B, 4>,
    cfg: &LikelihoodConfig,
    noise: &mut N,
) -> Result<(Vec<f64>, usize)> {
    let score = WithPrecision::new(ScoreFn::new(sde, net, true), LIKELIHOOD_PRECISION);
    let out = sgm_sample::likelihood(sde, &score, data, cfg, noise)?;
    let v = out
        .bpd
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| TrainError::Internal(format!("bits/dim to host: {e:?}")))?;
    Ok((v, out.nfe))
}

/// Checkpoint `k` of `run`: sgm's `checkpoints/checkpoint_k.safetensors`, or else an official
/// score_sde_pytorch `checkpoints/checkpoint_k.pth` placed there (the reference's layout).
pub fn checkpoint_file(run: &RunDir, k: u32) -> PathBuf {
    let ours = run.checkpoint(k as u64);
    let official = ours.with_extension("pth");
    if !ours.is_file() && official.is_file() {
        official
    } else {
        ours
    }
}

/// True for an official `.pth` checkpoint (read by `ExperimentConfig::load_network`).
fn is_official(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == "pth")
}

/// The checkpoint files `begin ..= end` of `run` ([`checkpoint_file`]); any missing is one
/// error listing them.
pub fn checkpoint_range(run: &RunDir, begin: u32, end: u32) -> Result<Vec<PathBuf>> {
    if begin > end {
        return Err(TrainError::Config {
            key: "eval.begin_ckpt".into(),
            msg: format!("{begin} is after eval.end_ckpt = {end}"),
        });
    }
    let files: Vec<PathBuf> = (begin..=end).map(|k| checkpoint_file(run, k)).collect();
    let missing: Vec<String> = (begin..=end)
        .zip(&files)
        .filter(|(_, f)| !f.is_file())
        .map(|(k, _)| k.to_string())
        .collect();
    if let Some(first) = files.iter().find(|f| !f.is_file()) {
        let present: Vec<String> = (begin..=end)
            .zip(&files)
            .filter(|(_, f)| f.is_file())
            .map(|(k, _)| k.to_string())
            .collect();
        return Err(TrainError::Checkpoint {
            path: first.clone(),
            msg: format!(
                "missing: the range {begin}..={end} has holes — checkpoint(s) {} absent from {} \
                 (present: {}); train further or choose --begin-ckpt / --end-ckpt among those present",
                missing.join(", "),
                run.root.join("checkpoints").display(),
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(", ")
                }
            ),
        });
    }
    Ok(files)
}

/// Everything the sampling part needs, loaded before any checkpoint is touched.
struct FidTools<IB: Backend> {
    net: InceptionV3<IB>,
    weights: PathBuf,
    stats: StatsFile,
    stats_path: PathBuf,
}

fn need(key: &str, msg: &str) -> TrainError {
    TrainError::Config {
        key: key.into(),
        msg: msg.into(),
    }
}

fn load_fid_tools<IB: Backend>(opts: &EvalOptions, device: &IB::Device) -> Result<FidTools<IB>> {
    let weights = opts.inception.clone().ok_or_else(|| {
        need(
            "eval.enable_sampling",
            "FID / KID / IS need pytorch-fid's Inception weights: pass --inception FILE or set \
             SGM_INCEPTION_WEIGHTS (`cargo xtask data inception` fetches them)",
        )
    })?;
    let stats_path = opts.stats.clone().ok_or_else(|| {
        need(
            "eval.enable_sampling",
            "FID / KID need the dataset's statistics file: pass --stats FILE (`cargo xtask \
             fid-stats` makes one; score_sde's cifar10_stats.npz is read as it is)",
        )
    })?;
    let stats = sgm_eval::read_stats_file(&stats_path)?;
    if stats.stats.dim() != POOL3_DIM {
        return Err(TrainError::Data {
            path: stats_path,
            msg: format!(
                "holds statistics of {}-dimensional features; Inception pool3 features have {POOL3_DIM}",
                stats.stats.dim()
            ),
        });
    }
    let net = InceptionV3::load(&weights, device)?;
    Ok(FidTools {
        net,
        weights,
        stats,
        stats_path,
    })
}

/// Shared by the parts of one checkpoint's evaluation.
struct Ctx<'a> {
    exp: &'a ExperimentConfig,
    cfg: &'a TrainConfig,
    opts: &'a EvalOptions,
    dir: PathBuf,
    ckpt: u32,
    /// Settings every part depends on (checkpoint step, seed, network).
    base: Value,
    progress: &'a mut dyn FnMut(&EvalProgress),
}

impl Ctx<'_> {
    fn report(&mut self, phase: EvalPhase, done: usize, total: usize, note: String) {
        (self.progress)(&EvalProgress {
            ckpt: self.ckpt,
            phase,
            done,
            total,
            note,
        });
    }

    fn settings(&self, part: Value) -> Value {
        let mut s = self.base.clone();
        if let (Some(s), Some(p)) = (s.as_object_mut(), part.as_object()) {
            s.extend(p.clone());
        }
        s
    }
}

fn eval_loss<B: ConvBackend>(
    ctx: &mut Ctx<'_>,
    net: &ScoreNet<B>,
    source: &Arc<dyn ImageSource>,
    sde: &AnySde,
    device: &B::Device,
) -> Result<LossReport> {
    let bs = ctx.opts.batch_size;
    let n_batches = source.len() / bs;
    let loss_cfg = ctx.cfg.loss();
    let settings = ctx.settings(json!({
        "batch_size": bs,
        "images": source.len(),
        "uniform_dequantization": ctx.cfg.transforms.uniform_dequantization,
        "loss": format!("{loss_cfg:?}"),
    }));
    let path = ctx.dir.join("loss.json");
    // Values are float32 (what the network computes): they survive JSON exactly.
    let mut values: Vec<f32> = partial::load(&path, &settings)?;
    values.truncate(n_batches);
    let tf = Transforms {
        random_flip: false,
        uniform_dequantization: ctx.cfg.transforms.uniform_dequantization,
        centered: ctx.cfg.model.data.centered,
    };
    let start = DataPosition {
        epoch: 0,
        index: (values.len() * bs) as u64,
    };
    let mut stream = DataStream::new(source.clone(), bs, ctx.cfg.seed, EVAL_STREAM, tf, start)?;
    ctx.report(EvalPhase::Loss, values.len(), n_batches, String::new());
    for b in values.len()..n_batches {
        let x = to_tensor::<B>(stream.next_batch()?, device); // [bs, C, H, W]
        let mut noise = TrainRng::new(ctx.cfg.seed, LOSS_NOISE_STREAM + b as u64);
        // reference `get_step_fn(train=False)`: the loss of the EMA weights, eval mode
        let v = scalar(training_loss(sde, net, x, &loss_cfg, &mut noise)?)? as f32;
        if !v.is_finite() {
            return Err(TrainError::Internal(format!(
                "checkpoint {}: the eval loss of batch {b} is {v}",
                ctx.ckpt
            )));
        }
        values.push(v);
        partial::save(&path, &settings, &values)?;
        let (mean, _) = mean_stderr(&widen(&values));
        ctx.report(
            EvalPhase::Loss,
            b + 1,
            n_batches,
            format!("loss {mean:.5e}"),
        );
    }
    let batches = widen(&values);
    Ok(LossReport {
        mean: mean_stderr(&batches).0,
        batches,
        batch_size: bs,
    })
}

fn eval_bpd<B: ConvAutodiffBackend>(
    ctx: &mut Ctx<'_>,
    net: &ScoreNet<B>,
    data: &RunData,
    sde: &AnySde,
    device: &B::Device,
) -> Result<BpdReport> {
    let (source, purpose, name) = match ctx.opts.bpd_dataset {
        BpdDataset::Test => (&data.eval, EVAL_STREAM, "test"),
        BpdDataset::Train => (&data.train, TRAIN_STREAM, "train"),
    };
    let bs = ctx.opts.batch_size;
    let per_pass = source.len() / bs;
    let total = per_pass * ctx.opts.bpd_repeats;
    let lik = &ctx.opts.likelihood;
    let settings = ctx.settings(json!({
        "batch_size": bs,
        "dataset": name,
        "images": source.len(),
        "repeats": ctx.opts.bpd_repeats,
        "likelihood": format!("{lik:?}"),
    }));
    let path = ctx.dir.join("bpd.json");
    let mut batches: Vec<Vec<f32>> = partial::load(&path, &settings)?;
    batches.truncate(total);
    // Pass `p` is epoch `p` of the stream: its own order and dequantisation noise.
    let tf = Transforms {
        random_flip: false,
        uniform_dequantization: true,
        centered: ctx.cfg.model.data.centered,
    };
    let r0 = batches.len();
    let start = DataPosition {
        epoch: (r0 / per_pass.max(1)) as u64,
        index: ((r0 % per_pass.max(1)) * bs) as u64,
    };
    let mut stream = DataStream::new(source.clone(), bs, ctx.cfg.seed, purpose, tf, start)?;
    ctx.report(EvalPhase::Bpd, r0, total, String::new());
    for r in r0..total {
        let x = to_tensor::<B>(stream.next_batch()?, device); // [bs, C, H, W], dequantised, scaled
        let mut noise = TrainRng::new(ctx.cfg.seed, BPD_NOISE_STREAM + r as u64);
        let (bpd, nfe) = bits_per_dim(sde, net, x, lik, &mut noise)?;
        if let Some(v) = bpd.iter().find(|v| !v.is_finite()) {
            return Err(TrainError::Internal(format!(
                "checkpoint {}: bits/dim {v} in batch {r}",
                ctx.ckpt
            )));
        }
        batches.push(bpd.iter().map(|&v| v as f32).collect()); // float32 values
        partial::save(&path, &settings, &batches)?;
        let (mean, se) = mean_stderr(&widen(&batches.concat()));
        ctx.report(
            EvalPhase::Bpd,
            r + 1,
            total,
            format!("{mean:.4} ± {se:.4} bits/dim (NFE {nfe})"),
        );
    }
    let all = widen(&batches.concat());
    let (mean, stderr) = mean_stderr(&all);
    Ok(BpdReport {
        dataset: name.into(),
        repeats: ctx.opts.bpd_repeats,
        mean,
        stderr,
        images: all.len(),
    })
}

fn config_err(e: sgm_config::ConfigError) -> TrainError {
    TrainError::Config {
        key: "sampling".into(),
        msg: e.to_string(),
    }
}

fn eval_sampling<B: ConvBackend>(
    ctx: &mut Ctx<'_>,
    net: &ScoreNet<B>,
    fid: &FidTools<B>,
    device: &B::Device,
) -> Result<SamplingReport> {
    let o = ctx.opts;
    let (n, ibs) = (o.num_samples, o.inception_batch_size);
    let weights_size = std::fs::metadata(&fid.weights).map_or(0, |m| m.len());
    let settings = ctx.settings(json!({
        "batch_size": o.batch_size,
        "num_samples": n,
        "sampling": ctx.exp.sampling,
        "inception_batch_size": ibs,
        "inception_weights": format!("{} ({weights_size} bytes)", fid.weights.display()),
    }));
    let marker = ctx.dir.join("sampling.json");
    partial::load::<()>(&marker, &settings)?;
    partial::save::<()>(&marker, &settings, &[])?;

    let sampler = ctx.exp.sampler().map_err(config_err)?;
    let s = &ctx.exp.sampling;
    let sv = json!(s);
    let name = |k: &str| {
        sv[k]
            .as_str()
            .map_or_else(|| sv[k].to_string(), String::from)
    };
    let sampler_name = format!(
        "{} sampler, predictor {}, corrector {}",
        name("method"),
        name("predictor"),
        name("corrector")
    );
    let score = ScoreFn::new(sampler.sde(), net, sampler.continuous_score());
    let [c, h, w] = ctx.exp.image_shape();
    let gen_opts = GenerateOptions {
        num_samples: n,
        batch_size: o.batch_size,
        seed: ctx.cfg.seed,
        out: ctx.dir.join("samples"),
    };
    let ckpt = ctx.ckpt;
    let progress = &mut *ctx.progress;
    let generated = generate::<B, _>(
        &sampler,
        &score,
        [c, h, w],
        &gen_opts,
        device,
        |done, total| {
            progress(&EvalProgress {
                ckpt,
                phase: EvalPhase::Sampling,
                done,
                total,
                note: String::new(),
            })
        },
    )?;

    // Inception features, batch by batch, each batch's file written once.
    let feat_dir = ctx.dir.join("inception");
    std::fs::create_dir_all(&feat_dir).map_err(|e| TrainError::io(&feat_dir, e))?;
    let mut pool3 = Vec::with_capacity(n * POOL3_DIM);
    let mut logits: Option<Vec<f64>> = fid.net.has_logits().then(Vec::new);
    let mut k_logits = 0;
    for (r, first) in (0..n).step_by(ibs.max(1)).enumerate() {
        let count = ibs.min(n - first);
        let file = feat_dir.join(format!("batch_{r:05}.npz"));
        let (p, l) = if file.is_file() {
            let mut arrays = sgm_eval::read_npz(&file, &["pool_3", "logits"], &["logits"])?;
            let l = arrays.pop().flatten();
            let (shape, p) = arrays.pop().flatten().unwrap_or_default();
            if shape != [count, POOL3_DIM] || (logits.is_some() != l.is_some()) {
                return Err(TrainError::Data {
                    path: file,
                    msg: format!(
                        "holds pool_3 of shape {shape:?}{}, expected [{count}, {POOL3_DIM}]{}: \
                         remove it to recompute",
                        if l.is_some() { " with logits" } else { "" },
                        if logits.is_some() { " with logits" } else { "" }
                    ),
                });
            }
            (p, l.map(|(_, v)| v))
        } else {
            let images = sgm_eval::images::read_png_folder(&generated.images, first, Some(count))?;
            let f = sgm_eval::extract(&fid.net, &images, ibs, device, |_| {})?;
            let pool_shape = [count, POOL3_DIM];
            let logit_shape = [count, f.logits.as_ref().map_or(0, |l| l.len() / count)];
            let mut arrays = vec![("pool_3", &pool_shape[..], &f.pool3[..])];
            if let Some(l) = &f.logits {
                arrays.push(("logits", &logit_shape[..], &l[..]));
            }
            sgm_eval::write_npz(&file, &arrays)?;
            (f.pool3, f.logits)
        };
        pool3.extend(p);
        if let (Some(acc), Some(l)) = (logits.as_mut(), l) {
            k_logits = l.len() / count;
            acc.extend(l);
        }
        ctx.report(EvalPhase::Inception, first + count, n, String::new());
    }

    // Statistics (reference: tfgan FID / KID / classifier score on all samples together).
    let fid_value = sgm_eval::frechet_distance_to_features(&fid.stats.stats, &pool3, n)?;
    let mut notes = Vec::new();
    let kid = match &fid.stats.features {
        Some((_, data)) => {
            // reference: tfgan `kernel_classifier_distance_from_activations(data_pools, all_pools)`
            let (mean, stderr) = sgm_eval::kid_blocks(data, &pool3, POOL3_DIM, o.kid_block_size)?;
            Some(KidReport { mean, stderr })
        }
        None => {
            notes.push(format!(
                "KID not computed: {} holds μ and Σ only (pytorch-fid layout); KID needs the \
                 features themselves (score_sde's `pool_3` layout)",
                fid.stats_path.display()
            ));
            None
        }
    };
    let inception_score = match &logits {
        Some(l) => {
            let is = sgm_eval::inception_score(l, k_logits, o.is_splits)?;
            Some(MeanStd {
                mean: is.mean,
                std: is.std,
            })
        }
        None => {
            notes.push(format!(
                "Inception Score not computed: the Inception weights {} hold no `fc` (the \
                 1008-way classifier); pytorch-fid's pt_inception-2015-12-05-6726825d.pth has it",
                fid.weights.display()
            ));
            None
        }
    };
    Ok(SamplingReport {
        num_samples: n,
        sampler: sampler_name,
        fid: fid_value,
        kid,
        inception_score,
        notes,
        stats: fid.stats_path.clone(),
        samples: gen_opts.out,
    })
}

fn check_options(opts: &EvalOptions, data: &RunData, cfg: &TrainConfig) -> Result<()> {
    let bad = |key: &str, msg: String| {
        Err(TrainError::Config {
            key: key.into(),
            msg,
        })
    };
    if opts.batch_size == 0 {
        return bad("eval.batch_size", "must be positive".into());
    }
    let enough = |what: &str, s: &Arc<dyn ImageSource>| -> Result<()> {
        check_shape(cfg, what, s.as_ref())?;
        if s.len() < opts.batch_size {
            return bad(
                "eval.batch_size",
                format!(
                    "{} exceeds the {} {what} images (batches are full batches)",
                    opts.batch_size,
                    s.len()
                ),
            );
        }
        Ok(())
    };
    if opts.enable_loss {
        enough("eval", &data.eval)?;
    }
    if opts.enable_bpd {
        if opts.bpd_repeats == 0 {
            return bad("eval.bpd_repeats", "must be positive".into());
        }
        match opts.bpd_dataset {
            BpdDataset::Test => enough("eval", &data.eval)?,
            BpdDataset::Train => enough("training", &data.train)?,
        }
    }
    if opts.enable_sampling {
        if opts.num_samples < 2 || opts.inception_batch_size == 0 {
            return bad(
                "eval.num_samples",
                format!(
                    "FID needs at least 2 samples and a positive Inception batch size (got {} and {})",
                    opts.num_samples, opts.inception_batch_size
                ),
            );
        }
        if opts.is_splits == 0 || opts.is_splits > opts.num_samples {
            return bad(
                "is_splits",
                format!("{} splits of {} samples", opts.is_splits, opts.num_samples),
            );
        }
    }
    Ok(())
}

/// Evaluates the checkpoints `opts.begin_ckpt ..= opts.end_ckpt` of the run in `workdir` (see
/// the module docs); `on_progress` sees every batch. Bad input — a hole in the checkpoint
/// range, missing Inception weights, a statistics file of unknown layout — is one error
/// naming the file, raised before any work.
pub fn evaluate<B: ConvAutodiffBackend>(
    exp: &ExperimentConfig,
    workdir: &Path,
    data: &RunData,
    opts: &EvalOptions,
    device: &B::Device,
    on_progress: &mut dyn FnMut(&EvalProgress),
) -> Result<EvalSummary> {
    let cfg = TrainConfig::from_experiment(exp)?;
    let run = RunDir {
        root: workdir.to_path_buf(),
    };
    let files = checkpoint_range(&run, opts.begin_ckpt, opts.end_ckpt)?;
    check_options(opts, data, &cfg)?;
    let fid = if opts.enable_sampling {
        Some(load_fid_tools::<B::InnerBackend>(opts, device)?)
    } else {
        None
    };
    let sde = cfg.sde()?;
    // Eval mode: no dropout (a checkpoint's config may differ from this one in dropout only).
    let mut model_cfg = cfg.model.clone();
    model_cfg.model.dropout = 0.0;
    let dir = eval_dir(workdir);
    let mut reports = Vec::new();
    for (k, file) in (opts.begin_ckpt..=opts.end_ckpt).zip(files) {
        let started = Instant::now();
        // reference: `ema.copy_to(score_model.parameters())`
        let (net, step): (ScoreNet<B>, u64) = if is_official(&file) {
            // An official checkpoint_k.pth was saved at step k·snapshot_freq (run_lib.train:
            // `save_step = step // snapshot_freq`).
            let net = exp
                .load_network::<B>(&file, CheckpointWeights::Ema, device)
                .map_err(|e| TrainError::Checkpoint {
                    path: file.clone(),
                    msg: e.to_string(),
                })?;
            (net, k as u64 * cfg.training.snapshot_freq)
        } else {
            let ck = Checkpoint::read(&file)?;
            let net = ck.weights(&model_cfg, CheckpointWeights::Ema, device)?;
            (net, ck.meta.step)
        };
        let inner = net.valid();
        let ckpt_dir = dir.join(format!("ckpt_{k}"));
        std::fs::create_dir_all(&ckpt_dir).map_err(|e| TrainError::io(&ckpt_dir, e))?;
        let mut ctx = Ctx {
            exp,
            cfg: &cfg,
            opts,
            dir: ckpt_dir,
            ckpt: k,
            base: json!({
                "checkpoint_step": step,
                "seed": cfg.seed,
                "model": serde_json::to_value(&model_cfg).unwrap_or_default(),
            }),
            progress: &mut *on_progress,
        };
        let loss = if opts.enable_loss {
            Some(eval_loss(&mut ctx, &inner, &data.eval, &sde, device)?)
        } else {
            None
        };
        let bpd = if opts.enable_bpd {
            Some(eval_bpd(&mut ctx, &net, data, &sde, device)?)
        } else {
            None
        };
        let sampling = match &fid {
            Some(fid) => Some(eval_sampling(&mut ctx, &inner, fid, device)?),
            None => None,
        };
        let report = CheckpointReport {
            ckpt: k,
            step,
            checkpoint: file,
            loss,
            bpd,
            sampling,
        };
        write_report(&dir, &report)?;
        log::info!(
            "checkpoint {k} evaluated in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    let (_, table) = write_combined(&dir)?;
    Ok(EvalSummary {
        reports,
        eval_dir: dir,
        table,
    })
}
