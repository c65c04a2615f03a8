//! `xtask config [NAME] [--set KEY=VALUE]…`: list the official configs, or load one and print
//! it resolved. Everything else lives in the `sgm-config` crate.

use anyhow::Result;
use sgm_config::{ExperimentConfig, OFFICIAL, Override};

/// `--set KEY=VALUE` overrides, shared by every command that loads a config.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SetArgs {
    /// Override a config key, e.g. `--set training.batch_size=8` (repeatable; validated like
    /// the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl SetArgs {
    /// The parsed overrides.
    pub fn overrides(&self) -> Result<Vec<Override>> {
        Ok(self
            .set
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?)
    }
}

/// Without a name, lists the official configs (short name, official name); with one (official
/// or short name, or `.toml` path), validates it and prints a summary line and the resolved TOML.
pub fn config_command(name: Option<&str>, set: &SetArgs) -> Result<()> {
    let Some(name) = name else {
        let width = OFFICIAL
            .iter()
            .map(|c| c.short_name().len())
            .max()
            .unwrap_or(0);
        for c in OFFICIAL {
            println!("{:width$}  {}", c.short_name(), c.name);
        }
        return Ok(());
    };
    let config = ExperimentConfig::load_with(name, &set.overrides()?)?;
    println!("# {}", config.summary());
    print!("{}", config.to_toml()?);
    Ok(())
}
