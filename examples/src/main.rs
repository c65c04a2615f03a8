//! sgm from another Burn project, in one page: load an official config by its short name,
//! build the score network (random weights, or an official / sgm checkpoint), sample a small
//! batch with the config's PC sampler or a fast k-diffusion sampler, write a PNG grid.
//!
//! ```sh
//! cargo run -p sgm-examples --release -- ncsnpp-deep-cont --checkpoint checkpoint_26.pth
//! cargo run -p sgm-examples --release -- vp/ddpmpp-cont --checkpoint checkpoint_8.pth --fast dpmpp_2m --steps 20
//! ```
//! Only public APIs of the library crates are used; `cargo xtask sample` is the full CLI.

use std::path::PathBuf;

use anyhow::Result;
use burn::backend::Flex; // any Burn backend with sgm-conv's `ConvBackend` (Flex, wgpu, CUDA, …)
use clap::Parser;
use sde_core::{BackendNoise, ScoreFn};
use sgm_config::{ExperimentConfig, Override};
use sgm_nets::CheckpointWeights;
use sgm_sample::{Sampler, SigmaMethod, SigmaSampler};

#[derive(Parser)]
struct Args {
    /// Official config: short name (`ncsnpp-deep-cont`), official name or a `.toml` path.
    config: String,
    /// Official `checkpoint_*.pth` (its EMA weights) or a `.safetensors` state dict; without
    /// it the network keeps its random initial weights.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// A fast sampler (`heun`, `dpmpp_2m`, `euler`, …) instead of the config's PC sampler.
    #[arg(long)]
    fast: Option<String>,
    /// Steps of the fast sampler.
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Images to draw.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Config overrides, `--set model.num_scales=100`.
    #[arg(long = "set")]
    set: Vec<Override>,
    /// The PNG grid to write.
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // 0. Run the whole flow on a worker of the CPU backend's thread pool: each parallel kernel
    //    then starts at once instead of waiting for a sleeping thread (`sgm_conv::in_pool`).
    sgm_conv::in_pool::<Flex, _>(|| sample_grid(args))
}

fn sample_grid(args: Args) -> Result<()> {
    let device = Default::default();

    // 1. The experiment: one of the 39 official configs (embedded in sgm-config), plus overrides.
    let config = ExperimentConfig::load_with(&args.config, &args.set)?;

    // 2. Its network, with the checkpoint's EMA weights when one is given.
    let net = match &args.checkpoint {
        Some(path) => config.load_network::<Flex>(path, CheckpointWeights::Ema, &device)?,
        None => config.network::<Flex>(&device)?,
    };

    // 3. The score function s(x, t) of the config's SDE, then a sampler.
    let [c, h, w] = config.image_shape();
    let shape = [args.batch, c, h, w];
    let sampler = config.sampler()?; // the config's PC (or ODE) sampler
    let score = ScoreFn::new(sampler.sde(), &net, sampler.continuous_score());
    let out = match &args.fast {
        Some(method) => {
            let fast = SigmaSampler::new(
                sampler.sde(),
                SigmaMethod::from_name(method)?,
                "karras",
                args.steps,
                None,
                config.scaler(),
            )?;
            fast.sample(&score, shape, &mut BackendNoise, &device)?
        }
        None => sampler.sample(&score, shape, &mut BackendNoise, &device)?,
    };

    // 4. Images in [0, 1] → one PNG grid.
    let pixels: Vec<f32> = out
        .sample
        .clamp(0.0, 1.0)
        .into_data()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    sgm_eval::write_grid(&args.out, shape, &pixels, 8)?;
    println!(
        "{} images, {} network calls → {}",
        args.batch,
        out.nfe,
        args.out.display()
    );
    Ok(())
}
