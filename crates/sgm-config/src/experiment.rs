//! [`ExperimentConfig`]: one experiment, loaded from an official name or a `.toml` file, with
//! `key=value` overrides, validated as a whole.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Result};
use crate::model::ModelSection;
use crate::official::find_official;
use crate::sections::{
    DataConfig, Dataset, EvalConfig, OptimConfig, SamplingConfig, SamplingMethod, TrainingConfig,
};

/// One experiment: the reference's `ml_collections` config, section by section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// `config.seed` (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `[training]`.
    pub training: TrainingConfig,
    /// `[sampling]`.
    pub sampling: SamplingConfig,
    /// `[eval]` (all keys have defaults).
    #[serde(default)]
    pub eval: EvalConfig,
    /// `[data]` (all keys have defaults).
    #[serde(default)]
    pub data: DataConfig,
    /// `[model]`.
    pub model: ModelSection,
    /// `[optim]` (all keys have defaults).
    #[serde(default)]
    pub optim: OptimConfig,
    /// Where the config came from (a file path or `embedded <official name>`, plus the
    /// overrides); used in errors, not a TOML key.
    #[serde(skip)]
    pub origin: String,
}

fn default_seed() -> u64 {
    42
}

/// One `KEY=VALUE` override (`training.batch_size=8`, `sampling.predictor=euler_maruyama`,
/// `model.ch_mult=[1, 2]`). The value is read as a TOML value; one that is not valid TOML is
/// taken as a string. Applied overrides are validated like the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key, e.g. `training.batch_size`.
    pub key: String,
    /// The new value.
    pub value: toml::Value,
}

impl Override {
    /// An override of `key` with `value`.
    pub fn new(key: impl Into<String>, value: impl Into<toml::Value>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl FromStr for Override {
    type Err = ConfigError;

    fn from_str(arg: &str) -> Result<Self> {
        let bad = |message: &str| ConfigError::Override {
            arg: arg.to_string(),
            message: message.to_string(),
        };
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE, e.g. training.batch_size=8"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
            return Err(bad(
                "the key must be dotted names, e.g. training.batch_size",
            ));
        }
        let raw = raw.trim();
        let value = match format!("v = {raw}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or_else(|| raw.into()),
            Err(_) => toml::Value::String(raw.to_string()),
        };
        Ok(Override::new(key, value))
    }
}

impl std::fmt::Display for Override {
    /// `key=value` as typed: strings without TOML quotes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            toml::Value::String(s) => write!(f, "{}={s}", self.key),
            other => write!(f, "{}={other}", self.key),
        }
    }
}

impl ExperimentConfig {
    /// Loads a config by official name (`ve/cifar10_ncsnpp_deep_continuous`), short name
    /// (`ncsnpp-deep-cont`, `vp/ddpmpp-deep-cont`; see [`crate::official`]) or path to a
    /// `.toml` file. Official configs come from the copies compiled into this crate.
    pub fn load(name_or_path: &str) -> Result<Self> {
        Self::load_with(name_or_path, &[])
    }

    /// [`load`](Self::load), then `overrides` applied in order, validated like the file.
    pub fn load_with(name_or_path: &str, overrides: &[Override]) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Self::from_file_with(path, overrides);
        }
        match find_official(name_or_path) {
            Ok(official) => Self::from_toml_str_with(
                official.text,
                &format!("embedded {}", official.name),
                overrides,
            ),
            Err(ConfigError::UnknownName { .. }) if name_or_path.ends_with(".toml") => {
                Err(ConfigError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file (and not an official config name)",
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads and validates one TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &[])
    }

    /// Reads one TOML file, applies `overrides` and validates the result.
    pub fn from_file_with(path: &Path, overrides: &[Override]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str_with(&text, &path.display().to_string(), overrides)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        Self::from_toml_str_with(text, origin, &[])
    }

    /// Parses config text, applies `overrides` and validates the result.
    pub fn from_toml_str_with(text: &str, origin: &str, overrides: &[Override]) -> Result<Self> {
        let origin = origin_with(origin, overrides);
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            origin: origin.clone(),
            message: e.to_string().trim_end().to_string(),
        };
        let mut config: Self = if overrides.is_empty() {
            // Straight from the text: errors carry the line of the offending key.
            toml::from_str(text).map_err(parse_error)?
        } else {
            let mut table: toml::Table = text.parse().map_err(parse_error)?;
            for o in overrides {
                apply(&mut table, o)?;
            }
            table.try_into().map_err(parse_error)?
        };
        config.origin = origin;
        config.validate()?;
        Ok(config)
    }

    /// This config with `overrides` applied, validated like a file.
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<Self> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let text = self.to_toml()?;
        Self::from_toml_str_with(&text, &self.origin, overrides)
    }

    /// The config as TOML, every key resolved (e.g. to store next to a run's checkpoints);
    /// [`from_toml_str`](Self::from_toml_str) reads it back to an equal config.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize {
            origin: self.origin.clone(),
            message: e.to_string(),
        })
    }

    /// Checks what serde cannot: positive sizes and frequencies, dataset-specific keys,
    /// optimizer ranges, and that the SDE, network, loss and sampler the config defines exist.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                origin: self.origin.clone(),
                key: key.to_string(),
                message,
            })
        };
        let t = &self.training;
        for (key, value) in [
            ("training.batch_size", t.batch_size as u64),
            ("training.n_iters", t.n_iters),
            ("training.snapshot_freq", t.snapshot_freq),
            ("training.log_freq", t.log_freq),
            ("training.eval_freq", t.eval_freq),
            (
                "training.snapshot_freq_for_preemption",
                t.snapshot_freq_for_preemption,
            ),
            ("eval.batch_size", self.eval.batch_size as u64),
            ("data.image_size", self.data.image.image_size as u64),
            ("data.num_channels", self.data.image.num_channels as u64),
        ] {
            if value == 0 {
                return invalid(key, "must be positive".into());
            }
        }
        if self.eval.begin_ckpt > self.eval.end_ckpt {
            return invalid(
                "eval.begin_ckpt",
                format!(
                    "{} is after eval.end_ckpt = {}",
                    self.eval.begin_ckpt, self.eval.end_ckpt
                ),
            );
        }
        if self.data.dataset == Dataset::Lsun && self.data.category.is_none() {
            return invalid(
                "data.category",
                "is required for data.dataset = \"LSUN\"".into(),
            );
        }
        if matches!(self.data.dataset, Dataset::Ffhq | Dataset::CelebAHq)
            && self.data.tfrecords_path.is_none()
        {
            return invalid(
                "data.tfrecords_path",
                "is required for data.dataset = \"FFHQ\" / \"CelebAHQ\"".into(),
            );
        }
        let o = &self.optim;
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(o.lr) {
            return invalid("optim.lr", format!("must be finite and ≥ 0, got {}", o.lr));
        }
        if !(0.0..1.0).contains(&o.beta1) {
            return invalid(
                "optim.beta1",
                format!("must lie in [0, 1), got {}", o.beta1),
            );
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return invalid("optim.eps", format!("must be positive, got {}", o.eps));
        }
        if !finite_nonneg(o.weight_decay) {
            return invalid(
                "optim.weight_decay",
                format!("must be finite and ≥ 0, got {}", o.weight_decay),
            );
        }
        if o.grad_clip.is_nan() {
            return invalid(
                "optim.grad_clip",
                "must be a number (negative disables)".into(),
            );
        }
        let ema = self.model.ema_rate();
        if !(0.0..=1.0).contains(&ema) {
            return invalid("model.ema_rate", format!("must lie in [0, 1], got {ema}"));
        }
        if self.sampling.n_steps_each == 0 {
            return invalid("sampling.n_steps_each", "must be positive".into());
        }
        let sde = self.sde()?;
        self.loss_config()
            .check(self.training.sde)
            .map_err(|source| ConfigError::Sde {
                origin: self.origin.clone(),
                source,
            })?;
        if self.sampling.method == SamplingMethod::Pc {
            self.pc_config(&sde)?;
        }
        if self.model.knobs().is_some() {
            self.model_config()?;
        }
        Ok(())
    }

    /// Shape of one image, `[C, H, W]` (`data.num_channels`, `data.image_size`²).
    pub fn image_shape(&self) -> [usize; 3] {
        let d = &self.data.image;
        [d.num_channels, d.image_size, d.image_size]
    }

    /// One line: origin, model, SDE, N, image shape, sampling eps.
    pub fn summary(&self) -> String {
        let (kind, n, eps) = match self.sde() {
            Ok(sde) => {
                use sde_core::Sde;
                (
                    sde.kind().reference_name(),
                    sde.num_steps(),
                    sde.default_sampling_eps(),
                )
            }
            Err(_) => ("invalid", 0, f32::NAN),
        };
        format!(
            "{}: model {}, {kind} with N = {n}, image {:?}, sampling eps {eps:e}",
            self.origin,
            self.model.name(),
            self.image_shape(),
        )
    }
}

/// `origin`, plus the overrides when there are any.
fn origin_with(origin: &str, overrides: &[Override]) -> String {
    if overrides.is_empty() {
        return origin.to_string();
    }
    let sets: Vec<String> = overrides.iter().map(|o| format!("--set {o}")).collect();
    format!("{origin} (with {})", sets.join(" "))
}

/// Sets `o.key` in `table`, creating missing sections; validation happens on deserialization.
fn apply(table: &mut toml::Table, o: &Override) -> Result<()> {
    let parts: Vec<&str> = o.key.split('.').map(str::trim).collect();
    let (last, sections) = parts.split_last().ok_or_else(|| ConfigError::Override {
        arg: o.to_string(),
        message: "empty key".into(),
    })?;
    let mut current = table;
    let mut path = String::new();
    for part in sections {
        path.push_str(part);
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(ConfigError::Override {
                    arg: o.to_string(),
                    message: format!("`{path}` is a {}, not a section", other.type_str()),
                });
            }
        };
        path.push('.');
    }
    if let Some(toml::Value::Table(_)) = current.get(*last) {
        return Err(ConfigError::Override {
            arg: o.to_string(),
            message: format!("`{}` is a section; set one of its keys", o.key),
        });
    }
    current.insert(last.to_string(), o.value.clone());
    Ok(())
}
