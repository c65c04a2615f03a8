//! The benchmark tables of `docs/benchmarks.md` for any backend (`cargo xtask bench`): score
//! networks (forward, forward + backward), a full train step, sampler overhead (a PC / ODE step
//! with an exact analytic score in place of the network) and Inception feature extraction.
//!
//! Every row runs `warmup` untimed and `runs` timed repetitions and reports the median and the
//! minimum. Networks are the official configs (`ncsnpp-deep-cont`, `vp/ddpmpp-cont`) with `nf`
//! overridden, at batch 8 and 32×32 — the rows `scripts/bench_vs_pytorch.sh` puts beside the
//! reference's PyTorch models. [`BenchOptions::quick`] runs the same rows at tiny sizes.

use std::time::Instant;

use burn::prelude::*;
use sde_core::analytic::{GaussianData, GaussianScoreModel};
use sde_core::{BackendNoise, Labels, ScoreFn, ScoreModel};
use serde::Serialize;
use sgm_config::{ExperimentConfig, Override};
use sgm_conv::ConvAutodiffBackend;
use sgm_eval::{InceptionV3, U8Images, extract};
use sgm_sample::Sampler;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::run::init_model;
use crate::trainer::{Stepper, TrainState};

/// What to run and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Tiny sizes (batch 2, 16×16, nf 8, one block per level, few steps and images): a smoke
    /// test of every row, not a measurement.
    pub quick: bool,
    /// Untimed repetitions before the timed ones.
    pub warmup: usize,
    /// Timed repetitions (median and minimum are reported).
    pub runs: usize,
    /// Row ids to run: a row runs when its id contains one of these (all rows when empty).
    pub filter: Vec<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            quick: false,
            warmup: 1,
            runs: 3,
            filter: Vec::new(),
        }
    }
}

impl BenchOptions {
    /// Whether the row `id` is selected by the filter.
    pub fn selects(&self, id: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| id.contains(f.as_str()))
    }
}

/// Seconds of the timed repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// Median (upper median for an even count).
    pub median_s: f64,
    /// Fastest run.
    pub min_s: f64,
    /// Every timed run, in order.
    pub runs_s: Vec<f64>,
}

/// Runs `f` `warmup` times untimed, then `runs` times timed (at least once).
pub fn time_runs(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let mut runs_s = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        f()?;
        runs_s.push(t0.elapsed().as_secs_f64());
    }
    let mut sorted = runs_s.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Timing {
        median_s: sorted[sorted.len() / 2],
        min_s: sorted[0],
        runs_s,
    })
}

/// The tables of `docs/benchmarks.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Score networks: forward (eval) and forward + backward of `mean(out²)`.
    Networks,
    /// One training step: loss, backward, Adam (warm-up, global clip), EMA.
    TrainStep,
    /// Sampler cost without the network.
    Sampler,
    /// Inception-v3 pool3 features.
    Inception,
}

impl Table {
    /// Heading printed above the table.
    pub fn title(self) -> &'static str {
        match self {
            Table::Networks => {
                "Networks: forward (eval) and forward + backward of mean(out²), official configs with nf set, dropout 0"
            }
            Table::TrainStep => {
                "Train step (sgm-train's Stepper): loss + backward + Adam (warm-up, clip) + EMA, official configs"
            }
            Table::Sampler => {
                "Sampler overhead: config samplers with the exact score of Gaussian data in place of the network"
            }
            Table::Inception => {
                "Inception-v3 features (pytorch-fid network): resize to 299², forward, pool3 to host"
            }
        }
    }
}

/// One measured (or skipped) row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    /// Its table.
    pub table: Table,
    /// Stable id (`ncsnpp128_fwdbwd`, `ddpmpp32_train`, `pc_ve`, `inception`), the same with
    /// `quick`; `scripts/bench_vs_pytorch.sh` matches PyTorch rows by it.
    pub id: String,
    /// What was measured, with the sizes actually used.
    pub what: String,
    /// Times, or `None` when skipped.
    pub timing: Option<Timing>,
    /// Items one run processes (sampler steps, NFE, images) and their name, for per-item costs.
    pub per: Option<(f64, String)>,
    /// Why the row was skipped.
    pub skipped: Option<String>,
}

impl BenchRow {
    /// Markdown header of a table's rows.
    pub const HEADER: &'static str =
        "| row | what | median | min | per item (median) |\n|---|---|---|---|---|";

    /// The row as a markdown table line.
    pub fn markdown(&self) -> String {
        match (&self.timing, &self.skipped) {
            (Some(t), _) => {
                let per = match &self.per {
                    Some((n, item)) if *n > 0.0 => {
                        let s = t.median_s / n;
                        let rate = 1.0 / s;
                        let digits = if rate >= 100.0 { 0 } else { 2 };
                        format!("{} / {item} ({rate:.digits$} {item}s/s)", fmt_s(s))
                    }
                    _ => "—".into(),
                };
                format!(
                    "| {} | {} | {} | {} | {per} |",
                    self.id,
                    self.what,
                    fmt_s(t.median_s),
                    fmt_s(t.min_s)
                )
            }
            (None, reason) => format!(
                "| {} | {} | skipped: {} | | |",
                self.id,
                self.what,
                reason.as_deref().unwrap_or("—")
            ),
        }
    }
}

fn fmt_s(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A network row: `id` prefix, official config, nf of the full-size run.
const NETS: [(&str, &str, usize); 4] = [
    ("ncsnpp32", "ncsnpp-deep-cont", 32),
    ("ncsnpp128", "ncsnpp-deep-cont", 128),
    ("ddpmpp32", "vp/ddpmpp-cont", 32),
    ("ddpmpp128", "vp/ddpmpp-cont", 128),
];

/// Batch, resolution and nf override of a run.
struct Sizes {
    batch: usize,
    image: usize,
    quick: bool,
}

impl Sizes {
    fn of(opts: &BenchOptions) -> Self {
        if opts.quick {
            Self {
                batch: 2,
                image: 16,
                quick: true,
            }
        } else {
            Self {
                batch: 8,
                image: 32,
                quick: false,
            }
        }
    }

    fn nf(&self, nf: usize) -> usize {
        if self.quick { 8 } else { nf }
    }

    /// The overrides that set these sizes on an official config.
    fn overrides(&self, nf: usize) -> Vec<Override> {
        let mut o = vec![
            Override::new("model.nf", self.nf(nf) as i64),
            Override::new("training.batch_size", self.batch as i64),
            Override::new("data.image_size", self.image as i64),
        ];
        if self.quick {
            o.push(Override::new("model.num_res_blocks", 1));
        }
        o
    }

    fn describe(&self, cfg: &ExperimentConfig, name: &str) -> Result<String> {
        let m = cfg.model_config().map_err(config_error(name))?;
        let m = &m.model;
        Ok(format!(
            "{name}, nf {}, {} res blocks per level, batch {}, {}×{}",
            m.nf, m.num_res_blocks, self.batch, self.image, self.image
        ))
    }
}

fn load(name: &str, overrides: &[Override]) -> Result<ExperimentConfig> {
    ExperimentConfig::load_with(name, overrides).map_err(|e| TrainError::Config {
        key: name.into(),
        msg: e.to_string(),
    })
}

/// The deterministic inputs of the network rows (those of the PyTorch side): pixels
/// `((i · 7919) mod 251) / 251` `[B, 3, H, W]` and noise labels 0.5 … 50 `[B]`.
fn net_inputs<B: Backend>(s: &Sizes, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1>) {
    let n = s.batch * 3 * s.image * s.image;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect();
    let labels = [0.5f32, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0];
    let l: Vec<f32> = (0..s.batch).map(|i| labels[i % labels.len()]).collect();
    (
        Tensor::from_data(TensorData::new(x, [s.batch, 3, s.image, s.image]), device), // [B, 3, H, W]
        Tensor::from_data(TensorData::new(l, [s.batch]), device),                      // [B]
    )
}

fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| TrainError::Internal(format!("device sync: {e:?}")))
}

/// Runs the selected rows in table order; `on_row` sees each row as soon as it is measured.
/// `inception` is the network for the Inception row, or why there is none (the row is then
/// reported as skipped). Runs where the backend's kernels run best (`sgm_conv::in_pool`).
pub fn run_bench<B: ConvAutodiffBackend>(
    opts: &BenchOptions,
    inception: std::result::Result<&InceptionV3<B::InnerBackend>, String>,
    device: &B::Device,
    on_row: impl FnMut(&BenchRow) + Send,
) -> Result<Vec<BenchRow>> {
    B::in_pool(|| bench_rows::<B>(opts, inception, device, on_row))
}

fn bench_rows<B: ConvAutodiffBackend>(
    opts: &BenchOptions,
    inception: std::result::Result<&InceptionV3<B::InnerBackend>, String>,
    device: &B::Device,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    let mut push = |row: BenchRow| {
        on_row(&row);
        rows.push(row);
    };
    if !specs().iter().any(|(id, _)| opts.selects(id)) {
        return Err(TrainError::Config {
            key: "filter".into(),
            msg: format!(
                "no benchmark row matches {:?}; rows: {}",
                opts.filter,
                row_ids().join(", ")
            ),
        });
    }
    let sizes = Sizes::of(opts);
    for (id, spec) in specs() {
        if !opts.selects(&id) {
            continue;
        }
        push(match spec {
            Spec::Net(config, nf, grad) => {
                network_row::<B>(opts, &sizes, id, config, nf, grad, device)?
            }
            Spec::Train(config, nf) => train_row::<B>(opts, &sizes, id, config, nf, device)?,
            Spec::Sampler(config, method) => {
                sampler_row::<B::InnerBackend>(opts, &sizes, id, config, method, device)?
            }
            Spec::Inception => inception_row::<B::InnerBackend>(opts, inception.clone(), device)?,
        });
    }
    Ok(rows)
}

fn network_row<B: ConvAutodiffBackend>(
    opts: &BenchOptions,
    sizes: &Sizes,
    id: String,
    config: &str,
    nf: usize,
    grad: bool,
    device: &B::Device,
) -> Result<BenchRow> {
    let mut overrides = sizes.overrides(nf);
    overrides.push(Override::new("model.dropout", 0.0));
    let cfg = load(config, &overrides)?;
    let what = format!(
        "{}, {}",
        sizes.describe(&cfg, config)?,
        if grad {
            "forward + backward"
        } else {
            "forward"
        }
    );
    let timing = if grad {
        let net = cfg.network::<B>(device).map_err(config_error(config))?;
        let (x, s) = net_inputs::<B>(sizes, device);
        time_runs(opts.warmup, opts.runs, || {
            let out = net.forward(x.clone(), Labels::Float(s.clone())); // [B, 3, H, W]
            drop(out.square().mean().backward());
            sync::<B>(device)
        })?
    } else {
        let net = cfg
            .network::<B::InnerBackend>(device)
            .map_err(config_error(config))?;
        let (x, s) = net_inputs::<B::InnerBackend>(sizes, device);
        time_runs(opts.warmup, opts.runs, || {
            let out = net.forward(x.clone(), Labels::Float(s.clone())); // [B, 3, H, W]
            drop(out.into_data());
            Ok(())
        })?
    };
    Ok(BenchRow {
        table: Table::Networks,
        id,
        what,
        timing: Some(timing),
        per: None,
        skipped: None,
    })
}

fn config_error(name: &str) -> impl Fn(sgm_config::ConfigError) -> TrainError + '_ {
    move |e| TrainError::Config {
        key: name.into(),
        msg: e.to_string(),
    }
}

fn train_row<B: ConvAutodiffBackend>(
    opts: &BenchOptions,
    sizes: &Sizes,
    id: String,
    config: &str,
    nf: usize,
    device: &B::Device,
) -> Result<BenchRow> {
    let exp = load(config, &sizes.overrides(nf))?;
    let what = format!(
        "{}, dropout {}",
        sizes.describe(&exp, config)?,
        exp.model_config()
            .map_err(config_error(config))?
            .model
            .dropout
    );
    let cfg = TrainConfig::from_experiment(&exp)?;
    let stepper = Stepper::new(&cfg)?;
    let mut state = TrainState::new(&cfg, init_model::<B>(&cfg, device)?);
    let (x, _) = net_inputs::<B>(sizes, device);
    let batch = exp.scaler().scale(x); // [B, 3, H, W]
    let timing = time_runs(opts.warmup, opts.runs, || {
        stepper.train_step(&mut state, batch.clone())?;
        sync::<B>(device)
    })?;
    Ok(BenchRow {
        table: Table::TrainStep,
        id,
        what,
        timing: Some(timing),
        per: None,
        skipped: None,
    })
}

fn sampler_row<B: Backend>(
    opts: &BenchOptions,
    sizes: &Sizes,
    id: String,
    config: &str,
    method: &str,
    device: &B::Device,
) -> Result<BenchRow> {
    let steps: i64 = if sizes.quick { 10 } else { 100 };
    let exp = load(
        config,
        &[
            Override::new("model.num_scales", steps),
            Override::new("sampling.method", method),
        ],
    )?;
    let sampler = exp.sampler().map_err(config_error(config))?;
    let sde = sampler.sde().clone();
    let model = GaussianScoreModel::new(
        sde.clone(),
        GaussianData {
            mean: 0.0,
            data_std: 0.5,
        },
    );
    let score = ScoreFn::new(&sde, &model, true);
    let shape = [sizes.batch, 3, sizes.image, sizes.image];
    let s = &exp.sampling;
    let what = if method == "ode" {
        format!(
            "{config}: probability-flow ODE (RK45, rtol = atol = 1e-5), batch {}, {}×{}",
            sizes.batch, sizes.image, sizes.image
        )
    } else {
        format!(
            "{config}: PC {} + {} (snr {}, {} corrector step), {steps} steps, batch {}, {}×{}",
            s.predictor.name(),
            s.corrector.name(),
            s.snr,
            s.n_steps_each,
            sizes.batch,
            sizes.image,
            sizes.image
        )
    };
    let mut nfe = 0;
    let timing = time_runs(opts.warmup, opts.runs, || {
        let out = Sampler::<B>::sample(&sampler, &score, shape, &mut BackendNoise, device)?;
        nfe = out.nfe;
        drop(out.sample.into_data());
        Ok(())
    })?;
    let per = if method == "ode" {
        (nfe as f64, "NFE".to_string())
    } else {
        (steps as f64, "step".to_string())
    };
    Ok(BenchRow {
        table: Table::Sampler,
        id,
        what,
        timing: Some(timing),
        per: Some(per),
        skipped: None,
    })
}

fn inception_row<B: Backend>(
    opts: &BenchOptions,
    inception: std::result::Result<&InceptionV3<B>, String>,
    device: &B::Device,
) -> Result<BenchRow> {
    let (n, batch) = if opts.quick { (2, 2) } else { (50, 50) };
    let what = format!("{n} CIFAR-size images (32×32 → 299×299), batch {batch}");
    let net = match inception {
        Ok(net) => net,
        Err(reason) => {
            return Ok(BenchRow {
                table: Table::Inception,
                id: "inception".into(),
                what,
                timing: None,
                per: None,
                skipped: Some(reason),
            });
        }
    };
    let images = U8Images {
        n,
        channels: 3,
        height: 32,
        width: 32,
        data: (0..n * 3 * 32 * 32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect(),
    };
    let timing = time_runs(opts.warmup, opts.runs, || {
        extract(net, &images, batch, device, |_| {})?;
        Ok(())
    })?;
    Ok(BenchRow {
        table: Table::Inception,
        id: "inception".into(),
        what,
        timing: Some(timing),
        per: Some((n as f64, "image".into())),
        skipped: None,
    })
}

/// What a row measures.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// Network forward (`grad` false) or forward + backward: config, nf.
    Net(&'static str, usize, bool),
    /// Train step: config, nf.
    Train(&'static str, usize),
    /// Config sampler with `sampling.method` = the given one: config, method.
    Sampler(&'static str, &'static str),
    /// Inception features.
    Inception,
}

/// Every row, in table order, with its id.
fn specs() -> Vec<(String, Spec)> {
    let mut v = Vec::new();
    for (p, config, nf) in NETS {
        v.push((format!("{p}_fwd"), Spec::Net(config, nf, false)));
        v.push((format!("{p}_fwdbwd"), Spec::Net(config, nf, true)));
    }
    for (p, config, nf) in NETS {
        v.push((format!("{p}_train"), Spec::Train(config, nf)));
    }
    v.push(("pc_ve".into(), Spec::Sampler("ncsnpp-deep-cont", "pc")));
    v.push(("pc_vp".into(), Spec::Sampler("vp/ddpmpp-cont", "pc")));
    v.push(("ode_vp".into(), Spec::Sampler("vp/ddpmpp-cont", "ode")));
    v.push(("inception".into(), Spec::Inception));
    v
}

/// Every row id [`run_bench`] knows, in order (what `--filter` matches against).
pub fn row_ids() -> Vec<String> {
    specs().into_iter().map(|(id, _)| id).collect()
}
