//! `cargo xtask …` — the sgm command line. Backend by cargo feature (see `backend.rs`).

mod backend;
mod config;
mod demo;
mod fid;
mod images;
mod likelihood;
mod logging;
mod model;
mod sample;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "xtask",
    about = "sgm: score-based generative modeling through SDEs",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the compiled backend and its default device.
    Info,
    /// Train a small score model in minutes, sample it (PC and ODE), measure it, write grids.
    Demo(demo::DemoArgs),
    /// List the official configs, or validate one (name or .toml path) and print it resolved.
    Config {
        /// Official or short name (e.g. `ve/cifar10_ncsnpp_deep_continuous`, `ncsnpp-deep-cont`)
        /// or path to a .toml file.
        name: Option<String>,
        #[command(flatten)]
        set: config::SetArgs,
    },
    /// Prepare a data set: `data cifar10 --dir D` checks / unpacks the official binary archive
    /// in D (offline it says which file to put where).
    Data {
        /// Data set name (`cifar10`).
        name: String,
        /// Folder holding (or to hold) the data.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Train a score model as the reference's `run_lib.train` (resumes from the run directory).
    Train(train::TrainArgs),
    /// Generate samples from a checkpoint with the PC or probability-flow ODE sampler.
    Sample(sample::SampleArgs),
    /// Bits/dim of images (PNG folder or CIFAR-10 batch) under the probability-flow ODE.
    Likelihood(likelihood::LikelihoodArgs),
    /// FID and KID between two image sets (and IS of the first), pytorch-fid's numbers.
    Fid(fid::FidArgs),
    /// Write pytorch-fid statistics (`.npz`) of an image source.
    FidStats(fid::FidStatsArgs),
    /// Inpaint PNG images: pixels where the mask is white are kept, the rest is generated.
    Inpaint(sample::ControlArgs),
    /// Colorize PNG images (converted to grey first) with the PC colorizer.
    Colorize(sample::ControlArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = backend::init_caches() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let result: anyhow::Result<()> = match cli.command {
        Command::Info => {
            println!(
                "sgm {} — backend {}",
                env!("CARGO_PKG_VERSION"),
                backend::NAME
            );
            println!("device: {:?}", backend::device());
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            println!(
                "GPU autotune / kernel cache: {}",
                sgm_conv::cubecl_cache::cache_dir()
                    .map_or("CubeCL's default locations".into(), |d| d
                        .display()
                        .to_string())
            );
            Ok(())
        }
        Command::Demo(args) => demo::run_demo_command(args),
        Command::Config { name, set } => config::config_command(name.as_deref(), &set),
        Command::Data { name, dir } => train::run_data(&name, &dir),
        Command::Train(args) => train::run_train(args),
        Command::Sample(args) => sample::run_sample(args),
        Command::Likelihood(args) => likelihood::run_likelihood(args),
        Command::Fid(args) => fid::run_fid(args),
        Command::FidStats(args) => fid::run_fid_stats(args),
        Command::Inpaint(args) => sample::run_controllable(args, false),
        Command::Colorize(args) => sample::run_controllable(args, true),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
