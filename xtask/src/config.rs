//! Experiment configs: the official score_sde_pytorch configs (reference §9) as TOML files under
//! `configs/` (one per upstream `configs/**.py`, same relative name, defaults folded in), their
//! typed sections, and the SDE they define.
//!
//! A config is named either by a path to a `.toml` file or by its official name such as
//! `ve/cifar10_ncsnpp_deep_continuous`. Official configs are read from the checkout's
//! `configs/` when present (so local edits apply) and otherwise from copies embedded in the
//! binary. Every section rejects unknown keys (`deny_unknown_fields`), so a typo is one error
//! naming the key, its line and the file. The `[model]` section stays a raw table: the network
//! crate deserializes it (together with `[data]`); here only `model.name` and the SDE
//! parameters are read.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sde_core::{AnySde, SdeKind, SubVpSde, VeSde, VpSde};
use serde::{Deserialize, Serialize};

/// Model names registered by the reference (`models/utils.py` `register_model`).
pub const MODEL_NAMES: [&str; 6] = [
    "ncsnpp",
    "ddpm",
    "ncsn",
    "ncsnv2_64",
    "ncsnv2_128",
    "ncsnv2_256",
];

/// Sampling time cut-off of `run_lib`: `sampling_eps = 1e-5` for the VE SDE (reference §4).
pub const VE_SAMPLING_EPS: f32 = 1e-5;
/// Sampling time cut-off of `run_lib` for the VP and sub-VP SDEs (reference §4).
pub const VP_SAMPLING_EPS: f32 = 1e-3;

/// One experiment: the reference's `ml_collections` config, section by section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// `config.seed` (42 in every official config).
    pub seed: u64,
    pub training: TrainingConfig,
    pub sampling: SamplingConfig,
    pub eval: EvalConfig,
    pub data: DataConfig,
    /// `config.model`, kept raw for the network crate (`sgm_nets::ModelConfig`).
    pub model: toml::Table,
    pub optim: OptimConfig,
    /// Where the config came from (file path or `embedded configs/<name>.toml`); not a TOML key.
    #[serde(skip)]
    pub source: String,
}

/// `config.training`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub batch_size: usize,
    /// Last training step (inclusive loop bound of `run_lib.train`).
    pub n_iters: u64,
    pub snapshot_freq: u64,
    pub log_freq: u64,
    pub eval_freq: u64,
    pub snapshot_freq_for_preemption: u64,
    pub snapshot_sampling: bool,
    pub likelihood_weighting: bool,
    pub continuous: bool,
    pub reduce_mean: bool,
    pub sde: SdeName,
}

/// `training.sde`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeName {
    Vesde,
    Vpsde,
    Subvpsde,
}

impl SdeName {
    pub fn kind(self) -> SdeKind {
        match self {
            SdeName::Vesde => SdeKind::Ve,
            SdeName::Vpsde => SdeKind::Vp,
            SdeName::Subvpsde => SdeKind::SubVp,
        }
    }
}

/// `config.sampling`. Names are the reference's registry names (lower case).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    pub n_steps_each: usize,
    pub noise_removal: bool,
    pub probability_flow: bool,
    pub snr: f64,
    pub method: SamplingMethod,
    pub predictor: Predictor,
    pub corrector: Corrector,
}

/// `sampling.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingMethod {
    Pc,
    Ode,
}

/// `sampling.predictor` (reference `sampling.py` predictor registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictor {
    EulerMaruyama,
    ReverseDiffusion,
    AncestralSampling,
    None,
}

/// `sampling.corrector` (reference `sampling.py` corrector registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Corrector {
    Langevin,
    Ald,
    None,
}

/// The reference registry name of a predictor (what `sgm_sample::Predictor::from_name` reads).
pub fn predictor_name(p: Predictor) -> &'static str {
    match p {
        Predictor::EulerMaruyama => "euler_maruyama",
        Predictor::ReverseDiffusion => "reverse_diffusion",
        Predictor::AncestralSampling => "ancestral_sampling",
        Predictor::None => "none",
    }
}

/// The reference registry name of a corrector.
pub fn corrector_name(c: Corrector) -> &'static str {
    match c {
        Corrector::Langevin => "langevin",
        Corrector::Ald => "ald",
        Corrector::None => "none",
    }
}

/// `config.eval`. The two self-contained 1024px configs lack the `enable_*` / `bpd_dataset`
/// keys upstream, hence the options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub begin_ckpt: u32,
    pub end_ckpt: u32,
    pub batch_size: usize,
    pub enable_sampling: Option<bool>,
    pub num_samples: usize,
    pub enable_loss: Option<bool>,
    pub enable_bpd: Option<bool>,
    pub bpd_dataset: Option<BpdDataset>,
}

/// `eval.bpd_dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BpdDataset {
    Train,
    Test,
}

/// `config.data` (reference `datasets.py`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: Dataset,
    pub image_size: usize,
    pub random_flip: bool,
    /// Scale data to [-1, 1] (`get_data_scaler`); else [0, 1].
    pub centered: bool,
    pub uniform_dequantization: bool,
    pub num_channels: usize,
    /// LSUN category (`bedroom`, `church_outdoor`); LSUN only.
    pub category: Option<String>,
    /// TFRecord file of FFHQ / CelebAHQ (upstream: a path on the authors' machines).
    pub tfrecords_path: Option<String>,
}

/// `data.dataset`, spelled as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Dataset {
    #[serde(rename = "CIFAR10")]
    Cifar10,
    #[serde(rename = "SVHN")]
    Svhn,
    #[serde(rename = "CELEBA")]
    Celeba,
    #[serde(rename = "LSUN")]
    Lsun,
    #[serde(rename = "FFHQ")]
    Ffhq,
    #[serde(rename = "CelebAHQ")]
    CelebAHq,
}

/// `config.optim` (reference `losses.get_optimizer` / `optimization_manager`, §2).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    pub lr: f64,
    pub beta1: f64,
    pub eps: f64,
    /// Linear lr warm-up steps; 0 disables.
    pub warmup: u64,
    /// Global gradient-norm clip; negative disables.
    pub grad_clip: f64,
    /// Present in some upstream configs but never read by the reference.
    pub amsgrad: Option<bool>,
}

/// `optim.optimizer`: the reference supports only Adam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Optimizer {
    Adam,
}

impl ExperimentConfig {
    /// Loads a config from a path to a `.toml` file or from an official name such as
    /// `ve/cifar10_ncsnpp_deep_continuous` (see [`official_names`]).
    pub fn load(name_or_path: &str) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Self::from_file(path);
        }
        let name = name_or_path.strip_suffix(".toml").unwrap_or(name_or_path);
        let name = name.strip_prefix("configs/").unwrap_or(name);
        let safe = !name.is_empty() && name.split('/').all(|c| !c.is_empty() && c != "..");
        if safe {
            let on_disk = configs_dir().join(format!("{name}.toml"));
            if on_disk.is_file() {
                return Self::from_file(&on_disk);
            }
            if let Some(text) = embedded(name) {
                return Self::from_toml_str(text, &format!("embedded configs/{name}.toml"));
            }
        }
        bail!(
            "config `{name_or_path}` is neither a file nor an official config name; official names: {}",
            official_names().join(", ")
        )
    }

    /// Reads and validates one TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self> {
        let mut config: Self =
            toml::from_str(text).with_context(|| format!("invalid config {source}"))?;
        config.source = source.to_string();
        config
            .validate()
            .with_context(|| format!("invalid config {source}"))?;
        Ok(config)
    }

    /// Checks what serde cannot: the model name, dataset-specific keys and the SDE parameters.
    fn validate(&self) -> Result<()> {
        let name = self.model_name()?;
        if !MODEL_NAMES.contains(&name) {
            bail!(
                "model.name = \"{name}\" is not one of {}",
                MODEL_NAMES.join(", ")
            );
        }
        if self.data.dataset == Dataset::Lsun && self.data.category.is_none() {
            bail!("data.category is required for data.dataset = \"LSUN\"");
        }
        if matches!(self.data.dataset, Dataset::Ffhq | Dataset::CelebAHq)
            && self.data.tfrecords_path.is_none()
        {
            bail!("data.tfrecords_path is required for FFHQ / CelebAHQ");
        }
        for (key, value) in [
            ("training.batch_size", self.training.batch_size),
            ("eval.batch_size", self.eval.batch_size),
            ("data.image_size", self.data.image_size),
            ("data.num_channels", self.data.num_channels),
        ] {
            if value == 0 {
                bail!("{key} must be positive");
            }
        }
        self.sde()?;
        Ok(())
    }

    /// `model.name`.
    pub fn model_name(&self) -> Result<&str> {
        match self.model.get("name") {
            Some(toml::Value::String(s)) => Ok(s),
            Some(other) => bail!("model.name must be a string, got {}", other.type_str()),
            None => bail!("model.name is missing"),
        }
    }

    /// A float of `[model]`; TOML integers are accepted (`sigma_max = 50`).
    pub fn model_f64(&self, key: &str) -> Result<f64> {
        match self.model.get(key) {
            Some(toml::Value::Float(v)) => Ok(*v),
            Some(toml::Value::Integer(v)) => Ok(*v as f64),
            Some(other) => bail!("model.{key} must be a number, got {}", other.type_str()),
            None => bail!("model.{key} is missing"),
        }
    }

    /// A non-negative integer of `[model]`.
    pub fn model_usize(&self, key: &str) -> Result<usize> {
        match self.model.get(key) {
            Some(toml::Value::Integer(v)) => usize::try_from(*v)
                .map_err(|_| anyhow!("model.{key} must be a non-negative integer, got {v}")),
            Some(other) => bail!("model.{key} must be an integer, got {}", other.type_str()),
            None => bail!("model.{key} is missing"),
        }
    }

    /// Which SDE `training.sde` names.
    pub fn sde_kind(&self) -> SdeKind {
        self.training.sde.kind()
    }

    /// The forward SDE of `run_lib.train`: `VESDE(model.sigma_min, model.sigma_max,
    /// model.num_scales)`, `VPSDE` / `subVPSDE(model.beta_min, model.beta_max, model.num_scales)`.
    pub fn sde(&self) -> Result<AnySde> {
        let n = self.model_usize("num_scales")?;
        let sde = match self.sde_kind() {
            SdeKind::Ve => AnySde::Ve(VeSde::new(
                self.model_f64("sigma_min")?,
                self.model_f64("sigma_max")?,
                n,
            )?),
            SdeKind::Vp => AnySde::Vp(VpSde::new(
                self.model_f64("beta_min")?,
                self.model_f64("beta_max")?,
                n,
            )?),
            SdeKind::SubVp => AnySde::SubVp(SubVpSde::new(
                self.model_f64("beta_min")?,
                self.model_f64("beta_max")?,
                n,
            )?),
        };
        Ok(sde)
    }

    /// `sampling_eps` of `run_lib`: 1e-5 for VE, 1e-3 for VP and sub-VP (reference §4).
    pub fn sampling_eps(&self) -> f32 {
        match self.sde_kind() {
            SdeKind::Ve => VE_SAMPLING_EPS,
            SdeKind::Vp | SdeKind::SubVp => VP_SAMPLING_EPS,
        }
    }

    /// Shape of one image, `[C, H, W]` (`data.num_channels`, `data.image_size`²).
    pub fn image_shape(&self) -> [usize; 3] {
        [
            self.data.num_channels,
            self.data.image_size,
            self.data.image_size,
        ]
    }

    /// `{ model = [model], data = { image_size, num_channels, centered } }`: the part of the
    /// config the network reads, in the shape of `sgm_nets::ModelConfig` (which rejects the
    /// dataset keys of `[data]`); deserialize it with `table.try_into()`.
    #[allow(dead_code)] // until the train/sample commands build networks from configs
    pub fn network_table(&self) -> toml::Table {
        let data = &self.data;
        let mut data_table = toml::Table::new();
        let size = |v: usize| toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
        data_table.insert("image_size".into(), size(data.image_size));
        data_table.insert("num_channels".into(), size(data.num_channels));
        data_table.insert("centered".into(), toml::Value::Boolean(data.centered));
        let mut table = toml::Table::new();
        table.insert("model".into(), toml::Value::Table(self.model.clone()));
        table.insert("data".into(), toml::Value::Table(data_table));
        table
    }

    /// The config as TOML (e.g. to store next to a run's checkpoints).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialise config as TOML")
    }
}

/// `xtask config [NAME]`: without a name, lists the official configs; with one (official name
/// or `.toml` path), validates it and prints a summary line and the resolved TOML.
pub fn config_command(name: Option<&str>) -> Result<()> {
    let Some(name) = name else {
        for name in official_names() {
            println!("{name}");
        }
        return Ok(());
    };
    let config = ExperimentConfig::load(name)?;
    let sde = config.sde()?;
    println!(
        "# {}: model {}, {} SDE with N = {}, image {:?}, sampling eps {:e}",
        config.source,
        config.model_name()?,
        sde_core::Sde::kind(&sde).reference_name(),
        sde_core::Sde::num_steps(&sde),
        config.image_shape(),
        config.sampling_eps(),
    );
    print!("{}", config.to_toml()?);
    Ok(())
}

/// The checkout's `configs/` directory (next to `xtask/`).
pub fn configs_dir() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).join("configs")
}

/// Official config names (`ve/cifar10_ncsnpp_deep_continuous`, …), sorted.
pub fn official_names() -> Vec<&'static str> {
    OFFICIAL.iter().map(|(name, _)| *name).collect()
}

fn embedded(name: &str) -> Option<&'static str> {
    OFFICIAL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

macro_rules! official_configs {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../configs/", $name, ".toml")))),*]
    };
}

/// `(name, TOML text)` of every official config, embedded so the binary works without the
/// checkout. A test checks this list against the files under `configs/`.
const OFFICIAL: &[(&str, &str)] = official_configs![
    "subvp/cifar10_ddpm_continuous",
    "subvp/cifar10_ddpmpp_continuous",
    "subvp/cifar10_ddpmpp_deep_continuous",
    "subvp/cifar10_ncsnpp_continuous",
    "subvp/cifar10_ncsnpp_deep_continuous",
    "ve/bedroom_ncsnpp_continuous",
    "ve/celeba_ncsnpp",
    "ve/celebahq_256_ncsnpp_continuous",
    "ve/celebahq_ncsnpp_continuous",
    "ve/church_ncsnpp_continuous",
    "ve/cifar10_ddpm",
    "ve/cifar10_ncsnpp",
    "ve/cifar10_ncsnpp_continuous",
    "ve/cifar10_ncsnpp_deep_continuous",
    "ve/ffhq_256_ncsnpp_continuous",
    "ve/ffhq_ncsnpp_continuous",
    "ve/ncsn/celeba",
    "ve/ncsn/celeba_124",
    "ve/ncsn/celeba_1245",
    "ve/ncsn/celeba_5",
    "ve/ncsn/cifar10",
    "ve/ncsn/cifar10_124",
    "ve/ncsn/cifar10_1245",
    "ve/ncsn/cifar10_5",
    "ve/ncsnv2/bedroom",
    "ve/ncsnv2/celeba",
    "ve/ncsnv2/cifar10",
    "vp/cifar10_ddpmpp",
    "vp/cifar10_ddpmpp_continuous",
    "vp/cifar10_ddpmpp_deep_continuous",
    "vp/cifar10_ncsnpp",
    "vp/cifar10_ncsnpp_continuous",
    "vp/cifar10_ncsnpp_deep_continuous",
    "vp/ddpm/bedroom",
    "vp/ddpm/celebahq",
    "vp/ddpm/church",
    "vp/ddpm/cifar10",
    "vp/ddpm/cifar10_continuous",
    "vp/ddpm/cifar10_unconditional",
];

#[cfg(test)]
mod tests {
    use super::*;
    use sde_core::Sde;
    use std::collections::BTreeSet;

    /// Every `*.toml` under `dir`, as `(official name, path)`.
    fn toml_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
        let entries = std::fs::read_dir(dir).expect("configs/ is readable");
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("UTF-8 name");
            if path.is_dir() {
                toml_files(&path, &format!("{prefix}{file}/"), out);
            } else if let Some(stem) = file.strip_suffix(".toml") {
                out.push((format!("{prefix}{stem}"), path));
            }
        }
    }

    fn disk_configs() -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        toml_files(&configs_dir(), "", &mut files);
        files.sort();
        files
    }

    fn load(name: &str) -> ExperimentConfig {
        ExperimentConfig::load(name).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    fn without_source(mut c: ExperimentConfig) -> ExperimentConfig {
        c.source.clear();
        c
    }

    fn model<'a>(c: &'a ExperimentConfig, key: &str) -> &'a toml::Value {
        c.model
            .get(key)
            .unwrap_or_else(|| panic!("{}: model.{key} missing", c.source))
    }

    fn int(c: &ExperimentConfig, key: &str) -> i64 {
        model(c, key).as_integer().expect("integer")
    }

    fn float(c: &ExperimentConfig, key: &str) -> f64 {
        c.model_f64(key).expect("number")
    }

    fn string<'a>(c: &'a ExperimentConfig, key: &str) -> &'a str {
        model(c, key).as_str().expect("string")
    }

    fn ints(c: &ExperimentConfig, key: &str) -> Vec<i64> {
        let array = model(c, key).as_array().expect("array");
        array.iter().map(|v| v.as_integer().expect("int")).collect()
    }

    fn error_of(text: &str, source: &str) -> String {
        match ExperimentConfig::from_toml_str(text, source) {
            Ok(_) => panic!("{source}: accepted a bad config"),
            Err(e) => format!("{e:#}"),
        }
    }

    const DEEP_VE: &str = "ve/cifar10_ncsnpp_deep_continuous";

    fn deep_ve_text() -> &'static str {
        embedded(DEEP_VE).expect("embedded")
    }

    #[test]
    fn every_config_file_loads_and_is_embedded() {
        let disk = disk_configs();
        assert_eq!(disk.len(), 39, "one TOML per official upstream config");
        let on_disk: BTreeSet<&str> = disk.iter().map(|(n, _)| n.as_str()).collect();
        let embedded_names: BTreeSet<&str> = official_names().into_iter().collect();
        assert_eq!(
            on_disk, embedded_names,
            "OFFICIAL list out of sync with configs/"
        );
        for (name, path) in &disk {
            let from_disk = ExperimentConfig::from_file(path)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let text = std::fs::read_to_string(path).expect("readable");
            assert_eq!(
                embedded(name),
                Some(text.as_str()),
                "{name}: stale embedded copy"
            );
            let from_binary = ExperimentConfig::from_toml_str(&text, name).expect("parses");
            assert_eq!(without_source(from_disk), without_source(from_binary));
        }
    }

    #[test]
    fn names_and_paths_load_the_same_config() {
        for name in official_names() {
            let by_name = load(name);
            let path = configs_dir().join(format!("{name}.toml"));
            let by_path = load(path.to_str().expect("UTF-8 path"));
            assert_eq!(
                by_name.source, by_path.source,
                "{name}: read from the checkout"
            );
            assert_eq!(by_name, by_path);
            assert_eq!(by_name, load(&format!("{name}.toml")));
            assert_eq!(by_name, load(&format!("configs/{name}")));
        }
    }

    #[test]
    fn unknown_names_are_one_error_listing_the_official_ones() {
        for bad in ["ve/no_such_config", "../Cargo", "", "ve//cifar10_ncsnpp"] {
            let e = format!("{:#}", ExperimentConfig::load(bad).expect_err(bad));
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(e.contains(DEEP_VE), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_file() {
        let text = deep_ve_text();
        for section in ["training", "sampling", "eval", "data", "optim"] {
            let header = format!("[{section}]\n");
            let bad = text.replace(&header, &format!("{header}bogus_knob = 1\n"));
            assert_ne!(bad, text, "{section} header not found");
            let e = error_of(&bad, "my_experiment.toml");
            assert!(e.contains("bogus_knob"), "{section}: {e}");
            assert!(e.contains("my_experiment.toml"), "{section}: {e}");
        }
        let e = error_of(&format!("device = \"cuda\"\n{text}"), "top.toml");
        assert!(e.contains("device") && e.contains("top.toml"), "{e}");
        let e = error_of(&format!("{text}\n[extra]\nx = 1\n"), "extra.toml");
        assert!(e.contains("extra") && e.contains("extra.toml"), "{e}");
    }

    #[test]
    fn unknown_key_in_a_file_names_its_path() {
        let dir = std::env::temp_dir().join(format!("sgm-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("typo.toml");
        let bad = deep_ve_text().replace("snr = ", "snrr = ");
        std::fs::write(&path, bad).expect("write");
        let result = ExperimentConfig::load(path.to_str().expect("UTF-8"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let e = format!("{:#}", result.expect_err("typo accepted"));
        assert!(e.contains("snrr") && e.contains("typo.toml"), "{e}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let text = deep_ve_text();
        let cases = [
            ("name = \"ncsnpp\"", "name = \"ncsnpp_xl\"", "model.name"),
            ("name = \"ncsnpp\"", "name = 3", "model.name"),
            ("sde = \"vesde\"", "sde = \"ousde\"", "ousde"),
            (
                "predictor = \"reverse_diffusion\"",
                "predictor = \"heun\"",
                "heun",
            ),
            ("dataset = \"CIFAR10\"", "dataset = \"MNIST\"", "MNIST"),
            ("sigma_max = 50.0", "sigma_max = 0.001", "sigma_max"),
            ("sigma_max = 50.0", "sigma_max = \"big\"", "model.sigma_max"),
            ("sigma_max = 50.0\n", "", "model.sigma_max is missing"),
            ("num_scales = 1000", "num_scales = -1", "model.num_scales"),
            ("batch_size = 128", "batch_size = 0", "training.batch_size"),
            ("batch_size = 128", "batch_size = 1.5", "batch_size"),
        ];
        for (from, to, needle) in cases {
            assert!(text.contains(from), "{from}");
            let e = error_of(&text.replacen(from, to, 1), "bad.toml");
            assert!(e.contains(needle) && e.contains("bad.toml"), "{to}: {e}");
        }
        let lsun = embedded("ve/church_ncsnpp_continuous").expect("embedded");
        let e = error_of(
            &lsun.replace("category = \"church_outdoor\"\n", ""),
            "c.toml",
        );
        assert!(e.contains("data.category"), "{e}");
    }

    #[test]
    fn the_model_section_stays_raw_for_the_network_crate() {
        let text = deep_ve_text().replace("[model]\n", "[model]\nfuture_knob = \"x\"\n");
        let c = ExperimentConfig::from_toml_str(&text, "raw.toml").expect("model keys are raw");
        assert_eq!(string(&c, "future_knob"), "x");
        assert_eq!(c.model_name().expect("name"), "ncsnpp");
        let net = c.network_table();
        assert_eq!(net.get("model"), Some(&toml::Value::Table(c.model.clone())));
        let data = net
            .get("data")
            .and_then(|d| d.as_table())
            .expect("data table");
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["centered", "image_size", "num_channels"]);
        assert_eq!(
            data.get("image_size").and_then(|v| v.as_integer()),
            Some(32)
        );
        assert_eq!(data.get("centered").and_then(|v| v.as_bool()), Some(false));
    }

    #[test]
    fn to_toml_round_trips() {
        for name in official_names() {
            let c = load(name);
            let text = c.to_toml().expect("serialises");
            let back = ExperimentConfig::from_toml_str(&text, name).expect("re-parses");
            assert_eq!(without_source(c), without_source(back), "{name}");
        }
    }

    /// Reference §9 family rules, checked on every official config.
    #[test]
    fn family_invariants_hold_for_every_config() {
        for name in official_names() {
            let c = load(name);
            let family = name.split('/').next().expect("family");
            let sde = c.sde().expect("valid SDE");
            assert_eq!(c.seed, 42, "{name}");
            assert_eq!(c.sampling.method, SamplingMethod::Pc, "{name}");
            assert!(
                c.sampling.noise_removal && !c.sampling.probability_flow,
                "{name}"
            );
            assert!(!c.training.likelihood_weighting, "{name}");
            assert_eq!(c.optim.optimizer, Optimizer::Adam, "{name}");
            assert_eq!(sde.num_steps() as i64, int(&c, "num_scales"), "{name}");
            assert_eq!(sde.kind(), c.sde_kind(), "{name}");
            assert_eq!(c.sampling_eps(), sde.default_sampling_eps(), "{name}");
            assert!(
                MODEL_NAMES.contains(&c.model_name().expect("name")),
                "{name}"
            );
            match family {
                "ve" => {
                    assert_eq!(c.training.sde, SdeName::Vesde, "{name}");
                    assert!(!c.data.centered, "{name}");
                    assert_eq!(c.sampling_eps(), 1e-5, "{name}");
                }
                "vp" | "subvp" => {
                    let sde_name = if family == "vp" {
                        SdeName::Vpsde
                    } else {
                        SdeName::Subvpsde
                    };
                    assert_eq!(c.training.sde, sde_name, "{name}");
                    assert!(c.data.centered && c.training.reduce_mean, "{name}");
                    assert_eq!(float(&c, "ema_rate"), 0.9999, "{name}");
                    assert!(
                        !model(&c, "scale_by_sigma").as_bool().expect("bool"),
                        "{name}"
                    );
                    assert_eq!(c.sampling.corrector, Corrector::None, "{name}");
                    assert_eq!(c.sampling_eps(), 1e-3, "{name}");
                }
                other => panic!("unexpected config family {other}"),
            }
            if family == "subvp" {
                assert!(c.training.continuous, "{name}");
                assert_eq!(c.sampling.predictor, Predictor::EulerMaruyama, "{name}");
            }
        }
    }

    #[test]
    fn deep_ve_matches_reference() {
        let c = load(DEEP_VE);
        assert_eq!((c.training.batch_size, c.training.n_iters), (128, 950_001));
        assert!(c.training.continuous && !c.training.reduce_mean);
        assert_eq!(c.sampling.predictor, Predictor::ReverseDiffusion);
        assert_eq!(c.sampling.corrector, Corrector::Langevin);
        assert_eq!((c.sampling.snr, c.sampling.n_steps_each), (0.16, 1));
        assert_eq!(
            (c.eval.begin_ckpt, c.eval.end_ckpt, c.eval.batch_size),
            (9, 26, 1024)
        );
        assert_eq!(c.data.dataset, Dataset::Cifar10);
        assert_eq!(c.image_shape(), [3, 32, 32]);
        assert_eq!(string(&c, "name"), "ncsnpp");
        assert_eq!((int(&c, "nf"), int(&c, "num_res_blocks")), (128, 8));
        assert_eq!(ints(&c, "ch_mult"), [1, 2, 2, 2]);
        assert_eq!(ints(&c, "attn_resolutions"), [16]);
        assert_eq!(ints(&c, "fir_kernel"), [1, 3, 3, 1]);
        assert_eq!(string(&c, "progressive_input"), "residual");
        assert_eq!(string(&c, "embedding_type"), "fourier");
        assert_eq!(int(&c, "fourier_scale"), 16);
        assert_eq!((float(&c, "ema_rate"), float(&c, "dropout")), (0.999, 0.1));
        assert_eq!(
            (c.optim.lr, c.optim.warmup, c.optim.grad_clip),
            (2e-4, 5000, 1.0)
        );
        match c.sde().expect("sde") {
            AnySde::Ve(ve) => assert_eq!((ve.sigma_min(), ve.sigma_max()), (0.01, 50.0)),
            other => panic!("expected VE, got {other:?}"),
        }
    }

    #[test]
    fn high_resolution_ve_configs_match_reference() {
        let c = load("ve/celebahq_ncsnpp_continuous");
        assert_eq!((c.training.batch_size, c.training.n_iters), (8, 2_400_001));
        assert!(!c.training.reduce_mean);
        assert_eq!(
            (float(&c, "sigma_max"), int(&c, "num_scales")),
            (1348.0, 2000)
        );
        assert_eq!((c.sampling.snr, float(&c, "ema_rate")), (0.15, 0.9999));
        assert_eq!((int(&c, "nf"), int(&c, "num_res_blocks")), (16, 1));
        assert_eq!(ints(&c, "ch_mult"), [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!((c.eval.begin_ckpt, c.eval.end_ckpt), (1, 96));
        assert_eq!(c.eval.enable_sampling, None);
        assert_eq!(c.model.get("beta_min"), None);
        assert_eq!(c.image_shape(), [3, 1024, 1024]);
        assert_eq!(c.data.dataset, Dataset::CelebAHq);
        let f = load("ve/ffhq_ncsnpp_continuous");
        assert!(f.training.reduce_mean);
        assert_eq!(f.data.dataset, Dataset::Ffhq);
        assert_eq!(f.model, c.model);
        for (name, sigma_max) in [
            ("ve/celebahq_256_ncsnpp_continuous", 348.0),
            ("ve/ffhq_256_ncsnpp_continuous", 348.0),
            ("ve/bedroom_ncsnpp_continuous", 378.0),
            ("ve/church_ncsnpp_continuous", 380.0),
        ] {
            let c = load(name);
            assert_eq!(float(&c, "sigma_max"), sigma_max, "{name}");
            assert_eq!(
                (int(&c, "num_scales"), c.sampling.snr),
                (2000, 0.075),
                "{name}"
            );
            assert_eq!(
                (c.training.batch_size, c.data.image_size),
                (64, 256),
                "{name}"
            );
            assert_eq!(ints(&c, "ch_mult"), [1, 1, 2, 2, 2, 2, 2], "{name}");
            assert_eq!(string(&c, "progressive"), "output_skip", "{name}");
            assert_eq!(string(&c, "progressive_input"), "input_skip", "{name}");
            assert_eq!(float(&c, "dropout"), 0.0, "{name}");
        }
        let celeba = load("ve/celeba_ncsnpp");
        assert!(!celeba.training.continuous);
        assert_eq!(
            (float(&celeba, "sigma_max"), celeba.sampling.snr),
            (90.0, 0.17)
        );
        assert_eq!(string(&celeba, "embedding_type"), "positional");
    }

    #[test]
    fn discrete_cifar10_configs_match_reference() {
        let c = load("ve/cifar10_ncsnpp");
        assert!(!c.training.continuous);
        assert_eq!(string(&c, "embedding_type"), "positional");
        assert_eq!(int(&c, "num_res_blocks"), 4);
        let c = load("ve/cifar10_ddpm");
        assert_eq!((string(&c, "name"), int(&c, "num_res_blocks")), ("ddpm", 2));
        assert!(model(&c, "scale_by_sigma").as_bool().expect("bool"));
        let c = load("vp/cifar10_ddpmpp");
        assert!(!c.training.continuous);
        assert_eq!(c.sampling.predictor, Predictor::AncestralSampling);
        assert!(!model(&c, "fir").as_bool().expect("bool"));
        let c = load("vp/ddpm/cifar10");
        assert_eq!((string(&c, "name"), c.training.continuous), ("ddpm", false));
        assert_eq!(c.sampling.predictor, Predictor::AncestralSampling);
        let c = load("vp/ddpm/cifar10_unconditional");
        assert!(!model(&c, "conditional").as_bool().expect("bool"));
        let c = load("vp/ddpm/celebahq");
        assert_eq!((c.optim.lr, c.training.batch_size), (2e-5, 64));
        assert_eq!(ints(&c, "ch_mult"), [1, 1, 2, 2, 4, 4]);
    }

    #[test]
    fn deep_vp_and_subvp_match_reference() {
        let vp = load("vp/cifar10_ddpmpp_deep_continuous");
        assert!(vp.training.continuous && vp.training.reduce_mean);
        assert_eq!(vp.sampling.predictor, Predictor::EulerMaruyama);
        assert_eq!(vp.training.n_iters, 950_001);
        assert_eq!(int(&vp, "num_res_blocks"), 8);
        assert!(!model(&vp, "fir").as_bool().expect("bool"));
        assert_eq!(string(&vp, "progressive"), "none");
        assert_eq!(string(&vp, "progressive_input"), "none");
        assert_eq!(string(&vp, "embedding_type"), "positional");
        match vp.sde().expect("sde") {
            AnySde::Vp(s) => assert_eq!(
                (s.beta_min(), s.beta_max(), s.num_steps()),
                (0.1, 20.0, 1000)
            ),
            other => panic!("expected VP, got {other:?}"),
        }
        let mut sub = load("subvp/cifar10_ddpmpp_deep_continuous");
        assert!(matches!(sub.sde().expect("sde"), AnySde::SubVp(_)));
        sub.training.sde = SdeName::Vpsde;
        assert_eq!(
            without_source(sub),
            without_source(vp),
            "differs only in training.sde"
        );
    }

    #[test]
    fn ncsn_configs_match_reference() {
        for (name, n, sigma_max, snr, steps, ema) in [
            ("ve/ncsn/cifar10", 10, 1.0, 0.316, 100, 0.0),
            ("ve/ncsn/cifar10_5", 10, 1.0, 0.316, 100, 0.999),
            ("ve/ncsn/cifar10_124", 232, 50.0, 0.176, 5, 0.0),
            ("ve/ncsn/cifar10_1245", 232, 50.0, 0.176, 5, 0.999),
            ("ve/ncsn/celeba", 10, 1.0, 0.316, 100, 0.0),
            ("ve/ncsn/celeba_5", 10, 1.0, 0.316, 100, 0.999),
            ("ve/ncsn/celeba_124", 500, 90.0, 0.128, 5, 0.0),
            ("ve/ncsn/celeba_1245", 500, 90.0, 0.128, 5, 0.999),
        ] {
            let c = load(name);
            assert_eq!(string(&c, "name"), "ncsn", "{name}");
            assert!(!c.training.continuous, "{name}");
            assert_eq!(
                (c.sampling.predictor, c.sampling.corrector),
                (Predictor::None, Corrector::Ald)
            );
            assert_eq!(
                (int(&c, "num_scales"), float(&c, "sigma_max")),
                (n, sigma_max),
                "{name}"
            );
            assert_eq!(
                (c.sampling.snr, c.sampling.n_steps_each),
                (snr, steps),
                "{name}"
            );
            assert_eq!(float(&c, "ema_rate"), ema, "{name}");
            assert_eq!(
                (c.optim.lr, c.optim.warmup, c.optim.grad_clip),
                (1e-3, 0, -1.0),
                "{name}"
            );
        }
        for (name, model_name, n, sigma_max, continuous) in [
            ("ve/ncsnv2/cifar10", "ncsnv2_64", 232, 50.0, false),
            ("ve/ncsnv2/celeba", "ncsnv2_64", 500, 90.0, false),
            ("ve/ncsnv2/bedroom", "ncsnv2_128", 1086, 190.0, true),
        ] {
            let c = load(name);
            assert_eq!(string(&c, "name"), model_name, "{name}");
            assert_eq!(
                (int(&c, "num_scales"), float(&c, "sigma_max")),
                (n, sigma_max),
                "{name}"
            );
            assert_eq!(c.training.continuous, continuous, "{name}");
        }
        let bedroom = load("ve/ncsnv2/bedroom");
        assert_eq!(
            (bedroom.sampling.n_steps_each, bedroom.data.image_size),
            (3, 128)
        );
    }
}
