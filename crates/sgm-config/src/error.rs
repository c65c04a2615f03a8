//! The one error type of `sgm-config`.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong loading a config or building what it defines. Every variant
/// names the config (`origin`: a file path or `embedded <official name>`) and, where there is
/// one, the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The `.toml` file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type. `message` is
    /// the TOML parser's, which names the key (and its line when the text came from a file).
    #[error("invalid config {origin}: {message}")]
    Parse {
        /// Where the config came from.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A key whose value parses but is not allowed (e.g. `training.batch_size = 0`).
    #[error("invalid config {origin}: `{key}` {message}")]
    Invalid {
        /// Where the config came from.
        origin: String,
        /// Dotted key (`training.batch_size`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A name that is neither a `.toml` file nor an official or short config name.
    #[error(
        "unknown config `{name}`: not a .toml file, nor one of the official names; {}",
        candidates_text(candidates)
    )]
    UnknownName {
        /// The name asked for.
        name: String,
        /// Close official names (or all of them).
        candidates: Vec<String>,
    },
    /// A short name without its family (`ddpmpp-deep-cont`) that several configs have.
    #[error("ambiguous config name `{name}`: it could be {}", candidates.join(", "))]
    AmbiguousName {
        /// The name asked for.
        name: String,
        /// Every config it could mean (short names with family).
        candidates: Vec<String>,
    },
    /// A `--set KEY=VALUE` argument that is not of that form or names no key.
    #[error("bad override `{arg}`: {message}")]
    Override {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// The config's model has no network in `sgm-nets` (NCSN / NCSNv2).
    #[error(
        "config {origin}: model.name = \"{name}\" has no network in sgm-nets (available: ncsnpp, ddpm); its SDE, loss and samplers are still usable"
    )]
    NoNetwork {
        /// Where the config came from.
        origin: String,
        /// `model.name`.
        name: String,
    },
    /// A checkpoint that is missing, of an unknown format, or does not fit the config.
    #[error("cannot load checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why (the network crate's message names the key and shapes).
        reason: String,
    },
    /// The SDE the config defines is invalid.
    #[error("config {origin}: {source}")]
    Sde {
        /// Where the config came from.
        origin: String,
        /// The SDE error.
        #[source]
        source: sde_core::SdeError,
    },
    /// The `[model]` section is not a valid network.
    #[error("config {origin}: invalid [model]: {source}")]
    Nets {
        /// Where the config came from.
        origin: String,
        /// The network crate's error.
        #[source]
        source: sgm_nets::NetsError,
    },
    /// The sampler options are not valid for the config's SDE.
    #[error("config {origin}: {source}")]
    Sample {
        /// Where the config came from.
        origin: String,
        /// The sampler crate's error.
        #[source]
        source: sgm_sample::SampleError,
    },
    /// The config could not be written as TOML.
    #[error("cannot write config {origin} as TOML: {message}")]
    Serialize {
        /// Where the config came from.
        origin: String,
        /// The serializer's message.
        message: String,
    },
}

fn candidates_text(candidates: &[String]) -> String {
    if candidates.is_empty() {
        "run `cargo xtask config` for the list".to_string()
    } else {
        format!("did you mean {}?", candidates.join(", "))
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ConfigError>;
