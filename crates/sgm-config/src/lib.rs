//! # sgm-config — score_sde experiments as a library
//!
//! The official configs of `yang-song/score_sde_pytorch` (39 TOML files under the workspace's
//! `configs/`, compiled into this crate), typed section by section, and the objects they
//! define — for `cargo xtask` and for any Burn project:
//!
//! ```no_run
//! use sgm_config::{ExperimentConfig, Override};
//!
//! # fn main() -> sgm_config::Result<()> {
//! // By short name, official name (`ve/cifar10_ncsnpp_deep_continuous`) or a `.toml` path.
//! let config = ExperimentConfig::load_with(
//!     "ncsnpp-deep-cont",
//!     &["training.batch_size=8".parse::<Override>()?],
//! )?;
//! let sde = config.sde()?; // sde_core::AnySde
//! let net_config = config.model_config()?; // sgm_nets::ModelConfig
//! let loss = config.loss_config(); // sde_core::LossConfig
//! let sampler = config.sampler()?; // PC or ODE, an sgm_sample::Sampler
//! # Ok(()) }
//! ```
//!
//! * [`ExperimentConfig`]: `seed`, [`TrainingConfig`], [`SamplingConfig`], [`EvalConfig`],
//!   [`DataConfig`], [`ModelSection`] (`sgm_nets::ModelKnobs` for `ncsnpp` / `ddpm`),
//!   [`OptimConfig`]. Keys the reference defaults may be left out; unknown keys, bad values
//!   and missing required keys are one [`ConfigError`] naming the config and the key.
//! * Names ([`official`]): official names, short names (`ve/ncsnpp-deep-cont`,
//!   `vp/ddpmpp-deep-cont`, headline `ncsnpp-deep-cont`), ambiguity and unknown-name errors
//!   listing candidates.
//! * [`Override`]: `KEY=VALUE` (`--set` of the CLI), any key, validated like the file.
//! * Constructors: [`ExperimentConfig::sde`], [`ExperimentConfig::model_config`] /
//!   [`ExperimentConfig::network`] / [`ExperimentConfig::load_network`] (official `.pth` or
//!   `.safetensors` weights), [`ExperimentConfig::loss_config`],
//!   [`ExperimentConfig::pc_config`] / [`ExperimentConfig::ode_config`] /
//!   [`ExperimentConfig::sampler`], [`ExperimentConfig::likelihood_config`].
//!
//! No file is read at run time except a `.toml` path given by the user.

mod constructors;
pub mod error;
mod experiment;
pub mod model;
mod named;
pub mod official;
pub mod sections;

pub use constructors::ConfigSampler;
pub use error::{ConfigError, Result};
pub use experiment::{ExperimentConfig, Override};
pub use model::{MODEL_NAMES, ModelSection, NcsnKnobs, NcsnName};
pub use official::{HEADLINE, OFFICIAL, OfficialConfig, find_official, official_names, short_name};
pub use sections::{
    ADAM_BETA2, BpdDataset, DataConfig, Dataset, EvalConfig, OptimConfig, Optimizer,
    SamplingConfig, SamplingMethod, TrainingConfig,
};
