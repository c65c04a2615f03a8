//! `cargo xtask bench`: the benchmark tables of `docs/benchmarks.md` on the compiled backend —
//! the rows are `sgm_train::bench::run_bench`; this file only parses, prints and writes JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sgm_eval::InceptionV3;
use sgm_train::bench::{BenchOptions, BenchRow, Table, row_ids, run_bench};

use crate::backend::{Inner, NAME, Train, device};

/// `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Run only rows whose id contains one of these (comma-separated), e.g.
    /// `--filter ncsnpp32,train`. `--list` prints the ids.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// Tiny sizes (batch 2, 16×16, nf 8): checks every row runs; the figures mean nothing.
    #[arg(long)]
    pub quick: bool,
    /// Timed runs per row (median and minimum are printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Untimed warm-up runs per row.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Also write every row (all timed runs) as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// pytorch-fid's Inception weights for the Inception row; default: $SGM_INCEPTION_WEIGHTS
    /// (without either the row is skipped).
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Print the row ids and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run_bench_command(args: BenchArgs) -> Result<()> {
    if args.list {
        row_ids().iter().for_each(|id| println!("{id}"));
        return Ok(());
    }
    let opts = BenchOptions {
        quick: args.quick,
        warmup: args.warmup,
        runs: args.runs,
        filter: args.filter,
    };
    let dev = device();
    let weights = args
        .inception
        .or_else(|| std::env::var_os("SGM_INCEPTION_WEIGHTS").map(PathBuf::from));
    let inception = match (&weights, opts.selects("inception")) {
        (_, false) => Err("not selected".to_string()),
        (None, true) => {
            Err("no Inception weights (--inception FILE or SGM_INCEPTION_WEIGHTS)".into())
        }
        (Some(p), true) => Ok(InceptionV3::<Inner>::load(p, &dev)?),
    };
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "sgm {} bench — backend {NAME}, device {dev:?}, {threads} hardware threads; \
         {} warm-up + {} timed runs per row{}",
        env!("CARGO_PKG_VERSION"),
        opts.warmup,
        opts.runs.max(1),
        if opts.quick { ", QUICK sizes" } else { "" }
    );
    let mut table: Option<Table> = None;
    let rows = run_bench::<Train>(
        &opts,
        inception.as_ref().map_err(Clone::clone),
        &dev,
        |row| {
            if table != Some(row.table) {
                println!("\n### {}\n\n{}", row.table.title(), BenchRow::HEADER);
                table = Some(row.table);
            }
            println!("{}", row.markdown());
        },
    )?;
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "backend": NAME,
            "device": format!("{dev:?}"),
            "hardware_threads": threads,
            "quick": opts.quick,
            "warmup": opts.warmup,
            "runs": opts.runs.max(1),
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}
