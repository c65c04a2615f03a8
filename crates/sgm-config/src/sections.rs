//! The typed sections of an experiment config besides `[model]` (see [`crate::model`]). Key
//! names are the reference's; a key left out takes the reference's default (reference §9:
//! `configs/default_cifar10_configs.py` at score_sde_pytorch `cb1f359`). Keys the reference
//! gives no default (`training.sde`, `sampling.method`, `sampling.predictor`,
//! `sampling.corrector`, `model.name`) are required. Unknown keys are errors.

use sde_core::SdeKind;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use sgm_sample::{Corrector, Predictor};

use crate::named::by_name;

/// `config.training` (reference `run_lib.train`, `losses.get_step_fn`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Images per training step (default 128).
    #[serde(default = "d::batch_size")]
    pub batch_size: usize,
    /// Last training step; the reference's loop `range(initial_step, n_iters + 1)` includes it
    /// (default 1,300,001).
    #[serde(default = "d::n_iters")]
    pub n_iters: u64,
    /// Steps between numbered checkpoints `checkpoints/checkpoint_{step // snapshot_freq}`
    /// (default 50,000).
    #[serde(default = "d::snapshot_freq")]
    pub snapshot_freq: u64,
    /// Steps between training-loss log lines (default 50).
    #[serde(default = "d::log_freq")]
    pub log_freq: u64,
    /// Steps between evaluation losses on one eval batch (default 100).
    #[serde(default = "d::eval_freq")]
    pub eval_freq: u64,
    /// Steps between pre-emption checkpoints `checkpoints-meta/checkpoint.pth` (default 10,000).
    #[serde(default = "d::snapshot_freq_for_preemption")]
    pub snapshot_freq_for_preemption: u64,
    /// Sample a batch with the EMA weights at every snapshot (default true).
    #[serde(default = "d::yes")]
    pub snapshot_sampling: bool,
    /// λ(t) = g(t)² (likelihood weighting) instead of σ_t² (default false).
    #[serde(default)]
    pub likelihood_weighting: bool,
    /// Continuous-time DSM (true, default) or the discrete SMLD / DDPM losses.
    #[serde(default = "d::yes")]
    pub continuous: bool,
    /// Mean over C·H·W (true) or `0.5 ·` sum (false, default) per sample.
    #[serde(default)]
    pub reduce_mean: bool,
    /// The forward SDE: `vesde`, `vpsde` or `subvpsde` (required).
    #[serde(with = "by_name")]
    pub sde: SdeKind,
}

/// `config.sampling` (reference `sampling.get_sampling_fn`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Corrector steps per time step (default 1).
    #[serde(default = "d::one")]
    pub n_steps_each: usize,
    /// Return the noise-free mean of the last update (default true).
    #[serde(default = "d::yes")]
    pub noise_removal: bool,
    /// The predictor integrates the probability-flow ODE (default false).
    #[serde(default)]
    pub probability_flow: bool,
    /// Corrector signal-to-noise ratio (default 0.16).
    #[serde(default = "d::snr")]
    pub snr: f64,
    /// `pc` or `ode` (required).
    pub method: SamplingMethod,
    /// Predictor registry name (required): `euler_maruyama`, `reverse_diffusion`,
    /// `ancestral_sampling`, `none`.
    #[serde(with = "by_name")]
    pub predictor: Predictor,
    /// Corrector registry name (required): `langevin`, `ald`, `none`.
    #[serde(with = "by_name")]
    pub corrector: Corrector,
}

/// `sampling.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingMethod {
    /// Predictor–corrector sampler.
    Pc,
    /// Probability-flow ODE sampler (RK45).
    Ode,
}

/// `config.eval` (reference `run_lib.evaluate`). The two 1024px configs lack the `enable_*`
/// and `bpd_dataset` keys upstream (evaluating them raises there); here they take the defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// First checkpoint id to evaluate (default 9).
    #[serde(default = "d::begin_ckpt")]
    pub begin_ckpt: u32,
    /// Last checkpoint id to evaluate, inclusive (default 26).
    #[serde(default = "d::end_ckpt")]
    pub end_ckpt: u32,
    /// Images per evaluation batch (default 1024).
    #[serde(default = "d::eval_batch_size")]
    pub batch_size: usize,
    /// Generate samples and compute FID / IS / KID (default false).
    #[serde(default)]
    pub enable_sampling: bool,
    /// Samples for FID / IS / KID (default 50,000).
    #[serde(default = "d::num_samples")]
    pub num_samples: usize,
    /// Evaluation loss over the eval split (default true).
    #[serde(default = "d::yes")]
    pub enable_loss: bool,
    /// Bits/dim over `bpd_dataset` (default false).
    #[serde(default)]
    pub enable_bpd: bool,
    /// Split of the bits/dim evaluation (default `test`).
    #[serde(default = "d::bpd_dataset")]
    pub bpd_dataset: BpdDataset,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            begin_ckpt: d::begin_ckpt(),
            end_ckpt: d::end_ckpt(),
            batch_size: d::eval_batch_size(),
            enable_sampling: false,
            num_samples: d::num_samples(),
            enable_loss: true,
            enable_bpd: false,
            bpd_dataset: d::bpd_dataset(),
        }
    }
}

/// `eval.bpd_dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BpdDataset {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

/// `config.data` (reference `datasets.py`). The keys the network reads (`image_size`,
/// `num_channels`, `centered`) are `sgm-nets`' [`sgm_nets::DataConfig`], held in `image`
/// and written flat in the TOML section as upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataConfig {
    /// Dataset (default `CIFAR10`).
    pub dataset: Dataset,
    /// Random horizontal flips in training (default true).
    pub random_flip: bool,
    /// Uniform dequantisation `(U[0,1) + 255 x) / 256` of training data (default false).
    pub uniform_dequantization: bool,
    /// LSUN category (`bedroom`, `church_outdoor`); required for LSUN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// TFRecord file of FFHQ / CelebAHQ; required for them (upstream: a path on the authors'
    /// machines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tfrecords_path: Option<String>,
    /// `image_size` (default 32), `num_channels` (default 3), `centered` (scale data to
    /// [-1, 1] (true) or keep [0, 1], default false).
    #[serde(flatten)]
    pub image: sgm_nets::DataConfig,
}

/// The dataset keys of `[data]`; the network keys go to [`sgm_nets::DataConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetKeys {
    #[serde(default = "d::dataset")]
    dataset: Dataset,
    #[serde(default = "d::yes")]
    random_flip: bool,
    #[serde(default)]
    uniform_dequantization: bool,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    tfrecords_path: Option<String>,
}

/// `[data]` keys that belong to [`sgm_nets::DataConfig`].
const NETWORK_DATA_KEYS: [&str; 3] = ["image_size", "num_channels", "centered"];

impl<'de> Deserialize<'de> for DataConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut keys = toml::Table::deserialize(d)?;
        let mut image = toml::Table::new();
        for key in NETWORK_DATA_KEYS {
            if let Some(v) = keys.remove(key) {
                image.insert(key.to_string(), v);
            }
        }
        let image: sgm_nets::DataConfig = image.try_into().map_err(|e| trimmed::<D>(&e))?;
        let rest: DatasetKeys = keys.try_into().map_err(|e| trimmed::<D>(&e))?;
        Ok(DataConfig {
            dataset: rest.dataset,
            random_flip: rest.random_flip,
            uniform_dequantization: rest.uniform_dequantization,
            category: rest.category,
            tfrecords_path: rest.tfrecords_path,
            image,
        })
    }
}

/// A nested parser error as this deserializer's error (without its trailing newline).
fn trimmed<'de, D: Deserializer<'de>>(e: &toml::de::Error) -> D::Error {
    D::Error::custom(e.to_string().trim_end())
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: d::dataset(),
            random_flip: true,
            uniform_dequantization: false,
            category: None,
            tfrecords_path: None,
            image: sgm_nets::DataConfig::default(),
        }
    }
}

/// `data.dataset`, spelled as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Dataset {
    /// CIFAR-10, 32×32.
    #[serde(rename = "CIFAR10")]
    Cifar10,
    /// SVHN (cropped digits), 32×32.
    #[serde(rename = "SVHN")]
    Svhn,
    /// CelebA, center-cropped 140 → `image_size`.
    #[serde(rename = "CELEBA")]
    Celeba,
    /// LSUN `category`.
    #[serde(rename = "LSUN")]
    Lsun,
    /// FFHQ (TFRecords).
    #[serde(rename = "FFHQ")]
    Ffhq,
    /// CelebA-HQ (TFRecords).
    #[serde(rename = "CelebAHQ")]
    CelebAHq,
}

/// Adam's β₂, fixed by the reference (`losses.get_optimizer`: `betas=(beta1, 0.999)`); not a
/// config key.
pub const ADAM_BETA2: f64 = 0.999;

/// `config.optim` (reference `losses.get_optimizer` / `optimization_manager`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Adam's L2 weight decay (default 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Only `Adam` exists.
    #[serde(default = "d::optimizer")]
    pub optimizer: Optimizer,
    /// Peak learning rate (default 2e-4).
    #[serde(default = "d::lr")]
    pub lr: f64,
    /// Adam's β₁ (default 0.9; β₂ is [`ADAM_BETA2`]).
    #[serde(default = "d::beta1")]
    pub beta1: f64,
    /// Adam's ε (default 1e-8).
    #[serde(default = "d::adam_eps")]
    pub eps: f64,
    /// Linear warm-up steps, `lr · min(step / warmup, 1)` with the step counted before the
    /// update (so the first step has lr 0); 0 disables (default 5000).
    #[serde(default = "d::warmup")]
    pub warmup: u64,
    /// Global gradient L2-norm clip; negative disables (default 1.0).
    #[serde(default = "d::grad_clip")]
    pub grad_clip: f64,
    /// Present in some upstream configs but never read by the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amsgrad: Option<bool>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            weight_decay: 0.0,
            optimizer: d::optimizer(),
            lr: d::lr(),
            beta1: d::beta1(),
            eps: d::adam_eps(),
            warmup: d::warmup(),
            grad_clip: d::grad_clip(),
            amsgrad: None,
        }
    }
}

/// `optim.optimizer`: the reference supports only Adam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Optimizer {
    /// `torch.optim.Adam`.
    Adam,
}

/// The reference's defaults (`default_cifar10_configs.py`, reference §9).
mod d {
    use super::{BpdDataset, Dataset, Optimizer};

    pub fn yes() -> bool {
        true
    }
    pub fn one() -> usize {
        1
    }
    pub fn batch_size() -> usize {
        128
    }
    pub fn n_iters() -> u64 {
        1_300_001
    }
    pub fn snapshot_freq() -> u64 {
        50_000
    }
    pub fn log_freq() -> u64 {
        50
    }
    pub fn eval_freq() -> u64 {
        100
    }
    pub fn snapshot_freq_for_preemption() -> u64 {
        10_000
    }
    pub fn snr() -> f64 {
        0.16
    }
    pub fn begin_ckpt() -> u32 {
        9
    }
    pub fn end_ckpt() -> u32 {
        26
    }
    pub fn eval_batch_size() -> usize {
        1024
    }
    pub fn num_samples() -> usize {
        50_000
    }
    pub fn bpd_dataset() -> BpdDataset {
        BpdDataset::Test
    }
    pub fn dataset() -> Dataset {
        Dataset::Cifar10
    }
    pub fn optimizer() -> Optimizer {
        Optimizer::Adam
    }
    pub fn lr() -> f64 {
        2e-4
    }
    pub fn beta1() -> f64 {
        0.9
    }
    pub fn adam_eps() -> f64 {
        1e-8
    }
    pub fn warmup() -> u64 {
        5000
    }
    pub fn grad_clip() -> f64 {
        1.0
    }
}
