//! FID / KID against network calls (NFE) for the paper's samplers and the fast samplers, on the
//! demo model (issue 12's benchmark; a benchmark, not a test).
//!
//! ```text
//! cargo run --release -p sgm-train --example fid_vs_nfe -- \
//!     --inception ../shared/data/inception/pt_inception-2015-12-05-6726825d.pth --out fid-nfe
//! ```
//!
//! 1. Trains (or, on a rerun, reuses) the `cargo xtask demo` model into `OUT/demo/`: a DDPM++
//!    on the VP SDE (continuous), 8×8 generated discs — `sgm_train::demo::DemoOptions::standard`.
//! 2. Reference: `--reference` freshly generated disc images (a seed the training set never
//!    used) → Inception pool3 features → μ, Σ.
//! 3. For every sampler of the table, `--samples` images seeded per image
//!    (`sgm_train::generate::PerImageNoise`, the same seeds for every sampler), their FID and
//!    KID against the reference, and the mean network calls per image.
//! 4. `OUT/fid_vs_nfe.md` (the table), `OUT/fid_vs_nfe.json`, `OUT/fid_vs_nfe.svg` (the plot).
//!
//! FID from a few hundred samples is biased upwards (it shrinks with the sample count); compare
//! rows of one run (same counts), not with published 50 000-sample figures. KID is unbiased.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use clap::Parser;
use sde_core::{AnySde, ScoreFn};
use serde::Serialize;
use sgm_config::{ConfigSampler, ExperimentConfig, Override};
use sgm_eval::{InceptionV3, Stats, U8Images};
use sgm_nets::{CheckpointWeights, ScoreNet};
use sgm_sample::sigma::{SigmaMethod, SigmaSampler};
use sgm_sample::{OdeSampler, Rk45Options, Sampler};
use sgm_testkit::{TestAutodiff, TestBackend};
use sgm_train::checkpoint::Checkpoint;
use sgm_train::demo::{BASE_CONFIG, DemoOptions, generated_discs, run_demo};
use sgm_train::generate::PerImageNoise;
use sgm_train::{RunDir, TrainConfig};

#[derive(Parser, Debug)]
#[command(about = "FID / KID vs NFE of the paper's and the fast samplers on the demo model")]
struct Args {
    /// pytorch-fid Inception weights (`pt_inception-2015-12-05-6726825d.pth`).
    #[arg(long)]
    inception: PathBuf,
    /// Output folder (the demo run lives in OUT/demo and is reused by reruns).
    #[arg(long, default_value = "fid-nfe")]
    out: PathBuf,
    /// Samples per sampler.
    #[arg(long, default_value_t = 250)]
    samples: usize,
    /// Reference (data) images.
    #[arg(long, default_value_t = 500)]
    reference: usize,
    /// Images per sampler call.
    #[arg(long, default_value_t = 250)]
    batch_size: usize,
    /// Only the samplers whose label contains this text.
    #[arg(long)]
    filter: Option<String>,
}

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    sampler: String,
    nfe: f64,
    fid: f64,
    kid: f64,
    kid_std: f64,
    seconds: f64,
}

/// A sampler of the table: its label and how to build it from the experiment.
enum Kind {
    /// The config's PC sampler with `N` discretisation steps.
    Pc(usize),
    /// The probability-flow ODE, RK45 at rtol = atol = the value.
    Ode(f64),
    /// A fast σ-space sampler: k-diffusion name, noise levels.
    Sigma(&'static str, usize),
}

fn table() -> Vec<(String, Kind)> {
    let mut v = vec![
        (
            "PC: Euler–Maruyama, N = 1000 (paper)".to_string(),
            Kind::Pc(1000),
        ),
        ("PC: Euler–Maruyama, N = 100".to_string(), Kind::Pc(100)),
        ("ODE: RK45, tol 1e-5 (paper)".to_string(), Kind::Ode(1e-5)),
    ];
    for (name, steps) in [
        ("heun", 18),
        ("heun", 35),
        ("dpmpp_2m", 10),
        ("dpmpp_2m", 20),
        ("dpm_adaptive", 18),
    ] {
        let label = if name == "dpm_adaptive" {
            "dpm_adaptive (rtol 0.05, atol 0.0078)".to_string()
        } else {
            format!("{name}, {steps} Karras levels")
        };
        v.push((label, Kind::Sigma(name, steps)));
    }
    v
}

fn to_u8(images: &[f32], n: usize, [c, h, w]: [usize; 3]) -> U8Images {
    U8Images {
        n,
        channels: c,
        height: h,
        width: w,
        data: images
            .iter()
            .map(|&v| (v * 255.0).clamp(0.0, 255.0).round() as u8)
            .collect(),
    }
}

/// Inception pool3 features of `images`.
fn features(net: &InceptionV3<TestBackend>, images: &U8Images) -> Result<Vec<f64>> {
    let dev = sgm_testkit::device();
    Ok(sgm_eval::extract(net, images, 50, &dev, |_| {})?.pool3)
}

/// `n` samples of `sampler` (seeded per image, the same seeds for every sampler), clipped to
/// [0, 1]; the mean network calls per image.
fn draw<S: Sampler<TestBackend>>(
    sampler: &S,
    sde: &AnySde,
    continuous: bool,
    net: &ScoreNet<TestBackend>,
    shape: [usize; 3],
    args: &Args,
) -> Result<(Vec<f32>, f64)> {
    let dev = sgm_testkit::device();
    let score = ScoreFn::new(sde, net, continuous);
    let [c, h, w] = shape;
    let (mut out, mut calls) = (Vec::with_capacity(args.samples * c * h * w), 0usize);
    let mut first = 0;
    while first < args.samples {
        let b = args.batch_size.min(args.samples - first);
        let mut noise = PerImageNoise::new(0x5EED, first as u64, b);
        let s = sampler.sample(&score, [b, c, h, w], &mut noise, &dev)?;
        calls += s.nfe;
        let x: Vec<f32> = s
            .sample
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("samples to host: {e:?}"))?;
        if x.iter().any(|v| !v.is_finite()) {
            bail!("the sampler produced NaN / inf");
        }
        out.extend(x.into_iter().map(|v| v.clamp(0.0, 1.0)));
        first += b;
    }
    // Each call evaluates the whole batch: calls per image = calls per batch, averaged.
    let batches = args.samples.div_ceil(args.batch_size);
    Ok((out, calls as f64 / batches as f64))
}

/// The plot: FID against NFE (log scale), one labelled point per sampler.
fn svg(rows: &[Row]) -> String {
    let (w, h, m) = (720.0, 420.0, 60.0);
    let (nmin, nmax) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.nfe.max(1.0)), b.max(r.nfe))
    });
    let fmax = rows.iter().map(|r| r.fid).fold(0.0, f64::max) * 1.1;
    let (lx0, lx1) = (nmin.log10() - 0.1, nmax.log10() + 0.1);
    let x = |n: f64| m + (n.max(1.0).log10() - lx0) / (lx1 - lx0) * (w - 2.0 * m);
    let y = |f: f64| h - m - f / fmax * (h - 2.0 * m);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='11'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <line x1='{m}' y1='{b}' x2='{r}' y2='{b}' stroke='black'/>\n\
         <line x1='{m}' y1='{m}' x2='{m}' y2='{b}' stroke='black'/>\n\
         <text x='{cx}' y='{ly}' text-anchor='middle'>network calls per image (log scale)</text>\n\
         <text x='14' y='{cy}' transform='rotate(-90 14 {cy})' text-anchor='middle'>FID</text>\n",
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        ly = h - 15.0,
        cy = h / 2.0,
    );
    for decade in [1.0, 10.0, 100.0, 1000.0, 10000.0] {
        if decade >= 10f64.powf(lx0) && decade <= 10f64.powf(lx1) {
            let _ = writeln!(
                s,
                "<text x='{:.1}' y='{:.1}' text-anchor='middle'>{decade}</text>",
                x(decade),
                h - m + 15.0
            );
        }
    }
    for k in 0..=4 {
        let f = fmax * k as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x='{:.1}' y='{:.1}' text-anchor='end'>{f:.1}</text>",
            m - 5.0,
            y(f) + 4.0
        );
    }
    for r in rows {
        let _ = writeln!(
            s,
            "<circle cx='{:.1}' cy='{:.1}' r='4' fill='steelblue'/>\
             <text x='{:.1}' y='{:.1}'>{}</text>",
            x(r.nfe),
            y(r.fid),
            x(r.nfe) + 6.0,
            y(r.fid) - 4.0,
            r.sampler.split(',').next().unwrap_or(&r.sampler)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let dev = sgm_testkit::device();

    // 1. The demo model (trained once, reused by reruns).
    let demo = DemoOptions::standard(&args.out.join("demo"));
    let started = Instant::now();
    let report = run_demo::<TestAutodiff>(&demo, &dev, None)?;
    println!(
        "demo model: {} steps, final loss {:.4} ({:.0} s)",
        report.steps,
        report.last_loss,
        started.elapsed().as_secs_f64()
    );
    let overrides: Vec<Override> = demo.overrides();
    let exp = ExperimentConfig::load_with(BASE_CONFIG, &overrides)?;
    let mut model = TrainConfig::from_experiment(&exp)?.model;
    model.model.dropout = 0.0;
    let ck = Checkpoint::read(&RunDir::create(&demo.out.join("run"))?.meta_checkpoint())?;
    let net: ScoreNet<TestBackend> = ck
        .weights::<TestAutodiff>(&model, CheckpointWeights::Ema, &dev)?
        .valid();
    let shape = exp.image_shape();

    // 2. Reference statistics.
    let inception = InceptionV3::<TestBackend>::load(&args.inception, &dev)?;
    let t = Instant::now();
    // Cached in OUT (raw little-endian f64) so that reruns skip the slowest part on a CPU.
    let cache = args.out.join(format!("reference_{}.f64", args.reference));
    let reference: Vec<f64> = match std::fs::read(&cache) {
        Ok(b) if b.len() == args.reference * sgm_eval::POOL3_DIM * 8 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        _ => {
            let data = generated_discs(args.reference, shape[1], 0xDA7A);
            let f = features(
                &inception,
                &U8Images {
                    n: args.reference,
                    channels: shape[0],
                    height: shape[1],
                    width: shape[2],
                    data: data.pixels.clone(),
                },
            )?;
            let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
            sgm_fs::write_atomic_bytes(&cache, &bytes)
                .with_context(|| format!("cannot write {}", cache.display()))?;
            f
        }
    };
    let ref_stats = Stats::from_features(&reference, args.reference, sgm_eval::POOL3_DIM)?;
    println!(
        "reference: {} generated images ({:.0} s)",
        args.reference,
        t.elapsed().as_secs_f64()
    );

    // 3. The samplers.
    let mut rows = Vec::new();
    for (label, kind) in table() {
        if let Some(f) = &args.filter
            && !label.contains(f.as_str())
        {
            continue;
        }
        let t = Instant::now();
        let (images, nfe) = match kind {
            Kind::Pc(n) => {
                let sampler = exp.sampler_for(exp.sde_with_steps(Some(n))?)?;
                let (sde, cont) = (sampler.sde().clone(), sampler.continuous_score());
                draw(&sampler, &sde, cont, &net, shape, &args)?
            }
            Kind::Ode(tol) => {
                let sde = exp.sde()?;
                let mut config = exp.ode_config(&sde);
                config.solver = Rk45Options {
                    rtol: tol,
                    atol: tol,
                    ..Rk45Options::default()
                };
                let sampler = ConfigSampler::Ode(OdeSampler {
                    config,
                    sde: sde.clone(),
                });
                draw(&sampler, &sde, true, &net, shape, &args)?
            }
            Kind::Sigma(name, steps) => {
                let sde = exp.sde()?;
                let method = SigmaMethod::from_name(name)?;
                let sampler = SigmaSampler::new(&sde, method, "karras", steps, None, exp.scaler())?;
                draw(&sampler, &sde, exp.training.continuous, &net, shape, &args)?
            }
        };
        let seconds = t.elapsed().as_secs_f64();
        let feats = features(&inception, &to_u8(&images, args.samples, shape))?;
        let stats = Stats::from_features(&feats, args.samples, sgm_eval::POOL3_DIM)?;
        let fid = sgm_eval::frechet_distance(&stats, &ref_stats)?;
        let kid = sgm_eval::kid(
            &feats,
            &reference,
            sgm_eval::POOL3_DIM,
            10,
            args.samples.min(args.reference),
            7,
        )?;
        println!(
            "{label:45} NFE {nfe:7.1}  FID {fid:8.3}  KID×10³ {:7.3} ± {:.3}  ({seconds:.0} s sampling)",
            kid.mean * 1e3,
            kid.std * 1e3
        );
        rows.push(Row {
            sampler: label,
            nfe,
            fid,
            kid: kid.mean,
            kid_std: kid.std,
            seconds,
        });
    }

    // 4. Table, JSON, plot.
    let mut md = format!(
        "| sampler | NFE / image | FID ({} samples vs {} data) | KID ×10³ | sampling s |\n|---|---|---|---|---|\n",
        args.samples, args.reference
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} | {:.2} ± {:.2} | {:.0} |",
            r.sampler,
            r.nfe,
            r.fid,
            r.kid * 1e3,
            r.kid_std * 1e3,
            r.seconds
        );
    }
    let write = |name: &str, text: &str| -> Result<()> {
        let p = args.out.join(name);
        sgm_fs::write_atomic_bytes(&p, text.as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))
    };
    write("fid_vs_nfe.md", &md)?;
    write("fid_vs_nfe.json", &serde_json::to_string_pretty(&rows)?)?;
    write("fid_vs_nfe.svg", &svg(&rows))?;
    println!(
        "\n{md}\nwrote {}/fid_vs_nfe.{{md,json,svg}}",
        args.out.display()
    );
    Ok(())
}
