//! The evaluation report: one per checkpoint (`eval/report_{k}.json` + `eval/report_{k}.md`)
//! and a combined table of every checkpoint evaluated in the folder (`eval/report.json`,
//! `eval/report.md`). Written atomically; the numbers only (no timings), so an interrupted
//! and resumed evaluation writes the same report as an uninterrupted one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Mean ± standard deviation (IS over splits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

/// Eval loss over the eval (test) split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    /// Mean of the per-batch losses (the reference's `mean_loss`).
    pub mean: f64,
    /// Every batch's loss (`all_losses`).
    pub batches: Vec<f64>,
    /// Images per batch.
    pub batch_size: usize,
}

/// KID: mean of the blocks' unbiased MMD² and its standard error (none with one block).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KidReport {
    /// Mean over blocks.
    pub mean: f64,
    /// Standard error of the mean (`None` with one block).
    pub stderr: Option<f64>,
}

/// Bits/dim of the uniformly dequantised `bpd_dataset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BpdReport {
    /// `train` or `test`.
    pub dataset: String,
    /// Passes over the split (the reference: 5 over test, 1 over train).
    pub repeats: usize,
    /// Mean over images.
    pub mean: f64,
    /// Standard error of the mean.
    pub stderr: f64,
    /// Images (repeats × full batches).
    pub images: usize,
}

/// Sample quality against the dataset's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingReport {
    /// Samples generated and measured.
    pub num_samples: usize,
    /// Sampler (method, predictor, corrector).
    pub sampler: String,
    /// FID against the statistics file.
    pub fid: f64,
    /// KID (when the statistics file holds features).
    pub kid: Option<KidReport>,
    /// Inception Score (when the Inception weights hold `fc`).
    pub inception_score: Option<MeanStd>,
    /// Why a statistic is missing.
    pub notes: Vec<String>,
    /// The statistics file.
    pub stats: PathBuf,
    /// The samples (`images/*.png`, `samples.safetensors`, `samples.png`).
    pub samples: PathBuf,
}

/// Everything measured on one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointReport {
    /// Checkpoint id `k` (`checkpoints/checkpoint_{k}.safetensors`).
    pub ckpt: u32,
    /// Training step it holds.
    pub step: u64,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Eval loss (`eval.enable_loss`).
    pub loss: Option<LossReport>,
    /// Bits/dim (`eval.enable_bpd`).
    pub bpd: Option<BpdReport>,
    /// FID / KID / IS (`eval.enable_sampling`).
    pub sampling: Option<SamplingReport>,
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

impl CheckpointReport {
    fn cells(&self) -> [String; 5] {
        let s = self.sampling.as_ref();
        [
            or_dash(self.loss.as_ref().map(|l| format!("{:.6}", l.mean))),
            or_dash(
                self.bpd
                    .as_ref()
                    .map(|b| format!("{:.4} ± {:.4}", b.mean, b.stderr)),
            ),
            or_dash(s.map(|s| format!("{:.4}", s.fid))),
            or_dash(s.and_then(|s| s.kid).map(|k| match k.stderr {
                Some(se) => format!("{:.6} ± {se:.6}", k.mean),
                None => format!("{:.6}", k.mean),
            })),
            or_dash(
                s.and_then(|s| s.inception_score)
                    .map(|i| format!("{:.4} ± {:.4}", i.mean, i.std)),
            ),
        ]
    }

    /// The report as a markdown table (metric | value).
    pub fn markdown(&self) -> String {
        let [loss, bpd, fid, kid, is] = self.cells();
        let mut rows = vec![
            (
                "checkpoint".to_string(),
                self.checkpoint.display().to_string(),
            ),
            ("training step".into(), self.step.to_string()),
        ];
        if let Some(l) = &self.loss {
            rows.push((
                format!(
                    "eval loss (EMA weights; {} batches of {})",
                    l.batches.len(),
                    l.batch_size
                ),
                loss,
            ));
        }
        if let Some(b) = &self.bpd {
            rows.push((
                format!(
                    "bits/dim ({} split × {}, {} dequantised images; mean ± s.e.)",
                    b.dataset, b.repeats, b.images
                ),
                bpd,
            ));
        }
        if let Some(s) = &self.sampling {
            let against = s.stats.display();
            rows.push((
                format!(
                    "FID ({} samples, {}, vs {against})",
                    s.num_samples, s.sampler
                ),
                fid,
            ));
            rows.push(("KID (mean ± s.e. over blocks)".into(), kid));
            rows.push(("Inception Score".into(), is));
        }
        let mut md = format!(
            "# Evaluation of checkpoint {}\n\n| metric | value |\n|---|---|\n",
            self.ckpt
        );
        for (k, v) in rows {
            md.push_str(&format!("| {k} | {v} |\n"));
        }
        if let Some(s) = &self.sampling {
            if !s.notes.is_empty() {
                md.push('\n');
            }
            for n in &s.notes {
                md.push_str(&format!("- {n}\n"));
            }
        }
        md
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    sgm_fs::write_atomic_bytes(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}

/// `eval_dir/report_{k}.json` and `.md`.
pub fn report_paths(eval_dir: &Path, ckpt: u32) -> (PathBuf, PathBuf) {
    (
        eval_dir.join(format!("report_{ckpt}.json")),
        eval_dir.join(format!("report_{ckpt}.md")),
    )
}

/// Writes the checkpoint's JSON and markdown reports.
pub fn write_report(eval_dir: &Path, r: &CheckpointReport) -> Result<(PathBuf, PathBuf)> {
    let (json, md) = report_paths(eval_dir, r.ckpt);
    let text = serde_json::to_string_pretty(r).map_err(|e| TrainError::io(&json, e))?;
    write(&json, &text)?;
    write(&md, &r.markdown())?;
    Ok((json, md))
}

/// Reads a report written by [`write_report`].
pub fn read_report(path: &Path) -> Result<CheckpointReport> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::io(path, format!("not an eval report: {e}")))
}

/// The combined table of every `report_{k}.json` in `eval_dir` (ordered by `k`), as
/// `eval_dir/report.json` (a list) and `eval_dir/report.md`.
pub fn write_combined(eval_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(eval_dir).map_err(|e| TrainError::io(eval_dir, e))? {
        let path = entry.map_err(|e| TrainError::io(eval_dir, e))?.path();
        let k = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
            n.strip_prefix("report_")?
                .strip_suffix(".json")?
                .parse::<u32>()
                .ok()
        });
        if k.is_some() {
            reports.push(read_report(&path)?);
        }
    }
    reports.sort_by_key(|r| r.ckpt);
    let mut md = String::from(
        "# Evaluation\n\n| ckpt | step | eval loss | bits/dim | FID | KID | IS |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &reports {
        let [loss, bpd, fid, kid, is] = r.cells();
        md.push_str(&format!(
            "| {} | {} | {loss} | {bpd} | {fid} | {kid} | {is} |\n",
            r.ckpt, r.step
        ));
    }
    let (json, mdp) = (eval_dir.join("report.json"), eval_dir.join("report.md"));
    let text = serde_json::to_string_pretty(&reports).map_err(|e| TrainError::io(&json, e))?;
    write(&json, &text)?;
    write(&mdp, &md)?;
    Ok((json, mdp))
}
