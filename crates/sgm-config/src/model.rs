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

/// `[model]` of the NCSN / NCSNv2 configs (reference `models/ncsnv2.py`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NcsnKnobs {
    /// `ncsn`, `ncsnv2_64`, `ncsnv2_128` or `ncsnv2_256`.
    pub name: NcsnName,
    /// Smallest noise level σ_min (default 0.01).
    #[serde(default = "d_sigma_min")]
    pub sigma_min: f64,
    /// Largest noise level σ_max (default 50).
    #[serde(default = "d_sigma_max")]
    pub sigma_max: f64,
    /// Number of noise levels N (default 1000).
    #[serde(default = "d_num_scales")]
    pub num_scales: usize,
    /// VP β_min (unused by VE configs; default 0.1).
    #[serde(default = "d_beta_min")]
    pub beta_min: f64,
    /// VP β_max (unused by VE configs; default 20).
    #[serde(default = "d_beta_max")]
    pub beta_max: f64,
    /// Dropout (default 0.1; unused by NCSN).
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Noise embedding (default `fourier`; unused by NCSN).
    #[serde(default = "d_embedding")]
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

fn d_sigma_min() -> f64 {
    0.01
}
fn d_sigma_max() -> f64 {
    50.0
}
fn d_num_scales() -> usize {
    1000
}
fn d_beta_min() -> f64 {
    0.1
}
fn d_beta_max() -> f64 {
    20.0
}
fn d_dropout() -> f64 {
    0.1
}
fn d_embedding() -> EmbeddingType {
    EmbeddingType::Fourier
}

macro_rules! either {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            ModelSection::Net($m) => $e,
            ModelSection::Ncsn($m) => $e,
        }
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
    /// `model.sigma_min` (VE SDE).
    pub fn sigma_min(&self) -> f64 {
        either!(self, m => m.sigma_min)
    }
    /// `model.sigma_max` (VE SDE).
    pub fn sigma_max(&self) -> f64 {
        either!(self, m => m.sigma_max)
    }
    /// `model.beta_min` (VP / sub-VP SDE).
    pub fn beta_min(&self) -> f64 {
        either!(self, m => m.beta_min)
    }
    /// `model.beta_max` (VP / sub-VP SDE).
    pub fn beta_max(&self) -> f64 {
        either!(self, m => m.beta_max)
    }
    /// `model.num_scales`: the SDE's N.
    pub fn num_scales(&self) -> usize {
        either!(self, m => m.num_scales)
    }
    /// `model.ema_rate`: the EMA decay of training.
    pub fn ema_rate(&self) -> f64 {
        either!(self, m => m.ema_rate)
    }
    /// `model.dropout`.
    pub fn dropout(&self) -> f64 {
        either!(self, m => m.dropout)
    }
    /// `model.scale_by_sigma`.
    pub fn scale_by_sigma(&self) -> bool {
        either!(self, m => m.scale_by_sigma)
    }
    /// The `sgm-nets` knobs, if the model is one of its networks.
    pub fn knobs(&self) -> Option<&ModelKnobs> {
        match self {
            ModelSection::Net(m) => Some(m),
            ModelSection::Ncsn(_) => None,
        }
    }
}
