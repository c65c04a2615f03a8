//! The `[model]` section: `sgm-nets`' [`ModelKnobs`] for the networks sgm builds (`ncsnpp`,
//! `ddpm`), [`NcsnKnobs`] for the NCSN / NCSNv2 configs (whose networks the reference cannot
//! build in PyTorch and sgm does not provide; their SDE, loss and samplers still work).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use sgm_nets::ModelKnobs;
use sgm_nets::config::{EmbeddingType, Nonlinearity};

/// `config.model`, typed by `model.name`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelSection {
    /// `ncsnpp` (NCSN++ / DDPM++) or `ddpm`: a network of `sgm-nets`.
    Net(ModelKnobs),
    /// `ncsn`, `ncsnv2_64`, `ncsnv2_128`, `ncsnv2_256`.
    Ncsn(NcsnKnobs),
}

/// Model names registered by the reference (`models/utils.py` `register_model`).
pub const MODEL_NAMES: [&str; 6] = [
    "ncsnpp",
    "ddpm",
    "ncsn",
    "ncsnv2_64",
    "ncsnv2_128",
    "ncsnv2_256",
];

impl<'de> Deserialize<'de> for ModelSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        let name = match table.get("name") {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "model.name must be a string, got {}",
                    other.type_str()
                )));
            }
            None => return Err(D::Error::custom("missing field `name` in [model]")),
        };
        let section = match name.as_str() {
            "ncsnpp" | "ddpm" => table.try_into().map(ModelSection::Net),
            "ncsn" | "ncsnv2_64" | "ncsnv2_128" | "ncsnv2_256" => {
                table.try_into().map(ModelSection::Ncsn)
            }
            other => {
                return Err(D::Error::custom(format!(
                    "model.name = \"{other}\" is not one of {}",
                    MODEL_NAMES.join(", ")
                )));
            }
        };
        section.map_err(|e| D::Error::custom(format!("in [model]: {}", e.to_string().trim_end())))
    }
}

/// `[model]` of the NCSN / NCSNv2 configs (reference `models/ncsnv2.py`). Every key is
/// required: the official NCSN configs state them all, and sgm builds no NCSN network whose
/// defaults could fill them in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NcsnKnobs {
    /// `ncsn`, `ncsnv2_64`, `ncsnv2_128` or `ncsnv2_256`.
    pub name: NcsnName,
    /// Smallest noise level σ_min.
    pub sigma_min: f64,
    /// Largest noise level σ_max.
    pub sigma_max: f64,
    /// Number of noise levels N.
    pub num_scales: usize,
    /// VP β_min (unused by the VE configs).
    pub beta_min: f64,
    /// VP β_max (unused by the VE configs).
    pub beta_max: f64,
    /// Dropout (unused by NCSN).
    pub dropout: f64,
    /// Noise embedding (unused by NCSN).
    pub embedding_type: EmbeddingType,
    /// Divide the output by σ.
    pub scale_by_sigma: bool,
    /// EMA rate (0 disables the EMA's effect).
    pub ema_rate: f64,
    /// `InstanceNorm++` (NCSN's conditional instance norm).
    pub normalization: String,
    /// Activation.
    pub nonlinearity: Nonlinearity,
    /// Base width.
    pub nf: usize,
    /// Upsampling interpolation (read by nothing upstream).
    pub interpolation: String,
}

/// NCSN-family model names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum NcsnName {
    /// `ncsn` (Song & Ermon 2019).
    #[serde(rename = "ncsn")]
    Ncsn,
    /// `ncsnv2_64`.
    #[serde(rename = "ncsnv2_64")]
    Ncsnv2_64,
    /// `ncsnv2_128`.
    #[serde(rename = "ncsnv2_128")]
    Ncsnv2_128,
    /// `ncsnv2_256`.
    #[serde(rename = "ncsnv2_256")]
    Ncsnv2_256,
}

impl NcsnName {
    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            NcsnName::Ncsn => "ncsn",
            NcsnName::Ncsnv2_64 => "ncsnv2_64",
            NcsnName::Ncsnv2_128 => "ncsnv2_128",
            NcsnName::Ncsnv2_256 => "ncsnv2_256",
        }
    }
}

/// Accessors of the keys every model section has.
macro_rules! shared_knobs {
    ($($(#[$doc:meta])* $key:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            pub fn $key(&self) -> $ty {
                match self {
                    ModelSection::Net(m) => m.$key,
                    ModelSection::Ncsn(m) => m.$key,
                }
            }
        )*
    };
}

impl ModelSection {
    /// `model.name`.
    pub fn name(&self) -> &'static str {
        match self {
            ModelSection::Net(m) => m.name.name(),
            ModelSection::Ncsn(m) => m.name.name(),
        }
    }
    shared_knobs! {
        /// `model.sigma_min` (VE SDE).
        sigma_min: f64,
        /// `model.sigma_max` (VE SDE).
        sigma_max: f64,
        /// `model.beta_min` (VP / sub-VP SDE).
        beta_min: f64,
        /// `model.beta_max` (VP / sub-VP SDE).
        beta_max: f64,
        /// `model.num_scales`: the SDE's N.
        num_scales: usize,
        /// `model.ema_rate`: the EMA decay of training.
        ema_rate: f64,
        /// `model.dropout`.
        dropout: f64,
        /// `model.scale_by_sigma`.
        scale_by_sigma: bool,
    }

    /// The `sgm-nets` knobs, if the model is one of its networks.
    pub fn knobs(&self) -> Option<&ModelKnobs> {
        match self {
            ModelSection::Net(m) => Some(m),
            ModelSection::Ncsn(_) => None,
        }
    }
}
