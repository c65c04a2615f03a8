//! `cargo xtask eval <config> --workdir DIR`: the reference's `run_lib.evaluate` over a run's
//! checkpoints (the flow is `sgm_train::evaluate`), and `cargo xtask data inception`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sgm_config::ExperimentConfig;
use sgm_eval::weights::{WEIGHTS_ENV, prepare_inception};
use sgm_train::data::{ImageSource, InMemoryImages};
use sgm_train::evaluate::{EvalOptions, EvalPhase, EvalProgress, evaluate};
use sgm_train::{RunData, TrainConfig};

use crate::backend::{Train, device};
use crate::config::SetArgs;
use crate::train::{DataArgs, sources};

/// `cargo xtask eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Official or short config name or a .toml path (the run's config; its `[eval]` section
    /// chooses the parts: `--set eval.enable_bpd=true`, `--set eval.enable_sampling=true`, …).
    pub config: String,
    /// The run directory `cargo xtask train` wrote (checkpoints/); reports go to DIR/eval/.
    #[arg(long)]
    pub workdir: PathBuf,
    /// Eval and bits/dim images (as for `train`); needed for the eval loss and bits/dim.
    #[command(flatten)]
    pub data: DataArgs,
    /// First checkpoint id (default: `eval.begin_ckpt`).
    #[arg(long)]
    pub begin_ckpt: Option<u32>,
    /// Last checkpoint id, inclusive (default: `eval.end_ckpt`).
    #[arg(long)]
    pub end_ckpt: Option<u32>,
    /// Samples for FID / KID / IS (default: `eval.num_samples`).
    #[arg(long)]
    pub num_samples: Option<usize>,
    /// Images per loss / likelihood / sampling batch (default: `eval.batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The dataset's statistics file: pytorch-fid `mu`/`sigma` (`cargo xtask fid-stats`) or
    /// score_sde's `pool_3` features (e.g. its published cifar10_stats.npz; gives KID too).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// pytorch-fid's Inception weights (default: $SGM_INCEPTION_WEIGHTS; `cargo xtask data
    /// inception` fetches them).
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Images per Inception forward pass.
    #[arg(long, default_value_t = 50)]
    pub inception_batch_size: usize,
    /// Passes over the bits/dim split (default: 5 for test, 1 for train, as the reference).
    #[arg(long)]
    pub bpd_repeats: Option<usize>,
    /// RK45 rtol = atol of the likelihood (default: the reference's 1e-5).
    #[arg(long)]
    pub bpd_tol: Option<f64>,
    /// Largest KID block (tfgan's block estimate, as the reference).
    #[arg(long, default_value_t = 1024)]
    pub kid_block_size: usize,
    /// Inception Score splits (default 1: the reference's score over all samples; 10 is the
    /// usual convention elsewhere).
    #[arg(long, default_value_t = 1)]
    pub is_splits: usize,
    #[command(flatten)]
    pub set: SetArgs,
}

/// The options of `args` over the config's `[eval]` section.
fn options(args: &EvalArgs, exp: &ExperimentConfig) -> EvalOptions {
    let mut o = EvalOptions::from_config(exp);
    o.begin_ckpt = args.begin_ckpt.unwrap_or(o.begin_ckpt);
    o.end_ckpt = args.end_ckpt.unwrap_or(o.end_ckpt);
    o.num_samples = args.num_samples.unwrap_or(o.num_samples);
    o.batch_size = args.batch_size.unwrap_or(o.batch_size);
    o.bpd_repeats = args.bpd_repeats.unwrap_or(o.bpd_repeats);
    if let Some(tol) = args.bpd_tol {
        o.likelihood.solver.rtol = tol;
        o.likelihood.solver.atol = tol;
    }
    o.stats = args.stats.clone();
    o.inception = args
        .inception
        .clone()
        .or_else(|| std::env::var_os(WEIGHTS_ENV).map(PathBuf::from));
    o.inception_batch_size = args.inception_batch_size;
    o.kid_block_size = args.kid_block_size;
    o.is_splits = args.is_splits;
    o
}

/// One bar per (checkpoint, part), with ETA; a resumed part starts at what is done.
struct Bars {
    current: Option<((u32, EvalPhase), ProgressBar)>,
}

impl Bars {
    fn update(&mut self, p: &EvalProgress) {
        let key = (p.ckpt, p.phase);
        if self.current.as_ref().map(|c| c.0) != Some(key) {
            if let Some((_, bar)) = self.current.take() {
                bar.finish();
            }
            let unit = match p.phase {
                EvalPhase::Loss | EvalPhase::Bpd => "batches",
                EvalPhase::Sampling | EvalPhase::Inception => "images",
            };
            let bar = ProgressBar::new(p.total as u64).with_style(
                ProgressStyle::with_template(&format!(
                    "ckpt {} {} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}}, eta {{eta}})",
                    p.ckpt, p.phase
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(p.done as u64);
            bar.reset_eta();
            self.current = Some((key, bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_position(p.done as u64);
            bar.set_message(p.note.clone());
        }
    }
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let exp = ExperimentConfig::load_with(&args.config, &args.set.overrides()?)?;
    let cfg = TrainConfig::from_experiment(&exp)?;
    let opts = options(&args, &exp);
    crate::logging::init(None)?;
    let data = if opts.enable_loss || opts.enable_bpd {
        let (train, eval) = sources(&args.data, cfg.model.data.image_size)?;
        RunData { train, eval }
    } else {
        let none: Arc<dyn ImageSource> = Arc::new(InMemoryImages {
            shape: exp.image_shape(),
            pixels: Vec::new(),
            labels: Vec::new(),
        });
        RunData {
            train: none.clone(),
            eval: none,
        }
    };
    let parts: Vec<&str> = [
        (opts.enable_loss, "eval loss"),
        (opts.enable_bpd, "bits/dim"),
        (opts.enable_sampling, "FID / KID / IS"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    println!(
        "evaluating checkpoints {}..={} of {} ({}; backend {})",
        opts.begin_ckpt,
        opts.end_ckpt,
        args.workdir.display(),
        if parts.is_empty() {
            "nothing enabled".to_string()
        } else {
            parts.join(", ")
        },
        crate::backend::NAME
    );
    let mut bars = Bars { current: None };
    let summary = evaluate::<Train>(&exp, &args.workdir, &data, &opts, &device(), &mut |p| {
        bars.update(p)
    });
    if let Some((_, bar)) = bars.current.take() {
        bar.finish();
    }
    let summary = summary?;
    for r in &summary.reports {
        println!("\n{}", r.markdown());
    }
    let table = std::fs::read_to_string(&summary.table)
        .with_context(|| format!("cannot read {}", summary.table.display()))?;
    println!("{table}");
    println!(
        "reports: {} (report_{{k}}.json / .md per checkpoint; {} for all)",
        summary.eval_dir.display(),
        summary.table.display()
    );
    Ok(())
}

/// Runs `curl` to download `url` to `dest`.
fn curl(url: &str, dest: &Path) -> std::result::Result<(), String> {
    let status = std::process::Command::new("curl")
        .args([
            "--fail",
            "--location",
            "--retry",
            "2",
            "--connect-timeout",
            "20",
            "--output",
        ])
        .arg(dest)
        .arg(url)
        .status()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("curl: {status}"))
    }
}

/// `cargo xtask data inception [--dir D] [--offline]`.
pub fn run_data_inception(dir: &Path, offline: bool) -> Result<()> {
    let fetch: Option<sgm_eval::weights::Fetch<'_>> = if offline { None } else { Some(&curl) };
    let w = prepare_inception(dir, fetch)?;
    println!(
        "Inception weights ready: {} ({}, SHA-256 {}{})",
        w.path.display(),
        w.known.what,
        w.sha256,
        if w.downloaded { ", downloaded" } else { "" }
    );
    if !w.known.has_fc {
        println!(
            "note: these weights have no `fc` (the 1008-way classifier): FID and KID work, the \
             Inception Score does not; pytorch-fid's {} has it",
            sgm_eval::weights::FID_WEIGHTS_FILE
        );
    }
    println!(
        "use: --inception {} (or {WEIGHTS_ENV}={})",
        w.path.display(),
        w.path.display()
    );
    Ok(())
}
