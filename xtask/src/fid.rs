//! `fid A B` and `fid-stats SRC OUT.npz`: FID / KID / IS with the FID Inception network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sgm_eval::{Features, InceptionV3, POOL3_DIM, Stats};

use crate::backend::{Inner, device};

// Where the Inception weights come from when `--inception` is not given.
use sgm_eval::weights::WEIGHTS_ENV;

/// Options shared by `fid` and `fid-stats`.
#[derive(clap::Args, Debug, Clone)]
pub struct InceptionArgs {
    /// pytorch-fid's Inception weights (`pt_inception-2015-12-05-6726825d.pth`);
    /// default: $SGM_INCEPTION_WEIGHTS.
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// First image of each image source.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Number of images of each image source (default: all).
    #[arg(long)]
    pub count: Option<usize>,
}

/// `cargo xtask fid A B`.
#[derive(clap::Args, Debug)]
pub struct FidArgs {
    /// First set: PNG folder, CIFAR-10 `.bin` batch, `.safetensors` sample array or `.npz` stats.
    pub a: PathBuf,
    /// Second set (same kinds).
    pub b: PathBuf,
    #[command(flatten)]
    pub inception: InceptionArgs,
    /// KID subsets.
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    /// KID subset size (capped at the smaller set).
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
}

/// `cargo xtask fid-stats SRC... OUT.npz`.
#[derive(clap::Args, Debug)]
pub struct FidStatsArgs {
    /// One or more image sources (PNG folders, CIFAR-10 `.bin` batches, `.safetensors` sample
    /// arrays, `sample` output folders), then the output statistics file (pytorch-fid `.npz`
    /// layout). The statistics are those of all sources' images together (e.g. the five
    /// CIFAR-10 training batches).
    #[arg(required = true, num_args = 2..)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub inception: InceptionArgs,
}

fn load_net(args: &InceptionArgs) -> Result<InceptionV3<Inner>> {
    let path = match &args.inception {
        Some(p) => p.clone(),
        None => std::env::var_os(WEIGHTS_ENV)
            .map(PathBuf::from)
            .with_context(|| {
                format!(
                    "no Inception weights: pass --inception FILE or set {WEIGHTS_ENV} \
                 (pytorch-fid's pt_inception-2015-12-05-6726825d.pth; `cargo xtask data \
                 inception` fetches it)"
                )
            })?,
    };
    Ok(InceptionV3::load(&path, &device())?)
}

fn is_stats(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) == Some("npz")
}

/// Features of an image source, with a progress bar.
fn features(net: &InceptionV3<Inner>, src: &Path, args: &InceptionArgs) -> Result<Features> {
    let images = sgm_eval::read_images(src, args.first, args.count)?;
    let bar = ProgressBar::new(images.n as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {elapsed} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("Inception features of {}", src.display()));
    let f = sgm_eval::extract(net, &images, args.batch_size, &device(), |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish();
    Ok(f)
}

pub fn run_fid(args: FidArgs) -> Result<()> {
    let need_net = !(is_stats(&args.a) && is_stats(&args.b));
    let net = if need_net {
        Some(load_net(&args.inception)?)
    } else {
        None
    };
    let side = |p: &Path| -> Result<(Stats, Option<Features>)> {
        if is_stats(p) {
            return Ok((sgm_eval::read_stats(p)?, None));
        }
        let f = features(net.as_ref().expect("loaded"), p, &args.inception)?;
        Ok((Stats::from_features(&f.pool3, f.n, POOL3_DIM)?, Some(f)))
    };
    let (sa, fa) = side(&args.a)?;
    let (sb, fb) = side(&args.b)?;
    let fid = sgm_eval::frechet_distance(&sa, &sb)?;
    println!("FID: {fid:.5}");
    match (&fa, &fb) {
        (Some(fa), Some(fb)) => {
            let k = sgm_eval::kid(
                &fa.pool3,
                &fb.pool3,
                POOL3_DIM,
                args.kid_subsets,
                args.kid_subset_size,
                0,
            )?;
            println!("KID: {:.6} ± {:.6}", k.mean, k.std);
        }
        _ => println!("KID: needs images on both sides (a stats file holds no features)"),
    }
    match fa.as_ref().and_then(|f| f.logits.as_ref()) {
        Some(logits) => {
            let is = sgm_eval::inception_score(logits, 1008, 10)?;
            println!("IS of {}: {:.4} ± {:.4}", args.a.display(), is.mean, is.std);
        }
        None => println!("IS: needs images as A and Inception weights with `fc`"),
    }
    Ok(())
}

pub fn run_fid_stats(args: FidStatsArgs) -> Result<()> {
    let (out, sources) = args.paths.split_last().expect("clap requires 2 paths");
    if !is_stats(out) {
        bail!(
            "the last path ({}) is the output and must end in .npz",
            out.display()
        );
    }
    if let Some(s) = sources.iter().find(|s| is_stats(s)) {
        bail!("{} is already a statistics file", s.display());
    }
    let net = load_net(&args.inception)?;
    let mut pool3 = Vec::new();
    let mut n = 0;
    for src in sources {
        let f = features(&net, src, &args.inception)?;
        pool3.extend_from_slice(&f.pool3);
        n += f.n;
    }
    let stats = Stats::from_features(&pool3, n, POOL3_DIM)?;
    sgm_eval::write_stats(out, &stats)?;
    println!(
        "wrote {} ({n} images from {} source{})",
        out.display(),
        sources.len(),
        if sources.len() == 1 { "" } else { "s" }
    );
    Ok(())
}
