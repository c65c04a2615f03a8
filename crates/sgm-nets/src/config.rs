//! Model configuration with the reference's knob names (`config.model.*`, `config.data.*` of
//! score_sde's `ml_collections` configs; reference §7.4, §9).
//!
//! A config reads like the official one, e.g. in TOML:
//! ```toml
//! [model]
//! name = "ncsnpp"
//! nf = 128
//! ch_mult = [1, 2, 2, 2]
//! # …
//! [data]
//! image_size = 32
//! ```
//! Unknown keys are an error naming the key. Knobs left out take the value of the
//! reference's `default_cifar10_configs.py` / NCSN++ CIFAR-10 configs.

use serde::{Deserialize, Serialize};

use crate::error::{NetsError, Result};

/// Which reference network (`config.model.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelName {
    /// `models/ncsnpp.py` (NCSN++ and DDPM++).
    Ncsnpp,
    /// `models/ddpm.py` (Ho et al.'s U-Net).
    Ddpm,
}

impl ModelName {
    /// The registered name (`ncsnpp`, `ddpm`).
    pub fn name(self) -> &'static str {
        match self {
            ModelName::Ncsnpp => "ncsnpp",
            ModelName::Ddpm => "ddpm",
        }
    }
}

/// `resblock_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResblockType {
    /// `ResnetBlockDDPMpp` + separate Up/Downsample modules.
    Ddpm,
    /// `ResnetBlockBigGANpp`, resampling inside up/down blocks.
    Biggan,
}

/// `progressive` (output pyramid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progressive {
    /// No output pyramid.
    None,
    /// Sum of per-level output convolutions, upsampled.
    OutputSkip,
    /// Residual output pyramid (conv upsampling).
    Residual,
}

/// `progressive_input` (input pyramid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressiveInput {
    /// No input pyramid.
    None,
    /// Downsampled image combined into every level.
    InputSkip,
    /// Residual input pyramid (conv downsampling).
    Residual,
}

/// `progressive_combine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CombineMethod {
    /// `h + y`.
    Sum,
    /// `cat([h, y])`.
    Cat,
}

/// `embedding_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingType {
    /// Gaussian Fourier features of `log σ`.
    Fourier,
    /// Sinusoidal DDPM embedding of the label.
    Positional,
}

/// `nonlinearity` (reference `get_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonlinearity {
    /// ELU.
    Elu,
    /// ReLU.
    Relu,
    /// Leaky ReLU, slope 0.2.
    Lrelu,
    /// SiLU.
    Swish,
}

/// `config.model` knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelKnobs {
    /// Registered model name.
    pub name: ModelName,
    /// Base width.
    #[serde(default = "d_nf")]
    pub nf: usize,
    /// Width multiplier per resolution level.
    #[serde(default = "d_ch_mult")]
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level (down path; `+1` on the up path).
    #[serde(default = "d_blocks")]
    pub num_res_blocks: usize,
    /// Spatial sizes that get attention.
    #[serde(default = "d_attn")]
    pub attn_resolutions: Vec<usize>,
    /// Dropout inside residual blocks (active only on autodiff backends).
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Convolutional resampling for `resblock_type = ddpm` / the DDPM model.
    #[serde(default = "d_true")]
    pub resamp_with_conv: bool,
    /// Noise-level conditioning.
    #[serde(default = "d_true")]
    pub conditional: bool,
    /// FIR resampling.
    #[serde(default)]
    pub fir: bool,
    /// 1-D FIR kernel.
    #[serde(default = "d_fir_kernel")]
    pub fir_kernel: Vec<f64>,
    /// Divide residual sums by √2.
    #[serde(default = "d_true")]
    pub skip_rescale: bool,
    /// Residual block flavour.
    #[serde(default = "d_resblock")]
    pub resblock_type: ResblockType,
    /// Output pyramid.
    #[serde(default = "d_prog")]
    pub progressive: Progressive,
    /// Input pyramid.
    #[serde(default = "d_prog_in")]
    pub progressive_input: ProgressiveInput,
    /// Combine method of the input pyramid.
    #[serde(default = "d_combine")]
    pub progressive_combine: CombineMethod,
    /// Noise-level embedding.
    #[serde(default = "d_embedding")]
    pub embedding_type: EmbeddingType,
    /// Std of the fixed Fourier weights.
    #[serde(default = "d_fourier_scale")]
    pub fourier_scale: f64,
    /// Init scale of the "last" layers (0 → 1e-10).
    #[serde(default)]
    pub init_scale: f64,
    /// Divide the output by σ.
    #[serde(default)]
    pub scale_by_sigma: bool,
    /// Activation.
    #[serde(default = "d_act")]
    pub nonlinearity: Nonlinearity,
    /// Only `GroupNorm` exists (read but unused by the reference).
    #[serde(default = "d_norm")]
    pub normalization: String,
    /// Read but unused by the reference (only DDPM attention exists).
    #[serde(default = "d_attention_type")]
    pub attention_type: String,
    /// Read but unused by the reference.
    #[serde(default = "d_conv_size")]
    pub conv_size: usize,
    /// σ_min of the `sigmas` buffer.
    #[serde(default = "d_sigma_min")]
    pub sigma_min: f64,
    /// σ_max of the `sigmas` buffer.
    #[serde(default = "d_sigma_max")]
    pub sigma_max: f64,
    /// Length of the `sigmas` buffer (N).
    #[serde(default = "d_num_scales")]
    pub num_scales: usize,
    /// VP β_min (training only).
    #[serde(default = "d_beta_min")]
    pub beta_min: f64,
    /// VP β_max (training only).
    #[serde(default = "d_beta_max")]
    pub beta_max: f64,
    /// EMA rate (training only).
    #[serde(default = "d_ema")]
    pub ema_rate: f64,
}

/// `config.data` keys the networks read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Square image side.
    #[serde(default = "d_image_size")]
    pub image_size: usize,
    /// Image channels.
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    /// Data in [-1, 1] (true) or [0, 1] (false: the model maps `x → 2x − 1`).
    #[serde(default)]
    pub centered: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            image_size: d_image_size(),
            num_channels: d_channels(),
            centered: false,
        }
    }
}

/// A network config: `model` knobs and `data` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `config.model`.
    pub model: ModelKnobs,
    /// `config.data`.
    #[serde(default)]
    pub data: DataConfig,
}

fn d_nf() -> usize {
    128
}
fn d_ch_mult() -> Vec<usize> {
    vec![1, 2, 2, 2]
}
fn d_blocks() -> usize {
    4
}
fn d_attn() -> Vec<usize> {
    vec![16]
}
fn d_dropout() -> f64 {
    0.1
}
fn d_true() -> bool {
    true
}
fn d_fir_kernel() -> Vec<f64> {
    vec![1.0, 3.0, 3.0, 1.0]
}
fn d_resblock() -> ResblockType {
    ResblockType::Biggan
}
fn d_prog() -> Progressive {
    Progressive::None
}
fn d_prog_in() -> ProgressiveInput {
    ProgressiveInput::None
}
fn d_combine() -> CombineMethod {
    CombineMethod::Sum
}
fn d_embedding() -> EmbeddingType {
    EmbeddingType::Fourier
}
fn d_fourier_scale() -> f64 {
    16.0
}
fn d_act() -> Nonlinearity {
    Nonlinearity::Swish
}
fn d_norm() -> String {
    "GroupNorm".into()
}
fn d_attention_type() -> String {
    "ddpm".into()
}
fn d_conv_size() -> usize {
    3
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
fn d_ema() -> f64 {
    0.9999
}
fn d_image_size() -> usize {
    32
}
fn d_channels() -> usize {
    3
}

impl ModelConfig {
    /// Reads a fixture case's `model` object (its `knobs` and `data`; other keys of the
    /// summary such as `training` or `weights` are ignored). Unknown knobs are an error.
    pub fn from_fixture_model(model: &serde_json::Value) -> Result<Self> {
        let knobs = model
            .get("knobs")
            .ok_or_else(|| NetsError::Config("fixture model has no `knobs` object".into()))?;
        let data = model
            .get("data")
            .ok_or_else(|| NetsError::Config("fixture model has no `data` object".into()))?;
        let v = serde_json::json!({ "model": knobs, "data": data });
        let cfg: Self = serde_json::from_value(v).map_err(|e| NetsError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a JSON document `{ "model": {…}, "data": {…} }` (unknown keys rejected).
    pub fn from_json_str(s: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(s).map_err(|e| NetsError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of resolution levels.
    pub fn num_resolutions(&self) -> usize {
        self.model.ch_mult.len()
    }

    /// `all_resolutions[l] = image_size / 2^l`.
    pub fn all_resolutions(&self) -> Vec<usize> {
        (0..self.num_resolutions())
            .map(|l| self.data.image_size >> l)
            .collect()
    }

    /// Checks the knob values the networks need (group counts, sizes, kernels).
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        let bad = |key: &'static str, msg: String| Err(NetsError::InvalidKnob { key, msg });
        if m.nf == 0 {
            return bad("nf", "must be positive".into());
        }
        if m.ch_mult.is_empty() || m.ch_mult.contains(&0) {
            return bad(
                "ch_mult",
                format!("{:?}: needs ≥ 1 positive entries", m.ch_mult),
            );
        }
        if m.num_res_blocks == 0 {
            return bad("num_res_blocks", "must be positive".into());
        }
        // Sanity limits for untrusted configs (far above every official config: nf 128,
        // ch_mult ≤ 4 entries of ≤ 4, 8 res blocks, 1024² images): they keep the arithmetic
        // below from overflowing and refuse a network whose allocation would abort the process.
        let limits = [
            ("nf", m.nf, limits::MAX_WIDTH),
            ("ch_mult", m.ch_mult.len(), limits::MAX_LEVELS),
            (
                "ch_mult",
                m.ch_mult.iter().copied().max().unwrap_or(0),
                limits::MAX_WIDTH,
            ),
            ("num_res_blocks", m.num_res_blocks, limits::MAX_RES_BLOCKS),
            ("image_size", self.data.image_size, limits::MAX_IMAGE_SIZE),
            ("num_channels", self.data.num_channels, limits::MAX_CHANNELS),
        ];
        for (key, value, max) in limits {
            if value > max {
                return bad(key, format!("{value} exceeds the sanity limit {max}"));
            }
        }
        let widest = m.nf * m.ch_mult.iter().copied().max().unwrap_or(1);
        if widest > limits::MAX_WIDTH {
            return bad(
                "ch_mult",
                format!(
                    "nf × max(ch_mult) = {widest} exceeds the sanity limit {}",
                    limits::MAX_WIDTH
                ),
            );
        }
        let levels = self.num_resolutions();
        let size = self.data.image_size;
        if size == 0 || !size.is_multiple_of(1 << (levels - 1)) {
            return bad(
                "ch_mult",
                format!(
                    "{levels} levels need image_size divisible by {}, got {size}",
                    1 << (levels - 1)
                ),
            );
        }
        if self.data.num_channels == 0 {
            return bad("num_channels", "must be positive".into());
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad("dropout", format!("{} not in [0, 1)", m.dropout));
        }
        if m.fir && m.name == ModelName::Ncsnpp {
            let k = &m.fir_kernel;
            if k.len() < 2 || k.iter().sum::<f64>() == 0.0 {
                return bad("fir_kernel", format!("{k:?}: needs ≥ 2 taps, non-zero sum"));
            }
        }
        if m.normalization != "GroupNorm" {
            return bad(
                "normalization",
                format!("only GroupNorm exists, got {}", m.normalization),
            );
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if m.scale_by_sigma
            && (m.num_scales == 0 || !positive(m.sigma_min) || !positive(m.sigma_max))
        {
            return bad(
                "num_scales",
                "scale_by_sigma needs num_scales > 0 and positive sigmas".into(),
            );
        }
        // GroupNorm group counts must divide every width the network uses.
        let widths: Vec<usize> = std::iter::once(m.nf)
            .chain(m.ch_mult.iter().map(|c| c * m.nf))
            .collect();
        for &c in &widths {
            let groups = match m.name {
                ModelName::Ncsnpp => (c / 4).min(32),
                ModelName::Ddpm => 32,
            };
            if groups == 0 || c % groups != 0 {
                return bad(
                    "nf",
                    format!("width {c} is not divisible into {groups} GroupNorm groups"),
                );
            }
        }
        Ok(())
    }
}

/// Sanity limits on network knobs, checked by [`ModelConfig::validate`] so that an untrusted
/// config cannot make the process abort on an impossible allocation or overflow.
pub mod limits {
    /// Largest channel width `nf · max(ch_mult)` (official: 512).
    pub const MAX_WIDTH: usize = 8192;
    /// Most resolution levels, `ch_mult.len()` (official: ≤ 7).
    pub const MAX_LEVELS: usize = 16;
    /// Most residual blocks per level (official: ≤ 8).
    pub const MAX_RES_BLOCKS: usize = 64;
    /// Largest image side (official: ≤ 1024).
    pub const MAX_IMAGE_SIZE: usize = 8192;
    /// Most image channels (official: 3).
    pub const MAX_CHANNELS: usize = 64;
}
