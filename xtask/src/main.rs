//! `cargo xtask …` — the sgm command line. Backend by cargo feature (see `backend.rs`).

mod backend;
mod bench;
mod classifier;
mod config;
mod demo;
mod eval;
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
    /// Prepare a data set: `data cifar10 --dir D` checks / unpacks the official binary or
    /// python archive in D (md5 checked); `data inception [--dir D]` fetches pytorch-fid's
    /// Inception weights and checks their hash (offline each says which file to put where).
    Data {
        /// Data set name (`cifar10`, `inception`).
        name: String,
        /// Folder holding (or to hold) the data (default: `data/`, `data/inception/` for the
        /// Inception weights).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Check what is there; never download.
        #[arg(long)]
        offline: bool,
    },
    /// Train a score model as the reference's `run_lib.train` (resumes from the run directory).
    Train(train::TrainArgs),
    /// Evaluate a run's checkpoints as the reference's `run_lib.evaluate`: eval loss, bits/dim,
    /// samples → FID / KID / IS; resumable, one report per checkpoint.
    Eval(eval::EvalArgs),
    /// Train the noise-conditional WideResNet classifier (class-conditional sampling) with a
    /// config's SDE, schedule and optimizer.
    TrainClassifier(classifier::TrainClassifierArgs),
    /// Class-conditional samples: a score checkpoint guided by a classifier checkpoint.
    SampleConditional(classifier::ConditionalArgs),
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
    /// Print the benchmark tables of docs/benchmarks.md on the compiled backend (networks,
    /// train step, sampler overhead, Inception features).
    Bench(bench::BenchArgs),
}

fn main() {
    backend::tune_allocator();
    backend::init_pool();
    let cli = Cli::parse();
    if let Err(e) = backend::init_caches() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let uses_device = !matches!(cli.command, Command::Config { .. } | Command::Data { .. });
    if let Err(e) = uses_device.then(backend::check).unwrap_or(Ok(())) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    // every command runs where the backend's kernels run best (Flex: on a rayon worker,
    // `sgm_conv::in_pool`)
    let result: anyhow::Result<()> = sgm_conv::in_pool::<backend::Inner, _>(|| match cli.command {
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
        Command::Data { name, dir, offline } => match name.as_str() {
            "inception" => {
                eval::run_data_inception(&dir.unwrap_or_else(|| "data/inception".into()), offline)
            }
            _ => train::run_data(&name, &dir.unwrap_or_else(|| "data".into())),
        },
        Command::Train(args) => train::run_train(args),
        Command::Eval(args) => eval::run_eval(args),
        Command::TrainClassifier(args) => classifier::run_train_classifier(args),
        Command::SampleConditional(args) => classifier::run_sample_conditional(args),
        Command::Sample(args) => sample::run_sample(args),
        Command::Likelihood(args) => likelihood::run_likelihood(args),
        Command::Fid(args) => fid::run_fid(args),
        Command::FidStats(args) => fid::run_fid_stats(args),
        Command::Inpaint(args) => sample::run_controllable(args, false),
        Command::Colorize(args) => sample::run_controllable(args, true),
        Command::Bench(args) => bench::run_bench_command(args),
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
