//! `cargo xtask …` — the sgm command line. Backend by cargo feature (see `backend.rs`).

mod backend;

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
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Info => {
            println!(
                "sgm {} — backend {}",
                env!("CARGO_PKG_VERSION"),
                backend::NAME
            );
            println!("device: {:?}", backend::device());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
